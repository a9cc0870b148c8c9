"""gwbox.link.line: the outer address of each frame and bindings that heal after an injected
one (on a stub modem); a call is down when it is down (issue 19, on a real Modem driver fed
by hand): packets from before an in-band NO CARRIER prove nothing (`stale`), a call that only
sends into silence for `dead_call_ms` is hung up and dialled again, and the redial back-off
starts over after a call that came up and was verified. Virtual clock across the 2**30 wrap."""
from gwbox import ticks, tunnel
from gwbox.events import Event
from gwbox.link import modem as M
from gwbox.link import modemstate as S
from gwbox.link.framing import Framer
from gwbox.link.line import DIALING, UP, Line
from gwbox.link.modem import Modem

T0 = ticks.PERIOD - 1000
G1, G2 = 0x8F010040, 0x8F01019D
GW = G1
CONNECT = b"\r\nCONNECT 9600\r\n"
FR = Framer()


def names(events):
    return [e.name for e in events]


def at(ms):
    return ticks.add(T0, ms)


class StubModem:
    """Just enough of gwbox.link.modem.Modem: a call comes up when asked, frames are kept."""

    def __init__(self):
        self.sent = []
        self.events = []

    def request_link(self, now, number=None):
        self.events.append(Event("link_up", rate=9600))

    def hangup(self, now):
        pass

    def send(self, frame, now):
        self.sent.append(frame)

    def authentic(self, now):
        pass

    def take_events(self):
        e, self.events = self.events, []
        return e

    def take_output(self):
        return b""


def heads(m):
    """The outer headers of the frames sent so far: (context, address or None)."""
    f = Framer()
    out = []
    for raw in m.sent:
        for frame in f.feed(raw):
            ctx, addr, _off = tunnel.decode_outer(frame)
            out.append((ctx, addr))
    del m.sent[:]
    return out


def up():
    m = StubModem()
    line = Line(m)
    line.want("ras", T0)
    assert line.state == UP
    return line, m


def test_long_form_until_the_gateway_answered_something_sent_in_long_form():
    line, m = up()
    line.send(G1, b"\x01" * 24, at(10))
    line.send(G2, b"\x02" * 24, at(10))
    line.proven(G1, at(5))  # an answer to something sent before the first long frame: no news
    line.send(G1, b"\x01" * 24, at(20))
    line.proven(G1, at(20))  # the answer to the frame sent at 20, in long form
    line.send(G1, b"\x01" * 24, at(30))
    line.send(G2, b"\x02" * 24, at(30))
    assert heads(m) == [(1, G1), (2, G2), (1, G1), (1, None), (2, G2)]


def test_unbind_goes_back_to_the_long_form_until_a_later_answer():
    line, m = up()
    line.send(G1, b"\x01" * 24, at(10))
    line.proven(G1, at(11))
    line.send(G1, b"\x01" * 24, at(20))
    line.unbind(G1)  # its context may have been re-pointed by an injected frame
    line.send(G1, b"\x01" * 24, at(30))
    line.proven(G1, at(20))  # an answer to the short frame sent at 20: proves nothing now
    line.send(G1, b"\x01" * 24, at(40))
    line.proven(G1, at(40))  # to the long one at 40
    line.send(G1, b"\x01" * 24, at(50))
    assert heads(m) == [(1, G1), (1, None), (1, G1), (1, G1), (1, None)]
    line.unbind(G2)  # a gateway never used on this call: nothing to do
    line.unbind(None)


def test_a_new_call_starts_every_context_in_long_form():
    line, m = up()
    line.send(G1, b"\x01" * 24, at(10))
    line.proven(G1, at(11))
    line.want("other", at(20))  # another number: the call is switched
    line.send(G1, b"\x01" * 24, at(30))
    assert heads(m) == [(1, G1), (1, G1)]


def test_unbind_forgets_long_frames_sent_before_it_even_when_never_bound():
    # A gateway keyed long ago and never answered since (a cached key): its context's old
    # long frames prove nothing about what the access server holds now.
    line, m = up()
    line.send(G2, b"\x02" * 24, at(10))  # the handshake, long ago
    line.unbind(G2)  # taken into use now
    line.proven(G2, at(50))  # an answer to something sent at 50, before anything went since
    line.send(G2, b"\x02" * 24, at(100))
    line.proven(G2, at(100))  # sent in the same tick as the first long frame: not enough
    line.send(G2, b"\x02" * 24, at(110))
    line.proven(G2, at(110))
    line.send(G2, b"\x02" * 24, at(120))
    assert heads(m) == [(1, G2), (1, G2), (1, G2), (1, None)]


# --- issue 19: a call is down when it is down -------------------------------------------------

def up_line(dead_call_ms=None):
    """A Line with a call up on "T1" (init and dial answered by hand), events taken."""
    line = Line(Modem(), retry_ms=5000, retry_max_ms=40000)
    line.dead_call_ms = dead_call_ms
    line.want("T1", T0)
    line.feed(b"\r\nOK\r\n\r\nOK\r\n" + CONNECT, T0)
    assert line.state == UP and line.take_uart() == b"ATZ\rATE0V1Q0&C1&D2\rATDT1\r"
    line.take_events()
    return line


def test_packets_from_before_an_in_band_no_carrier_are_stale_and_prove_nothing():
    line = up_line()
    got = line.feed(FR.encode(b"before") + M.NO_CARRIER_MARK + FR.encode(b"after"), T0)
    assert got == [b"before", b"after"] and line.stale == 1
    line.authenticated(GW, T0, False)  # the box: packet 0 < stale
    assert names(line.take_events()) == ["carrier_doubt"] and line.state == UP
    line.tick(at(2999))
    assert line.take_events() == [] and line.state == UP
    line.authenticated(GW, at(2999), True)  # a packet framed from bytes after the mark
    assert names(line.take_events()) == ["carrier_confirmed"] and line.state == UP
    assert line.feed(FR.encode(b"next"), at(3000)) == [b"next"] and line.stale == 0
    # Only stale packets: the doubt ends in a verdict, and the call is dialled again.
    line = up_line()
    line.authenticated(GW, T0)  # a verified call
    assert line.feed(FR.encode(b"a") + FR.encode(b"b") + M.NO_CARRIER_MARK, T0) == [b"a", b"b"]
    assert line.stale == 2
    line.authenticated(GW, T0, False)
    line.authenticated(GW, T0, False)
    line.tick(at(3000))
    e = line.take_events()
    assert names(e) == ["carrier_doubt", "link_down"] and e[1].get("reason") == "no carrier"
    assert line.state == DIALING and line.modem.state == S.ESCAPING  # +++ and ATH first


def test_a_call_that_only_sends_into_silence_is_hung_up_and_dialled_again():
    line = up_line(dead_call_ms=20000)
    line.authenticated(GW, T0)
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
    assert line.send(GW, b"hb", T0)
    line.feed(M.NO_CARRIER_MARK, at(4000))  # a doubt, pending when the call is found dead
    line.tick(at(5000))
    # no `redial` back-off: the silence was the wait (every gateway may be down, and one that
    # comes back must find a call at once), so ATD follows the hang-up
    assert names(line.take_events()) == ["carrier_doubt", "dead_call", "link_down"]
    for t in (6000, 7000, 7250):  # past the doubt's deadline: no second verdict, one hang-up
        line.tick(at(t))
    assert line.take_events() == [] and line.modem.state == S.HANGUP
    out = line.take_uart()
    assert out.endswith(b"+++ATH\r") and out.count(b"+++") == 1


def drop(line, now):
    """The carrier goes (DCD, so the driver dials straight away); the line's events."""
    line.carrier(False, now)
    return line.take_events()


def test_redial_back_off_starts_over_after_a_call_that_came_up_and_was_verified():
    line = up_line()
    line.carrier(True, T0)
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
