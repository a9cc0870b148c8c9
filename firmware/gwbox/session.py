"""One established peer: its SAs, keepalive, delete and teardown (sans-I/O).

Control SA carries keepalive, rekey and delete; the data SA carries tunnel payload.
The rekey exchange lives in rekey.py (a mixin of Session): make-before-break, so a
session may hold a superseded SA set (`previous`) that still accepts inbound packets
for a grace period. Keepalive timing is untouched by rekeying.
"""
from gwbox import ticks, wire
from gwbox.config import KEEPALIVE_PROBE
from gwbox.errors import ProtocolError
from gwbox.events import Event
from gwbox.handshake import choose_proposal
from gwbox.keepalive import DEAD, SEND, Keepalive
from gwbox.rekey import Rekeying
from gwbox.sa import packet_spi
from gwbox.wire import Message

# The seed's probe (claim 14): a quick-mode proposal nobody can accept
# (proposal 1, one transform: TF_ENCR with the unassigned id 0xFF).
_INVALID_PROPOSAL = b"\x01\x01\x01\xff"


class Session(Rekeying):
    def __init__(self, cfg, peer_id, sas, original_initiator, now, link=None, cached_response=None):
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
        # The original responder waits one response time longer before probing, so on a
        # quiet link only the initiator's probe and its ack cross the line (the probe
        # resets the responder's idle timer), yet either side still detects a dead peer.
        idle = cfg.keepalive_idle_ms + (0 if original_initiator else cfg.response_ms)
        self.keepalive = Keepalive(idle, cfg.response_ms, cfg.retries, now)
        self.rekey = None  # our outstanding rekey request: dict
        self.rekey_retry_at = None
        self.delete_pending = None  # msg_id of our DELETE(old) after a rekey
        self.closed = False
        self.out = []
        self.events = []
        self.received = []

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

    def owns(self, spi):
        if spi in self.current.inbound_spis():
            return True
        return self.previous is not None and spi in self.previous.inbound_spis()

    def taken_spis(self):
        s = self.current.inbound_spis()
        return s + self.previous.inbound_spis() if self.previous else s

    # --- sending -------------------------------------------------------------------------

    def send_data(self, payload, now):
        if self.closed:
            raise ProtocolError("session closed")
        self.out.append(self.out_sas.data_out.protect(bytes([wire.NH_DATA]) + payload))
        self._maybe_rekey(now)

    # --- receiving -------------------------------------------------------------------

    def receive(self, packet, now):
        """A protected packet naming one of our SPIs. Raises ProtocolError to drop."""
        spi = packet_spi(packet)
        for sas in (self.current, self.previous):
            if sas is None:
                continue
            if spi == sas.data_in.spi:
                pt = sas.data_in.unprotect(packet)
                self.keepalive.heard(now)
                if sas is self.current and self.out_sas is not self.current:
                    self._switch_to_current(now)
                if len(pt) < 1 or pt[0] != wire.NH_DATA:
                    raise ProtocolError("unknown next header")
                self.received.append(bytes(pt[1:]))
                self._maybe_rekey(now)
                return
            if spi == sas.ctl_in.spi:
                msg = wire.decode(sas.ctl_in.unprotect(packet), False)
                if sas is self.current and self.out_sas is not self.current and not msg.is_response():
                    self._switch_to_current(now)
                # Only a message that proved valid here is traffic: a stale or unexpected
                # response raises or returns False and never counts as liveness.
                if self._on_control(msg, sas, now):
                    self.keepalive.heard(now)
                return
        raise ProtocolError("no SA for SPI")

    def _on_control(self, msg, sas, now):
        """Handle one control message; True if it counts as traffic from a live peer."""
        if msg.is_response():
            return self._on_response(msg, now)
        if self.cached is not None and msg.msg_id == self.cached[0]:
            self.out.append(self.cached[1])  # a retransmitted request: same answer again
            return True
        if msg.exch == wire.EXCH_INFO:
            deleted = msg.find(wire.PL_DELETE)
            if deleted is not None and self._on_delete(deleted, now):
                return True  # the peer already dropped this SA: an answer could not be read
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
        return True

    def _on_response(self, msg, now):
        if msg.exch in (wire.EXCH_INFO, wire.EXCH_QUICK) and msg.msg_id == self.keepalive.pending:
            if msg.exch == wire.EXCH_QUICK:
                ntype, _ = wire.decode_notify(msg.require(wire.PL_NOTIFY))
                if ntype != wire.N_NO_PROPOSAL_CHOSEN:
                    raise ProtocolError("probe answered with notify %d" % ntype)
            rtt = ticks.diff(now, self.keepalive.sent_at)
            self.keepalive.acked(msg.msg_id, now)
            self._event("keepalive_ack", msg_id=msg.msg_id, rtt_ms=rtt)
            return True
        if msg.exch in (wire.EXCH_INFO, wire.EXCH_QUICK) and msg.msg_id == self.keepalive.ended:
            self.keepalive.ended = None
            return False  # round already ended by other traffic: no news, no liveness
        if msg.exch == wire.EXCH_REKEY and self.rekey is not None and msg.msg_id == self.rekey["msg_id"]:
            self._on_rekey_response(msg, now)
            return True
        if msg.exch == wire.EXCH_INFO and msg.msg_id == self.delete_pending:
            self.delete_pending = None
            return True
        raise ProtocolError("stale or unexpected response id %d" % msg.msg_id)

    # --- keepalive ---------------------------------------------------------------------

    def _send_keepalive(self, now):
        ka = self.keepalive
        msg_id = ka.pending if ka.pending is not None else self._new_msg_id()
        if self.cfg.keepalive_form == KEEPALIVE_PROBE:
            self._send_ctl(wire.EXCH_QUICK, 0, msg_id, [(wire.PL_SA, wire.encode_sa(0x01000000, 0x01000000, [_INVALID_PROPOSAL]))])
        else:
            self._send_ctl(wire.EXCH_INFO, 0, msg_id, [])
        ka.sent(msg_id, now)
        self._event("keepalive_sent", msg_id=msg_id, attempt=ka.attempt)

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
        verdict = self.keepalive.poll(now)
        if verdict == SEND:
            self._send_keepalive(now)
        elif verdict == DEAD:
            waited = ticks.diff(now, self.keepalive.sent_at) if self.keepalive.sent_at is not None else 0
            self._event("peer_dead", waited_ms=waited)
            self.close("peer_dead", now, notify=True)
            return
        if self.previous is not None and ticks.reached(now, self.previous_until):
            self.previous = None
            self.previous_until = None
        rk = self.rekey
        if rk is not None and ticks.reached(now, rk["deadline"]):
            if rk["attempt"] > self.cfg.retries:
                self.rekey = None
                self.rekey_retry_at = ticks.add(now, self.cfg.keepalive_idle_ms)
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
        return ticks.earliest(self.keepalive.next_deadline(), self.previous_until,
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
        self.keepalive.deadline = None
        self._event("sa_deleted", reason=reason, ctl_spi=spis[0], data_spi=spis[1])
