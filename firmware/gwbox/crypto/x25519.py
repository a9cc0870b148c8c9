"""X25519 key agreement (RFC 7748), computed a slice at a time so a box can serve its line.

Two ladders, one result. Where the firmware was built for the board's CPU (native code is
per architecture: `gwbox deploy`, the ROMFS image and the freeze manifests build it with
`mpy-cross -march=...`), the field arithmetic is gwbox.crypto.x25519_viper: viper code
with 13-bit limbs, about 140 ms per scalar multiplication on a 125 MHz RP2040. Elsewhere
(CPython, a port without a native emitter, a build for another CPU), and where the native
code failed its check (below), it is the Montgomery ladder over Python integers below:
about 600 ms on the RP2040, 2.5 ms on CPython.

Native code can be built wrong without an error (frozen armv6m code misplaced by mpy-tool:
boards/README.md), and a wrong answer would be a wrong key. So its first import since boot
runs gwbox.crypto.x25519_check (loaded for that and dropped): the code's placement, then a
known answer through a Ladder. The verdict is kept on the package (`x25519_native`:
"native" or "failed"), so later imports (the box drops this module between key exchanges)
neither check again nor load code that failed.

A `Ladder` runs at most SLICE ladder bits per `step()` (NATIVE_SLICE with the native code;
the last step inverts), so the box loop can read its UART and feed its watchdog between
steps (docs/crypto.md). The conditional swap is arithmetic in both ladders: no branch on a
secret bit.

A port may hand in a faster primitive with `use` (on CPython, gwbox.port.host_x25519,
backed by `cryptography`: what a head-office gateway answering thousands of boxes runs);
every function here, a Ladder too (in one step), then goes through it, and `pure_x25519`
stays this module's own.
"""
from gwbox import const, forget
from gwbox import crypto as _pkg
from gwbox.crypto.entropy import random_bytes
from gwbox.errors import ProtocolError

P = (1 << 255) - 19
_A24 = const(121665)  # (486662 - 2) / 4, RFC 7748 section 5
BASE_POINT = b"\x09" + bytes(31)
_ZERO = bytes(80)  # what a wiped field element holds (wiping allocates nothing)
_ZERO32 = bytes(32)
# Ladder bits per step of the integer ladder: 55-70 ms of bytecode on an RP2040.
SLICE = const(32)
# ... and of the native one: about 65 ms on an RP2040 (0.5 ms a bit), so a multiplication
# is three steps (two slices, then the inversion), three passes of the box's loop instead of
# nine: each pass costs the loop's own work besides the slice (docs/chip.md).
NATIVE_SLICE = const(128)


class Ladder:
    """X25519(scalar, u) = clamped scalar times u, a slice at a time: call `step()` until it
    returns True, then `result` holds the 32 bytes. A port's primitive (`use`) answers at
    once unless `port=False`; `native=False` takes the integer ladder even where native
    code is loaded (the tests compare them)."""

    def __init__(self, scalar, u, native=True, port=True):
        if len(scalar) != 32 or len(u) != 32:
            raise ValueError("x25519 needs 32-byte scalar and u")
        b = _pkg.x25519_backend if port else None
        if b is not None:
            self.result = b(scalar, u)
            self.bit = 0
            self._v = self._s = self._k = None
            return
        k = bytearray(scalar)
        k[0] &= 248  # clamp (RFC 7748 section 5)
        k[31] = (k[31] & 127) | 64
        self.result = None
        self.bit = 255  # ladder bits still to run: 254 .. 0
        self._v = _native if native else None
        if self._v is not None:
            # x1, x2, z2, x3, z3, then scratch (A, B, C, D, AA, BB, E) and the swap bit
            e = tuple(bytearray(80) for _ in range(12)) + (bytearray(4),)
            self._v.load(e[0], u)
            self._v.load(e[3], u)
            e[1][0] = 1
            e[4][0] = 1
            self._s = e
            self._k = k
        else:
            un = (int.from_bytes(u, "little") & ((1 << 255) - 1)) % P
            self._s = [un, 1, 0, un, 1, 0]  # x1, x2, z2, x3, z3, swap
            self._k = int.from_bytes(k, "little")

    def step(self, bits=0):
        """Run one slice (`bits` ladder bits, 0: the ladder's own slice); True once `result`
        is there."""
        if self.result is not None:
            return True
        i = self.bit
        if i > 0:
            if not bits:
                bits = SLICE if self._v is None else NATIVE_SLICE
            stop = i - bits if i > bits else 0
            if self._v is not None:
                self._v.ladder(0, 0, self._k, i, stop, self._s)
            else:
                _ladder(self._k, i, stop, self._s)
            self.bit = stop
            return False
        if self._v is not None:
            e = self._s
            out = bytearray(32)
            # bit 0 of a clamped scalar is 0, so the ladder ends unswapped: x2 / z2
            self._v.invert(e[2], e[5], e[6], e[7], e[8], e[9])
            self._v.mul(0, e[1], e[5], e[5])
            self._v.store(out, e[5])
            result = bytes(out)  # the last allocation: a MemoryError up to here changed no input
            for i in range(12):  # the ladder's state says much about the key: wiped, not just dropped
                e[i][:] = _ZERO
            e[12][0] = 0  # the swap bit
            self._k[:] = _ZERO32
            self.result = result
        else:
            self.result = _finish(self._s).to_bytes(32, "little")
        self._s = self._k = None
        return True

    def run(self):
        """All remaining steps at once; the result."""
        while not self.step():
            pass
        return self.result


def _ladder(k, i, stop, s):
    """The integer ladder, bits i-1 .. stop; s = [x1, x2, z2, x3, z3, swap] in and out."""
    p = P
    x1, x2, z2, x3, z3, swap = s
    for t in range(i - 1, stop - 1, -1):
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
        z3 = x1 * (z3 * z3 % p) % p
        x2 = aa * bb % p
        z2 = e * (aa + _A24 * e) % p
    s[1] = x2
    s[2] = z2
    s[3] = x3
    s[4] = z3
    s[5] = swap


def _finish(s):
    p = P
    x2, z2, x3, z3, swap = s[1], s[2], s[3], s[4], s[5]
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
    b = _pkg.x25519_backend
    if b is not None:
        if len(scalar) != 32 or len(u) != 32:
            raise ValueError("x25519 needs 32-byte scalar and u")
        return b(scalar, u)
    return pure_x25519(scalar, u)


def pure_x25519(scalar, u):
    """X25519 by this module's own ladder, whatever backend is in use (tests compare them)."""
    return Ladder(scalar, u, port=False).run()


def public_key(private):
    """Public key for a 32-byte private key (X25519 with the base point 9)."""
    return x25519(private, BASE_POINT)


def generate_keypair():
    """Fresh ephemeral (private, public); a new pair at every (re)key gives PFS."""
    private = random_bytes(32)
    return private, public_key(private)


def check_secret(s):
    """s, unless it is all zero: RFC 7748 section 6.1, the peer sent a low-order point and
    the "secret" would be known to anyone, so the exchange must fail (ProtocolError)."""
    acc = 0
    for b in s:
        acc |= b
    if acc == 0:
        raise ProtocolError("X25519 shared secret is all zero (low-order peer key)")
    return s


def shared_secret(private, peer_public):
    """X25519 shared secret; ProtocolError for a malformed or low-order peer key."""
    if len(peer_public) != 32:
        raise ProtocolError("X25519 public key must be 32 bytes")
    return check_secret(x25519(private, peer_public))


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


_native = None  # gwbox.crypto.x25519_viper where it loads and passed its check, else None
if _pkg.x25519_native != "failed":
    try:
        from gwbox.crypto import x25519_viper as _native
    except (ImportError, ValueError, MemoryError):
        # not built for this CPU, no emitter, or no room for its code now (an ESP32 puts native
        # code in its little executable RAM): the integer ladder, until the module is loaded again
        _native = None
    if _native is not None and _pkg.x25519_native is None:
        from gwbox.crypto.x25519_check import check  # once a boot (module-level: nothing of it stays)

        _native = check(_native, Ladder)
        check = None
        forget("gwbox.crypto.x25519_check")
