"""gwbox.link.line: the outer address of each frame, and bindings that heal after an injected one."""
from gwbox import ticks, tunnel
from gwbox import events as ev
from gwbox.events import Event
from gwbox.link.framing import Framer
from gwbox.link.line import UP, Line

T0 = ticks.PERIOD - 1000
G1, G2 = 0x8F010040, 0x8F01019D


def at(ms):
    return ticks.add(T0, ms)


class StubModem:
    """Just enough of gwbox.link.modem.Modem: a call comes up when asked, frames are kept."""

    def __init__(self):
        self.sent = []
        self.events = []

    def request_link(self, now, number=None):
        self.events.append(Event(ev.LINK_UP, rate=9600))

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
