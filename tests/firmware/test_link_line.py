"""gwbox.link.line: a call is down when it is down (issue 19), on the Line over a real Modem
driver fed by hand, virtual clock across the 2**30 wrap.

Packets from before an in-band NO CARRIER prove nothing (`stale`); a call that only sends
into silence for `dead_call_ms` is hung up and dialled again; the redial back-off starts
over after a call that came up and was verified."""
from gwbox import ticks
from gwbox.link import modem as M
from gwbox.link.framing import Framer
from gwbox.link.line import DIALING, UP, Line
from gwbox.link.modem import Modem

START = ticks.PERIOD - 1500
GW = (143 << 24) | (1 << 16) | 64  # 143.1.0.64
CONNECT = b"\r\nCONNECT 9600\r\n"
FR = Framer()


def names(events):
    return [e.name for e in events]


def at(ms):
    return ticks.add(START, ms)


def up_line(dead_call_ms=None):
    """A Line with a call up on "T1" (init and dial answered by hand), events taken."""
    line = Line(Modem(), retry_ms=5000, retry_max_ms=40000)
    line.dead_call_ms = dead_call_ms
    line.want("T1", START)
    line.feed(b"\r\nOK\r\n\r\nOK\r\n" + CONNECT, START)
    assert line.state == UP and line.take_uart() == b"ATZ\rATE0V1Q0&C1&D2\rATDT1\r"
    line.take_events()
    return line


def test_packets_from_before_an_in_band_no_carrier_are_stale_and_prove_nothing():
    line = up_line()
    got = line.feed(FR.encode(b"before") + M.NO_CARRIER_MARK + FR.encode(b"after"), START)
    assert got == [b"before", b"after"] and line.stale == 1
    line.authenticated(GW, START, False)  # the box: packet 0 < stale
    assert names(line.take_events()) == ["carrier_doubt"] and line.state == UP
    line.tick(at(2999))
    assert line.take_events() == [] and line.state == UP
    line.authenticated(GW, at(2999), True)  # a packet framed from bytes after the mark
    assert names(line.take_events()) == ["carrier_confirmed"] and line.state == UP
    assert line.feed(FR.encode(b"next"), at(3000)) == [b"next"] and line.stale == 0
    # Only stale packets: the doubt ends in a verdict, and the call is dialled again.
    line = up_line()
    line.authenticated(GW, START)  # a verified call
    assert line.feed(FR.encode(b"a") + FR.encode(b"b") + M.NO_CARRIER_MARK, START) == [b"a", b"b"]
    assert line.stale == 2
    line.authenticated(GW, START, False)
    line.authenticated(GW, START, False)
    line.tick(at(3000))
    e = line.take_events()
    assert names(e) == ["carrier_doubt", "link_down"] and e[1].get("reason") == "no carrier"
    assert line.state == DIALING and line.modem.state == M.ESCAPING  # +++ and ATH first


def test_a_call_that_only_sends_into_silence_is_hung_up_and_dialled_again():
    line = up_line(dead_call_ms=20000)
    line.authenticated(GW, START)
    assert line.next_deadline() is None  # nothing sent, nothing awaited
    assert line.send(GW, b"hb", at(1000))
    assert line.next_deadline() == at(21000)
    line.authenticated(GW, at(1500))  # answered: the clock starts again at the next send
    assert line.next_deadline() is None
    assert line.send(GW, b"hb", at(2000)) and line.send(GW, b"hb", at(7000))  # the first one counts
    assert line.next_deadline() == at(22000)
    line.tick(at(21999))
    assert line.state == UP and names(line.take_events()) == []
    line.tick(at(22000))
    e = line.take_events()
    assert names(e) == ["dead_call", "link_down"], e
    assert e[0].get("silent_ms") == 20000 and e[0].get("number") == "T1" and e[1].get("reason") == "hangup"
    assert line.state == DIALING and not line.send(GW, b"hb", at(22000))
    # Whatever the modem said: +++ (the last write was 15 s ago), then ATH without waiting for
    # an OK a modem in command mode never sends, then (it was a verified call) ATD at once.
    assert line.take_uart().endswith(b"+++")
    line.tick(at(23250))
    assert line.take_uart() == b"ATH\r"
    line.feed(b"\r\nOK\r\n", at(23300))
    assert line.take_uart() == b"ATDT1\r"
    assert names(line.take_events()) == ["hangup_done", "dialing"]
    line.feed(CONNECT, at(24000))
    assert line.state == UP and line.calls == 2 and line.next_deadline() is None


def test_a_dead_call_during_a_doubt_hangs_up_once():
    line = up_line(dead_call_ms=5000)
    assert line.send(GW, b"hb", START)
    line.feed(M.NO_CARRIER_MARK, at(4000))  # a doubt, pending when the call is found dead
    line.tick(at(5000))
    assert names(line.take_events()) == ["carrier_doubt", "dead_call", "link_down", "redial"]
    for t in (6000, 7000, 7250):  # past the doubt's deadline: no second verdict, one hang-up
        line.tick(at(t))
    assert line.take_events() == [] and line.modem.state == M.HANGUP
    out = line.take_uart()
    assert out.endswith(b"+++ATH\r") and out.count(b"+++") == 1


def drop(line, now):
    """The carrier goes (DCD, so the driver dials straight away); the line's events."""
    line.carrier(False, now)
    return line.take_events()


def test_redial_back_off_starts_over_after_a_call_that_came_up_and_was_verified():
    line = up_line()
    line.carrier(True, START)
    t = 1000
    delays = []
    # (verified?) for each call: calls that drop after a second, long before 30 s of holding
    for verified in (False, False, True, False, True, True):
        if verified:
            line.authenticated(GW, at(t))
        e = drop(line, at(t + 500))
        redial = [x.get("delay_ms") for x in e if x.name == "redial"]
        delays.append(redial[0] if redial else 0)
        if redial:
            assert line.take_uart() == b""
            t += 500 + redial[0]
            line.tick(at(t))
        assert line.take_uart() == b"ATDT1\r", (verified, e)
        line.feed(CONNECT, at(t + 100))
        assert line.state == UP
        line.carrier(True, at(t + 100))
        t += 1000
    # unverified calls back off (5, 10 s); a verified one redials at once and starts over
    assert delays == [5000, 10000, 0, 5000, 0, 0], delays
