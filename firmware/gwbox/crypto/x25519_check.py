"""Is X25519's native code fit to use? Checked at every import of gwbox.crypto.x25519, which
loads this module for that and drops it again (its code is not kept on the heap).

Native code can be built wrong without any error: MicroPython v1.28.0's tools/mpy-tool.py
places frozen armv6m functions only 2-byte aligned (boards/README.md). Such a function may
give a wrong answer, which would be a wrong key, or run off into invalid addresses (it did
on the emulated RP2040; silicon takes a HardFault). So `passes` first reads where each
function's code is, without running it, then runs a known answer (docs/crypto.md "Checked
before use").
"""
# RFC 7748 section 5.2's first vector (scalar, u), its ladder run over the clamped scalar's
# bits 254..240 only (bit 240 is 0, so it ends unswapped), then inverted and stored as a
# Ladder's last step does. KAT_X is what the integer ladder gives there
# (tests/firmware/test_crypto_x25519.py recomputes it). It runs every native function once:
# with this module's loading, 24 ms on an RP2040 from ROMFS or frozen, 39 ms from littlefs.
KAT_K = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
KAT_U = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
KAT_STOP = 240
KAT_X = bytes.fromhex("4bfed15a943bd60a0c57a6f3cf3a82b0d4b3ce78f59b05fb3d115e00f9660357")
NAMES = ("mul", "sq", "ladder", "load", "store", "sqn", "invert")


def passes(v, state, finish):
    """True if native module v's code is where it must be and gives the known answer.
    `state(v, u)` and `finish(v, e)` are gwbox.crypto.x25519's own first and last steps, so
    the check runs the code a Ladder runs. A MemoryError is raised (no room now)."""
    return code_aligned(v) and known_answer(v, state, finish)


def known_answer(v, state, finish):
    """True if v gives KAT_X; any error but MemoryError is a wrong answer."""
    k = bytearray(KAT_K)
    k[0] &= 248  # clamp (RFC 7748 section 5)
    k[31] = (k[31] & 127) | 64
    try:
        e = state(v, KAT_U)
        v.ladder(0, 0, k, 255, KAT_STOP, e)
        return e[12][0] == 0 and finish(v, e) == KAT_X
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - whatever mis-built code raises, it is not used
        return False


def code_aligned(v):
    """False if a native function's machine code is not 4-byte aligned, read from its
    function object without running it: a MicroPython function (mp_obj_fun_bc_t) holds the
    code's address in its fourth word (`bytecode`: the machine code, for viper functions).
    True where that cannot be read (no uctypes: not MicroPython, nothing frozen for a chip)."""
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
