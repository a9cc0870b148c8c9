"""Handshake state machines (sans-I/O): SA_INIT in the clear, then AUTH protected.

    msg1 I->R  SA_INIT   SA(ctl SPIi, data SPIi, proposals) KE(Xi) NONCE(Ni)
    msg2 R->I  SA_INIT   SA(ctl SPIr, data SPIr, chosen)    KE(Xr) NONCE(Nr)
    msg3 I->R  AUTH      protected on the new control SA: ID(i) AUTH(i)
    msg4 R->I  AUTH      protected: ID(r) AUTH(r)  (or NOTIFY AUTHENTICATION_FAILED)

Ephemeral X25519 keys give forward secrecy; each AUTH is an HMAC under a key derived
from the box's pre-shared key over both complete SA_INIT messages, the sender's role
and its identity, so a man in the middle of the DH cannot authenticate. Identities
travel encrypted. Failures never raise out of here: they end in `failed` (a reason).
"""
import hashlib

from gwbox import ticks, wire
from gwbox.crypto.entropy import random_bytes
from gwbox.crypto.mac import HmacKey, ct_equal
from gwbox.crypto.x25519 import generate_keypair, shared_secret
from gwbox.errors import ProtocolError
from gwbox.keyschedule import derive, psk_auth_key
from gwbox.sa import InboundSA, OutboundSA
from gwbox.wire import Message

ROLE_I = b"I"
ROLE_R = b"R"


def new_spi(taken=()):
    """A random SPI with a non-zero first byte (byte 0 tells packet shapes apart)."""
    while True:
        spi = int.from_bytes(random_bytes(4), "big")
        if spi >> 24 and spi not in taken:
            return spi


def supported(proposal):
    return (proposal.get(wire.TF_ENCR) == wire.ENCR_AES128_CTR
            and proposal.get(wire.TF_INTEG) == wire.INTEG_HMAC_SHA256_128
            and proposal.get(wire.TF_DH) == wire.DH_X25519
            and len(proposal.transforms) == 3)


def choose_proposal(proposals):
    for p in proposals:
        if supported(p):
            return p
    return None


def auth_mac(psk, role, msg1, msg2, id_body):
    h = hashlib.sha256(msg1)
    h.update(msg2)
    return HmacKey(psk_auth_key(psk)).digest(role, h.digest(), id_body)


class SASet:
    """The four SAs of one keying: control and data, each inbound and outbound."""

    __slots__ = ("ctl_in", "ctl_out", "data_in", "data_out", "sk_d", "created")

    def __init__(self, keys, spis, we_initiated, now):
        ctl_i, ctl_r, data_i, data_r = spis
        if we_initiated:
            self.ctl_out = OutboundSA(ctl_r, keys.ctl_i2r[0], keys.ctl_i2r[1])
            self.ctl_in = InboundSA(ctl_i, keys.ctl_r2i[0], keys.ctl_r2i[1])
            self.data_out = OutboundSA(data_r, keys.data_i2r[0], keys.data_i2r[1])
            self.data_in = InboundSA(data_i, keys.data_r2i[0], keys.data_r2i[1])
        else:
            self.ctl_out = OutboundSA(ctl_i, keys.ctl_r2i[0], keys.ctl_r2i[1])
            self.ctl_in = InboundSA(ctl_r, keys.ctl_i2r[0], keys.ctl_i2r[1])
            self.data_out = OutboundSA(data_i, keys.data_r2i[0], keys.data_r2i[1])
            self.data_in = InboundSA(data_r, keys.data_i2r[0], keys.data_i2r[1])
        self.sk_d = keys.sk_d
        self.created = now

    def inbound_spis(self):
        return (self.ctl_in.spi, self.data_in.spi)

    def data_bytes(self):
        return self.data_in.bytes + self.data_out.bytes


class InitiatorHandshake:
    """The box side: sends msg1, answers msg2 with msg3, completes on msg4."""

    def __init__(self, cfg, identity, psk, now, expect_peer=None, taken=()):
        self.cfg = cfg
        self.identity = identity
        self.psk = psk
        self.expect_peer = expect_peer
        self.spi_i = new_spi(taken)
        self.data_spi_i = new_spi(taken + (self.spi_i,))
        self._priv, pub = generate_keypair()
        self._nonce = random_bytes(wire.NONCE_LEN)
        self.msg1 = wire.encode_message(Message(
            wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0,
            [(wire.PL_SA, wire.encode_sa(self.spi_i, self.data_spi_i, [wire.DEFAULT_PROPOSAL])),
             (wire.PL_KE, wire.encode_ke(pub)), (wire.PL_NONCE, self._nonce)], self.spi_i, 0))
        self.state = "sa_init"
        self.out = [self.msg1]
        self.attempts = 1
        self.deadline = ticks.add(now, cfg.handshake_retry_ms)
        self.sas = None  # SASet once msg2 is processed
        self.peer_id = None
        self.failed = None
        self.done = False

    def _fail(self, reason):
        self.failed = reason
        self.state = "failed"
        self.deadline = None
        self._priv = None

    def on_msg2(self, raw, msg, now):
        """Cleartext SA_INIT response. Raises ProtocolError for a message to drop."""
        if self.state != "sa_init" or msg.exch != wire.EXCH_SA_INIT or not msg.is_response():
            raise ProtocolError("unexpected SA_INIT")
        if msg.spi_i != self.spi_i or msg.msg_id != 0:
            raise ProtocolError("SA_INIT response for another exchange")
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            ntype, _ = wire.decode_notify(notify)
            if ntype == wire.N_NO_PROPOSAL_CHOSEN:
                self._fail("no_proposal_chosen")
                return
            raise ProtocolError("unexpected notify %d" % ntype)
        ctl_r, data_r, props = wire.decode_sa(msg.require(wire.PL_SA))
        if len(props) != 1 or not supported(props[0]) or ctl_r != msg.spi_r:
            raise ProtocolError("responder chose a proposal we did not offer")
        wire.check_spi(ctl_r)
        wire.check_spi(data_r)
        xr = wire.decode_ke(msg.require(wire.PL_KE))
        nr = wire.decode_nonce(msg.require(wire.PL_NONCE))
        shared = shared_secret(self._priv, xr)
        self._priv = None
        self.spis = (self.spi_i, ctl_r, self.data_spi_i, data_r)
        keys = derive(shared, self._nonce, nr, self.spis)
        self.sas = SASet(keys, self.spis, True, now)
        self._msg2 = bytes(raw)
        id_body = wire.encode_id(self.identity)
        mac = auth_mac(self.psk, ROLE_I, self.msg1, self._msg2, id_body)
        self._msg3_inner = wire.encode_inner(Message(
            wire.EXCH_AUTH, wire.FLAG_INITIATOR, 1, [(wire.PL_ID, id_body), (wire.PL_AUTH, wire.encode_auth(mac))]))
        self.state = "auth"
        self.attempts = 1
        self.out.append(self.sas.ctl_out.protect(self._msg3_inner))
        self.deadline = ticks.add(now, self.cfg.handshake_retry_ms)

    def on_msg4(self, packet, now):
        """Protected AUTH response on our new control SA. Raises ProtocolError to drop."""
        if self.state != "auth":
            raise ProtocolError("unexpected AUTH response")
        msg = wire.decode_inner(self.sas.ctl_in.unprotect(packet))
        if msg.exch != wire.EXCH_AUTH or not msg.is_response() or msg.msg_id != 1:
            raise ProtocolError("unexpected message during AUTH")
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            ntype, _ = wire.decode_notify(notify)
            self._fail("authentication_failed" if ntype == wire.N_AUTHENTICATION_FAILED else "notify_%d" % ntype)
            return
        id_body = msg.require(wire.PL_ID)
        peer = wire.decode_id(id_body)
        mac = wire.decode_auth(msg.require(wire.PL_AUTH))
        if not ct_equal(mac, auth_mac(self.psk, ROLE_R, self.msg1, self._msg2, id_body)):
            self._fail("authentication_failed")
            return
        if self.expect_peer is not None and peer != self.expect_peer:
            self._fail("wrong_peer_identity")
            return
        self.peer_id = peer
        self.state = "done"
        self.done = True
        self.deadline = None

    def poll(self, now):
        """Retransmit the unanswered message, or give up."""
        if not ticks.reached(now, self.deadline):
            return
        if self.attempts > self.cfg.handshake_retries:
            self._fail("timeout")
            return
        self.attempts += 1
        if self.state == "sa_init":
            self.out.append(self.msg1)
        else:  # AUTH: re-protected with a fresh sequence number, same message id
            self.out.append(self.sas.ctl_out.protect(self._msg3_inner))
        self.deadline = ticks.add(now, self.cfg.handshake_retry_ms)


class ResponderHandshake:
    """The gateway side of one handshake: answers msg1 at once, completes on msg3."""

    def __init__(self, cfg, identity, psk_for, raw1, msg1, now, taken=()):
        self.cfg = cfg
        self.identity = identity
        self.psk_for = psk_for  # identity bytes -> psk bytes or None
        self.spi_i = msg1.spi_i
        self.raw1 = bytes(raw1)
        self.out = []
        self.failed = None
        self.done = False
        self.peer_id = None
        self.sas = None
        self.response = None  # cached msg4 (protected) for a retransmitted msg3
        self.deadline = ticks.add(now, cfg.handshake_retry_ms * (cfg.handshake_retries + 1))
        if msg1.exch != wire.EXCH_SA_INIT or msg1.is_response() or msg1.msg_id != 0 or msg1.spi_r != 0:
            raise ProtocolError("not an SA_INIT request")
        ctl_i, data_i, props = wire.decode_sa(msg1.require(wire.PL_SA))
        if ctl_i != msg1.spi_i:
            raise ProtocolError("SA payload SPI differs from header")
        wire.check_spi(ctl_i)
        wire.check_spi(data_i)
        xi = wire.decode_ke(msg1.require(wire.PL_KE))
        ni = bytes(wire.decode_nonce(msg1.require(wire.PL_NONCE)))
        chosen = choose_proposal(props)
        if chosen is None:
            self.msg2 = wire.encode_message(Message(
                wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
                [(wire.PL_NOTIFY, wire.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))], msg1.spi_i, 0))
            self.out.append(self.msg2)
            self.failed = "no_proposal_chosen"
            self.spi_r = 0
            return
        self.spi_r = new_spi(taken)
        data_r = new_spi(taken + (self.spi_r,))
        priv, pub = generate_keypair()
        nr = random_bytes(wire.NONCE_LEN)
        self.msg2 = wire.encode_message(Message(
            wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
            [(wire.PL_SA, wire.encode_sa(self.spi_r, data_r, [chosen])),
             (wire.PL_KE, wire.encode_ke(pub)), (wire.PL_NONCE, nr)], msg1.spi_i, self.spi_r))
        self.spis = (ctl_i, self.spi_r, data_i, data_r)
        self.sas = SASet(derive(shared_secret(priv, xi), ni, nr, self.spis), self.spis, False, now)
        self.out.append(self.msg2)

    def on_msg1_again(self, raw):
        """A retransmitted msg1 (our msg2 was lost): send the same msg2 again."""
        if bytes(raw) == self.raw1 and not self.done:
            self.out.append(self.msg2)
            return True
        return False

    def on_msg3(self, packet, now):
        """Protected AUTH request. Raises ProtocolError to drop; sets done or failed."""
        msg = wire.decode_inner(self.sas.ctl_in.unprotect(packet))
        if msg.exch != wire.EXCH_AUTH or msg.is_response() or msg.msg_id != 1:
            raise ProtocolError("unexpected message during AUTH")
        id_body = msg.require(wire.PL_ID)
        peer = wire.decode_id(id_body)
        mac = wire.decode_auth(msg.require(wire.PL_AUTH))
        psk = self.psk_for(peer)
        # Unknown identity and wrong PSK look the same to the peer: no oracle for valid names.
        if psk is None or not ct_equal(mac, auth_mac(psk, ROLE_I, self.raw1, self.msg2, id_body)):
            self.out.append(self.sas.ctl_out.protect(wire.encode_inner(Message(
                wire.EXCH_AUTH, wire.FLAG_RESPONSE, 1,
                [(wire.PL_NOTIFY, wire.encode_notify(wire.N_AUTHENTICATION_FAILED))]))))
            self.failed = "authentication_failed" if psk is not None else "unknown_identity"
            self.peer_id = peer
            self.deadline = None
            return
        my_id = wire.encode_id(self.identity)
        my_mac = auth_mac(psk, ROLE_R, self.raw1, self.msg2, my_id)
        self.response = self.sas.ctl_out.protect(wire.encode_inner(Message(
            wire.EXCH_AUTH, wire.FLAG_RESPONSE, 1, [(wire.PL_ID, my_id), (wire.PL_AUTH, wire.encode_auth(my_mac))])))
        self.out.append(self.response)
        self.peer_id = peer
        self.done = True
        self.deadline = None

    def poll(self, now):
        if ticks.reached(now, self.deadline):
            self.failed = "timeout"
            self.deadline = None
