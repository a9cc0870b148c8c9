"""gwbox.port.device: the poll loop glues UART, DCD, DTR, LAN, LED and watchdog to the box."""
# mp-heap: 256K  (the box and three gateways: four devices, four 64K device heaps, in one interpreter)
import json

import clustersim
from fakeio import FakeLan, FakePin, FakeUart, FakeWdt, PacedUart
from test_box import DST, G1, G2, G3, PSK, policy_text
from gwbox import ticks
from gwbox.box import Box
from gwbox.link.modem import Modem
from gwbox.policy import parse
from gwbox.port.device import LED_SEARCHING, LONG_PASS_MS, POLL_MS, RX_POLL_MS, DevicePort, take, write_all


class PortSim(clustersim.Sim):
    """The virtual head office, with the box behind a DevicePort (its loop, its fakes)."""

    def __init__(self, text=None, uart_room=None, paced=False, **port_kw):
        # paced: the modem UART is a board's (PacedUart: a 288-byte buffer drained at 9,600 baud)
        self.uart = PacedUart(lambda: self.now) if paced else FakeUart(uart_room)
        self.read_at = None  # a slow loop (_slow_chip) reads the UART only from then on
        self.lines = []
        self.pins = {"dcd": FakePin(0), "dtr": FakePin(0), "led": FakePin(0)}
        self.wdt = FakeWdt()
        self.lan = FakeLan()
        pol = parse(text or policy_text())

        def factory(now):
            box = Box(pol, Modem(guard_ms=clustersim.GUARD, baud=9600), rand_bytes=clustersim.Rand(7).bytes,
                      start=now)
            self.port = DevicePort(box, self.uart, dcd=self.pins["dcd"], dtr=self.pins["dtr"], led=self.pins["led"],
                                   wdt=self.wdt, lan=self.lan, log=self.lines.append, clock=lambda: self.now, **port_kw)
            return box

        clustersim.Sim.__init__(self, factory, {G1: PSK, G2: PSK,
                                                G3: PSK}, {"ras": "ras"})

    def settle(self):
        if not hasattr(self, "port"):
            return
        for _ in range(100):
            self.port.step()
            moved = False
            if hasattr(self.uart, "drain"):
                self.uart.drain()
            if self.uart.tx:
                data, self.uart.tx = bytes(self.uart.tx), bytearray()
                self.modem.from_box(data, self.now)
                moved = True
            if self.modem.to_box:
                self.uart.rx.extend(self.modem.to_box)
                self.modem.to_box = b""
                moved = True
            if not moved:
                return

    def deadlines(self):
        if not hasattr(self, "port"):
            return []
        ds = [self.port.next_deadline()]
        if hasattr(self.uart, "deadline"):
            ds.append(self.uart.deadline())
        if self.read_at is not None and self.uart.rx:
            ds.append(self.read_at)  # a slow loop's next read of what waits
        return ds

    def records(self):
        return [json.loads(l) for l in self.lines]

    def names(self, since=0):
        return [r["event"] for r in self.records()[since:]]


def test_boot_dial_handshake_and_lan_payload_through_the_poll_loop():
    s = PortSim()
    assert s.pins["dtr"].value() == 1  # DTR held up from the start
    s.run(3000)
    assert "sa_established" in s.names()
    assert s.pins["led"].value() == 1  # solid: payload can flow
    s.lan.inbox.append((DST, 5000, b"over the uart"))
    s.run(500)
    assert s.gateways[G1].handed_on[0][4] == b"over the uart"
    assert s.wdt.fed > 10
    assert not any("5a5a5a5a" in l or "psk" in l.lower() for l in s.lines)  # no secret is ever logged


def test_what_the_uart_does_not_take_goes_in_a_later_pass_in_order():
    # MicroPython's rp2 UART takes 288 bytes and returns that count (the rest was lost on the
    # emulated RP2040: frames cut short, messages "stuck" after a failover); here 64 bytes fit
    s = PortSim(uart_room=64, status_ms=1000)
    s.run(3000)
    assert "sa_established" in s.names()  # the handshake's messages are longer than 64 bytes
    for i in range(12):
        s.lan.inbox.append((DST, 5000, b"message %02d " % i + bytes(40)))
    s.run(3000)
    assert [m[4][:10] for m in s.gateways[G1].handed_on] == [b"message %02d" % i for i in range(12)]
    assert s.uart.short_writes > 0 and s.box.line.framer.bad_fcs == 0
    st = [r for r in s.records() if r["event"] == "status"][-1]
    assert st["tx_dropped"] == 0 and st["tx_held"] == 0


def test_write_all_holds_the_rest_in_order_and_bounds_it():
    u = FakeUart(room=8)
    held, lost = write_all(u, None, b"0123456789ab", 100)
    assert (bytes(u.tx), held, lost) == (b"01234567", b"89ab", 0)
    held, lost = write_all(u, held, b"cd", 100)  # the UART took nothing (None): all held, in order
    assert (bytes(u.tx), held, lost) == (b"01234567", b"89abcd", 0)
    u.tx = bytearray()  # the line drained it
    held, lost = write_all(u, held, b"", 100)
    assert (bytes(u.tx), held, lost) == (b"89abcd", None, 0)
    held, lost = write_all(u, None, bytes(120), 100)  # a UART that takes nothing: beyond the bound, dropped
    assert (held, lost) == (None, 118)


def test_log_lines_are_json_with_time_since_boot():
    s = PortSim()
    s.run(3000)
    recs = s.records()
    assert recs[0]["t_ms"] == 0 and all(r["node"] == "box" for r in recs)
    assert all(0 <= r["t_ms"] <= 3000 for r in recs)


def test_status_lines_carry_what_the_monitor_shows():
    s = PortSim(status_ms=1000)
    s.run(3500)
    st = [r for r in s.records() if r["event"] == "status"]
    assert len(st) == 3
    last = st[-1]
    assert last["clusters"][0]["in_use"] == G1 and last["line"] == "up"
    assert last["sas"][0]["peer"] == G1 and "outbox" in last and last["uptime_s"] == 3


def test_the_longest_pass_of_the_loop_is_in_the_status():
    s = PortSim(status_ms=1000)
    s.run(1500)
    real = s.uart.read
    start = s.now

    def slow_read():  # a pass that works for 40 ms: the clock moves while it runs
        s.now = start + 40
        return real()

    s.uart.read = slow_read
    s.port.step()
    s.uart.read = real
    st = s.port.status(s.now)
    assert st["pass_max_ms"] == 40
    s.run(1500)
    assert [r for r in s.records() if r["event"] == "status"][-1]["pass_max_ms"] == 40


class BurstUart:
    """A board's UART as MicroPython's rp2 one reads: `any()` counts the bytes there now; a
    `read()` without a count waits timeout_char after each byte, so it also returns the rest
    of the burst still arriving (`coming`); `read(n)` of what is there never waits. `one`:
    any() says 1 for "some" (ports may)."""

    def __init__(self, there, coming, one=False):
        self.there = bytearray(there)
        self.coming = bytearray(coming)
        self.one = one
        self.reads = 0

    def any(self):
        return min(1, len(self.there)) if self.one else len(self.there)

    def read(self, n=None):
        self.reads += 1
        if n is None:
            self.there += self.coming
            self.coming = bytearray()
            n = len(self.there)
        out, self.there = bytes(self.there[:n]), self.there[n:]
        return out or None


def test_a_pass_takes_the_uart_bytes_there_without_waiting_for_the_rest_of_a_burst():
    u = BurstUart(b"frame-start", b"rest of the burst")
    assert take(u) == b"frame-start" and u.coming == b"rest of the burst"
    assert take(u) is None  # nothing there now: nothing read, nothing waited for
    u = BurstUart(b"abc", b"later", one=True)  # any() says 1: read on while bytes are there
    assert take(u) == b"abc" and u.coming == b"later"
    u = BurstUart(b"x" * 2000, b"", one=True)
    assert len(take(u, 512)) == 512 and len(u.there) == 1488  # at most about `cap` a pass
    assert take(FakeUart()) is None  # a stand-in without any(): just read


def _pass_taking(s, ms, part):
    """One pass of s.port in which `part` ("read": the UART's input, "tick": the box's tick)
    takes `ms` of the clock."""
    start = s.now
    obj, name = (s.uart, "read") if part == "read" else (s.box, "tick")
    real = getattr(obj, name)

    def slow(*args):
        s.now = start + ms
        return real(*args)

    setattr(obj, name, slow)
    try:
        s.port.step()
    finally:
        setattr(obj, name, real)
    s.now = start + ms


def test_a_pass_over_the_bound_is_reported_with_where_its_time_went():
    s = PortSim(status_ms=1000)
    s.run(1500)
    s.box._start_at = s.now  # make the box's tick due now
    mark = len(s.lines)
    _pass_taking(s, LONG_PASS_MS + 50, "tick")
    long = [r for r in s.records()[mark:] if r["event"] == "long_pass"]
    assert len(long) == 1
    r = long[0]
    assert r["ms"] == LONG_PASS_MS + 50 and r["tick"] == LONG_PASS_MS + 50
    assert r["input"] == r["output"] == r["status"] == r["console"] == 0
    mark = len(s.lines)
    s.run(2000)
    assert "long_pass" not in s.names(mark)  # the passes of a running box stay within it


def test_after_input_that_took_long_the_tick_and_status_line_wait_for_the_next_pass():
    s = PortSim(status_ms=1000)
    s.run(1500)
    ticked = []
    real = s.box.tick
    s.box.tick = lambda now: (ticked.append(now), real(now))
    s.box._start_at = s.now  # the box's tick is due
    s.now = ticks.add(s.port._status_at, 1000)  # and a status line
    mark = len(s.lines)
    _pass_taking(s, 60, "read")  # the input took 60 ms: the tick and the status line go to the next pass
    assert ticked == [] and "status" not in s.names(mark)
    _pass_taking(s, 60, "read")  # long again: the tick is never left two passes in a row
    assert len(ticked) == 1 and "status" not in s.names(mark)  # that pass was busy: the status line waits
    s.port.step()  # a pass with room
    s.box.tick = real
    assert s.names(mark).count("status") == 1
    # a loop that never has room still reports, at most a status interval late
    due = ticks.add(s.port._status_at, 1000)
    s.now = due
    mark = len(s.lines)
    for _ in range(30):
        _pass_taking(s, 60, "read")
    st = [r for r in s.records()[mark:] if r["event"] == "status"]
    assert st and 1000 <= st[0]["t_ms"] - ticks.diff(due, s.port.boot) < 1000 + 60


def test_dcd_drop_is_carrier_loss_and_the_led_blinks_while_searching():
    s = PortSim()
    s.run(3000)
    s.unreachable.add("ras")  # the redial fails: the box keeps searching
    dials = s.modem.cmds.count("ATDRAS")
    s.pins["dcd"].value(1)  # carrier lost (active low)
    s.modem.online = False
    s.run(10)
    assert "link_down" in s.names() and s.box.line.state != "up"
    assert s.modem.cmds.count("ATDRAS") == dials + 1  # a verified call: dialled again at once (DCD: no +++)
    s.run(2000)
    on, off = LED_SEARCHING
    assert s.box.carrying() is False
    seen = set()
    for _ in range(20):
        s.run(50)
        seen.add(s.pins["led"].value())
    assert seen == {0, 1}  # a pattern, not a steady light


def test_sleep_is_bounded_by_poll_interval_and_next_deadline_and_noise_is_counted():
    s = PortSim()
    s.run(3000)
    w = s.port.step()
    assert 0 <= w <= POLL_MS
    s.uart.rx.extend(b"\x7e\x01\x02garbage\x7e")  # line noise: counted, never raised
    s.port.step()
    assert s.box.line.framer.bad_fcs == 1 and s.box.line.state == "up"


def test_after_a_pass_that_took_line_bytes_the_next_comes_within_rx_poll_ms():
    # A frame still arriving (a handshake's msg2 or msg4: 90 bytes, 94 ms at 9,600 baud) is
    # acted on as soon as it is whole, not up to POLL_MS later (docs/chip.md).
    s = PortSim()
    s.run(3000)
    s.box.next_deadline = lambda: None  # nothing due: an idle pass sleeps POLL_MS
    try:
        assert s.port.step() == POLL_MS
        s.uart.rx.extend(b"\x7e\x01\x02")  # the start of a frame
        assert s.port.step() == RX_POLL_MS < POLL_MS
        assert s.port.step() == POLL_MS  # nothing more came
    finally:
        del s.box.next_deadline


def test_the_status_line_waits_while_the_box_hurries_at_most_a_status_interval():
    # A status pass (a collection, a long line: 50-65 ms on an RP2040) delayed a handshake's
    # msg2 or msg4 on the chip: while a handshake of the box runs the status line waits, at
    # most a status interval, as for a busy loop.
    s = PortSim(status_ms=1000)
    s.run(1500)
    hurry = [True]
    s.box.hurry = lambda: hurry[0]
    due = ticks.add(s.port._status_at, 1000)
    mark = len(s.lines)
    s.now = due
    s.port.step()
    s.now = ticks.add(due, 500)
    s.port.step()
    assert "status" not in s.names(mark)
    s.now = ticks.add(due, 1000)  # a status interval late: it goes, hurry or not
    s.port.step()
    assert s.names(mark).count("status") == 1
    hurry[0] = False
    mark = len(s.lines)
    s.now = ticks.add(s.port._status_at, 1000)
    s.port.step()
    assert s.names(mark).count("status") == 1  # on time once the box does not hurry
    del s.box.hurry


def test_a_memory_error_in_the_loop_is_survived_and_reported():
    s = PortSim()
    s.run(3000)
    real = s.box.tick

    def failing(now):
        raise MemoryError("memory allocation failed")

    s.box.tick = failing
    s.box.next_deadline = lambda: s.now
    fed = s.wdt.fed
    waits = [s.port.step() for _ in range(3)]
    assert waits == [200, 200, 200]  # backs off instead of spinning
    assert s.names()[-3:] == ["out_of_memory"] * 3 and s.port.oom == 3
    assert s.wdt.fed == fed + 3  # not yet fatal: the watchdog is still fed
    s.box.tick = real
    del s.box.next_deadline
    s.port.step()
    assert s.port.oom == 0


def test_memory_errors_in_a_row_make_the_box_give_up_what_it_makes_ahead():
    # A heap too fragmented for one allocation a pass needs fails every pass: after
    # _OOM_SHED in a row the box drops the spare key and the code imported ahead (Box.shed),
    # which frees heap and stops it from being taken again this boot.
    s = PortSim()
    s.run(3000)
    ep = s.box.endpoint
    assert ep.spare is not None and not ep.lean  # a key made ahead after the first handshake
    real = s.box.tick
    fails = [3]

    def failing(now):
        if fails[0]:
            fails[0] -= 1
            raise MemoryError("memory allocation failed")
        return real(now)

    s.box.tick = failing
    s.box.next_deadline = lambda: s.now
    s.port.step()
    s.port.step()
    assert s.port.oom == 2 and not ep.lean and ep.spare is not None  # two may be chance
    s.port.step()
    assert s.port.oom == 3 and ep.lean and ep.spare is None and not ep.warm
    s.port.step()
    assert s.port.oom == 0  # the next pass goes through
    s.box.tick = real
    del s.box.next_deadline
    s.gateways[G1].frozen = True
    s.run_until_event("gateway_dead", 15000)
    assert not ep.warm  # nothing imported ahead of the death
    s.run_until_event("sa_established", 15000, peer=G2.encode())  # a failover still works
    assert ep.spare is None  # and makes no key ahead any more


def test_a_deliberate_restart_reports_what_the_outbox_loses_then_resets():
    # The outbox is RAM: a reset loses it. A deliberate one (console `reboot`, a crash caught
    # in main.py) says what is lost before the board resets; nothing goes silently.
    resets = []
    s = PortSim(reset=lambda: resets.append(len(s.lines)))
    s.run(3000)
    s.gateways[G1].frozen = True  # nothing is confirmed any more
    for i in range(5):
        s.lan.inbox.append((DST, 5000, b"held %d" % i))
    s.run(200)
    s.port.restart()
    lost = [r for r in s.records() if r["event"] == "outbox_lost"]
    assert [(r["cluster"], r["space"], r["count"], r["bytes"], r["first"], r["last"]) for r in lost] == [
        ("Cluster1", 1, 5, 30, 1, 5)]
    assert resets == [len(s.lines)]  # after the report was logged


# --- the console beside the running box (gwbox.console), entropy, safe mode --------------------

def console_sim():
    cin = FakeUart()  # the console's input: rx
    s = PortSim(console=cin, password=None)
    s.run(3000)
    return s, cin


def replies(s, since):
    return [r for r in s.records()[since:] if r["event"] == "console" and "ok" in r]


def test_console_status_beside_the_running_box():
    s, cin = console_sim()
    since = len(s.lines)
    cin.rx.extend(b"status\r\n")
    s.run(100)
    r = replies(s, since)
    assert len(r) == 1 and r[0]["ok"] and r[0]["msg"] == "running"
    st = r[0]["status"]
    assert st["clusters"][0]["in_use"] == G1 and st["line"] == "up" and st["safe"] is None and "heap_free" in st
    s.lan.inbox.append((DST, 5000, b"while the console talks"))
    s.run(500)
    assert s.gateways[G1].handed_on[-1][4] == b"while the console talks"


def test_console_test_link_sends_a_heartbeat_and_reports_the_answer():
    s, cin = console_sim()
    s.port.password = None
    s.port.safe = "test"  # no password: changes (test link is one) only in safe mode
    since = len(s.lines)
    cin.rx.extend(b"test link\n")
    s.run(1500)
    r = replies(s, since)
    assert r and r[0]["ok"] and r[0]["gateway"] == G1 and r[0]["msg"].startswith(G1 + " answered in ")
    names = s.names(since)
    assert names.index("heartbeat_sent") < names.index("heartbeat_ack")


def test_console_test_link_says_when_the_gateway_does_not_answer():
    s, cin = console_sim()
    s.port.safe = "test"
    s.gateways[G1].frozen = True
    since = len(s.lines)
    cin.rx.extend(b"test link\n")
    s.run(6000)
    r = replies(s, since)
    assert r and not r[0]["ok"] and r[0]["msg"].startswith(G1 + " did not answer"), r


def test_the_console_module_leaves_the_heap_once_idle():
    import sys
    s, cin = console_sim()
    cin.rx.extend(b"help\n")
    s.run(100)
    assert "gwbox.console" in sys.modules
    s.run(6000)
    assert "gwbox.console" not in sys.modules and s.port._con is None


def test_boot_entropy_is_stirred_into_the_pool():
    from gwbox.crypto import entropy
    got = []
    real = entropy.add_entropy
    entropy.add_entropy = got.append
    try:
        DevicePort(None, None, clock=lambda: 0, entropy=lambda: b"adc noise and radio bits")
        DevicePort(None, None, clock=lambda: 0, entropy=b"plain bytes")
    finally:
        entropy.add_entropy = real
    assert got == [b"adc noise and radio bits", b"plain bytes"]


def test_safe_mode_port_runs_the_console_alone_and_blinks_its_own_pattern():
    from gwbox.port.device import LED_SAFE
    led = FakePin(0)
    t = [0]
    cin = FakeUart()  # the console's input: rx
    lines = []
    port = DevicePort(None, None, led=led, clock=lambda: t[0], console=cin, log=lines.append, safe="test")
    seen = []
    for _ in range(100):
        w = port.step()
        assert 0 <= w <= POLL_MS
        t[0] += 40
        seen.append(led.value())
    on, off = LED_SAFE
    assert 0 in seen and 1 in seen and seen.count(1) > seen.count(0) * 5
    cin.rx.extend(b"status\n")
    port.step()
    assert json.loads(lines[-1])["msg"] == "safe mode: test"


def _slow_chip(text=None, pass_ms=250):
    """A box on a board's UART (PacedUart) whose loop reads it once every `pass_ms`, as the
    slow chip does during a handshake (docs/chip.md: passes up to 250 ms by design): what
    the gateway answered meanwhile comes in one read. Liveness timers as on the chip
    (HeartbeatResponseTime 1 s: 480 bytes of messages in flight at 9,600 baud)."""
    s = PortSim(text=(text or policy_text()).replace("HeartbeatResponseTime = 0.5", "HeartbeatResponseTime = 1"),
                paced=True)
    real = s.uart.read
    s.read_at = s.now

    def read():
        if not ticks.reached(s.now, s.read_at):
            return None
        s.read_at = ticks.add(s.now, pass_ms)
        return real()

    s.uart.read = read
    s.run(4000)
    assert s.box.clusters[0].in_use == G1.encode()
    return s


def _handed_on(s):
    got = []
    for g in s.gateways.values():
        got += [m[4] for m in g.handed_on]
    return got


def test_a_failover_on_a_board_uart_hands_every_message_on_and_gives_up_no_live_gateway():
    # The chip scenario (docs/chip.md): a board's UART.write takes what fits in its transmit
    # buffer (rp2: 288 bytes with timeout=0) and says how much; the port wrote the rest
    # nowhere. After a failover the outbox sends everything in flight through the next
    # gateway in one pass: the frames past 288 bytes never reached the line, the gateway
    # confirmed later ones together, and the live gateway was given up (`message_stuck`),
    # then the next one.
    s = _slow_chip()
    for i in range(40):
        if i == 5:
            s.gateways[G1].frozen = True
        s.lan.inbox.append((DST, 5000, b"m%02d" % i))
        s.run(100)
    s.run(15000)
    assert "message_stuck" not in s.names()
    assert [r["gateway"] for r in s.records() if r["event"] == "gateway_dead"] == [G1]  # the frozen one only
    assert set(_handed_on(s)) == set(b"m%02d" % i for i in range(40))  # nothing lost
    assert s.box.outbox.depth() == 0 and s.uart.refused > 0 and s.port.tx_dropped == 0  # the UART was full, at times


def test_one_lost_frame_on_a_slow_chip_costs_one_resend_not_the_gateway():
    # A loss counts once per sending: the gateway's confirmations of later messages, read
    # together by a slow loop, each counted another loss of the one lost frame before it
    # could go again, and the third gave a live gateway up (`message_stuck`).
    s = _slow_chip()
    for i in range(12):
        s.lan.inbox.append((DST, 5000, b"m%02d" % i))
        s.run(100)
    dropped = []

    def lose_one(frame):  # the next message's frame, once (a compact one: 30 bytes with "mNN")
        if not dropped and len(frame) == 30:
            dropped.append(frame)
            return True
        return False

    s.drop_up = lose_one
    for i in range(12, 40):
        s.lan.inbox.append((DST, 5000, b"m%02d" % i))
        if i % 6 == 5:
            s.run(300)  # bursts: their confirmations come back together
    s.run(10000)
    assert dropped and s.lost == 1
    assert "message_stuck" not in s.names() and "gateway_dead" not in s.names()
    assert s.box.clusters[0].in_use == G1.encode()
    got = [m[1] for m in s.gateways[G1].handed_on]
    assert sorted(got) == list(range(1, 41)) and got != sorted(got)  # each once; the lost one went again later
    assert s.box.outbox.depth() == 0
