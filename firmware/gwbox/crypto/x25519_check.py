"""Is X25519's native code fit to use? Run by gwbox.crypto.x25519 at the native module's
first import since boot, then dropped; the verdict stays on the package (docs/crypto.md).

Native code can be built wrong without any error: MicroPython v1.28.0's tools/mpy-tool.py
places frozen armv6m functions only 2-byte aligned (boards/README.md). Such a function may
give a wrong answer, which would be a wrong key, or run off into invalid addresses (it did on
the emulated RP2040; silicon takes a HardFault, which no except clause catches). So `check`
first reads where each function's code is, without running it, then computes a known answer
through a `Ladder`, the code the box runs: one slice (32 ladder bits) and the last step
(inversion, result), which between them call every native function.
"""
from gwbox import crypto as _pkg

# RFC 7748 section 5.2's first vector (scalar, u), its ladder run over bits 254..223 only (bit
# 223 of the clamped scalar is 0, so it ends unswapped, as the native last step assumes), then
# inverted and stored: what the integer ladder gives (tests/firmware/test_crypto_x25519.py).
KAT_K = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
KAT_U = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
KAT_X = bytes.fromhex("95c35ec3a52e236d52183dc9dc4853b44143bbbede0ac617f7c5ad4f4417fe4b")
NAMES = ("mul", "sq", "ladder", "load", "store", "sqn", "invert")


def check(v, ladder):
    """v if native module v is fit to use (x25519_native = "native"), else None ("failed").
    `ladder`: gwbox.crypto.x25519.Ladder, which must compute with v. No room for the check
    now (MemoryError): None, and no verdict, so the next import checks again."""
    try:
        ok = code_aligned(v) and known_answer(v, ladder)
    except MemoryError:
        return None
    _pkg.x25519_native = "native" if ok else "failed"
    return v if ok else None


def known_answer(v, ladder):
    """True if a Ladder on v gives KAT_X; any error but MemoryError is a wrong answer."""
    try:
        ld = ladder(KAT_K, KAT_U, port=False)
        if ld._v is not v:
            return False
        ld.step(32)  # bits 254..223
        ld.bit = 0  # then straight to the last step
        ld.step()
        return ld.result == KAT_X
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - whatever mis-built code raises, it is not used
        return False


def code_aligned(v):
    """False if a native function's machine code is not 4-byte aligned, read from its
    function object without running it: a MicroPython function (mp_obj_fun_bc_t) holds the
    code's address in its fourth word (`bytecode`: the machine code, for viper functions).
    True where that cannot be read (no uctypes: not MicroPython)."""
    try:
        import uctypes
    except ImportError:
        return True
    w = uctypes.sizeof({"p": (uctypes.PTR | 0, uctypes.UINT8)})  # a pointer's size
    layout = {"code": 3 * w | uctypes.UINT32}  # the address's low 32 bits (every board: little-endian)
    for name in NAMES:
        f = getattr(v, name, None)
        # only functions have that layout (a test's stand-in module has bound methods)
        if type(f).__name__ == "function" and uctypes.struct(id(f), layout, uctypes.LITTLE_ENDIAN).code & 3:
            return False
    return True
