"""AES with MicroPython's `cryptolib` API on every runtime, plus CTR built from ECB.

Boards (ESP32, RP2) offer only ECB and CBC in cryptolib, so the link's CTR mode is
made here from an ECB object. The cipher is the port's business: on MicroPython it is
cryptolib; a port without it hands one in with `use` (on CPython, gwbox.port.host_aes,
installed by the host tools and the test set-up). This module never imports a port.
"""
from gwbox import const

try:
    from cryptolib import aes as _aes
except ImportError:
    _aes = None

MODE_ECB = const(1)
MODE_CBC = const(2)
BLOCK = const(16)
_CHUNK = const(256)  # CTR works this many bytes at a time to keep heap peaks small


def use(backend):
    """The port hands in its AES class (cryptolib's constructor signature and behaviour)."""
    global _aes
    _aes = backend


def new(key, mode, iv=None):
    """A cryptolib-style AES object: .encrypt/.decrypt on multiples of 16 bytes.

    Like cryptolib, one object is for encrypting or for decrypting, and a CBC object
    carries its chaining state from one call to the next.
    """
    if _aes is None:
        raise RuntimeError("no AES: this runtime has no cryptolib and the port handed in none (gwbox.crypto.aes.use)")
    if iv is None:
        return _aes(key, mode)
    return _aes(key, mode, iv)


def ctr_crypt(ecb, nonce, data, counter=0):
    """AES-CTR en/decryption with an ECB object (used for encrypt only).

    Counter block = 12-byte nonce || 32-bit big-endian counter, +1 per 16-byte block;
    the last block may be partial. A (key, nonce) pair must never be reused.
    """
    if len(nonce) != 12:
        raise ValueError("CTR nonce must be 12 bytes")
    n = len(data)
    nblocks = (n + BLOCK - 1) // BLOCK
    if counter < 0 or counter + nblocks > 0x100000000:
        raise ValueError("CTR counter would wrap")
    out = bytearray(n)
    pos = 0
    while pos < n:
        m = min(_CHUNK, n - pos)
        blocks = bytearray(((m + BLOCK - 1) // BLOCK) * BLOCK)
        for off in range(0, len(blocks), BLOCK):
            blocks[off:off + 12] = nonce
            blocks[off + 12:off + 16] = counter.to_bytes(4, "big")
            counter += 1
        ks = ecb.encrypt(blocks)
        x = int.from_bytes(data[pos:pos + m], "big") ^ int.from_bytes(ks[:m], "big")
        out[pos:pos + m] = x.to_bytes(m, "big")
        pos += m
    return bytes(out)
