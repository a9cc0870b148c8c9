"""The box's line: modem + framing + outer address, kept up while wanted (sans-I/O).

One call at a time, to one dial number: the head-office access server (then every
gateway behind it is reachable on the same call) or a gateway's own number. `want`
keeps a call to a number up: it dials, and after a failed dial or a carrier loss dials
again after a back-off that doubles up to a cap, forever, until `release`. Asking for
another number hangs up and dials that one.

Every frame the box sends names the gateway it is for (tunnel.encode_outer): the long form
binds a context number to the gateway's address, the short one (1 byte) uses it. Per
call, a gateway's frames use the long form until that gateway answered something sent in
the long form (`proven`), so the access server has seen the binding before any short frame
depends on it. Anyone on the line can send a long-form frame too and re-point a context
at another gateway; so the box goes back to the long form (`unbind`) whenever a gateway
may not be hearing it: a handshake starts or failed, the gateway is dead, or an answer
is overdue (gwbox.box). Frames towards the box carry no header.

A call is down when it is down: an authenticated packet framed from bytes that came before
an in-band NO CARRIER proves nothing about the carrier (`stale`), and a call on which the
box has sent for `dead_call_ms` without one authenticated packet coming back is dead,
whatever the modem said: it is hung up (escape and ATH, or DTR) and dialled again. The
redial back-off starts over after a call that came up and was verified (docs/modem.md).
"""
from gwbox import const, ticks, tunnel
from gwbox.events import Event
from gwbox.link.framing import Framer
from gwbox.link.modem import unload_command_mode

DOWN = "down"  # no call
DIALING = "dialing"  # a call is wanted: the modem initialises, dials or backs off
UP = "up"  # in data mode on `number`
_STABLE_MS = const(30000)  # a call that held this long and dropped is redialled at once


class Line:
    def __init__(self, modem, framer=None, retry_ms=5000, retry_max_ms=300000):
        self.modem = modem
        self.framer = framer or Framer()
        self.retry_ms = retry_ms
        self.retry_max_ms = retry_max_ms
        self.state = DOWN
        self.number = None  # the number of the call we have or want
        self.wanted = False
        self.backoff = retry_ms
        self.redial_at = None
        self.calls = 0  # calls that came up
        self._up_at = None
        self.dead_call_ms = None  # sending this long into silence: a dead call (None: never)
        self.stale = 0  # the first `stale` packets of the last feed came before an in-band NO CARRIER
        self._verified = False  # an authenticated packet arrived on this call
        self._talk = None  # tick of the first packet sent since the last authenticated one
        self.tx_refused = 0  # packets that could not be sent (no call, or too big)
        self._ctx = {}  # gateway address int -> context number, this call
        self._bound = set()  # contexts the access server has certainly seen bound
        self._long_at = {}  # context -> tick of its first long-form frame since it was unbound
        self._uart = bytearray()
        self._events = []

    # --- what the box wants ----------------------------------------------------------

    def want(self, number, now):
        """Keep a call to `number` up (dial now, or hang up a call to another number first)."""
        self.wanted = True
        if number == self.number and self.state != DOWN:
            return
        m = self.modem
        if self.state == UP:
            self._event("line_switch", old=self.number, new=number)
            m.hangup(now)
            self._down(now, "switch")
        self.number = number
        self.redial_at = None
        self.state = DIALING
        m.request_link(now, number)
        self._pump(now)

    def release(self, now):
        """No call wanted any more: hang up (or stop dialing)."""
        self.wanted = False
        self.redial_at = None
        if self.state != DOWN:
            self.modem.release_link(now)
            if self.state == UP:
                self._down(now, "released")
            self.state = DOWN
        self._pump(now)

    # --- traffic -----------------------------------------------------------------------

    def send(self, gw, packet, now):
        """Frame `packet` for gateway `gw` (IPv4 address as int); False if it cannot go."""
        if self.state != UP:
            self.tx_refused += 1
            return False
        ctx = self._ctx.get(gw)
        if ctx is None:
            ctx = len(self._ctx) % 127 + 1
            self._ctx[gw] = ctx
        bound = ctx in self._bound
        head = tunnel.encode_outer(ctx, None if bound else gw)
        try:
            frame = self.framer.encode(head + packet)
        except ValueError:
            self.tx_refused += 1
            return False
        if not bound and ctx not in self._long_at:
            self._long_at[ctx] = now
        if self._talk is None:
            self._talk = now
        self.modem.send(frame, now)
        self._pump(now)
        return True

    def authenticated(self, gw, now, fresh=True):
        """An authenticated packet from `gw` arrived on this call: the call is alive, and
        (`fresh`: framed from bytes after it) any in-band NO CARRIER before it was forged."""
        if self.state == UP:
            self._verified = True
            self._talk = None
        if fresh:
            self.modem.authentic(now)
        self._pump(now)

    def proven(self, gw, t):
        """`gw` answered something we sent at tick `t`: if that went after its context's first
        long-form frame on this call, the access server holds the binding: short form now."""
        ctx = self._ctx.get(gw)
        if ctx is None or ctx in self._bound or self.state != UP:
            return
        since = self._long_at.get(ctx)
        if since is not None and ticks.diff(t, since) > 0:
            self._bound.add(ctx)

    def unbind(self, gw):
        """Long form again for `gw` until it answers something sent so: its context may have
        been re-pointed at another gateway by a frame the box never sent."""
        ctx = self._ctx.get(gw)
        if ctx is not None:
            self._bound.discard(ctx)
            self._long_at.pop(ctx, None)  # only answers to what goes from now on count

    def feed(self, data, now):
        """UART bytes in; the packets they completed out (frames towards the box: no header).
        The first `stale` of them came before an in-band NO CARRIER and cannot disprove it."""
        m = self.modem
        payload = m.receive(data, now)
        k = m.fresh
        fr = self.framer
        if k:
            packets = fr.feed(payload[:k])
            self.stale = len(packets)
            packets += fr.feed(payload[k:])
        else:
            self.stale = 0
            packets = fr.feed(payload) if payload else []
        self._pump(now)
        return packets

    def carrier(self, up, now):
        """DCD from the port, where the board wires it."""
        self.modem.set_dcd(up, now)
        self._pump(now)

    def tick(self, now):
        if ticks.reached(now, self._dead_at()):
            self._dead_call(now)
        self.modem.tick(now)
        if self.redial_at is not None and ticks.reached(now, self.redial_at):
            self.redial_at = None
            if self.wanted and self.state == DIALING:
                self.modem.request_link(now, self.number)
        self._pump(now)

    def next_deadline(self):
        return ticks.earliest(self.modem.next_deadline(), self.redial_at, self._dead_at())

    def take_uart(self):
        out = bytes(self._uart)
        self._uart = bytearray()
        return out

    def take_events(self):
        ev, self._events = self._events, []
        return ev

    # --- internals -------------------------------------------------------------------

    def _event(self, name, **fields):
        self._events.append(Event(name, **fields))

    def _down(self, now, reason):
        self._ctx = {}
        self._bound = set()
        self._long_at = {}
        self._talk = None
        self.state = DOWN

    def _dead_at(self):
        """When the call counts as dead: dead_call_ms after the first unanswered send, or None."""
        t = self._talk
        return ticks.add(t, self.dead_call_ms) if t is not None and self.dead_call_ms and self.state == UP else None

    def _dead_call(self, now):
        """Sent into silence for dead_call_ms: whatever the modem said, the call is dead."""
        self._event("dead_call", number=self.number, silent_ms=ticks.diff(now, self._talk))
        self.modem.hangup(now, True)  # the modem may be in command mode already
        self._pump(now)  # its link_down (reason hangup: ours) before what follows
        self._again(now, True)

    def _again(self, now, at_once=False):
        """A call ended under us: dial again, at once if it was a good call (or one we hung
        up after dead_call_ms of silence: that silence was the back-off, and every gateway
        may be down; one that comes back must find a call), else backed off."""
        self._down(now, None)
        if not self.wanted:
            return
        self.state = DIALING
        if at_once or self._verified or ticks.diff(now, self._up_at) >= _STABLE_MS:
            self.backoff = self.retry_ms
            self.modem.request_link(now, self.number)
        else:
            self._redial_later(now)

    def _redial_later(self, now):
        self.redial_at = ticks.add(now, self.backoff)
        self._event("redial", number=self.number, delay_ms=self.backoff)
        self.backoff = min(self.backoff * 2, self.retry_max_ms)

    def _pump(self, now):
        m = self.modem
        for e in m.take_events():
            self._events.append(e)
            n = e.name
            if n == "link_up" or (n == "hangup_done" and not self.wanted):
                unload_command_mode()  # a call is up, or none is wanted: the AT half can go
            if n == "link_up":
                self.state = UP
                self.calls += 1
                self._up_at = now
                self._verified = False
                self._ctx = {}
                self._bound = set()
                self._long_at = {}
            elif n == "link_down" and e.get("reason") != "hangup":  # our own hang-ups: want/release
                if self.state == UP:
                    self._again(now)
                elif self.wanted:
                    self.state = DIALING
                    self._redial_later(now)
            elif n == "dial_failed" or n == "modem_failed":
                if self.wanted:
                    self.state = DIALING
                    self._event("call_failed", number=self.number)
                    self._redial_later(now)
                else:
                    self.state = DOWN
        out = m.take_output()
        if out:
            self._uart.extend(out)
