"""One established peer: its SAs, heartbeat, tunnel messages, delete and teardown (sans-I/O).

The control SA carries rekey, delete and the probe-form heartbeat; the data SA carries
tunnel traffic and the protected heartbeat ("encapsulated like data", GB 2 363 548),
each plaintext starting with a next-header byte (wire.NH_*). The rekey exchange lives in
rekey.py (a mixin of Session): make-before-break, so a session may hold a superseded SA
set (`previous`) that still accepts inbound packets for a grace period.

A gateway confirms a tunnel message (NH_MSG) once the layer above has handed it on
(`Endpoint.handed_on`), and hands each number on once: the per-box window that remembers
them belongs to the endpoint (`dedup`), so it survives a new SA with the same box. A
message that cannot be handed on is not confirmed: the box keeps it and sends it again.
"""
from gwbox import ticks, wire
from gwbox.config import PROBE, SPI_ECHO
from gwbox.crypto.entropy import random_bytes
from gwbox.errors import ProtocolError
from gwbox.events import Event
from gwbox.handshake import choose_proposal
from gwbox.heartbeat import DEAD, SEND, Heartbeat
from gwbox.rekey import Rekeying
from gwbox.sa import packet_spi
from gwbox.wire import Message

# The seed's probe (claim 14): a quick-mode proposal nobody can accept
# (proposal 1, one transform: TF_ENCR with the unassigned id 0xFF).
_INVALID_PROPOSAL = b"\x01\x01\x01\xff"


class Session(Rekeying):
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
        mode = cfg.heartbeat if original_initiator else cfg.gateway_heartbeat
        self.heartbeat = Heartbeat(mode, cfg.defer_ms, cfg.response_ms, cfg.retries, now)
        self.rekey = None  # our outstanding rekey request: dict
        self.rekey_retry_at = None
        self.delete_pending = None  # (msg_id, tick sent) of our DELETE(old) after a rekey
        self.closed = False
        self.out = []
        self.events = []
        self.received = []  # NH_DATA payloads
        self.messages = []  # (NH_MSG, decoded) / (NH_CONFIRM or NH_REPLY, plaintext) for the layer above

    # --- helpers ---------------------------------------------------------------------

    def _event(self, name, **fields):
        fields["peer"] = self.peer_id
        self.events.append(Event(name, **fields))

    def _new_msg_id(self):
        m = self.next_msg_id
        self.next_msg_id = (m + 1) & 0xFFFFFFFF
        return m

    def _send_ctl(self, exch, flags, msg_id, payloads, sas=None):
        pkt = (sas or self.out_sas).ctl_out.protect(wire.encode(Message(exch, self.flags | flags, msg_id, payloads), False))
        self.out.append(pkt)
        return pkt

    def _send_data(self, plaintext):
        self.out.append(self.out_sas.data_out.protect(plaintext))

    def owns(self, spi):
        if spi in self.current.inbound_spis():
            return True
        return self.previous is not None and spi in self.previous.inbound_spis()

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
                msg = wire.decode(sas.ctl_in.unprotect(packet), False)
                self._authenticated(sas, link, now, not msg.is_response())
                self._on_control(msg, now)
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
        elif nh == wire.NH_MSG:
            self._on_msg(pt)
        elif nh == wire.NH_HB:
            if len(pt) != 2:
                raise ProtocolError("bad heartbeat length")
            self._send_data(bytes([wire.NH_HB_ACK, pt[1]]))
        elif nh == wire.NH_HB_ACK:
            if len(pt) != 2:
                raise ProtocolError("bad heartbeat ack length")
            self._on_heartbeat_answer(pt[1], now)
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
        msg = tunnel.decode_msg(pt)
        win = self.dedup(msg[0])
        try:
            win.check(msg[1])
        except ProtocolError:
            self._confirm(msg[0], win)  # handed on before, its confirmation lost: confirm again
            return
        self.messages.append((wire.NH_MSG, msg))

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

    def _on_heartbeat_answer(self, hb_id, now):
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

    def _on_control(self, msg, now):
        if msg.is_response():
            self._on_response(msg, now)
            return
        if self.cached is not None and msg.msg_id == self.cached[0]:
            self.out.append(self.cached[1])  # a retransmitted request: same answer again
            return
        if msg.exch == wire.EXCH_INFO:
            deleted = msg.find(wire.PL_DELETE)
            if deleted is not None and self._on_delete(deleted, now):
                return  # the peer already dropped this SA: an answer could not be read
            self._send_ctl(wire.EXCH_INFO, wire.FLAG_RESPONSE, msg.msg_id, [])
        elif msg.exch == wire.EXCH_QUICK:
            _, _, props = wire.decode_sa(msg.require(wire.PL_SA))
            if choose_proposal(props) is not None:
                raise ProtocolError("quick mode child SAs are not supported")
            self._send_ctl(wire.EXCH_QUICK, wire.FLAG_RESPONSE, msg.msg_id,
                           [(wire.PL_NOTIFY, wire.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))])
        elif msg.exch == wire.EXCH_REKEY:
            self._on_rekey_request(msg, now)
        else:
            raise ProtocolError("unexpected request exchange %d" % msg.exch)

    def _on_response(self, msg, now):
        if msg.exch == wire.EXCH_QUICK:
            ntype, _ = wire.decode_notify(msg.require(wire.PL_NOTIFY))
            if ntype != wire.N_NO_PROPOSAL_CHOSEN:
                raise ProtocolError("probe answered with notify %d" % ntype)
            self._on_heartbeat_answer(msg.msg_id, now)
            return
        if msg.exch == wire.EXCH_REKEY and self.rekey is not None and msg.msg_id == self.rekey["msg_id"]:
            self.heartbeat.proof(self.rekey["sent"], now)
            self._on_rekey_response(msg, now)
            return
        dp = self.delete_pending
        if msg.exch == wire.EXCH_INFO and dp is not None and msg.msg_id == dp[0]:
            self.delete_pending = None
            self.heartbeat.proof(dp[1], now)
            return
        raise ProtocolError("stale or unexpected response id %d" % msg.msg_id)

    # --- heartbeat ---------------------------------------------------------------------

    def _send_heartbeat(self, now):
        hb = self.heartbeat
        form = self.cfg.heartbeat_form
        if form == PROBE:
            hb_id = self._new_msg_id()
            self._send_ctl(wire.EXCH_QUICK, 0, hb_id, [(wire.PL_SA, wire.encode_sa(0x01000000, 0x01000000, [_INVALID_PROPOSAL]))])
        elif form == SPI_ECHO:
            nonce = random_bytes(4)
            hb_id = int.from_bytes(nonce, "big")
            self.out.append(wire.SPI_ECHO.to_bytes(4, "big") + nonce)
        else:
            hb_id = hb.new_id()
            self._send_data(bytes([wire.NH_HB, hb_id]))
        hb.sent(hb_id, now)
        self._event("heartbeat_sent", id=hb_id, attempt=hb.attempt)

    def _on_delete(self, body, now):
        """True if the DELETE named our current SAs and the session is now closed."""
        _, spis = wire.decode_delete(body)
        prev = self.previous
        if prev is not None and prev.ctl_out.spi in spis:
            return False  # the initiator retired the superseded SAs; grace timer drops them
        if self.current.ctl_out.spi in spis or self.current.data_out.spi in spis:
            self.close("peer_deleted", now, notify=False)
            return True
        raise ProtocolError("DELETE names no SA of ours")

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
        if self.previous is not None and ticks.reached(now, self.previous_until):
            self.previous = None
            self.previous_until = None
        rk = self.rekey
        if rk is not None and ticks.reached(now, rk["deadline"]):
            if rk["attempt"] > self.cfg.retries:
                self.rekey = None
                self.rekey_retry_at = ticks.add(now, self.cfg.rekey_retry_ms)
                self._event("rekey_failed", reason="timeout")
            else:
                rk["attempt"] += 1
                rk["deadline"] = ticks.add(now, self.cfg.response_ms)
                self._send_ctl(wire.EXCH_REKEY, 0, rk["msg_id"], rk["offer"].payloads)
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
        return ticks.earliest(self.heartbeat.next_deadline(), self.previous_until,
                              rk["deadline"] if rk else None, rekey_at)

    def close(self, reason, now, notify=True):
        """Delete every SA of this peer; with notify, tell the peer (best effort, protected)."""
        if self.closed:
            return
        if notify:
            try:
                self._send_ctl(wire.EXCH_INFO, 0, self._new_msg_id(),
                               [(wire.PL_DELETE, wire.encode_delete(wire.PROTO_CONTROL, self.current.inbound_spis()))])
            except ProtocolError:
                pass
        spis = self.current.inbound_spis()
        self.current = self.previous = self.out_sas = None
        self.rekey = None
        self.closed = True
        self.heartbeat.set_mode("NONE", now)
        self._event("sa_deleted", reason=reason, ctl_spi=spis[0], data_spi=spis[1])
