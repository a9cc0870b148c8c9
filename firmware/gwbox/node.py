"""Node: one serial line's stack, modem (optional) + framing + protocol endpoint (sans-I/O).

UART bytes in (`feed`), UART bytes out (`take_uart`), `tick` at `next_deadline`,
tunnel payload in (`send`) and out (`take_received`), every layer's events in one
list (`take_events`). The node never reads a clock or touches a port.

The box has a modem: it dials, starts the handshake on `link_up`, drops the SA at
once on `link_down`, and hangs up when the SA dies (keepalive verdict or a DELETE)
so the call is not left up. A gateway on a raw line has no modem: the line is there
from `start` (or from `carrier(True)`, e.g. a TCP accept). Payload sent without an
SA waits in a queue bounded in bytes and asks for the link (dial on demand). When
the queue is full the new payload is refused (`send` returns False, event
`payload_dropped`): what is queued keeps its order and no hole opens in the stream.
See docs/node.md.
"""
from gwbox import ticks
from gwbox.events import Event
from gwbox.link.framing import Framer

DOWN = "down"        # no line: on hook, or no carrier on a raw line
DIALING = "dialing"  # link wanted: the modem initialises / dials
LINE = "line"        # line up, no SA yet (handshake in progress or awaited)
UP = "up"            # SA established: payload flows

QUEUE_BYTES = 4096   # default bound of the dial-on-demand queue (payload bytes)


class Node:
    def __init__(self, endpoint, modem=None, framer=None, dial_target=None, initiator=None,
                 queue_bytes=QUEUE_BYTES):
        self.endpoint = endpoint
        self.modem = modem
        self.framer = framer or Framer()
        self.target = dial_target
        self.initiator = (modem is not None) if initiator is None else initiator
        self.queue_bytes = queue_bytes
        self.state = DOWN
        self.queued = 0          # payload bytes waiting for an SA
        self.queue_dropped = 0   # payloads refused because the queue was full
        self.tx_oversize = 0     # protected packets too big for a frame (dropped)
        self._queue = []
        self._hs = False         # our initiator handshake is in progress
        self._uart = bytearray()
        self._events = []
        self._received = []

    # --- public API ------------------------------------------------------------------

    def start(self, now):
        """Box: initialise the modem and dial. Raw line: the line is up from now."""
        if self.modem is not None:
            if self.initiator:
                self.request_link(now)
            else:
                self.modem.start(now)
        else:
            self._line_up(now)
        self._pump(now)

    def request_link(self, now, target=None):
        """Dial on demand (modem), or start a handshake if the line is up without an SA."""
        if target is not None:
            self.target = target
        m = self.modem
        if m is not None and self.state in (DOWN, DIALING):
            self.state = DIALING
            m.request_link(now, self.target)
        elif self.state == LINE and self.initiator and not self._hs:
            self.endpoint.connect(now)
        self._pump(now)

    def release_link(self, now):
        """Delete the SA (its protected DELETE goes out first), hang up, forget the wish."""
        if self.endpoint.session() is not None:
            self.endpoint.close(now, "released")  # sa_deleted then hangs up, after the DELETE
        self._pump(now)
        if self.modem is not None:
            self.modem.release_link(now)
            if self.state == DIALING:
                self.state = DOWN
        self._pump(now)

    def carrier(self, up, now):
        """The port saw carrier (DCD, a TCP connection) come or go."""
        m = self.modem
        if m is not None:
            m.set_dcd(up, now)
        elif up and self.state == DOWN:
            self._line_up(now)
        elif not up and self.state != DOWN:
            self._event("link_down", reason="carrier")
            self._line_down(now)
        self._pump(now)

    def feed(self, data, now):
        """Bytes read from the UART. Bad frames are counted by the framer, never raised."""
        m = self.modem
        if m is not None:
            data = m.receive(data, now)
        if data:
            ep = self.endpoint
            for p in self.framer.feed(data):
                ep.receive(p, now)
        self._pump(now)

    def send(self, payload, now):
        """Tunnel payload: protected at once if an SA is up, else queued. False if refused."""
        ep = self.endpoint
        if self.state == UP and ep.session() is not None:
            ep.send(payload, now)
            self._pump(now)
            return True
        n = len(payload)
        if n > self.framer.max_payload or self.queued + n > self.queue_bytes:
            self.queue_dropped += 1
            self._event("payload_dropped", reason="queue_full", bytes=n, queued=self.queued)
            return False
        self._queue.append(bytes(payload))
        self.queued += n
        if len(self._queue) == 1:
            self._event("payload_queued", bytes=n, state=self.state)
        if self.state == DOWN or self.state == LINE:
            self.request_link(now)
        return True

    def tick(self, now):
        if self.modem is not None:
            self.modem.tick(now)
        self.endpoint.tick(now)
        self._pump(now)

    def next_deadline(self):
        m = self.modem
        return ticks.earliest(m.next_deadline() if m is not None else None,
                              self.endpoint.next_deadline())

    def take_uart(self):
        out = bytes(self._uart)
        self._uart = bytearray()
        return out

    def take_events(self):
        ev, self._events = self._events, []
        return ev

    def take_received(self):
        """[payload] delivered by the data SA, in order."""
        r, self._received = self._received, []
        return r

    def counters(self):
        c = self.framer.counters()
        c["queued"] = self.queued
        c["queue_dropped"] = self.queue_dropped
        c["tx_oversize"] = self.tx_oversize
        if self.modem is not None:
            c["modem_tx_dropped"] = self.modem.tx_dropped
        return c

    # --- internals -----------------------------------------------------------------------

    def _event(self, name, **fields):
        self._events.append(Event(name, **fields))

    def _line_up(self, now):
        self.state = LINE
        if self.initiator:
            self.endpoint.connect(now)

    def _line_down(self, now):
        self.state = DOWN
        self._hs = False
        self.endpoint.close(now, "link_down")  # no line, no SA: do not wait for keepalive

    def _pump(self, now):
        """Move every layer's output down and its events up, reacting until all is quiet."""
        m = self.modem
        ep = self.endpoint
        while True:
            for _link, p in ep.take_output():
                try:
                    frame = self.framer.encode(p)
                except ValueError:
                    self.tx_oversize += 1
                    self._event("payload_dropped", reason="oversize", bytes=len(p))
                    continue
                if m is None:
                    self._uart.extend(frame)
                else:
                    m.send(frame, now)  # refused and counted by the modem when not online
            for _peer, d in ep.take_received():
                self._received.append(d)
            evs = m.take_events() if m is not None else []
            evs += ep.take_events()
            if not evs:
                break
            for e in evs:
                self._events.append(e)
                self._react(e, now)
        if m is not None:
            out = m.take_output()
            if out:
                self._uart.extend(out)

    def _react(self, e, now):
        n = e.name
        if n == "link_up":
            self._line_up(now)
        elif n == "link_down":
            self._line_down(now)
        elif n == "dial_failed" or n == "modem_failed":
            if self.state == DIALING:
                self.state = DOWN  # the queue stays: the next send or request_link retries
        elif n == "handshake_started":
            if e.get("role") == "initiator":
                self._hs = True
        elif n == "sa_established":
            self._hs = False
            self.state = UP
            self._flush_queue(now)
        elif n == "handshake_failed" or n == "sa_deleted":
            if n == "handshake_failed" and e.get("role") == "initiator":
                self._hs = False
            if self.state == UP or self.state == LINE:
                if self.endpoint.session() is None and not self._hs:
                    self.state = LINE
                    if self.modem is not None and self.initiator and e.get("reason") != "link_down":
                        self.modem.release_link(now)  # a line without an SA is no use: hang up

    def _flush_queue(self, now):
        q = self._queue
        if not q:
            return
        self._queue = []
        sent = self.queued
        self.queued = 0
        for p in q:
            self.endpoint.send(p, now)
        self._event("queue_flushed", payloads=len(q), bytes=sent)
