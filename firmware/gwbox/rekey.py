"""The rekey exchange of a session (EP 0 999 673 claims 2, 9-11, 17): loaded only while it runs.

Make-before-break, started by the original initiator only (no collisions to resolve):

    I -> R  REKEY req  (old ctl SA)  SA(new SPIs) KE NONCE
    R -> I  REKEY resp (old ctl SA)  SA(new SPIs) KE NONCE     R now accepts old+new, sends on old
    I -> R  INFO req   (new ctl SA)  DELETE(old inbound SPIs)  I sends on new from here
    R -> I  INFO resp  (new ctl SA)                            R switches to new
The initiator keeps accepting on the superseded SAs until its DELETE is answered (it sends
it again, like any request, until then) and a grace period after; the responder switches
on the first packet it gets on the new SAs. So a lost DELETE loses nothing: the responder
still sends on the old SAs, which the initiator still accepts.

A `Rekey` is one request in flight and owns its retries and deadline; `answer` is the
responder's side. The requester (a box) computes its two X25519s a slice at a time, as the
first handshake does (docs/crypto.md): its public key before the request goes out, the
shared secret once the response is in, one `Ladder.step` per `poll`; while work is pending
its deadline is the current tick, so the session is polled again at once. Both work on the session's state and helpers (current, previous,
out_sas, _new_msg_id, _event, cfg; messages go out through gwbox.control). The session imports this module only when
a rekey starts or a REKEY request arrives; the endpoint drops it again afterwards.
"""
from gwbox import control, message, ticks, wire
from gwbox.errors import ProtocolError
from gwbox.crypto.x25519 import Ladder, low_order
from gwbox.handshake import Offer, answer as _answer, initiator_sas, peer_answer


def _taken(s):
    """The SPIs new ones must avoid: a gateway's whole map (its session got `endpoint_spis`
    from gwbox.admission), else the session's own."""
    return getattr(s, "endpoint_spis", None) or s.taken_spis()


class Rekey:
    """Our rekey request in flight: its offer, its retries and its deadline."""

    def __init__(self, s, now, reason):
        self.offer = Offer(_taken(s), sliced=True)
        self.msg_id = s._new_msg_id()
        self.attempt = 1
        self.sent = None  # when the request last went out (once our public key is there)
        self.deadline = now  # work pending: our public key
        self._job = None  # the response's secret being computed: (Ladder, SPIs, nonce, resend time)
        s._event("rekey_started", reason=reason, msg_id=self.msg_id)

    def poll(self, s, now):
        """One slice of pending X25519 work (the request goes out once our public key is
        there; the new SAs are taken into use once the secret is); else, at the deadline,
        send the request again, or give up (True)."""
        if self.sent is None:
            if self.offer.work():
                self.sent = now
                self.deadline = ticks.add(now, s.cfg.response_ms)
                control.send(s, wire.EXCH_REKEY, 0, self.msg_id, self.offer.payloads)
            return False
        if self._job is not None:
            self._secret(s, now)
            return False
        if not ticks.reached(now, self.deadline):
            return False
        if self.attempt > s.cfg.retries:
            return True
        self.attempt += 1
        self.deadline = ticks.add(now, s.cfg.response_ms)
        control.send(s, wire.EXCH_REKEY, 0, self.msg_id, self.offer.payloads)
        return False

    def on_response(self, s, msg, now):
        """The peer's answer: switch to the new SAs (or report the refusal)."""
        if self._job is not None:
            return  # the same answer again (our request was sent twice): its secret is being computed
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            s.rekey_ended(now, "notify_%d" % message.decode_notify(notify)[0])
            return
        spis, xr, nr = peer_answer(self.offer, msg)
        if low_order(xr):  # its shared secret would be all zero, known to anyone (RFC 7748 6.1)
            raise ProtocolError("X25519 public key of low order")
        self._job = (Ladder(self.offer.priv, xr), spis, nr, self.deadline)
        self.deadline = now  # work pending: the shared secret (poll)

    def _secret(self, s, now):
        """One slice of the shared secret; once it is there, switch to the new SAs."""
        job, spis, nr, resend_at = self._job
        if not job.step():
            return
        self._job = None
        try:
            new = initiator_sas(self.offer, spis, nr, job.result, now, s.current.sk_d)
        except ProtocolError:  # all zero: low_order() keeps such keys out, this is the backstop
            self.deadline = resend_at  # as if the answer was dropped: the request goes again then
            return
        self.offer.priv = None  # forward secrecy: the ephemeral key is used once
        old = s.current
        s.rekey_ended(now, None)
        s.previous = old
        s.previous_until = None  # kept until our DELETE is answered, then a grace period
        s.current = new
        s.out_sas = new
        s.delete_pending = [s._new_msg_id(), now, 1, ticks.add(now, s.cfg.response_ms)]
        control.send_delete(s, s.delete_pending[0], old)
        s._event("rekeyed", ctl_spi=new.ctl_in.spi, data_spi=new.data_in.spi)


def answer(s, msg, now):
    """Responder: answer a REKEY request; accept on old and new, send on old until switched."""
    if s.initiator:
        raise ProtocolError("rekey request to the original initiator")
    if s.previous is not None:
        if s.out_sas is not s.current:
            # The initiator abandoned our last answer unused: forget those keys.
            s.current = s.out_sas
        # Either way the superseded set is finished with: the initiator moved on.
        s.previous = None
        s.previous_until = None
    payloads, new = _answer(msg, _taken(s), now, s.current.sk_d)
    if payloads is None:
        payloads = [(wire.PL_NOTIFY, message.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))]
    pkt = control.send(s, wire.EXCH_REKEY, wire.FLAG_RESPONSE, msg.msg_id, payloads)
    s.cached = (msg.msg_id, pkt)
    if new is None:
        return
    s.previous = s.current
    s.previous_until = None
    s.current = new
