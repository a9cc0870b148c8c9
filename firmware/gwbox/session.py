"""One established peer: its SAs, heartbeat, tunnel messages, delete and teardown (sans-I/O).

The control SA carries rekey, delete and the probe-form heartbeat; the data SA carries
tunnel traffic and the protected heartbeat ("encapsulated like data", GB 2 363 548),
each plaintext starting with a next-header byte (wire.NH_*). The rekey exchange lives in
rekey.py, imported only while a rekey runs: make-before-break, so a session may hold a
superseded SA set (`previous`) that still accepts inbound packets for a while.

Lifetimes (RFC 4301 soft and hard): the original initiator starts a rekey after rekey_ms,
rekey_bytes or SOFT_PACKETS on an SA, whichever first; an SA that reaches lifetime_ms,
twice rekey_bytes or HARD_PACKETS without a successful rekey is deleted, on either side.
So no sequence number ever nears 2**32 and no SA ages past the tick half-period.

A gateway confirms a tunnel message (NH_MSG) once the layer above has handed it on
(`Endpoint.handed_on`), and hands each number on once: the per-box window that remembers
them belongs to the endpoint (`dedup`), so it survives a new SA with the same box. A
message that cannot be handed on is not confirmed: the box keeps it and sends it again.
"""
from gwbox import const, ticks, wire
from gwbox.config import PROBE, SPI_ECHO
from gwbox.crypto.entropy import random_bytes
from gwbox.errors import ProtocolError
from gwbox.events import Event
from gwbox.heartbeat import DEAD, SEND, Heartbeat
from gwbox.sa import packet_spi

SOFT_PACKETS = const(1 << 30)  # packets on one SA before a rekey, whatever time and bytes say
HARD_PACKETS = const(1 << 31)  # ... and before it is deleted if no rekey succeeded


class Session:
    def __init__(self, cfg, peer_id, sas, original_initiator, now, link=None, cached_response=None, dedup=None):
        self.cfg = cfg
        self.peer_id = peer_id
        self.link = link
        self.current = sas
        self.previous = None  # superseded SASet, inbound only, until previous_until
        self.previous_until = None
        self.out_sas = sas  # which set we send on (responder switches late)
        self.initiator = original_initiator
        self.flags = wire.FLAG_INITIATOR if original_initiator else 0
        self.next_msg_id = 2  # 0 and 1 were SA_INIT and AUTH
        self.cached = cached_response  # (msg_id, protected bytes) of our last response
        self.dedup = dedup  # fn(space) -> ReplayWindow of tunnel message numbers (gateway)
        self.tunnel = None  # this session's compact-message state: the box's tunnel.Compactor,
        # the gateway's {context: (space, destination, port)}
        mode = cfg.heartbeat if original_initiator else cfg.gateway_heartbeat
        self.heartbeat = Heartbeat(mode, cfg.defer_ms, cfg.response_ms, cfg.retries, now)
        self.rekey = None  # our rekey request in flight: a rekey.Rekey
        self.rekey_retry_at = None
        self.exchange_ended = False  # a control exchange ended: the endpoint may drop its code again
        self.delete_pending = None  # [msg_id, first sent, attempt, deadline] of our DELETE(old)
        self.closed = False
        self.out = []
        self.events = []
        self.received = []  # NH_DATA payloads
        self.messages = []  # (NH_MSG, decoded) / (NH_CONFIRM or NH_REPLY, plaintext) for the layer above
        self.spis = ()  # our inbound SPIs as the endpoint's map holds them

    # --- helpers ---------------------------------------------------------------------

    def _event(self, name, **fields):
        fields["peer"] = self.peer_id
        self.events.append(Event(name, **fields))

    def _new_msg_id(self):
        m = self.next_msg_id
        self.next_msg_id = (m + 1) & 0xFFFFFFFF
        return m

    def _send_data(self, plaintext):
        self.out.append(self.out_sas.data_out.protect(plaintext))

    def taken_spis(self):
        s = self.current.inbound_spis()
        return s + self.previous.inbound_spis() if self.previous else s

    # --- sending -------------------------------------------------------------------------

    def send_data(self, payload, now):
        """Raw payload (NH_DATA), best effort."""
        self.send_plain(bytes([wire.NH_DATA]) + payload, now)

    def send_plain(self, plaintext, now):
        """A data-SA plaintext that already starts with its next-header byte."""
        if self.closed:
            raise ProtocolError("session closed")
        self._send_data(plaintext)
        self._maybe_rekey(now)

    # --- receiving -------------------------------------------------------------------

    def receive(self, packet, now, link=None):
        """A protected packet naming one of our SPIs. Raises ProtocolError to drop.

        The packet is authenticated before anything about the session changes, its
        output link included (an unauthenticated packet must not re-point it)."""
        spi = packet_spi(packet)
        for sas in (self.current, self.previous):
            if sas is None:
                continue
            if spi == sas.data_in.spi:
                pt = sas.data_in.unprotect(packet)
                self._authenticated(sas, link, now, True)
                if len(pt) < 1:
                    raise ProtocolError("empty data packet")
                self._on_data(pt, now)
                self._maybe_rekey(now)
                return
            if spi == sas.ctl_in.spi:
                pt = sas.ctl_in.unprotect(packet)
                from gwbox import control  # control messages only: heartbeats and data never load it
                control.receive(self, pt, sas, link, now)
                return
        raise ProtocolError("no SA for SPI")

    def _authenticated(self, sas, link, now, switch):
        if link is not None:
            self.link = link
        if switch and sas is self.current and self.out_sas is not self.current:
            self._switch_to_current(now)

    def _on_data(self, pt, now):
        nh = pt[0]
        if nh == wire.NH_DATA:
            self.received.append(bytes(pt[1:]))
        elif nh == wire.NH_MSG or nh & 0x80:
            self._on_msg(pt)
        elif nh == wire.NH_HB:
            if len(pt) != 2:
                raise ProtocolError("bad heartbeat length")
            self._send_data(bytes([wire.NH_HB_ACK, pt[1]]))
        elif nh == wire.NH_HB_ACK:
            if len(pt) != 2:
                raise ProtocolError("bad heartbeat ack length")
            self.on_heartbeat_answer(pt[1], now)
        elif nh == wire.NH_CONFIRM or nh == wire.NH_REPLY:
            self.messages.append((nh, bytes(pt)))  # the box's outbox and LAN side decode them
        else:
            raise ProtocolError("unknown next header %d" % nh)

    def _on_msg(self, pt):
        """Gateway: a new number goes up to be handed on (and is confirmed once it was:
        `handed_on`); a number handed on before is only confirmed again."""
        if self.dedup is None:
            raise ProtocolError("not accepting tunnel messages")
        from gwbox import tunnel  # only where payload is carried: the core never loads it
        if pt[0] & tunnel.COMPACT:
            msg = tunnel.expand_compact(pt, self.tunnel, self._top)
        else:
            msg = tunnel.decode_msg(pt)
            if msg[5]:  # binds a context for compact messages: learned from every copy
                if self.tunnel is None:
                    self.tunnel = {}
                self.tunnel[msg[5]] = (msg[0], msg[2], msg[3])
            msg = msg[:5]
        win = self.dedup(msg[0])
        try:
            win.check(msg[1])
        except ProtocolError:
            self._confirm(msg[0], win)  # handed on before, its confirmation lost: confirm again
            return
        self.messages.append((wire.NH_MSG, msg))

    def _top(self, space):
        return self.dedup(space).top

    def handed_on(self, space, num):
        """The layer above handed message `num` on: remember it, confirm it."""
        win = self.dedup(space)
        try:
            win.check(num)
            win.accept(num)
        except ProtocolError:
            pass  # a copy of it was handed on meanwhile
        self._confirm(space, win)

    def _confirm(self, space, win):
        from gwbox import tunnel
        self._send_data(tunnel.encode_confirm(space, win.top, (win.bits >> 1) & 0xFFFFFFFF))

    def on_heartbeat_answer(self, hb_id, now):
        hb = self.heartbeat
        verdict = hb.acked(hb_id, now)
        if verdict:
            self._event("heartbeat_ack", id=hb_id, rtt_ms=hb.rtt)
        elif verdict is None:
            raise ProtocolError("stale heartbeat answer %d" % hb_id)

    def on_echo(self, nonce, now):
        """An SPI-echo heartbeat came back (unauthenticated: the compatibility option only)."""
        hb = self.heartbeat
        if hb.acked(int.from_bytes(nonce, "big"), now):
            self._event("heartbeat_ack", id=0, rtt_ms=hb.rtt, form=SPI_ECHO)

    # --- heartbeat ---------------------------------------------------------------------

    def _send_heartbeat(self, now):
        hb = self.heartbeat
        form = self.cfg.heartbeat_form
        if form == PROBE:
            from gwbox import control
            hb_id = control.send_probe(self)
        elif form == SPI_ECHO:
            nonce = random_bytes(4)
            hb_id = int.from_bytes(nonce, "big")
            self.out.append(wire.SPI_ECHO.to_bytes(4, "big") + nonce)
        else:
            hb_id = hb.new_id()
            self._send_data(bytes([wire.NH_HB, hb_id]))
        hb.sent(hb_id, now)
        self._event("heartbeat_sent", id=hb_id, attempt=hb.attempt)

    # --- timers ------------------------------------------------------------------------

    def tick(self, now):
        if self.closed:
            return
        hb = self.heartbeat
        verdict = hb.poll(now)
        if verdict == SEND:
            self._send_heartbeat(now)
        elif verdict == DEAD:
            self._event("peer_dead", waited_ms=self.cfg.response_ms * (self.cfg.retries + 1))
            self.close("peer_dead", now, notify=True)
            return
        if self._expired(now):
            self.close("expired", now, notify=True)
            return
        if self.previous is not None and ticks.reached(now, self.previous_until):
            self.previous = None
            self.previous_until = None
        rk = self.rekey
        if rk is not None and rk.poll(self, now):
            self.rekey_ended(now, "timeout")
        dp = self.delete_pending
        if dp is not None and ticks.reached(now, dp[3]):
            if dp[2] > self.cfg.retries or self.previous is None:
                self.delete_pending = None  # never answered: the heartbeat judges the peer
                self.previous_until = ticks.add(now, self.cfg.rekey_grace_ms())
            else:
                dp[2] += 1
                dp[3] = ticks.add(now, self.cfg.response_ms)
                from gwbox import control
                control.send_delete(self, dp[0], self.previous)
        self._maybe_rekey(now)

    def next_deadline(self):
        if self.closed:
            return None
        rk = self.rekey
        rekey_at = None
        if self.initiator and rk is None and self.previous is None:
            rekey_at = self.rekey_retry_at
            if rekey_at is None:
                rekey_at = ticks.add(self.current.created, self.cfg.rekey_ms)
        dp = self.delete_pending
        return ticks.earliest(self.heartbeat.next_deadline(), self.previous_until,
                              rk.deadline if rk else None, rekey_at, dp[3] if dp else None,
                              ticks.add(self.current.created, self.cfg.lifetime_ms))

    # --- lifetimes and rekey ---------------------------------------------------------

    def _soft_reason(self, now):
        c = self.current
        if ticks.diff(now, c.created) >= self.cfg.rekey_ms:
            return "time"
        if c.data_bytes() >= self.cfg.rekey_bytes:
            return "bytes"
        if max(c.ctl_out.seq, c.data_out.seq) >= SOFT_PACKETS:
            return "packets"
        return None

    def _expired(self, now):
        c = self.current
        return (ticks.diff(now, c.created) >= self.cfg.lifetime_ms or c.data_bytes() >= 2 * self.cfg.rekey_bytes
                or max(c.ctl_out.seq, c.data_out.seq) >= HARD_PACKETS)

    def _maybe_rekey(self, now):
        if (self.initiator and self.rekey is None and self.previous is None and not self.closed
                and (self.rekey_retry_at is None or ticks.reached(now, self.rekey_retry_at))):
            reason = self._soft_reason(now)
            if reason is not None:
                from gwbox import rekey
                self.rekey = rekey.Rekey(self, now, reason)

    def answer_rekey(self, msg, now):
        """The peer asks to rekey (gwbox.control dispatches it here: the rekey code, which uses
        control to send, is loaded by the session, never by control)."""
        from gwbox import rekey
        rekey.answer(self, msg, now)

    def rekey_ended(self, now, failure):
        """Our rekey request is over: succeeded (failure None) or failed with that reason."""
        self.rekey = None
        self.exchange_ended = True
        if failure is None:
            self.rekey_retry_at = None
            return
        self.rekey_retry_at = ticks.add(now, self.cfg.rekey_retry_ms)
        self._event("rekey_failed", reason=failure)

    def _switch_to_current(self, now):
        """Responder side: the initiator uses the new SAs, so do we; old ones expire soon."""
        self.out_sas = self.current
        self.previous_until = ticks.add(now, self.cfg.rekey_grace_ms())
        self.exchange_ended = True
        self._event("rekeyed", ctl_spi=self.current.ctl_in.spi, data_spi=self.current.data_in.spi)

    def close(self, reason, now, notify=True):
        """Delete every SA of this peer; with notify, tell the peer (best effort, protected)."""
        if self.closed:
            return
        if notify:
            from gwbox import control
            try:
                control.send_delete(self, self._new_msg_id(), self.current)
            except ProtocolError:
                pass
        spis = self.current.inbound_spis()
        self.current = self.previous = self.out_sas = None
        self.rekey = None
        self.delete_pending = None
        self.closed = True
        self.heartbeat.set_mode("NONE", now)
        self._event("sa_deleted", reason=reason, ctl_spi=spis[0], data_spi=spis[1])
