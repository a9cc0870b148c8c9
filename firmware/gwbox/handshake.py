"""Handshake (sans-I/O), the parts both roles share: SA_INIT in the clear, then AUTH protected.

    msg1 I->R  SA_INIT   SA(ctl SPIi, data SPIi, proposals) KE(Xi) NONCE(Ni)
    msg2 R->I  SA_INIT   SA(ctl SPIr, data SPIr, chosen)    KE(Xr) NONCE(Nr)
    msg3 I->R  AUTH      protected on the new control SA: ID(i) AUTH(i)
    msg4 R->I  AUTH      protected: ID(r) AUTH(r)  (or NOTIFY AUTHENTICATION_FAILED)

Ephemeral X25519 keys give forward secrecy; each AUTH is an HMAC under a key derived
from the box's pre-shared key over both complete SA_INIT messages, the sender's role
and its identity, so a man in the middle of the DH cannot authenticate. Identities
travel encrypted. Failures never raise out of the role modules (initiator.py,
responder.py): they end in `failed` (a reason). The roles live apart so a box
never loads responder code and a gateway never loads initiator code.
"""
import hashlib

from gwbox import message, wire
from gwbox.crypto.entropy import random_bytes
from gwbox.crypto.mac import hmac_digest, hmac_key
from gwbox.crypto.x25519 import BASE_POINT, Ladder, check_secret, shared_secret
from gwbox.errors import ProtocolError
from gwbox.keyschedule import derive, psk_auth_key
from gwbox.sa import SASet

ROLE_I = b"I"
ROLE_R = b"R"


def new_spi(taken=(), other=0):
    """A random SPI with a non-zero first byte (byte 0 tells packet shapes apart), never the
    heartbeat-echo SPI 0xFFFFFFFF, nor one `in taken` (a tuple, or the endpoint's map) or `other`."""
    while True:
        spi = int.from_bytes(random_bytes(4), "big")
        if spi >> 24 and spi != wire.SPI_ECHO and spi != other and spi not in taken:
            return spi


SUITE = message.SUITE
supported = message.supported
choose_proposal = message.choose_proposal


def auth_mac(psk, role, msg1, msg2, id_body):
    h = hashlib.sha256(msg1)
    h.update(msg2)
    return hmac_digest(hmac_key(psk_auth_key(psk)), role, h.digest(), id_body)


# --- one key exchange, shared by the initial handshake and every rekey ---------------

class Offer:
    """Our half of a key exchange: fresh inbound SPIs, an ephemeral X25519 key, a nonce.

    `sliced`: the public key is computed a slice at a time by `work()` (a box's loop stays
    responsive meanwhile, docs/crypto.md) and `payloads` is None until it is done;
    otherwise it is computed here. `key`: (private key, its public key or the Ladder still
    computing it) made ahead (the box's spare, gwbox.endpoint): its work is not done twice."""

    def __init__(self, taken, proposal=None, sliced=False, key=None):
        self.ctl_spi = new_spi(taken)
        self.data_spi = new_spi(taken, self.ctl_spi)
        self.nonce = random_bytes(wire.NONCE_LEN)
        self._proposal = proposal or message.DEFAULT_PROPOSAL
        self.payloads = None
        if key is None:
            key = spare()
        self.priv, job = key  # the private key; its public key, or the Ladder computing it
        if not sliced and job.__class__ is not bytes:
            job.run()
        self._job = job
        if job.__class__ is bytes or job.result is not None:
            self.work()  # the public key is there: the payloads now (no slice runs here)

    def work(self):
        """One slice of the public key (none if it is there); True once `payloads` are there."""
        if self.payloads is None:
            pub = self._job
            if pub.__class__ is not bytes:
                if not pub.step():
                    return False
                pub = pub.result
            self.payloads = [
                (wire.PL_SA, message.encode_sa(self.ctl_spi, self.data_spi, [self._proposal])),
                (wire.PL_KE, message.tagged(wire.DH_X25519, pub)), (wire.PL_NONCE, self.nonce)]
            self._job = None
        return True


def spare():
    """(private key, Ladder of its public key): a fresh ephemeral key, not computed yet."""
    priv = random_bytes(32)
    return priv, Ladder(priv, BASE_POINT)


def _peer_half(msg):
    """(control SPI, data SPI, proposals, public key, nonce) the peer sent in `msg`."""
    ctl, data, props = message.decode_sa(msg.require(wire.PL_SA))
    message.check_spi(ctl)
    message.check_spi(data)
    nonce = msg.require(wire.PL_NONCE)
    if len(nonce) != wire.NONCE_LEN:
        raise ProtocolError("bad nonce length %d" % len(nonce))
    return ctl, data, props, message.untag(msg.require(wire.PL_KE), wire.DH_X25519, wire.KE_LEN), nonce


def answer(msg, taken, now, sk_d=b""):
    """Responder side of an exchange: (our payloads, new SASet), or (None, None) when no
    offered proposal is acceptable."""
    ctl_i, data_i, props, xi, ni = _peer_half(msg)
    chosen = choose_proposal(props)
    if chosen is None:
        return None, None
    mine = Offer(taken, chosen)
    spis = (ctl_i, mine.ctl_spi, data_i, mine.data_spi)
    return mine.payloads, SASet(derive(shared_secret(mine.priv, xi), ni, mine.nonce, spis, sk_d), spis, False, now)


def peer_answer(offer, msg):
    """Initiator side: (SPIs, peer's public key, peer's nonce) of the peer's answer to
    `offer`; ProtocolError for an answer to drop."""
    ctl_r, data_r, props, xr, nr = _peer_half(msg)
    if len(props) != 1 or not supported(props[0]):
        raise ProtocolError("peer chose a proposal we did not offer")
    return (offer.ctl_spi, ctl_r, offer.data_spi, data_r), xr, nr


def initiator_sas(offer, spis, nr, secret, now, sk_d=b""):
    """The initiator's new SASet once the X25519 secret is known (ProtocolError: all zero)."""
    return SASet(derive(check_secret(secret), offer.nonce, nr, spis, sk_d), spis, True, now)

