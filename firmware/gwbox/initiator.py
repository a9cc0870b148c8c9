"""Handshake, initiator role (the box): sends msg1, answers msg2 with msg3, completes on msg4.

Everything before msg4's AUTH verifies is unauthenticated, so nothing before it may end
the attempt (RFC 7296 §2.4): a cleartext NO_PROPOSAL_CHOSEN is noted and the box keeps
listening until its own timer; an SA_INIT response is a *candidate* (up to _CANDIDATES of
them, each with its own DH result and msg3), and the first msg4 that authenticates wins,
so a forged response carrying an attacker's key cannot push the genuine one out; a
notify inside a candidate's SA only ends that candidate. A COOKIE (the responder under
load, §2.6) makes the box send msg1 again with the cookie in front; the AUTH transcript
covers msg1 without it, so it does not matter which copy the responder answered.

X25519 is computed a slice at a time (gwbox.crypto.x25519.Ladder): the public key before
msg1 goes out, each candidate's shared secret before its msg3. While work is pending,
`deadline` is the current tick, so the box's loop polls again at once, after serving its
line; each `poll` runs at most one slice (docs/crypto.md).
"""
import struct

from gwbox import const, message, ticks, wire
from gwbox.crypto.mac import ct_equal
from gwbox.crypto.x25519 import Ladder, low_order
from gwbox.errors import ProtocolError
from gwbox.handshake import ROLE_I, ROLE_R, Offer, auth_mac, initiator_sas, peer_answer
from gwbox.message import Message

_CANDIDATES = const(3)  # SA_INIT responses answered at once, the genuine one among them
_SPARE_BITS = const(32)  # ladder bits per slice of a spare key: 16 ms of native code on an RP2040; it is
# in no hurry, and a failover's first messages share its passes (a handshake's slices are larger)
_COOKIE_RETRIES = const(3)  # cookies followed per attempt (a forged one costs one more msg1)


def connect(ep, now, peer, link, rto_ms):
    """gwbox.endpoint.Endpoint.connect: a handshake toward `peer` on `link`, with the
    endpoint's spare key if it has one (finished or not, it is this handshake's)."""
    psk = ep._psks.get(peer)
    if psk is None:
        raise ProtocolError("no pre-shared key to connect with")
    for hs in ep.initiators:
        if hs.expect_peer == peer:
            return  # one handshake per gateway at a time
    hs = InitiatorHandshake(ep.cfg, ep.identity, psk, now, peer, ep._spis, rto_ms, ep.spare)
    ep.spare = None
    hs.link = link
    hs.epoch = ep.epoch
    ep.initiators.append(hs)
    ep._spis[hs.spi_i] = ep._spis[hs.data_spi_i] = hs
    ep._event("handshake_started", role="initiator", peer=peer, spi=hs.spi_i)


def spare_tick(ep, now):
    """One pass of the box's spare key (docs/crypto.md, "A key made ahead"). `ep.spare`: [when
    its next slice is due, private key, Ladder] while it is made (the endpoint sets it up
    for the pass after a handshake of ours succeeded, and keeps the key exchange's code
    loaded meanwhile), then (private key, public key): 64 bytes (a finished Ladder would
    keep X25519's code in the heap). Its Ladder in one pass, then a slice per pass that no
    handshake uses; True once made (the endpoint then drops the key exchange's code if no
    exchange runs). A failover's msg1 then goes at once, not after an X25519 (on an RP2040
    about 550 ms of passes). A connect takes it finished or not; each key serves one
    handshake."""
    sp = ep.spare
    sp[0] = now
    if sp[2] is None:
        from gwbox.handshake import spare
        sp[1], sp[2] = spare()
    elif sp[2].step(_SPARE_BITS):
        ep.spare = (sp[1], sp[2].result)
        return True
    return False


class _Candidate:
    """One SA_INIT response we answer: its shared secret being computed (`job`), then its
    SAs and our msg3 under them."""

    def __init__(self, msg2, spi_r, spis, nr, job):
        self.msg2 = msg2
        self.spi_r = spi_r
        self.spis = spis
        self.nr = nr
        self.job = job  # None once sas and msg3_inner are there
        self.rtt = None  # msg1 -> this msg2, if msg1 went out once
        self.sas = None
        self.msg3_inner = None


class InitiatorHandshake:
    def __init__(self, cfg, identity, psk, now, expect_peer=None, taken=(), rto_ms=None, key=None):
        self.cfg = cfg
        self.identity = identity
        self.psk = psk
        self.expect_peer = expect_peer
        if key.__class__ is list:  # the endpoint's spare, still being made: its Ladder goes on here
            key = None if key[2] is None else (key[1], key[2])
        self._offer = Offer(taken, sliced=True, key=key)  # key: the endpoint's spare, if it has one
        self.spi_i = self._offer.ctl_spi
        self.data_spi_i = self._offer.data_spi
        # what AUTH covers (no cookie), and what goes on the wire (with the last cookie):
        # made once the public key is computed
        self.msg1 = self._wire1 = None
        self._cookies = 0
        self.state = "keygen"
        self.out = []
        self.attempts = 1
        self._timer = None  # when to send again or give up
        # The first retransmission waits `rto_ms` (the box sizes it from the round trip it
        # measured), each next one twice as long, never more than cfg.handshake_retry_ms.
        cap = cfg.handshake_retry_ms
        self._rto = cap if rto_ms is None else max(1, min(rto_ms, cap))
        self._wait = self._rto
        self._sent1 = None  # when msg1 went out, while it went out once (Karn: no sample after a resend)
        self.rtt = None  # msg1 -> msg2 of the peer that authenticated, if msg1 went out once
        self.deadline = now  # work pending: the public key
        self.candidates = []
        self.sas = None  # the SASet of the candidate that authenticated
        self.peer_id = None
        self.failed = None
        self.refused = None  # the last unauthenticated refusal seen: the verdict if nothing better comes
        self.done = False
        self.epoch = None  # the box's boot epoch, told to the gateway in msg3 (the endpoint sets it)
        if self._offer.payloads is not None:
            self._send1(now)  # a key made ahead: msg1 goes at once, no pass of the loop waits for it

    def _send1(self, now):
        self.msg1 = self._wire1 = message.encode(Message(
            wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0, self._offer.payloads, self.spi_i, 0), True)
        self.out.append(self.msg1)
        self.state = "sa_init"
        self._sent1 = now
        self._timer = self.deadline = ticks.add(now, self._wait)

    def _fail(self, reason):
        self.failed = reason
        self.state = "failed"
        self.deadline = self._timer = None
        self._offer = None
        self.candidates = []

    def owns(self, spi):
        """True if `spi` is our control SPI (every candidate shares it: their keys differ)."""
        return spi == self.spi_i and bool(self.candidates)

    def on_msg2(self, raw, msg, now):
        """Cleartext SA_INIT response. Raises ProtocolError for a message to drop."""
        if self.state != "sa_init" or msg.exch != wire.EXCH_SA_INIT or not msg.is_response():
            raise ProtocolError("unexpected SA_INIT")
        if msg.spi_i != self.spi_i or msg.msg_id != 0:
            raise ProtocolError("SA_INIT response for another exchange")
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            ntype, data = message.decode_notify(notify)
            if ntype == wire.N_COOKIE and 1 <= len(data) <= 64 and self._cookies < _COOKIE_RETRIES:
                self._cookies += 1
                self._wire1 = message.encode(Message(
                    wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0, [(wire.PL_NOTIFY, notify)] + self._offer.payloads,
                    self.spi_i, 0), True)
                self.out.append(self._wire1)
                return
            if ntype == wire.N_NO_PROPOSAL_CHOSEN:
                self.refused = "no_proposal_chosen"  # unauthenticated: noted, not obeyed
                return
            raise ProtocolError("unexpected notify %d" % ntype)
        if message.decode_sa(msg.require(wire.PL_SA))[0] != msg.spi_r:
            raise ProtocolError("SA payload SPI differs from header")
        for c in self.candidates:
            if c.spi_r == msg.spi_r:
                raise ProtocolError("SA_INIT response answered already")
        if len(self.candidates) >= _CANDIDATES:
            raise ProtocolError("too many SA_INIT responses")
        spis, xr, nr = peer_answer(self._offer, msg)
        if low_order(xr):  # its shared secret would be all zero, known to anyone (RFC 7748 6.1)
            raise ProtocolError("X25519 public key of low order")
        c = _Candidate(bytes(raw), msg.spi_r, spis, nr, Ladder(self._offer.priv, xr))
        if self._sent1 is not None:
            c.rtt = ticks.diff(now, self._sent1)  # counts only if this candidate authenticates
        self.candidates.append(c)
        self.deadline = now  # work pending: the shared secret, then msg3 (poll)

    def _answer(self, c, now):
        """One slice of candidate c's shared secret; once it is there, its SAs and msg3."""
        if not c.job.step():
            return
        try:
            c.sas = initiator_sas(self._offer, c.spis, c.nr, c.job.result, now)
        except ProtocolError:  # all zero: low_order() keeps such keys out, this is the backstop
            self.candidates.remove(c)
            return
        id_body = message.tagged(wire.ID_KEY_ID, self.identity)
        mac = auth_mac(self.psk, ROLE_I, self.msg1, c.msg2, id_body)
        payloads = [(wire.PL_ID, id_body), (wire.PL_AUTH, message.tagged(wire.AUTH_PSK_MAC, mac))]
        if self.epoch is not None:  # under the new SA's keys, which only the authenticated peers hold
            payloads.append((wire.PL_NOTIFY, message.encode_notify(wire.N_EPOCH, struct.pack(">I", self.epoch))))
        c.msg3_inner = message.encode(Message(wire.EXCH_AUTH, wire.FLAG_INITIATOR, 1, payloads), False)
        c.job = None
        self.out.append(c.sas.ctl_out.protect(c.msg3_inner))
        if len(self._answered()) == 1:  # the first msg3: AUTH's own retries start
            self.attempts = 1
            self._wait = self._rto
            self._timer = ticks.add(now, self._wait)

    def _answered(self):
        return [c for c in self.candidates if c.job is None]

    def on_msg4(self, packet, now):
        """Protected AUTH response: the candidate whose keys it verifies under answers it.
        Raises ProtocolError to drop."""
        for c in self._answered():
            try:
                plain = c.sas.ctl_in.unprotect(packet)
            except ProtocolError:
                continue
            self._on_msg4(c, plain, now)
            return
        raise ProtocolError("AUTH response under no candidate's keys")

    def _on_msg4(self, c, plain, now):
        msg = message.decode(plain, False)
        if msg.exch != wire.EXCH_AUTH or not msg.is_response() or msg.msg_id != 1:
            raise ProtocolError("unexpected message during AUTH")
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            ntype, _ = message.decode_notify(notify)
            # Under this candidate's keys, which a man in the middle may hold too: it ends
            # this candidate, not the attempt.
            self._drop(c, "authentication_failed" if ntype == wire.N_AUTHENTICATION_FAILED else "notify_%d" % ntype)
            return
        id_body = msg.require(wire.PL_ID)
        peer = message.untag(id_body, wire.ID_KEY_ID)
        mac = message.untag(msg.require(wire.PL_AUTH), wire.AUTH_PSK_MAC, 32)
        if not ct_equal(mac, auth_mac(self.psk, ROLE_R, self.msg1, c.msg2, id_body)):
            self._drop(c, "authentication_failed")
            return
        if self.expect_peer is not None and peer != self.expect_peer:
            self._fail("wrong_peer_identity")  # authenticated: the gateway really is another one
            return
        self.peer_id = peer
        self.rtt = c.rtt  # authenticated now: the SA_INIT round trip, for the box's timers
        self.sas = c.sas
        self.candidates = []
        self._offer = None
        self.state = "done"
        self.done = True
        self.deadline = self._timer = None

    def _drop(self, c, reason):
        self.candidates.remove(c)
        self.refused = reason

    def busy(self):
        """True while X25519 work is pending (the public key, or a candidate's secret)."""
        if self.state == "keygen":
            return True
        for c in self.candidates:
            if c.job is not None:
                return True
        return False

    def poll(self, now, work=True):
        """One slice of pending X25519 work, if any (and `work`: the endpoint lets one
        handshake of several compute per pass, so a pass of the box's loop never runs more
        than one slice); then retransmit what is unanswered, or give up (with the last
        refusal seen, if any)."""
        if self.state == "keygen":
            if work and self._offer.work():
                self._send1(now)
            return
        for c in self.candidates:
            if work and c.job is not None:
                self._answer(c, now)
                break
        busy = False
        for c in self.candidates:
            busy = busy or c.job is not None
        # While a response's secret is being computed, nothing goes again: the peer answered
        # msg1 (a copy would only take line time from msg3 and bring a second msg2 down, 90
        # bytes each way at 9,600 baud), and msg3 follows as soon as it is computed. Its
        # slices are bounded (CANDIDATES responses at most), so is the wait.
        if self.state == "sa_init" and not busy and ticks.reached(now, self._timer):
            self._retry(now)
        if self.state == "sa_init":
            self.deadline = now if busy else self._timer

    def _retry(self, now):
        if self.attempts > self.cfg.handshake_retries or (self.refused and not self.candidates):
            # (after a refusal we listened one more retry interval: nothing better came)
            self._fail(self.refused or "timeout")
            return
        self.attempts += 1
        answered = self._answered()
        if answered:  # AUTH: re-protected with a fresh sequence number, same message id
            for c in answered:
                self.out.append(c.sas.ctl_out.protect(c.msg3_inner))
        else:
            self.out.append(self._wire1)
            self._sent1 = None
        self._wait = min(self._wait * 2, self.cfg.handshake_retry_ms)
        self._timer = ticks.add(now, self._wait)
