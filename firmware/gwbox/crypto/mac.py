"""HMAC-SHA256 (RFC 2104), HKDF-SHA256 (RFC 5869) and constant-time compare.

Built on hashlib.sha256 alone because boards have no `hmac` module. hmac_key pads the
key once so the per-packet MAC costs only the two hash passes; MicroPython's sha256
has no .copy(), so the padded key blocks (not hash states) are what gets cached.
"""
import hashlib

from gwbox import const

BLOCK = const(64)
_DIGEST = const(32)
_IPAD = int.from_bytes(b"\x36" * BLOCK, "big")
_OPAD = int.from_bytes(b"\x5c" * BLOCK, "big")


def hmac_key(key):
    """An HMAC-SHA256 key prepared once for many messages: key^ipad || key^opad (128 bytes).

    A plain bytes value rather than an object: every SA holds one, and on a device heap
    an object with its attribute table costs as much again as the pads themselves.
    """
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    k = int.from_bytes(bytes(key) + bytes(BLOCK - len(key)), "big")
    return (k ^ _IPAD).to_bytes(BLOCK, "big") + (k ^ _OPAD).to_bytes(BLOCK, "big")


def hmac_digest(pads, *parts):
    """HMAC of the concatenation of `parts` under prepared `pads`, without building it."""
    m = memoryview(pads)
    h = hashlib.sha256(m[:BLOCK])
    for p in parts:
        h.update(p)
    inner = h.digest()
    h = hashlib.sha256(m[BLOCK:])
    h.update(inner)
    return h.digest()


def hmac_sha256(key, msg):
    """One-shot HMAC-SHA256(key, msg) -> 32 bytes."""
    return hmac_digest(hmac_key(key), msg)


def hkdf_extract(salt, ikm):
    """RFC 5869 extract: PRK = HMAC(salt, IKM); empty/None salt means 32 zero bytes."""
    if not salt:
        salt = bytes(_DIGEST)
    return hmac_sha256(salt, ikm)


class HkdfStream:
    """RFC 5869 expand, read in pieces: T(1) ‖ T(2) ‖ … without ever holding it whole.

    The key schedule takes its keys one by one from here, so no allocation is larger
    than two HMAC blocks: on a small, fragmented heap that is what decides success.
    """

    def __init__(self, prk, info):
        self._key = hmac_key(prk)
        self._info = info
        self._t = b""
        self._i = 0
        self._buf = b""

    def read(self, n):
        while len(self._buf) < n:
            self._i += 1
            if self._i > 255:
                raise ValueError("hkdf length")
            self._t = hmac_digest(self._key, self._t, self._info, bytes((self._i,)))
            self._buf += self._t
        out = self._buf[:n]
        self._buf = self._buf[n:]
        return out


def hkdf_expand(prk, info, length):
    """RFC 5869 expand: `length` bytes of output keying material bound to `info`."""
    if length < 0 or length > 255 * _DIGEST:
        raise ValueError("hkdf length")
    return HkdfStream(prk, info).read(length)


def hkdf(salt, ikm, info, length):
    """HKDF-SHA256 extract-then-expand."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


def ct_equal(a, b):
    """True if a == b; time depends on the length only, never on where bytes differ."""
    if len(a) != len(b):
        return False
    acc = 0
    for x, y in zip(a, b):
        acc |= x ^ y
    return acc == 0
