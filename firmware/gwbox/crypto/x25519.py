"""X25519 key agreement (RFC 7748), pure Python so it runs on every MicroPython port.

Montgomery ladder over Curve25519 with Python integers. The conditional swap is done
arithmetically (no branch on secret bits); bignum arithmetic itself is not guaranteed
constant time, which we accept for ephemeral keys used once per (re)key.

A port may hand in a faster primitive with `use` (on CPython, gwbox.port.host_x25519,
backed by `cryptography`: what a head-office gateway answering thousands of boxes runs);
every function here then goes through it, and `pure_x25519` stays the ladder.
"""
from gwbox import const
from gwbox import crypto as _pkg
from gwbox.crypto.entropy import random_bytes
from gwbox.errors import ProtocolError

P = (1 << 255) - 19
_A24 = const(121665)  # (486662 - 2) / 4, RFC 7748 section 5
BASE_POINT = b"\x09" + bytes(31)


def _ladder(k, u):
    """x-coordinate of k*u; k already clamped, u already reduced."""
    p = P
    x2, z2, x3, z3, swap = 1, 0, u, 1, 0
    for t in range(254, -1, -1):
        kt = (k >> t) & 1
        swap ^= kt
        d = swap * (x2 - x3)
        x2 -= d
        x3 += d
        d = swap * (z2 - z3)
        z2 -= d
        z3 += d
        swap = kt
        a = x2 + z2
        aa = a * a % p
        b = x2 - z2
        bb = b * b % p
        e = aa - bb
        c = x3 + z3
        dd = x3 - z3
        da = dd * a % p
        cb = c * b % p
        x3 = da + cb
        x3 = x3 * x3 % p
        z3 = da - cb
        z3 = u * (z3 * z3 % p) % p
        x2 = aa * bb % p
        z2 = e * (aa + _A24 * e) % p
    d = swap * (x2 - x3)
    x2 -= d
    d = swap * (z2 - z3)
    z2 -= d
    # Fermat inversion: MicroPython's pow(x, -1, m) is not usable.
    return x2 * pow(z2, p - 2, p) % p


def use(backend):
    """The port hands in X25519(scalar, u) -> 32 bytes (RFC 7748, all-zero for low-order u).
    Kept on the package, which outlives this module when the key-exchange code is dropped
    (gwbox.forget) and imported again."""
    _pkg.x25519_backend = backend


def x25519(scalar, u):
    """RFC 7748 X25519(k, u): clamps the scalar and masks the top bit of u."""
    if len(scalar) != 32 or len(u) != 32:
        raise ValueError("x25519 needs 32-byte scalar and u")
    b = _pkg.x25519_backend
    if b is not None:
        return b(scalar, u)
    return pure_x25519(scalar, u)


def pure_x25519(scalar, u):
    """X25519 by the ladder here, whatever backend is in use (tests compare the two)."""
    k = int.from_bytes(scalar, "little")
    k = (k & ((1 << 255) - 8)) | (1 << 254)
    un = (int.from_bytes(u, "little") & ((1 << 255) - 1)) % P
    return _ladder(k, un).to_bytes(32, "little")


def public_key(private):
    """Public key for a 32-byte private key (X25519 with the base point 9)."""
    return x25519(private, BASE_POINT)


def generate_keypair():
    """Fresh ephemeral (private, public); a new pair at every (re)key gives PFS."""
    private = random_bytes(32)
    return private, public_key(private)


def shared_secret(private, peer_public):
    """X25519 shared secret; ProtocolError for a malformed or low-order peer key.

    RFC 7748 section 6.1: an all-zero result means the peer sent a low-order point,
    which would make the "secret" known to anyone, so the exchange must fail.
    """
    if len(peer_public) != 32:
        raise ProtocolError("X25519 public key must be 32 bytes")
    s = x25519(private, peer_public)
    acc = 0
    for b in s:
        acc |= b
    if acc == 0:
        raise ProtocolError("X25519 shared secret is all zero (low-order peer key)")
    return s


# u-coordinates of the points of small order (RFC 7748 section 7; the list libsodium
# rejects), reduced: a peer key equal to one of these (mod p, top bit cleared) would give
# a predictable shared secret, so it is refused before any arithmetic is spent on it.
_LOW_ORDER = (0, 1, 325606250916557431795983626356110631294008115727848805560023387167927233504,
              39382357235489614581723060781553021112529911719440698176882885853963445705823, P - 1)


def low_order(pub):
    """True if the 32-byte public key is a small-order point (or not 32 bytes)."""
    if len(pub) != 32:
        return True
    u = (int.from_bytes(pub, "little") & ((1 << 255) - 1)) % P
    return u in _LOW_ORDER
