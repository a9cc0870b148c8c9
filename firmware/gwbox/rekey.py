"""The rekey exchange of a session (EP 0 999 673 claims 2, 9-11, 17), as a mixin of Session.

Make-before-break, initiated by the original initiator only (no collisions to resolve):

    I -> R  REKEY req  (old ctl SA)  SA(new SPIs) KE NONCE
    R -> I  REKEY resp (old ctl SA)  SA(new SPIs) KE NONCE     R now accepts old+new, sends on old
    I -> R  INFO req   (new ctl SA)  DELETE(old inbound SPIs)  I sends on new from here
    R -> I  INFO resp  (new ctl SA)                            R switches to new
Superseded SAs keep accepting inbound packets for a grace period, so nothing in flight
is lost. It uses the session's state and helpers (current, previous, out_sas, _send_ctl,
_new_msg_id, _event, cfg); the key exchange itself is handshake.Offer/answer/complete.
"""
from gwbox import ticks, wire
from gwbox.errors import ProtocolError
from gwbox.handshake import Offer, answer, complete


class Rekeying:
    def rekey_due(self, now):
        c = self.current
        return ticks.diff(now, c.created) >= self.cfg.rekey_ms or c.data_bytes() >= self.cfg.rekey_bytes

    def _maybe_rekey(self, now):
        if (self.initiator and self.rekey is None and self.previous is None and not self.closed
                and (self.rekey_retry_at is None or ticks.reached(now, self.rekey_retry_at))
                and self.rekey_due(now)):
            self.start_rekey(now)

    def start_rekey(self, now):
        c = self.current
        reason = "time" if ticks.diff(now, c.created) >= self.cfg.rekey_ms else "bytes"
        offer = Offer(self.taken_spis())
        msg_id = self._new_msg_id()
        self.rekey = {"msg_id": msg_id, "offer": offer, "attempt": 1, "sent": now,
                      "deadline": ticks.add(now, self.cfg.response_ms)}
        self._send_ctl(wire.EXCH_REKEY, 0, msg_id, offer.payloads)
        self._event("rekey_started", reason=reason, msg_id=msg_id)

    def _on_rekey_request(self, msg, now):
        if self.initiator:
            raise ProtocolError("rekey request to the original initiator")
        if self.previous is not None:
            if self.out_sas is not self.current:
                # The initiator abandoned our last answer unused: forget those keys.
                self.current = self.out_sas
            # Either way the superseded set is finished with: the initiator moved on.
            self.previous = None
            self.previous_until = None
        payloads, new = answer(msg, self.taken_spis(), now, self.current.sk_d)
        if payloads is None:
            payloads = [(wire.PL_NOTIFY, wire.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))]
        pkt = self._send_ctl(wire.EXCH_REKEY, wire.FLAG_RESPONSE, msg.msg_id, payloads)
        self.cached = (msg.msg_id, pkt)
        if new is None:
            return
        # Make before break: accept on both, keep sending on the old set until the
        # initiator is seen using the new one.
        self.previous = self.current
        self.previous_until = None
        self.current = new

    def _on_rekey_response(self, msg, now):
        rk = self.rekey
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            self.rekey = None
            self.rekey_retry_at = ticks.add(now, self.cfg.rekey_retry_ms)
            self._event("rekey_failed", reason="notify_%d" % wire.decode_notify(notify)[0])
            return
        new = complete(rk["offer"], msg, now, self.current.sk_d)
        old = self.current
        self.rekey = None
        self.rekey_retry_at = None
        self.previous = old
        self.previous_until = ticks.add(now, self.cfg.rekey_grace_ms())
        self.current = new
        self.out_sas = new
        self.delete_pending = (self._new_msg_id(), now)
        self._send_ctl(wire.EXCH_INFO, 0, self.delete_pending[0],
                       [(wire.PL_DELETE, wire.encode_delete(wire.PROTO_CONTROL, old.inbound_spis()))])
        self._event("rekeyed", ctl_spi=new.ctl_in.spi, data_spi=new.data_in.spi)

    def _switch_to_current(self, now):
        """Responder side: the initiator uses the new SAs, so do we; old ones expire soon."""
        self.out_sas = self.current
        self.previous_until = ticks.add(now, self.cfg.rekey_grace_ms())
        self._event("rekeyed", ctl_spi=self.current.ctl_in.spi, data_spi=self.current.data_in.spi)
