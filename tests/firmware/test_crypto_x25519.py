"""gwbox.crypto.x25519 against RFC 7748 sections 5.2 and 6.1 and every Project Wycheproof
vector, in both ladders (native code where this runtime loads it, and the integer one);
computed a slice at a time; low-order rejection."""
import sys

from gwbox.crypto import x25519
from gwbox.errors import ProtocolError

h = bytes.fromhex
ON_CPYTHON = sys.implementation.name != "micropython"

ALICE_PRIV = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIV = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUB = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# u-coordinates of small-order points (and non-canonical encodings of them)
LOW_ORDER = (
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",  # p - 1
    "ed" + "ff" * 30 + "7f",  # p
    "ee" + "ff" * 30 + "7f",  # p + 1
    "00" * 31 + "80",  # 0 with the masked top bit set
)


def test_rfc7748_5_2_vector_1():
    k = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert x25519.x25519(k, u) == h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")


def test_rfc7748_5_2_vector_2_top_bit_of_u_masked():
    k = h("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d")
    u = h("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493")
    assert x25519.x25519(k, u) == h("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")


def _iterate(n):
    k = u = x25519.BASE_POINT
    for _ in range(n):
        k, u = x25519.x25519(k, u), k
    return k


def test_rfc7748_5_2_iterated_once():
    assert _iterate(1) == h("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")


def test_rfc7748_5_2_iterated_1000_times():
    # About 7 s under the unix micropython (x86-64), ~1.5 s on CPython.
    assert _iterate(1000) == h("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")


def test_rfc7748_6_1_diffie_hellman():
    assert x25519.BASE_POINT == b"\x09" + bytes(31)
    assert x25519.public_key(ALICE_PRIV) == ALICE_PUB
    assert x25519.public_key(BOB_PRIV) == BOB_PUB
    assert x25519.shared_secret(ALICE_PRIV, BOB_PUB) == SHARED
    assert x25519.shared_secret(BOB_PRIV, ALICE_PUB) == SHARED


def test_all_zero_shared_secret_rejected():
    for u in LOW_ORDER:
        assert x25519.x25519(ALICE_PRIV, h(u)) == bytes(32)
        try:
            x25519.shared_secret(ALICE_PRIV, h(u))
        except ProtocolError:
            pass
        else:
            assert False, "low-order point accepted: " + u


def test_malformed_peer_key_is_protocol_error():
    for bad in (b"", bytes(31), bytes(33)):
        try:
            x25519.shared_secret(ALICE_PRIV, bad)
        except ProtocolError:
            pass
        else:
            assert False, "wrong-length peer key accepted"


def test_generated_keypairs_agree_and_differ():
    a_priv, a_pub = x25519.generate_keypair()
    b_priv, b_pub = x25519.generate_keypair()
    assert len(a_priv) == len(a_pub) == 32
    assert a_priv != b_priv and a_pub != b_pub
    assert x25519.public_key(a_priv) == a_pub
    assert x25519.shared_secret(a_priv, b_pub) == x25519.shared_secret(b_priv, a_pub)


# --- Project Wycheproof: all 518 cases of x25519_test.json ------------------------------

def wycheproof():
    """(tcId, private, public, shared) of every case, read a line at a time (a device-sized
    heap does not hold the whole file's text)."""
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    for path in (here + "/x25519_wycheproof.txt", "tests/firmware/x25519_wycheproof.txt"):
        try:
            f = open(path)
        except OSError:
            continue
        with f:
            for line in f:
                if line[0] != "#":
                    tc, priv, pub, shared = line.split()
                    yield int(tc), h(priv), h(pub), h(shared)
        return
    assert False, "x25519_wycheproof.txt not found"


def test_wycheproof_every_vector():
    n = 0
    for tc, priv, pub, shared in wycheproof():
        assert x25519.x25519(priv, pub) == shared, "Wycheproof tcId %d" % tc
        assert x25519.low_order(pub) == (shared == bytes(32)), "tcId %d: low_order() disagrees" % tc
        n += 1
    assert n == 518


def test_wycheproof_integer_ladder():
    # Where no native code is loaded the test above ran the integer ladder on every case;
    # beside native code, it gets every 8th one here too.
    n = 0
    for tc, priv, pub, shared in wycheproof():
        if tc % 8 == 0:
            assert x25519.Ladder(priv, pub, native=False).run() == shared, "Wycheproof tcId %d" % tc
            n += 1
    assert n == 64


def test_native_code_runs_where_it_was_built():
    # build/mpy has the native module for the 32-bit unix interpreter (x86, mpy arch 1):
    # there the native path must be the one under test, not a silent fallback.
    if sys.implementation.name == "micropython" and sys.implementation._mpy >> 10 == 1:
        assert x25519._native is not None
    if ON_CPYTHON:
        assert x25519._native is None


# --- a slice at a time --------------------------------------------------------------------

def _steps(ladder):
    """Run a Ladder to its end; the ladder bits each step ran (0: the inversion)."""
    done = []
    while True:
        before = ladder.bit
        if ladder.step():
            done.append(before - ladder.bit)
            return done
        done.append(before - ladder.bit)


def test_each_step_runs_at_most_a_slice():
    for native in (True, False):
        ld = x25519.Ladder(ALICE_PRIV, BOB_PUB, native)
        ran = _steps(ld)
        bits = x25519.NATIVE_SLICE if native and x25519._native is not None else x25519.SLICE
        assert ld.result == SHARED
        assert sum(ran) == 255 and max(ran) <= bits and ran[-1] == 0
        assert len(ran) == (255 + bits - 1) // bits + 1
        assert ld.step() and ld.result == SHARED  # done stays done


def test_ladders_interleaved_give_the_same_results():
    # two computations in progress at once (a public key and a shared secret, two candidate
    # responses): stepping them in turn shares no state
    a = x25519.Ladder(ALICE_PRIV, x25519.BASE_POINT)
    b = x25519.Ladder(BOB_PRIV, ALICE_PUB)
    c = x25519.Ladder(BOB_PRIV, ALICE_PUB, native=False)
    pending = [a, b, c]
    while pending:
        pending = [x for x in pending if not x.step()]
    assert a.result == ALICE_PUB and b.result == SHARED and c.result == SHARED


def test_a_memory_error_in_a_step_loses_nothing():
    # A MemoryError inside a step (the box's loop survives it and polls again later) leaves
    # the computation where it was: the next step does that slice again.
    for native in (True, False):
        ld = x25519.Ladder(ALICE_PRIV, BOB_PUB, native)
        ld.step()
        if native and x25519._native is not None:
            real, where, name = x25519._native.ladder, x25519._native, "ladder"
        else:
            real, where, name = x25519._ladder, x25519, "_ladder"

        def failing(*args):
            raise MemoryError

        setattr(where, name, failing)
        try:
            bit = ld.bit
            try:
                ld.step()
                assert False, "the MemoryError did not come through"
            except MemoryError:
                pass
            assert ld.bit == bit and ld.result is None
        finally:
            setattr(where, name, real)
        assert ld.run() == SHARED


def test_the_ladders_state_is_dropped_with_the_result():
    for native in (True, False):
        ld = x25519.Ladder(ALICE_PRIV, BOB_PUB, native)
        ld.step()
        state = ld._s
        ld.run()
        assert ld._s is None and ld._k is None
        if native and x25519._native is not None:
            for b in state:  # wiped, not only dropped
                assert not any(b)


def test_bad_lengths_are_value_errors():
    for k, u in ((bytes(31), BOB_PUB), (ALICE_PRIV, bytes(33))):
        try:
            x25519.Ladder(k, u)
        except ValueError:
            pass
        else:
            assert False, "accepted %d/%d bytes" % (len(k), len(u))


def test_a_backend_handed_in_is_what_every_function_uses():
    calls = []

    def backend(k, u):
        calls.append(u)
        return x25519.pure_x25519(k, u)

    x25519.use(backend)
    try:
        assert x25519.shared_secret(ALICE_PRIV, BOB_PUB) == SHARED
        assert x25519.public_key(BOB_PRIV) == BOB_PUB
    finally:
        x25519.use(None)
    assert calls == [BOB_PUB, x25519.BASE_POINT]
    assert x25519.shared_secret(BOB_PRIV, ALICE_PUB) == SHARED  # the ladder again


def test_a_ladder_uses_a_handed_in_backend_in_one_step():
    calls = []

    def backend(k, u):
        calls.append(u)
        return x25519.pure_x25519(k, u)

    x25519.use(backend)
    try:
        ld = x25519.Ladder(ALICE_PRIV, BOB_PUB)
        assert ld.step() and ld.result == SHARED  # the gateway's Offer computes through it
        assert x25519.Ladder(ALICE_PRIV, BOB_PUB, port=False).run() == SHARED
    finally:
        x25519.use(None)
    assert calls == [BOB_PUB]


def test_a_memory_error_in_the_last_step_loses_nothing():
    # The last step allocates its result before it wipes anything: interrupted there (after
    # the native code has reduced its copy, or in the integer ladder's inversion), the step
    # is done again from intact state.
    for native in (True, False):
        ld = x25519.Ladder(ALICE_PRIV, BOB_PUB, native)
        while ld.bit:
            ld.step()
        if native and x25519._native is not None:
            where, name = x25519._native, "store"
        else:
            where, name = x25519, "_finish"
        real = getattr(where, name)

        def failing(*args):
            real(*args)
            raise MemoryError

        setattr(where, name, failing)
        try:
            try:
                ld.step()
                assert False, "the MemoryError did not come through"
            except MemoryError:
                pass
        finally:
            setattr(where, name, real)
        assert ld.result is None and ld.step() and ld.result == SHARED


# --- the native code's check (gwbox.crypto.x25519_check), once a boot --------------------------

class IntNative:
    """The native module's interface over Python integers (a field element: an int in the
    80-byte buffer), so the check itself is tested where no native code loads (CPython)."""

    def load(self, r, s):
        r[:] = (int.from_bytes(s, "little") & ((1 << 255) - 1)).to_bytes(80, "little")

    def ladder(self, c, d, k, i, stop, e):
        g = [int.from_bytes(e[j], "little") for j in range(5)] + [e[12][0]]
        x25519._ladder(int.from_bytes(k, "little"), i, stop, g)
        for j in range(1, 5):
            e[j][:] = (g[j] % x25519.P).to_bytes(80, "little")
        e[12][0] = g[5]

    def mul(self, c, b, a, r):
        r[:] = (int.from_bytes(a, "little") * int.from_bytes(b, "little") % x25519.P).to_bytes(80, "little")

    def invert(self, z, r, t0, t1, t2, t3):
        r[:] = pow(int.from_bytes(z, "little"), x25519.P - 2, x25519.P).to_bytes(80, "little")

    def store(self, out, a):
        out[:] = (int.from_bytes(a, "little") % x25519.P).to_bytes(32, "little")


class Miscompiled:
    """The test hook: a native module with one function giving a wrong answer. `wrong` names
    it; its output's lowest byte is flipped (as a wrongly loaded constant would leave it),
    or it raises ("store_raises"), or runs out of heap ("load_oom")."""

    def __init__(self, base, wrong):
        self.base, self.wrong = base, wrong

    def _out(self, name, r):
        if name == self.wrong:
            if name == "store_raises":
                raise IndexError("bad")
            if name == "load_oom":
                raise MemoryError()
            r[0] ^= 1

    def load(self, r, s):
        self._out("load_oom", r)
        self.base.load(r, s)
        self._out("load", r)

    def ladder(self, c, d, k, i, stop, e):
        self.base.ladder(c, d, k, i, stop, e)
        self._out("ladder", e[1])

    def mul(self, c, b, a, r):
        self.base.mul(c, b, a, r)
        self._out("mul", r)

    def invert(self, z, r, t0, t1, t2, t3):
        self.base.invert(z, r, t0, t1, t2, t3)
        self._out("invert", r)

    def store(self, out, a):
        self._out("store_raises", out)
        self.base.store(out, a)
        self._out("store", out)


def _natives():
    """The stand-in, and the real native module where this runtime loaded it."""
    return [IntNative()] + ([x25519._native] if x25519._native is not None else [])


def _reimport(native, verdict=None):
    """gwbox.crypto.x25519 imported anew (as the box does between key exchanges) with `native`
    as its native module and the package's verdict so far; the fresh module."""
    import gwbox.crypto as pkg
    from gwbox import forget
    forget("gwbox.crypto.x25519", "gwbox.crypto.x25519_viper")
    pkg.x25519_native = verdict
    sys.modules["gwbox.crypto.x25519_viper"] = native
    pkg.x25519_viper = native
    from gwbox.crypto import x25519 as again
    return again


def _restore():
    import gwbox.crypto as pkg
    from gwbox import forget
    real = _REAL_NATIVE
    forget("gwbox.crypto.x25519", "gwbox.crypto.x25519_viper")
    pkg.x25519_native = _REAL_VERDICT
    if real is not None:
        sys.modules["gwbox.crypto.x25519_viper"] = real
        pkg.x25519_viper = real
    from gwbox.crypto import x25519 as restored
    assert (restored._native is not None) == (real is not None)
    globals()["x25519"] = restored


_REAL_NATIVE = x25519._native
import gwbox.crypto as _pkg  # noqa: E402

_REAL_VERDICT = _pkg.x25519_native


def test_the_known_answer_is_the_integer_ladders_after_one_slice():
    from gwbox.crypto import x25519_check as c
    k = bytearray(c.KAT_K)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    assert (int.from_bytes(k, "little") >> (255 - x25519.SLICE)) & 1 == 0  # the native last step assumes it unswapped
    ld = x25519.Ladder(c.KAT_K, c.KAT_U, native=False, port=False)
    ld.step()
    ld.bit = 0
    assert ld.step() and ld.result == c.KAT_X
    # and the inputs are RFC 7748 section 5.2's first vector
    assert x25519.pure_x25519(c.KAT_K, c.KAT_U) == h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")


def test_a_correct_native_module_passes_the_check_and_its_code_is_aligned():
    from gwbox.crypto import x25519_check
    if x25519._native is not None:  # (the stand-in passes in test_the_check_runs_once_a_boot)
        assert x25519_check.known_answer(x25519._native, x25519.Ladder) is True
        assert x25519_check.code_aligned(x25519._native) is True  # read where its code is: 4-byte aligned
        assert _REAL_VERDICT == "native"  # the suite's first import checked it
    else:
        assert _REAL_VERDICT is None  # nothing to check (CPython, the 64-bit interpreter)


def test_a_wrong_native_answer_is_never_used():
    import gwbox.crypto as pkg
    try:
        for base in _natives():
            for wrong in ("load", "ladder", "mul", "invert", "store", "store_raises"):
                again = _reimport(Miscompiled(base, wrong))
                assert again._native is None and pkg.x25519_native == "failed", wrong
                assert "gwbox.crypto.x25519_check" not in sys.modules  # dropped after use
                assert again.x25519(ALICE_PRIV, BOB_PUB) == SHARED
                ld = again.Ladder(BOB_PRIV, ALICE_PUB)
                assert ld._v is None and ld.run() == SHARED
            # the verdict holds for the boot: a later import loads no native module at all
            again = _reimport(IntNative(), "failed")
            assert again._native is None and pkg.x25519_native == "failed"
    finally:
        _restore()


def test_the_check_runs_once_a_boot():
    import gwbox.crypto as pkg
    try:
        again = _reimport(IntNative())
        assert isinstance(again._native, IntNative) and pkg.x25519_native == "native"
        assert again.x25519(ALICE_PRIV, BOB_PUB) == SHARED
        # checked already: the next import takes the module as it is, without loading the check
        sys.modules["gwbox.crypto.x25519_check"] = None  # an import of it would fail
        try:
            again = _reimport(IntNative(), "native")
        finally:
            del sys.modules["gwbox.crypto.x25519_check"]
        assert isinstance(again._native, IntNative) and pkg.x25519_native == "native"
    finally:
        _restore()


def test_no_room_for_the_check_leaves_the_integer_ladder_and_no_verdict():
    import gwbox.crypto as pkg
    try:
        again = _reimport(Miscompiled(IntNative(), "load_oom"))
        assert again._native is None and pkg.x25519_native is None
        assert again.x25519(ALICE_PRIV, BOB_PUB) == SHARED
        again = _reimport(IntNative())  # the next import checks again
        assert isinstance(again._native, IntNative) and pkg.x25519_native == "native"
    finally:
        _restore()
