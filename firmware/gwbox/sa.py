"""Security associations: one direction of protection each (like an ESP SA).

Encrypt-then-MAC: AES-128-CTR (built from ECB, the one mode every port has) with the
counter block SPI || seq || 0 || block, then HMAC-SHA256 truncated to 128 bits over
SPI || seq || ciphertext. The nonce never repeats for a key because the sequence
number strictly increases and the SA is rekeyed long before it could wrap.
The receiver checks the MAC in constant time *before* anything else, then the
anti-replay window, and only then decrypts.

An SA keeps its 16-byte AES key and makes the ECB context (320 bytes, key schedule
included) for each packet it protects: a few microseconds of key expansion against 10
contiguous heap blocks held per SA, and a rekey holds eight SAs at once on a 64 KB heap
(docs/memory.md).
"""
import struct

from gwbox import const
from gwbox.crypto import aes
from gwbox.crypto.mac import ct_equal, hmac_digest, hmac_key
from gwbox.errors import ProtocolError
from gwbox.wire import ICV_LEN, PROT_HEADER_LEN

_SEQ_MAX = const(0xFFFFFFFF)
REPLAY_WINDOW = const(64)


class ReplayWindow:
    """Sliding window of the last REPLAY_WINDOW sequence numbers (RFC 4303 §3.4.3)."""

    def __init__(self):
        self.top = 0  # highest sequence number accepted so far (0: none yet)
        self.bits = 0  # bit i set: seq (top - i) seen

    def check(self, seq):
        """Raise unless `seq` is new and not too old; does not record it."""
        if seq == 0:
            raise ProtocolError("sequence number 0")
        if seq > self.top:
            return
        off = self.top - seq
        if off >= REPLAY_WINDOW:
            raise ProtocolError("sequence number %d left the window" % seq)
        if (self.bits >> off) & 1:
            raise ProtocolError("replayed sequence number %d" % seq)

    def accept(self, seq):
        if seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << REPLAY_WINDOW) - 1) if shift < REPLAY_WINDOW else 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)


def _nonce(spi_seq):
    return spi_seq + b"\x00\x00\x00\x00"


class OutboundSA:
    """Protects packets toward the peer; `spi` is the peer's inbound SPI."""

    def __init__(self, spi, enc_key, mac_key):
        self.spi = spi
        self.seq = 0
        self._key = bytes(enc_key)
        self._mac = hmac_key(mac_key)
        self.bytes = 0  # plaintext bytes protected, for rekey-by-volume

    def protect(self, plaintext):
        if self.seq >= _SEQ_MAX:
            raise ProtocolError("sequence numbers exhausted: rekey overdue")
        self.seq += 1
        head = struct.pack(">II", self.spi, self.seq)
        ct = aes.ctr_crypt(aes.new(self._key, aes.MODE_ECB), _nonce(head), plaintext)
        self.bytes += len(plaintext)
        return head + ct + hmac_digest(self._mac, head, ct)[:ICV_LEN]


class InboundSA(ReplayWindow):
    """Verifies and decrypts packets from the peer; `spi` is our own inbound SPI.

    It *is* its replay window: one object and one attribute table instead of two, which
    counts on a device heap that holds four inbound SAs during a rekey.
    """

    def __init__(self, spi, enc_key, mac_key):
        ReplayWindow.__init__(self)
        self.spi = spi
        self._key = bytes(enc_key)
        self._mac = hmac_key(mac_key)
        self.bytes = 0

    def unprotect(self, packet):
        """Plaintext of a valid, fresh packet; ProtocolError otherwise (window untouched)."""
        if len(packet) < PROT_HEADER_LEN + ICV_LEN:
            raise ProtocolError("truncated protected packet")
        spi, seq = struct.unpack_from(">II", packet, 0)
        if spi != self.spi:
            raise ProtocolError("wrong SPI")
        head = packet[:PROT_HEADER_LEN]
        ct = packet[PROT_HEADER_LEN:-ICV_LEN]
        if not ct_equal(hmac_digest(self._mac, head, ct)[:ICV_LEN], packet[-ICV_LEN:]):
            raise ProtocolError("bad ICV")
        self.check(seq)
        self.accept(seq)
        self.bytes += len(ct)
        return aes.ctr_crypt(aes.new(self._key, aes.MODE_ECB), _nonce(bytes(head)), ct)


def packet_spi(packet):
    """The SPI a protected packet names (to find its SA), or ProtocolError."""
    if len(packet) < PROT_HEADER_LEN + ICV_LEN:
        raise ProtocolError("truncated protected packet")
    return struct.unpack_from(">I", packet, 0)[0]


class SASet:
    """The four SAs of one keying: control and data, each inbound and outbound."""

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
