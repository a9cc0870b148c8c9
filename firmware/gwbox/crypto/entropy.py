"""The one source of randomness for every key, SPI and nonce: random_bytes(n).

CPython: os.urandom. MicroPython: os.urandom is only as good as the port makes it
(on ESP32 it is a true RNG only while Wi-Fi/BT RF is on, otherwise a PRNG), so its
output is mixed through a SHA-256 pool with CPU-tick jitter and with whatever the
device port stirs in through add_entropy() (ADC noise, radio-derived bytes) at boot.
The pool ratchets after every draw, so a later pool state does not reveal earlier output.
"""
import os
import sys

_MICROPYTHON = sys.implementation.name == "micropython"


if not _MICROPYTHON:

    def random_bytes(n):
        """n bytes from the operating system's CSPRNG."""
        if n < 0:
            raise ValueError("n")
        return os.urandom(n)

    def add_entropy(data):
        """Accepted for API parity; the host OS pool needs no help."""
        return None

else:
    import hashlib
    import time

    _ticks = getattr(time, "ticks_cpu", None) or time.ticks_us

    def _jitter():
        """A few cycle-counter and microsecond samples; cheap, low but non-zero entropy."""
        b = bytearray(20)
        for i in range(4):
            b[i * 4:i * 4 + 4] = (_ticks() & 0xFFFFFFFF).to_bytes(4, "little")
        b[16:20] = (time.ticks_us() & 0xFFFFFFFF).to_bytes(4, "little")
        return b

    def _mix(tag, *parts):
        h = hashlib.sha256(tag)
        for p in parts:
            h.update(p)
        return h.digest()

    _pool = _mix(b"gwbox-pool-init", os.urandom(32), _jitter())

    def add_entropy(data):
        """Stir device-specific randomness (ADC noise, radio RNG bytes) into the pool."""
        global _pool
        _pool = _mix(b"\x01", _pool, data, _jitter())

    def random_bytes(n):
        """n bytes: SHA-256 of pool, fresh os.urandom and tick jitter, then ratchet."""
        global _pool
        if n < 0:
            raise ValueError("n")
        fresh = os.urandom(32)
        jit = _jitter()
        out = bytearray()
        ctr = 0
        while len(out) < n:
            out.extend(_mix(b"\x02", _pool, fresh, jit, ctr.to_bytes(4, "big")))
            ctr += 1
        _pool = _mix(b"\x03", _pool, fresh, jit)
        return bytes(out[:n])
