"""Endpoint: one node's protocol engine, box or gateway alike (sans-I/O).

Routes each incoming frame to a handshake in progress or an established session by
its SPI, runs timers, and collects what the layers want sent. Every output packet
is tagged with the link it belongs to (a gateway serves many), every problem with
an input becomes a `dropped` event: nothing an attacker or line noise sends can
raise out of `receive`.

A responder replaces the older session of an identity that authenticates again
(EP 0 999 673 [0035]: a dead box must be able to log in again at once).
"""
import sys

from gwbox import ticks, wire
from gwbox.errors import ProtocolError
from gwbox.events import Event
from gwbox.sa import packet_spi
from gwbox.session import Session


class Endpoint:
    def __init__(self, cfg, identity, psk=None, psks=None, expect_peer=None):
        """`psk` for a box (its one gateway key); `psks` {identity: psk} for a gateway."""
        self.cfg = cfg
        self.identity = identity
        self._psk = psk
        self._psks = psks or {}
        self.expect_peer = expect_peer
        self.initiator = None  # InitiatorHandshake in progress, with its link
        self.initiator_link = None
        self.half_open = []  # ResponderHandshake, with .link
        self.sessions = []
        self._out = []
        self._events = []
        self._received = []

    # --- public API ------------------------------------------------------------------

    def connect(self, now, link=None):
        """Start a handshake toward the peer on `link` (the box side)."""
        if self._psk is None:
            raise ProtocolError("no pre-shared key to connect with")
        from gwbox.initiator import InitiatorHandshake
        self.initiator = InitiatorHandshake(self.cfg, self.identity, self._psk, now, self.expect_peer,
                                            self._taken())
        self.initiator_link = link
        self._event("handshake_started", role="initiator", spi=self.initiator.spi_i)
        self._collect(now)

    def receive(self, packet, now, link=None):
        """One frame's payload from `link`. Never raises for bad input."""
        try:
            if packet and packet[0] == wire.MARKER:
                self._on_cleartext(packet, now, link)
            else:
                self._on_protected(packet, now, link)
        except ProtocolError as e:
            self._event("dropped", reason=str(e), bytes=len(packet))
        self._collect(now)

    def send(self, payload, now, peer=None):
        """Protect `payload` on the data SA toward `peer` (default: our only session)."""
        s = self.session(peer)
        if s is None:
            raise ProtocolError("no security association")
        s.send_data(payload, now)
        self._collect(now)

    def tick(self, now):
        hs = self.initiator
        if hs is not None:
            hs.poll(now)
        for r in self.half_open:
            r.poll(now)
        for s in self.sessions:
            s.tick(now)
        self._collect(now)

    def next_deadline(self):
        ds = [s.next_deadline() for s in self.sessions]
        ds += [r.deadline for r in self.half_open]
        if self.initiator is not None:
            ds.append(self.initiator.deadline)
        return ticks.earliest(*ds)

    def session(self, peer=None):
        for s in self.sessions:
            if peer is None or s.peer_id == peer:
                return s
        return None

    def close(self, now, reason="closed", peer=None):
        for s in list(self.sessions):
            if peer is None or s.peer_id == peer:
                s.close(reason, now, notify=True)
        self._collect(now)

    def take_output(self):
        """[(link, packet bytes)] to transmit, in order."""
        out, self._out = self._out, []
        return out

    def take_events(self):
        ev, self._events = self._events, []
        return ev

    def take_received(self):
        """[(peer identity, payload)] delivered by the data SA, in order."""
        r, self._received = self._received, []
        return r

    # --- internals -----------------------------------------------------------------------

    def _event(self, name, **fields):
        self._events.append(Event(name, **fields))

    def _taken(self):
        t = ()
        for s in self.sessions:
            t += s.taken_spis()
        for r in self.half_open:
            if r.sas is not None:
                t += r.sas.inbound_spis()
        if self.initiator is not None:
            t += (self.initiator.spi_i, self.initiator.data_spi_i)
        return t

    def _psk_for(self, identity):
        return self._psks.get(identity)

    def _on_cleartext(self, packet, now, link):
        msg = wire.decode(packet, True)
        if msg.is_response():
            hs = self.initiator
            if hs is None or hs.state != "sa_init":
                raise ProtocolError("unexpected SA_INIT response")
            hs.on_msg2(packet, msg, now)
            return
        for r in self.half_open:
            if r.spi_i == msg.spi_i and r.on_msg1_again(packet):
                return
        for s in self.sessions:
            if s.current is not None and s.current.ctl_out.spi == msg.spi_i:
                raise ProtocolError("SA_INIT for an established SA")
        if not self._psks:
            raise ProtocolError("not accepting handshakes")
        if len(self.half_open) >= self.cfg.half_open_max:
            raise ProtocolError("too many handshakes in progress")
        from gwbox.responder import ResponderHandshake
        r = ResponderHandshake(self.cfg, self.identity, self._psk_for, packet, msg, now, self._taken())
        r.link = link
        self.half_open.append(r)
        self._event("handshake_started", role="responder", spi=msg.spi_i)

    def _on_protected(self, packet, now, link):
        spi = packet_spi(packet)
        for s in self.sessions:
            if s.owns(spi):
                if link is not None:
                    s.link = link
                s.receive(packet, now)
                return
        hs = self.initiator
        if hs is not None and hs.sas is not None and spi == hs.sas.ctl_in.spi:
            hs.on_msg4(packet, now)
            return
        for r in self.half_open:
            if r.sas is not None and spi == r.sas.ctl_in.spi:
                r.on_msg3(packet, now)
                return
        raise ProtocolError("unknown SPI %08x" % spi)

    def _collect(self, now):
        """Move outputs and results of every layer up, finish or drop handshakes."""
        hs = self.initiator
        if hs is not None:
            for p in hs.out:
                self._out.append((self.initiator_link, p))
            hs.out = []
            if hs.done:
                s = Session(self.cfg, hs.peer_id, hs.sas, True, now, self.initiator_link)
                self._add_session(s, hs.sas)
                self.initiator = None
            elif hs.failed is not None:
                self._event("handshake_failed", role="initiator", reason=hs.failed)
                self.initiator = None
        keep = []
        for r in self.half_open:
            for p in r.out:
                self._out.append((r.link, p))
            r.out = []
            if r.done:
                for old in self.sessions:
                    if old.peer_id == r.peer_id:
                        old.close("replaced", now, notify=False)
                        self._drain(old)
                s = Session(self.cfg, r.peer_id, r.sas, False, now, r.link, (1, r.response))
                self._add_session(s, r.sas)
            elif r.failed is not None:
                self._event("handshake_failed", role="responder", reason=r.failed)
            else:
                keep.append(r)
        ended = (hs is not None and self.initiator is None) or len(keep) != len(self.half_open)
        self.half_open = keep
        if ended and self.initiator is None and not keep:
            _unload_role_code()  # only when the last handshake just ended: not per packet
        live = []
        for s in self.sessions:
            self._drain(s)
            if not s.closed:
                live.append(s)
        self.sessions = live

    def _add_session(self, s, sas):
        self.sessions.append(s)
        self._event("sa_established", peer=s.peer_id, ctl_spi=sas.ctl_in.spi, data_spi=sas.data_in.spi)

    def _drain(self, s):
        for p in s.out:
            self._out.append((s.link, p))
        s.out = []
        self._events.extend(s.events)
        s.events = []
        for d in s.received:
            self._received.append((s.peer_id, d))
        s.received = []


def _unload_role_code():
    """Drop the first-handshake code (initiator.py, responder.py) once no handshake runs.

    A session never needs it again (rekeys use handshake.py), and at a rekey, the heap's
    busiest moment, its 2-3 KB are what a 64 KB device heap lacks (docs/memory.md). The
    next connect or SA_INIT imports it again; frozen into flash, that costs no RAM at all.
    """
    pkg = sys.modules.get("gwbox")
    for name in ("initiator", "responder"):
        if sys.modules.pop("gwbox." + name, None) is not None and hasattr(pkg, name):
            delattr(pkg, name)
