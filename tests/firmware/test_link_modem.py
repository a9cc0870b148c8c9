"""gwbox.link.modem: Hayes/V.250 driver against a scripted fake modem, virtual clock across the wrap."""
from gwbox import ticks
from gwbox.link import hayes
from gwbox.link import modem as M
from gwbox.link import modemstate as S
from gwbox.link.modem import Modem


def names(events):
    return [e.name for e in events]


START = ticks.PERIOD - 1500   # every test crosses the 2**30 wrap within 1.5 s
CODES = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4,
         "NO DIALTONE": 6, "BUSY": 7, "NO ANSWER": 8, "CONNECT 9600": 12}


class Fake:
    """Scripted modem: command lines in, canned result codes out; honours the +++ guard."""

    def __init__(self, echo=False, numeric=False, dial=("CONNECT 9600",), silent=(), guard=1000):
        self.echo = echo
        self.numeric = numeric
        self.dial = list(dial)       # one result per ATD, the last one repeats
        self.silent = silent         # commands (or "+++") that get no answer
        self.guard = guard
        self.online = False
        self.cmds = []
        self.payload = b""
        self.line = b""
        self.last_rx = None
        self.plus_at = None

    def code(self, word):
        if word is None:
            return b""
        if self.numeric:
            return str(CODES[word]).encode() + b"\r"
        return b"\r\n" + word.encode() + b"\r\n"

    def feed(self, data, now):
        if self.online:
            quiet = self.last_rx is None or ticks.diff(now, self.last_rx) >= self.guard
            self.plus_at = now if (data == b"+++" and quiet and "+++" not in self.silent) else None
            if self.plus_at is None:
                self.payload += data
            self.last_rx = now
            return b""
        out = b""
        for b in data:
            if b != 13:
                self.line += bytes([b])
                continue
            line = self.line.decode()
            self.line = b""
            if self.echo:
                out += line.encode() + b"\r"
            at = line.upper().find("AT")
            if at < 0:
                continue
            cmd = line[at:].upper()
            self.cmds.append(cmd)
            if cmd in self.silent:
                continue
            if cmd.startswith("ATD"):
                res = self.dial.pop(0) if len(self.dial) > 1 else self.dial[0]
                self.online = res is not None and res.startswith("CONNECT")
                self.last_rx = now
                out += self.code(res)
            else:
                out += self.code("OK")
        return out

    def deadline(self):
        return None if self.plus_at is None else ticks.add(self.plus_at, self.guard)

    def poll(self, now):
        if self.plus_at is not None and ticks.reached(now, self.deadline()):
            self.plus_at = None
            self.online = False
            return self.code("OK")
        return b""


class Rig:
    """Driver + fake on one virtual clock; logs every write with its time."""

    def __init__(self, fake=None, **kw):
        kw.setdefault("dial_target", "T5551234")
        self.now = START
        self.m = Modem(**kw)
        self.fake = fake if fake is not None else Fake()
        self.ev = []
        self.sent = []   # (tick, bytes written to the UART)
        self.rx = b""    # payload handed up by the driver

    def pump(self):
        for _ in range(20):
            out = self.m.take_output()
            reply = b""
            if out:
                self.sent.append((self.now, out))
                reply = self.fake.feed(out, self.now)
            reply += self.fake.poll(self.now)
            if reply:
                self.rx += self.m.receive(reply, self.now)
            self.ev.extend(self.m.take_events())
            if not out and not reply:
                return

    def run(self, ms):
        end = ticks.add(self.now, ms)
        for _ in range(500):
            self.pump()
            d = ticks.earliest(self.m.next_deadline(), self.fake.deadline())
            if d is None or ticks.diff(d, end) > 0:
                break
            if ticks.diff(d, self.now) > 0:
                self.now = d
            self.m.tick(self.now)
        self.now = end
        self.m.tick(end)
        self.pump()

    def take(self):
        ev = self.ev
        self.ev = []
        return ev

    def up(self, **kw):
        self.m.request_link(self.now, **kw)
        self.run(10)
        assert self.m.state == S.DATA, (self.m.state, self.ev)

    def writes(self):
        return [d for _, d in self.sent]

    def at(self, data):
        """Time of the last write equal to data."""
        t = None
        for when, d in self.sent:
            if d == data:
                t = when
        return t


def ev(events, name):
    for e in events:
        if e.name == name:
            return e
    return None


def online(**kw):
    """A driver in data mode, fed by hand."""
    m = Modem(dial_target="T1", **kw)
    m.request_link(START)
    m.receive(b"\r\nOK\r\n\r\nOK\r\n\r\nCONNECT 9600\r\n", START)
    assert m.state == S.DATA
    m.take_events()
    m.take_output()
    return m


def test_parse_result_codes():
    p = hayes.parse_result
    for w in ("OK", "RING", "NO CARRIER", "ERROR", "NO DIALTONE", "BUSY", "NO ANSWER"):
        assert p(w) == (w, None)
        assert p(str(CODES[w])) == (w, None)
    assert p("NO DIAL TONE") == ("NO DIALTONE", None)
    assert p("CONNECT") == ("CONNECT", None)
    assert p("1") == ("CONNECT", None)
    assert p("CONNECT 9600") == ("CONNECT", 9600)
    assert p("CONNECT 115200/ARQ") == ("CONNECT", 115200)
    assert p("CONNECT 28800/V42BIS") == ("CONNECT", 28800)
    assert p("5") == ("CONNECT", 1200)
    assert p("10") == ("CONNECT", 2400)
    assert p("12") == ("CONNECT", 9600)
    assert p("CONNECTED") is None
    assert p("99") is None
    assert p("XYZ") is None


def test_init_echo_off_then_ready_and_no_dial_until_requested():
    r = Rig()
    r.m.start(r.now)
    r.run(1)
    assert r.fake.cmds == ["ATZ", "ATE0V1Q0&C1&D2"]
    assert names(r.take()) == ["modem_ready"]
    assert r.m.state == S.READY and r.m.junk_lines == 0
    r.run(120000)   # dial on demand: nothing happens without request_link
    assert r.fake.cmds == ["ATZ", "ATE0V1Q0&C1&D2"] and r.take() == []
    assert r.m.next_deadline() is None
    r.m.request_link(r.now)
    r.run(1)
    assert r.fake.cmds[-1] == "ATDT5551234"
    assert names(r.take()) == ["dialing", "link_up"]


def test_init_echo_on_numeric_and_single_command_init():
    r = Rig(Fake(echo=True, numeric=True))
    r.m.start(r.now)
    r.run(1)
    assert names(r.take()) == ["modem_ready"] and r.m.junk_lines == 0
    r = Rig(Fake(echo=True), init="ATE0V1Q0&C1&D2")
    r.m.start(r.now)
    r.run(1)
    assert r.fake.cmds == ["ATE0V1Q0&C1&D2"] and names(r.take()) == ["modem_ready"]


def test_request_link_from_idle_inits_then_dials_and_latches():
    r = Rig(Fake(echo=True, dial=("CONNECT 115200/ARQ",)))
    r.m.request_link(r.now, target="Pgw1")
    assert r.m.want_link
    r.run(1)
    assert r.fake.cmds == ["ATZ", "ATE0V1Q0&C1&D2", "ATDPGW1"]
    e = r.take()
    assert names(e) == ["modem_ready", "dialing", "link_up"]
    assert ev(e, "dialing").get("target") == "Pgw1"
    assert ev(e, "link_up").get("rate") == 115200
    assert ev(e, "link_up").get("result") == "CONNECT 115200/ARQ"
    assert not r.m.want_link and r.m.state == S.DATA


def test_connect_without_rate_and_numeric_connect():
    r = Rig(Fake(dial=("CONNECT",)))
    r.up()
    assert ev(r.take(), "link_up").get("rate") is None
    r = Rig(Fake(numeric=True, dial=("CONNECT 9600",)))
    r.up()
    assert ev(r.take(), "link_up").get("rate") == 9600


def test_payload_in_same_chunk_as_connect_and_lf_split():
    m = Modem(dial_target="T1")
    m.request_link(START)
    m.receive(b"OK\r\nOK\r\n", START)
    assert m.receive(b"\r\nCONNECT 9600\r\n~ab", START) == b"~ab"
    m = Modem(dial_target="T1")
    m.request_link(START)
    m.receive(b"OK\rOK\r", START)
    assert m.receive(b"\r\nCONNECT\r", START) == b""
    assert m.receive(b"\n~x", START) == b"~x"       # the result's LF is not payload
    m = Modem(dial_target="T1")
    m.request_link(START)
    m.receive(b"0\r0\r", START)
    assert m.receive(b"1\r\n~", START) == b"\n~"     # V0 ends with CR alone


def test_intermediate_lines_are_junk_but_ignored():
    m = Modem(dial_target="T1")
    m.request_link(START)
    m.receive(b"\r\nOK\r\n\r\nOK\r\n", START)
    m.receive(b"\r\nCARRIER 28800\r\n\r\nPROTOCOL: LAPM\r\n\r\nCONNECT 28800\r\n", START)
    assert m.state == S.DATA and m.junk_lines == 2


def test_each_dial_failure_backs_off_growing_then_gives_up():
    for word in ("BUSY", "NO DIALTONE", "NO ANSWER", "NO CARRIER", "ERROR"):
        for numeric in (False, True):
            r = Rig(Fake(dial=(word,), numeric=numeric), backoff_base_ms=1000,
                    backoff_cap_ms=3000, max_attempts=4)
            r.m.request_link(r.now)
            r.run(30000)
            e = r.take()
            assert names(e) == ["modem_ready", "dialing", "backoff", "dialing", "backoff",
                                "dialing", "backoff", "dialing", "dial_failed"], (word, e)
            assert [x.get("delay_ms") for x in e if x.name == "backoff"] == [1000, 2000, 3000]
            assert [x.get("result") for x in e if x.name == "backoff"] == [word] * 3
            f = ev(e, "dial_failed")
            assert f.get("result") == word and f.get("attempts") == 4
            times = [t for t, d in r.sent if d == b"ATDT5551234\r"]
            gaps = [ticks.diff(b, a) for a, b in zip(times, times[1:])]
            assert gaps == [1000, 2000, 3000], gaps
            assert not r.m.want_link and r.m.state == S.READY
            assert "modem_error" not in names(e)   # a clean result, not a sick modem


def test_retry_succeeds_after_busy():
    r = Rig(Fake(dial=("BUSY", "CONNECT 2400")))
    r.m.request_link(r.now)
    r.run(5000)
    assert names(r.take()) == ["modem_ready", "dialing", "backoff", "dialing", "link_up"]
    assert r.m.attempts == 0


def test_init_silence_times_out_across_wrap_then_escape_first_retry():
    r = Rig(Fake(silent=("ATZ", "+++")), max_attempts=2)
    r.m.start(r.now)
    r.run(1)
    d = r.m.next_deadline()
    assert d == ticks.add(START, 2000) and d < START     # the deadline wrapped
    r.run(1998)
    assert r.take() == []
    r.run(1)
    e = r.take()
    assert names(e) == ["modem_error", "backoff"]
    assert e[0].get("reason") == "no response to ATZ within 2000 ms"
    assert e[1].get("result") == "TIMEOUT" and e[1].get("delay_ms") == 2000
    r.run(60000)
    # a silent modem may be online: +++ with guard first, then ATZ again
    assert r.writes()[1:] == [b"+++", b"ATZ\r"]
    assert ticks.diff(r.at(b"ATZ\r"), r.at(b"+++")) >= 1000
    e = r.take()
    assert names(e) == ["modem_error", "modem_failed"]
    assert ev(e, "modem_failed").get("attempts") == 2 and r.m.state == S.IDLE


def test_a_call_left_up_by_a_reboot_sends_garbage_to_atz_and_the_retry_escapes_first():
    # The box rebooted mid-call: the modem is still online and the far end's frames reach
    # the new driver as garbage where ATZ's OK should be (seen on the host rig after a
    # power cycle under load). Like silence, that gets +++ with its guard before ATZ again,
    # not a second ATZ into the call (which cost the dial, and the box its preferred gateway).
    fake = Fake()
    fake.online = True
    r = Rig(fake, max_attempts=2)
    r.m.request_link(r.now)
    r.run(500)
    r.rx += r.m.receive(b"~\x21\x45\x03\xc2\r\n\x7d\x5e\x10~\r\n", r.now)  # a frame for the old session
    r.run(1600)
    e = r.take()
    assert names(e) == ["modem_error", "backoff"] and e[1].get("result") == "UNEXPECTED", e
    r.run(10000)
    assert r.writes()[1:3] == [b"+++", b"ATZ\r"]
    assert ticks.diff(r.at(b"ATZ\r"), r.at(b"+++")) >= 1000
    assert names(r.take()) == ["modem_ready", "dialing", "link_up"] and r.m.state == S.DATA


def test_silent_modem_with_link_wanted_gives_dial_failed():
    r = Rig(Fake(silent=("ATZ",)), max_attempts=3)
    r.m.request_link(r.now)
    r.run(120000)
    e = r.take()
    f = ev(e, "dial_failed")
    assert f.get("result") == "TIMEOUT" and f.get("attempts") == 3
    assert not r.m.want_link and r.m.state == S.IDLE


def test_dial_silence_times_out_and_aborts():
    r = Rig(Fake(dial=(None,)), max_attempts=1)
    r.m.request_link(r.now)
    r.run(59990)
    assert r.m.state == S.DIALING
    r.run(20)
    e = r.take()
    assert ev(e, "modem_error").get("reason") == "no response to ATDT5551234 within 60000 ms"
    assert ev(e, "dial_failed").get("result") == "TIMEOUT"
    assert r.writes()[-1] == b"\r"    # any character aborts a dial in progress


def test_garbage_reply_is_an_error():
    m = Modem()
    m.start(START)
    m.receive(b"\r\nXYZ\r\n", START)
    assert m.take_events() == [] and m.junk_lines == 1
    m.tick(ticks.add(START, 2000))
    e = m.take_events()
    assert e[0].name == "modem_error" and e[0].get("reason") == "unexpected reply 'XYZ' to ATZ"
    assert e[1].get("result") == "UNEXPECTED"
    m = Modem(max_junk=4)
    m.start(START)
    m.receive(b"\xff\x00\xfe garbage\r\n" * 4, START)     # a wrong baud rate looks like this
    e = m.take_events()
    assert names(e) == ["modem_error", "backoff"]
    assert e[0].get("reason") == "unexpected reply '??? garbage' to ATZ"
    m = Modem(max_junk=4)
    m.start(START)
    m.receive(b"\x80" * 400, START)                        # no line ends at all
    assert names(m.take_events()) == ["modem_error", "backoff"]


def test_unexpected_result_code_and_error_to_init():
    m = Modem(dial_target="T1")
    m.request_link(START)
    m.receive(b"\r\nOK\r\n\r\nOK\r\n\r\nOK\r\n", START)
    e = m.take_events()
    assert ev(e, "modem_error").get("reason") == "unexpected reply 'OK' to ATDT1"
    m = Modem()
    m.start(START)
    m.receive(b"\r\nOK\r\n\r\nERROR\r\n", START)
    assert ev(m.take_events(), "modem_error").get("reason") == "ERROR reply to ATE0V1Q0&C1&D2"


def test_data_passthrough_any_chunking():
    stream = b"~\x7d\x5eab\r\ncd\r\nNO CARRIE\r\r\n\r\nNO~" + bytes(range(256)) + b"~"
    for size in (1, 2, 3, 5, 13, 14, 64, 1000):
        m = online()
        got = b""
        for i in range(0, len(stream), size):
            got += m.receive(stream[i:i + size], START)
        got += m.receive(b"~", START)    # releases a held tail ending in CR
        assert got == stream + b"~", size
        assert m.state == S.DATA and m.take_events() == []


def test_in_band_no_carrier_is_a_doubt_and_link_down_only_if_nothing_authentic_follows():
    # Anyone on the line can send these 14 bytes: without DCD they are a doubt, not a verdict.
    msg = b"~frame~" + M.NO_CARRIER_MARK + b"\r\nRING\r\n"
    for cut in range(1, len(msg)):
        for cut2 in (cut, min(cut + 5, len(msg))):
            m = online()
            got = m.receive(msg[:cut], START) + m.receive(msg[cut:cut2], START)
            got += m.receive(msg[cut2:], START)
            got += m.receive(b"~", START)  # releases a held tail that could have been a mark
            assert got == msg + b"~", (cut, got)  # every byte goes on: the framer drops what is no frame
            assert names(m.take_events()) == ["carrier_doubt"] and m.state == S.DATA
            assert m.next_deadline() == ticks.add(START, 3000)
            m.tick(ticks.add(START, 2999))
            assert m.state == S.DATA
            m.tick(ticks.add(START, 3000))  # silence after it: the carrier really went
            e = m.take_events()
            assert names(e) == ["link_down"] and e[0].get("reason") == "no carrier"
            assert m.state == S.ESCAPING  # no DCD to say so: +++ and ATH before any dial
    m = online()
    assert m.receive(b"\rX\r\n\r\nNO CARRIER\r", START) == b"\rX\r\n"  # a tail that may be the mark waits
    assert m.state == S.DATA and m.receive(b"\n", START) == b"\r\nNO CARRIER\r\n"
    assert names(m.take_events()) == ["carrier_doubt"]


def test_authenticated_traffic_after_an_in_band_no_carrier_keeps_the_call():
    m = online()
    m.receive(M.NO_CARRIER_MARK, START)
    m.authentic(ticks.add(START, 200))
    assert names(m.take_events()) == ["carrier_doubt", "carrier_confirmed"]
    m.tick(ticks.add(START, 5000))
    assert m.state == S.DATA and m.take_events() == [] and m.next_deadline() is None


def test_only_bytes_after_the_mark_can_disprove_it_and_fresh_says_where_they_start():
    # Issue 19: a modem hands over what it had received, then NO CARRIER, and both often come
    # in one read. A packet framed from the bytes before the mark came before it: no proof.
    mark = M.NO_CARRIER_MARK
    m = online()
    assert m.receive(b"~a~", START) == b"~a~" and m.fresh is None  # no doubt, nothing to prove
    assert m.receive(b"~b~" + mark + b"~c~", START) == b"~b~" + mark + b"~c~"
    assert m.fresh == 3 + len(mark)  # "~c~" may disprove it, "~b~" may not
    assert m.receive(b"~d~", START) == b"~d~" and m.fresh == 0  # all of it came after the mark
    assert m.receive(b"~e~" + mark + b"~f~" + mark, START) and m.fresh == 6 + 2 * len(mark)
    assert m.marks == 3 and names(m.take_events()) == ["carrier_doubt"]  # one doubt, one deadline
    assert m.next_deadline() == ticks.add(START, 3000)
    m = online()
    assert m.receive(b"~a~\r\nNO CAR", START) == b"~a~" and m.fresh is None  # the tail waits
    assert m.receive(b"RIER\r\n~b~", START) == mark + b"~b~" and m.fresh == len(mark)
    m = online()
    m.set_dcd(True, START)
    assert m.receive(b"~a~" + mark + b"~b~", START) and m.fresh is None  # DCD is the truth


def test_a_verdict_without_dcd_hangs_up_before_it_dials_whether_the_call_was_live_or_gone():
    # Review item 4: the verdict came without DCD, so the modem may still be online (a forged
    # mark, answers dropped): an ATD would be payload and wait out the 60 s dial timeout.
    for live in (True, False):
        r = Rig()
        r.up()
        r.take()
        r.m.send(b"~hb~", r.now)
        r.pump()
        r.fake.online = live  # gone: the fake modem is back in command mode
        t0 = r.now
        r.m.receive(M.NO_CARRIER_MARK, t0)
        r.run(2999)
        assert r.m.state == S.DATA and r.writes()[-1] == b"~hb~"
        r.run(1)
        assert names(r.take()) == ["carrier_doubt", "link_down"] and r.m.state == S.ESCAPING
        r.m.request_link(r.now)  # the line wants the call back at once: latched, not dialled
        assert r.at(b"+++") == ticks.add(t0, 3000)  # the doubt was silent for over a guard time
        r.run(1000 + 250 + 100)
        w = r.writes()
        assert w[-3:] == [b"+++", b"ATH\r", b"ATDT5551234\r"], w
        if live:  # the modem's OK to +++ ends the guard: ATH at once
            assert r.at(b"ATH\r") == ticks.add(t0, 4000)
        else:  # no OK: a quarter of a guard time more, then ATH (a modem answers it either way)
            assert r.at(b"ATH\r") == ticks.add(t0, 4250)
        e = names(r.take())
        assert e == ["hangup_done", "dialing", "link_up"], e  # no modem_error: no OK was due
        assert r.fake.cmds[-2:] == ["ATH", "ATDT5551234"] and r.m.state == S.DATA


def test_a_verdict_with_dcd_dials_at_once_and_an_error_to_ath_after_one_without_is_retried():
    r = Rig()
    r.up()
    r.m.set_dcd(True, r.now)
    r.take()
    r.m.set_dcd(False, r.now)
    r.m.request_link(r.now)
    assert names(r.m.take_events()) == ["link_down", "dialing"] and r.m.take_output() == b"ATDT5551234\r"
    # Without DCD the box wrote into a call that was gone: that noise sits in the modem's
    # command buffer in front of our ATH, and may make it answer ERROR. ATH once more.
    m = online()
    m.receive(M.NO_CARRIER_MARK, START)
    t = ticks.add(START, 3000)
    m.tick(t)
    m.request_link(t)
    assert m.take_output() == b"+++"
    m.tick(ticks.add(t, 1250))
    assert m.take_output() == b"ATH\r"
    m.receive(b"\r\nERROR\r\n", ticks.add(t, 1300))
    assert m.take_output() == b"ATH\r" and m.state == S.HANGUP
    m.receive(b"\r\nOK\r\n", ticks.add(t, 1350))
    assert m.take_output() == b"ATDT1\r"
    assert names(m.take_events()) == ["carrier_doubt", "link_down", "hangup_done", "dialing"]


def test_where_dcd_is_wired_an_in_band_no_carrier_is_just_bytes():
    m = online()
    m.set_dcd(True, START)
    assert m.receive(b"~x~" + M.NO_CARRIER_MARK, START) == b"~x~" + M.NO_CARRIER_MARK
    m.tick(ticks.add(START, 10000))
    assert m.state == S.DATA and m.take_events() == [] and m.marks == 1


def test_dcd_drop_is_link_down_at_once():
    r = Rig()
    r.up()
    r.take()
    r.now = ticks.add(r.now, 2500)    # past the wrap
    r.m.set_dcd(False, r.now)
    e = r.m.take_events()
    assert names(e) == ["link_down"] and e[0].get("reason") == "dcd"
    assert r.m.state == S.READY and r.m.next_deadline() is None
    assert not r.m.send(b"late", r.now) and r.m.tx_dropped == 4
    r.m.receive(b"\r\nNO CARRIER\r\n", r.now)     # the text that follows is just noted
    assert r.m.take_events() == [] and r.m.unsolicited == 1


def test_escape_guard_timing_then_ath():
    r = Rig()
    r.up()
    r.take()
    t0 = r.now
    assert r.m.send(b"~data~", t0)
    r.pump()
    r.run(300)
    r.m.release_link(r.now)
    assert names(r.m.take_events()) == ["link_down"] and r.m.state == S.ESCAPING
    r.run(699)
    assert r.sent[-1][1] == b"~data~"               # still inside the guard before +++
    r.run(1)
    assert r.sent[-1] == (ticks.add(t0, 1000), b"+++")
    r.run(999)
    assert r.sent[-1][1] == b"+++"                  # guard after: silence
    r.run(10)
    assert r.sent[-1] == (ticks.add(t0, 2000), b"ATH\r")
    assert r.fake.payload == b"~data~"              # the fake honoured the escape
    assert names(r.take()) == ["hangup_done"] and r.m.state == S.READY
    assert r.sent[-1][0] < START                    # ATH went out after the wrap


def test_escape_waits_for_uart_to_drain_at_baud():
    m = online(baud=9600)
    t = ticks.add(START, 500)
    m.send(b"x" * 960, t)                            # 1000 ms on a 9600 baud line
    m.take_output()
    m.release_link(t)
    assert m.next_deadline() == ticks.add(t, 2000)
    m.tick(ticks.add(t, 1999))
    assert m.take_output() == b""
    m.tick(ticks.add(t, 2000))
    assert m.take_output() == b"+++"


def test_early_ok_still_waits_out_guard():
    m = online()
    m.release_link(START)
    assert m.take_output() == b""
    t = ticks.add(START, 1000)
    m.tick(t)
    assert m.take_output() == b"+++"
    m.receive(b"\r\nOK\r\n", ticks.add(t, 10))      # a hasty modem
    m.tick(ticks.add(t, 999))
    assert m.take_output() == b""
    m.tick(ticks.add(t, 1000))
    assert m.take_output() == b"ATH\r"
    m.receive(b"\r\nNO CARRIER\r\n", ticks.add(t, 1100))
    assert names(m.take_events()) == ["link_down", "hangup_done"]


def test_escape_without_ok_tries_ath_and_ath_silence_is_error():
    r = Rig(Fake(silent=("+++", "ATH")), max_attempts=1)
    r.up()
    r.take()
    r.m.release_link(r.now)
    r.run(4000)
    e = r.take()
    assert names(e) == ["link_down", "modem_error"]
    assert e[1].get("reason") == "no OK to +++ within 3000 ms, trying ATH"
    assert r.writes()[-1] == b"ATH\r"
    r.run(5000)
    e = r.take()
    assert ev(e, "modem_error").get("reason") == "no response to ATH within 5000 ms"
    assert names(e)[-1] == "modem_failed"


def test_hangup_by_dtr_drop():
    r = Rig(use_dtr=True, dtr_drop_ms=500)
    r.up()
    r.take()
    r.m.hangup(r.now)
    e = r.m.take_events()
    assert names(e) == ["link_down", "dtr"] and not e[1].get("up") and not r.m.dtr
    assert r.m.take_output() == b""                 # no +++ on the wire
    r.run(499)
    assert not r.m.dtr
    r.run(1)
    assert r.m.dtr and names(r.take()) == ["dtr", "hangup_done"]


def test_release_while_dialing_aborts_and_request_during_escape_redials():
    r = Rig(Fake(dial=(None, "CONNECT 9600")))
    r.m.request_link(r.now)
    r.run(1000)
    r.m.release_link(r.now)
    assert r.m.take_output() == b"\r" and r.m.state == S.HANGUP
    r.m.receive(b"\r\nNO CARRIER\r\n", r.now)
    assert names(r.take() + r.m.take_events())[-1] == "hangup_done"
    assert r.m.state == S.READY and not r.m.want_link
    r.up()
    r.m.release_link(r.now)
    r.m.request_link(r.now)                         # latched through the hang-up
    r.run(3000)
    e = names(r.take())
    assert e[-3:] == ["hangup_done", "dialing", "link_up"], e
    assert r.m.state == S.DATA


def test_no_dial_target_is_reported():
    m = Modem()
    m.start(START)
    m.receive(b"OK\r\nOK\r\n", START)
    m.take_events()
    m.request_link(START)
    e = m.take_events()
    assert names(e) == ["dial_failed"] and e[0].get("result") == "NO TARGET"
    assert not m.want_link and m.state == S.READY
