"""The generated native X25519 module (gwbox/crypto/x25519_viper.py) is its generator's
output, compiles for every board's CPU, and never leaves a signed 32-bit word.

The last is checked by running the generated code on CPython with every limb an interval
(the viper types stood in for by plain Python): each intermediate of a multiplication, a
squaring, a ladder step and the final reduction, for every input whose limbs are within
LIMB_MAX, must fit a 32-bit `int` (what viper computes with on the boards and the 32-bit
unix port), and every limb an element leaves behind must be within LIMB_MAX again.
"""
import os
import subprocess
import types

import pytest

from gwbox_tools import mpy_build, x25519_gen

SRC = os.path.join(mpy_build.FIRMWARE, "gwbox", "crypto", "x25519_viper.py")
WORD = 1 << 31
L = x25519_gen.LIMB_MAX
N = x25519_gen.N


def test_the_module_is_the_generators_output():
    with open(SRC) as f:
        assert f.read() == x25519_gen.generate(), \
            "regenerate: python -m gwbox_tools.x25519_gen > firmware/gwbox/crypto/x25519_viper.py"


@pytest.mark.parametrize("march", ["armv6m", "xtensawin", "x86", "x64"])
def test_it_compiles_for_every_boards_cpu(march, tmp_path):
    # armv6m: RP2040 (Pico, Pico W); xtensawin: ESP32; x86 / x64: the unix interpreters
    out = tmp_path / "x.mpy"
    subprocess.run([mpy_build.mpy_cross_binary(), "-march=" + march, "-o", str(out), SRC], check=True)
    assert out.stat().st_size > 1000


class Iv:
    """An integer known only to lie in [lo, hi]; every result is checked against the word."""

    def __init__(self, lo, hi):
        assert lo <= hi
        assert -WORD <= lo and hi < WORD, "leaves a signed 32-bit word: [%d, %d]" % (lo, hi)
        self.lo, self.hi = lo, hi

    @staticmethod
    def of(x):
        return x if isinstance(x, Iv) else Iv(x, x)

    def __add__(self, o):
        o = Iv.of(o)
        return Iv(self.lo + o.lo, self.hi + o.hi)

    __radd__ = __add__

    def __sub__(self, o):
        o = Iv.of(o)
        return Iv(self.lo - o.hi, self.hi - o.lo)

    def __rsub__(self, o):
        return Iv.of(o) - self

    def __mul__(self, o):
        o = Iv.of(o)
        ends = [a * b for a in (self.lo, self.hi) for b in (o.lo, o.hi)]
        return Iv(min(ends), max(ends))

    __rmul__ = __mul__

    def __lshift__(self, n):
        return Iv(self.lo << n, self.hi << n)

    def __rshift__(self, n):
        return Iv(self.lo >> n, self.hi >> n)

    def __and__(self, mask):
        assert isinstance(mask, int) and mask >= 0
        return Iv(0, mask if self.lo < 0 else min(self.hi, mask))

    __rand__ = __and__

    def __or__(self, o):  # only ever of non-negative values with disjoint bits here
        o = Iv.of(o)
        assert self.lo >= 0 and o.lo >= 0
        return Iv(0, self.hi + o.hi)

    __ror__ = __or__

    def __xor__(self, o):  # the swap: x2 ^ x3 is masked to 0 (no swap here), then x2 ^ 0 is x2
        o = Iv.of(o)
        if o.lo == o.hi == 0:
            return self
        assert self.lo >= 0 and o.lo >= 0
        return Iv(0, (1 << max(self.hi, o.hi).bit_length()) - 1)

    __rxor__ = __xor__


def _module():
    """The generated code run by CPython: viper's decorators and casts as no-ops."""
    micropython = types.SimpleNamespace(viper=lambda f: f)
    ns = {"micropython": micropython, "ptr32": lambda x: x, "ptr8": lambda x: x, "__name__": "x25519_viper"}
    with open(SRC) as f:
        code = f.read().replace("import micropython\n", "")
    exec(compile(code, SRC, "exec"), ns)
    return types.SimpleNamespace(**ns)


def _within(elem, bound=L):
    for limb in elem:
        assert 0 <= limb.lo and limb.hi <= bound, "limb [%d, %d] outside [0, %d]" % (limb.lo, limb.hi, bound)


def _full():
    return [Iv(0, L) for _ in range(N)]


def test_mul_and_sq_stay_in_the_word():
    m = _module()
    r = [None] * N
    m.mul(0, _full(), _full(), r)
    _within(r)
    m.sq(0, _full(), r)
    _within(r)


def test_a_ladder_step_stays_in_the_word():
    # One step from any state within the bound: the elements it leaves are within it again,
    # so by induction every step is. (The swap only exchanges elements of the same bound;
    # it is off here, as interval arithmetic cannot follow an exchange by XOR.)
    m = _module()
    e = [_full() for _ in range(5)] + [[None] * N for _ in range(7)] + [[0]]
    m.ladder(0, 0, bytes(32), 1, 0, e)
    for elem in e[1:5]:
        _within(elem)


def test_the_final_reduction_stays_in_the_word():
    m = _module()
    a = _full()
    out = [None] * 32
    m.store(out, a)
    for b in out:
        assert 0 <= b.lo and b.hi <= 255


def test_loading_bytes_gives_limbs_within_the_bound():
    m = _module()
    for s in (b"\xff" * 32, bytes(32), bytes(range(32))):
        r = [None] * N
        m.load(r, s)
        assert all(0 <= x <= x25519_gen.MASK for x in r)
        assert sum(x << (13 * i) for i, x in enumerate(r)) == int.from_bytes(s, "little") & ((1 << 255) - 1)
