"""The message codec: ISAKMP-style messages and their payload bodies (docs/protocol.md).

Every decoder either returns a value or raises ProtocolError: never anything else.
Loaded by key exchanges and by a session handling a control message, and dropped with
the key-exchange code once no exchange runs (gwbox.endpoint): heartbeats and tunnel
traffic never need it.
"""
import struct

from gwbox import const
from gwbox.errors import ProtocolError
from gwbox.wire import (DH_X25519, EXCHANGES, FLAG_INITIATOR, FLAG_RESPONSE, HEADER_LEN, INNER_LEN, MARKER,
                        PAYLOAD_TYPES, PROTO_CONTROL, TF_DH, TF_ENCR, TF_INTEG)

_VERSION = const(0x10)  # major 1, minor 0
_PL_NONE = const(0)
_PROTO_DATA = const(3)
_ENCR_AES128_CTR = const(1)  # AES-128 in CTR mode built from ECB (cryptolib on every port)
_INTEG_HMAC_SHA256_128 = const(1)


class Message:
    """A decoded message: header fields plus an ordered list of (type, body) payloads."""

    def __init__(self, exch, flags, msg_id, payloads, spi_i=0, spi_r=0):
        self.spi_i = spi_i
        self.spi_r = spi_r
        self.exch = exch
        self.flags = flags
        self.msg_id = msg_id
        self.payloads = payloads

    def is_response(self):
        return bool(self.flags & FLAG_RESPONSE)

    def find(self, ptype):
        """Body of the first payload of `ptype`, or None."""
        for t, body in self.payloads:
            if t == ptype:
                return body
        return None

    def require(self, ptype):
        body = self.find(ptype)
        if body is None:
            raise ProtocolError("missing payload %d" % ptype)
        return body


# --- payload chain ---------------------------------------------------------------
# Each payload: next-payload type (1), body length (1), body. The first payload's
# type sits in the header's next-payload byte, exactly as in ISAKMP; a one-byte
# length suffices because no payload body here exceeds 255 bytes.

def encode_chain(payloads):
    out = bytearray()
    n = len(payloads)
    for i in range(n):
        body = payloads[i][1]
        if len(body) > 255:
            raise ProtocolError("payload too long")
        nxt = payloads[i + 1][0] if i + 1 < n else _PL_NONE
        out.append(nxt)
        out.append(len(body))
        out.extend(body)
    return out


def decode_chain(first, buf, pos):
    """Payloads from buf[pos:], the first of type `first`; must consume buf exactly."""
    payloads = []
    ptype = first
    end = len(buf)
    while ptype != _PL_NONE:
        if ptype not in PAYLOAD_TYPES:
            raise ProtocolError("unknown payload type %d" % ptype)
        if pos + 2 > end:
            raise ProtocolError("truncated payload header")
        nxt = buf[pos]
        blen = buf[pos + 1]
        pos += 2
        if pos + blen > end:
            raise ProtocolError("truncated payload body")
        payloads.append((ptype, bytes(buf[pos:pos + blen])))
        pos += blen
        ptype = nxt
        if len(payloads) > 16:
            raise ProtocolError("too many payloads")
    if pos != end:
        raise ProtocolError("trailing bytes after payload chain")
    return payloads


# --- messages: one codec for both header shapes ----------------------------------------
# cleartext: marker, SPIi, SPIr, next payload, version, exchange, flags, msg id, length
# inner (inside a protected packet):              next payload, exchange, flags, msg id

def encode(msg, cleartext):
    chain = encode_chain(msg.payloads)
    first = msg.payloads[0][0] if msg.payloads else _PL_NONE
    if cleartext:
        head = struct.pack(">BIIBBBBIH", MARKER, msg.spi_i, msg.spi_r, first, _VERSION, msg.exch, msg.flags,
                           msg.msg_id, HEADER_LEN + len(chain))
    else:
        head = struct.pack(">BBBI", first, msg.exch, msg.flags, msg.msg_id)
    return head + bytes(chain)


def decode(buf, cleartext):
    """A Message from `buf`, or ProtocolError."""
    spi_i = spi_r = 0
    if cleartext:
        if len(buf) < HEADER_LEN:
            raise ProtocolError("truncated header")
        marker, spi_i, spi_r, first, ver, exch, flags, msg_id, total = struct.unpack_from(">BIIBBBBIH", buf, 0)
        if marker != MARKER:
            raise ProtocolError("not a cleartext message")
        if ver >> 4 != _VERSION >> 4:
            raise ProtocolError("unsupported version %d.%d" % (ver >> 4, ver & 15))
        if total != len(buf):
            raise ProtocolError("length field %d but %d bytes" % (total, len(buf)))
        if spi_i == 0:
            raise ProtocolError("zero initiator SPI")
        pos = HEADER_LEN
    else:
        if len(buf) < INNER_LEN:
            raise ProtocolError("truncated inner header")
        first, exch, flags, msg_id = struct.unpack_from(">BBBI", buf, 0)
        pos = INNER_LEN
    if exch not in EXCHANGES:
        raise ProtocolError("unknown exchange type %d" % exch)
    if flags & ~(FLAG_INITIATOR | FLAG_RESPONSE):
        raise ProtocolError("reserved flag bits set")
    return Message(exch, flags, msg_id, decode_chain(first, buf, pos), spi_i, spi_r)


# --- payload bodies ----------------------------------------------------------------------

# A proposal travels and is kept as its own encoding: number (1), transform count (1),
# then (type, id) byte pairs. No class: a proposal is only ever compared or copied.
DEFAULT_PROPOSAL = bytes([1, 3, TF_ENCR, _ENCR_AES128_CTR, TF_INTEG, _INTEG_HMAC_SHA256_128, TF_DH, DH_X25519])


def transforms(proposal):
    """The proposal's (type, id) pairs, sorted: two proposals offer the same suite iff equal."""
    return sorted(proposal[2 + 2 * k:4 + 2 * k] for k in range(proposal[1]))


def encode_sa(ctl_spi, data_spi, proposals):
    """SA payload: control SPI (4), data SPI (4), then the proposals back to back."""
    return struct.pack(">II", ctl_spi, data_spi) + b"".join(proposals)


def decode_sa(body):
    """(control SPI, data SPI, [proposal bytes, ...])."""
    if len(body) < 8:
        raise ProtocolError("truncated SA payload")
    ctl_spi, data_spi = struct.unpack_from(">II", body, 0)
    pos = 8
    proposals = []
    while pos < len(body):
        if pos + 2 > len(body):
            raise ProtocolError("truncated proposal")
        end = pos + 2 + 2 * body[pos + 1]
        if end > len(body):
            raise ProtocolError("truncated transforms")
        proposals.append(bytes(body[pos:end]))
        pos = end
    if not proposals:
        raise ProtocolError("SA payload without proposal")
    return ctl_spi, data_spi, proposals


def check_spi(spi):
    """A usable SPI: first byte non-zero (byte 0 distinguishes packet shapes)."""
    if not (spi >> 24):
        raise ProtocolError("SPI with zero first byte")
    return spi


# KE, ID and AUTH bodies are a one-byte tag (group, ID type, auth method) and a value.

def tagged(tag, value):
    return bytes([tag]) + value


def untag(body, tag, size=0):
    """The value of a tagged body; `size` > 0 demands that exact length."""
    if len(body) < 2 or body[0] != tag or size and len(body) != size + 1:
        raise ProtocolError("bad payload body for tag %d" % tag)
    return bytes(body[1:])


def encode_notify(ntype, data=b""):
    return struct.pack(">H", ntype) + data


def decode_notify(body):
    if len(body) < 2:
        raise ProtocolError("truncated notify")
    return struct.unpack_from(">H", body, 0)[0], bytes(body[2:])


def encode_delete(proto, spis):
    out = bytearray([proto])
    for s in spis:
        out.extend(struct.pack(">I", s))
    return bytes(out)


def decode_delete(body):
    if len(body) < 5 or (len(body) - 1) % 4 or body[0] not in (PROTO_CONTROL, _PROTO_DATA):
        raise ProtocolError("bad delete payload")
    return body[0], [struct.unpack_from(">I", body, 1 + 4 * k)[0] for k in range((len(body) - 1) // 4)]


SUITE = transforms(DEFAULT_PROPOSAL)  # the one suite this firmware speaks


def supported(proposal):
    return transforms(proposal) == SUITE


def choose_proposal(proposals):
    """The first proposal we speak, or None."""
    for p in proposals:
        if supported(p):
            return p
    return None
