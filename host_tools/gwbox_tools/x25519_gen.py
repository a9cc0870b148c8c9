"""Writes firmware/gwbox/crypto/x25519_viper.py: X25519's field arithmetic as viper code.

Why generated: MicroPython's viper emitter keeps only two locals in registers and spills
everything else to the stack, so a loop over limbs costs several times its multiplies
(measured on the emulated RP2040: a looped 16-bit-limb ladder took 870 ms, slower than the
bignum one). Straight-line code with constant indices compiles to about 8 Thumb
instructions per limb product, so the multiplication and the squaring are unrolled; the
ladder's linear passes (sums, differences, the swap) stay loops: unrolled too, they took
14.7 ms less per X25519 (125.7 ms) for 11 KB more native code, which an RP2040 copies into
its heap and which would no longer fit an ESP32's 128 KiB ROMFS partition beside the rest.
Nobody should type 400 lines of products; this script writes them from the few rules
below, and tests/host/test_x25519_gen.py checks the committed module is exactly its output
and that no intermediate can leave a signed 32-bit word.

The representation (docs/crypto.md): a field element is 20 limbs of 13 bits (radix 2^13,
260 bits, kept in a bytearray of 20 little-endian 32-bit words) whose value is only
congruent to the element mod p = 2^255 - 19. Every limb stays <= LIMB_MAX, so a column of
a product (20 products of two limbs) fits a signed 32-bit word on every port (viper's
`int` is the machine word: 32 bits on the boards and the 32-bit unix port, 64 on x64).
2^260 = 608 (mod p) folds the upper half of a product back down.

    python -m gwbox_tools.x25519_gen > firmware/gwbox/crypto/x25519_viper.py
"""
import sys

N = 20  # limbs
BITS = 13
MASK = (1 << BITS) - 1
P = (1 << 255) - 19
FOLD = (1 << (N * BITS)) % P  # 608: what 2^260 is worth
LIMB_MAX = 10240  # every limb of every element stays <= this (see the module's docstring)
A24 = 121665  # (486662 - 2) / 4, RFC 7748 section 5


def _sub_bias():
    """Limbs of 64p, each >= 2^14 > LIMB_MAX: a - b + these limbs is never negative."""
    rest, limbs = 64 * P, []
    for _ in range(N - 1):
        limb = rest % (1 << BITS) + (1 << 14)
        limbs.append(limb)
        rest = (rest - limb) >> BITS
    limbs.append(rest)
    assert sum(v << (BITS * i) for i, v in enumerate(limbs)) == 64 * P
    assert min(limbs) > LIMB_MAX
    return limbs


BIAS = _sub_bias()

HEADER = '''"""X25519's field arithmetic and ladder in viper (native code): GENERATED, do not edit.

Written by host_tools/gwbox_tools/x25519_gen.py (its docstring says why the code is
unrolled, docs/crypto.md what it computes); tests/host/test_x25519_gen.py checks this file
is that script's output and that every intermediate fits a signed 32-bit word.

A field element is a bytearray of 20 little-endian 32-bit limbs of 13 bits (radix 2^13);
its value is congruent to the element mod p = 2^255 - 19, not reduced. Every limb stays
<= %(limb_max)d. Native code is built per CPU (`mpy-cross -march=...`); gwbox.crypto.x25519
falls back to its bytecode ladder where this module cannot be imported.

Constant time: no branch and no memory address depends on a secret (the conditional swap
is arithmetic, limb by limb); the RP2040 and the ESP32 have single-cycle multipliers and
no data cache in front of their SRAM.
"""
import micropython

if False:  # viper's own types, named here for linters only (the compiler drops this block)
    ptr8 = ptr32 = None

'''


def _finish(L, c, r):
    """Carry columns t0..t38 of a product into limbs of r, folding 2^260 back as 608."""
    # the upper columns first: 13-bit limbs t20..t38 and the top carry in t39
    L.append("    %s = t20 >> %d" % (c, BITS))
    L.append("    t20 &= %d" % MASK)
    for k in range(N + 1, 2 * N - 1):
        L.append("    t%d = t%d + %s" % (k, k, c))
        L.append("    %s = t%d >> %d" % (c, k, BITS))
        L.append("    t%d &= %d" % (k, MASK))
    L.append("    t%d = %s" % (2 * N - 1, c))
    # limb i gets t_i + 608 t_(i+20), carried on; the last carry is worth 2^260 again
    L.append("    %s = 0" % c)
    for i in range(N):
        L.append("    %s = t%d * %d + t%d + %s" % (c, i + N, FOLD, i, c))
        L.append("    %s[%d] = %s & %d" % (r, i, c, MASK))
        L.append("    %s = %s >> %d" % (c, c, BITS))
    _fold_top(L, c, r)


def _fold_top(L, c, r):
    """Add carry c (worth 2^260) into r's low limbs: limb 0 and 1 carried, limb 2 takes the rest."""
    L.append("    %s = %s * %d + %s[0]" % (c, c, FOLD, r))
    L.append("    %s[0] = %s & %d" % (r, c, MASK))
    L.append("    %s = (%s >> %d) + %s[1]" % (c, c, BITS, r))
    L.append("    %s[1] = %s & %d" % (r, c, MASK))
    L.append("    %s[2] += %s >> %d" % (r, c, BITS))


def gen_mul():
    # Operand scanning: row i multiplies a[i] (held in the register local `c`) by every
    # limb of b (the other register local) into column locals. `t = b[j] * c + t` is the
    # form the emitter compiles shortest (8 Thumb instructions, 3 of them memory).
    L = ["@micropython.viper",
         "def mul(c: int, b: ptr32, a: ptr32, r: ptr32):",
         '    """r = a * b (r may be a or b)."""']
    seen = set()
    for i in range(N):
        L.append("    c = a[%d]" % i)
        for j in range(N):
            k = i + j
            L.append(("    t%d = b[%d] * c + t%d" % (k, j, k)) if k in seen else ("    t%d = b[%d] * c" % (k, j)))
            seen.add(k)
    _finish(L, "c", "r")
    return L


def gen_sq():
    L = ["@micropython.viper",
         "def sq(c: int, a: ptr32, r: ptr32):",
         '    """r = a * a (r may be a): 210 limb products instead of 400."""']
    seen = set()

    def acc(k, expr):
        L.append(("    t%d = %s + t%d" % (k, expr, k)) if k in seen else ("    t%d = %s" % (k, expr)))
        seen.add(k)
    for i in range(N):
        L.append("    c = a[%d]" % i)
        acc(2 * i, "c * c")
        if i < N - 1:
            L.append("    c <<= 1")  # the cross products appear twice
        for j in range(i + 1, N):
            acc(i + j, "a[%d] * c" % j)
    _finish(L, "c", "r")
    return L


def _chain(L, c, out, a, b, op):
    """out = a + b, or a - b (+ 64p), carried limb by limb; the top carry folded back."""
    L.append("    %s = 0" % c)
    for i in range(N):
        if op == "+":
            L.append("    %s += %s[%d] + %s[%d]" % (c, a, i, b, i))
        else:
            L.append("    %s += %s[%d] - %s[%d] + %d" % (c, a, i, b, i, BIAS[i]))
        L.append("    %s[%d] = %s & %d" % (out, i, c, MASK))
        L.append("    %s >>= %d" % (c, BITS))
    _fold_top(L, c, out)


def gen_ladder():
    """Montgomery ladder bits i-1 .. stop of RFC 7748 section 5 on the elements in `e`."""
    L = ["@micropython.viper",
         "def ladder(c: int, d: int, k: ptr8, i: int, stop: int, e):",
         '    """Ladder steps for scalar bits i-1 down to stop (k: the clamped scalar, 32 bytes).',
         "    e: (x1, x2, z2, x3, z3, A, B, C, D, AA, BB, E, swap), as gwbox.crypto.x25519 makes",
         '    them; the pending swap bit is kept in e[12] between calls."""']
    names = ("x1", "x2", "z2", "x3", "z3", "A", "B", "C", "D", "AA", "BB", "E")
    for n, name in enumerate(names):
        L.append("    %so = e[%d]" % (name, n))
    for name in names[1:]:
        L.append("    %s = ptr32(%so)" % (name, name))
    L += ["    sw = ptr32(e[12])",
          "    swap = sw[0]",
          "    fmul = mul",
          "    fsq = sq",
          "    while i > stop:",
          "        i -= 1",
          "        bit = (k[i >> 3] >> (i & 7)) & 1",
          "        swap ^= bit",
          "        m = 0 - swap  # all ones to swap (x2, z2) with (x3, z3), zero not to: no branch",
          "        swap = bit"]
    # The swap is done on the way into A, B, C, D (x2, z2, x3, z3 are all rewritten below):
    # A = x2 + z2, B = x2 - z2, C = x3 + z3, D = x3 - z3, each carried limb by limb. Loops:
    # unrolled, these linear passes took 11 KB more code for 10 % less time (module docstring).
    assert BIAS[1:-1] == [BIAS[1]] * (N - 2)
    bias = ["kb = %d" % BIAS[1], "if j == 0:", "    kb = %d" % BIAS[0], "if j == %d:" % (N - 1),
            "    kb = %d" % BIAS[-1]]
    body = ["ca = 0", "cb = 0", "cc = 0", "cd = 0", "j = 0", "while j < %d:" % N]
    body += ["    " + x for x in bias + [
        "c = (x2[j] ^ x3[j]) & m",
        "u2 = x2[j] ^ c",
        "u3 = x3[j] ^ c",
        "c = (z2[j] ^ z3[j]) & m",
        "w2 = z2[j] ^ c",
        "w3 = z3[j] ^ c",
        "ca += u2 + w2", "A[j] = ca & %d" % MASK, "ca >>= %d" % BITS,
        "cb += u2 - w2 + kb", "B[j] = cb & %d" % MASK, "cb >>= %d" % BITS,
        "cc += u3 + w3", "C[j] = cc & %d" % MASK, "cc >>= %d" % BITS,
        "cd += u3 - w3 + kb", "D[j] = cd & %d" % MASK, "cd >>= %d" % BITS,
        "j += 1"]]
    for cv, r in (("ca", "A"), ("cb", "B"), ("cc", "C"), ("cd", "D")):
        body += [s[4:] for s in _fold_lines(cv, r)]
    body += ["fsq(0, Ao, AAo)",  # AA = A^2
             "fsq(0, Bo, BBo)",  # BB = B^2
             "fmul(0, Do, Ao, x2o)",  # DA (x2 is free now)
             "fmul(0, Co, Bo, z2o)"]  # CB (z2 too)
    # C = DA + CB, D = DA - CB, E = AA - BB
    body += ["cc = 0", "cd = 0", "ca = 0", "j = 0", "while j < %d:" % N]
    body += ["    " + x for x in bias + [
        "u2 = x2[j]",
        "w2 = z2[j]",
        "cc += u2 + w2", "C[j] = cc & %d" % MASK, "cc >>= %d" % BITS,
        "cd += u2 - w2 + kb", "D[j] = cd & %d" % MASK, "cd >>= %d" % BITS,
        "ca += AA[j] - BB[j] + kb", "E[j] = ca & %d" % MASK, "ca >>= %d" % BITS,
        "j += 1"]]
    for cv, r in (("cc", "C"), ("cd", "D"), ("ca", "E")):
        body += [s[4:] for s in _fold_lines(cv, r)]
    body += ["fsq(0, Co, x3o)",  # x3 = (DA + CB)^2
             "fsq(0, Do, Do)",
             "fmul(0, Do, x1o, z3o)",  # z3 = x1 (DA - CB)^2
             "fmul(0, BBo, AAo, x2o)"]  # x2 = AA BB
    # A = AA + a24 E; the carry out is up to about 2^17, so it is folded over three limbs
    body += ["ca = 0", "j = 0", "while j < %d:" % N,
             "    ca += E[j] * %d + AA[j]" % A24, "    A[j] = ca & %d" % MASK, "    ca >>= %d" % BITS,
             "    j += 1"]
    body += [s[4:] for s in _fold3("ca", "A")]
    body.append("fmul(0, Ao, Eo, z2o)")  # z2 = E (AA + a24 E)
    L += ["        " + s for s in body]
    L += ["    sw[0] = swap"]
    return L


def _fold_lines(c, r):
    L = []
    _fold_top(L, c, r)
    return L


def _fold3(c, r):
    L = []
    L.append("    %s = %s * %d + %s[0]" % (c, c, FOLD, r))
    L.append("    %s[0] = %s & %d" % (r, c, MASK))
    L.append("    %s = (%s >> %d) + %s[1]" % (c, c, BITS, r))
    L.append("    %s[1] = %s & %d" % (r, c, MASK))
    L.append("    %s = (%s >> %d) + %s[2]" % (c, c, BITS, r))
    L.append("    %s[2] = %s & %d" % (r, c, MASK))
    L.append("    %s[3] += %s >> %d" % (r, c, BITS))
    return L


FIXED = '''
@micropython.viper
def load(r: ptr32, s: ptr8):
    """r = the 32 bytes at s, little-endian, top bit cleared (RFC 7748 masks it)."""
    acc = 0
    n = 0
    j = 0
    i = 0
    while i < %(n)d:
        while n < %(bits)d and j < 32:
            b = s[j]
            if j == 31:
                b &= 127
            acc |= b << n
            n += 8
            j += 1
        r[i] = acc & %(mask)d
        acc >>= %(bits)d
        n -= %(bits)d
        i += 1


@micropython.viper
def store(out: ptr8, a: ptr32):
    """out = a reduced to 0 <= a < p, 32 bytes little-endian; a is changed. Once per X25519,
    so loops: carry to exact 13-bit limbs and fold what is above bit 255 back as 19, twice
    (the value is then below 2^255), then add 19 and drop bit 255 when that reaches 2^255.
    The same instructions run whatever the value."""
    k = 0
    while k < 3:
        c = 0
        i = 0
        while i < %(n)d:
            c += a[i]
            a[i] = c & %(mask)d
            c >>= %(bits)d
            i += 1
        if k < 2:
            c = (c << 5) + (a[%(top)d] >> 8)  # limb %(top)d holds bits 247..259: what is 2^255 and up
            a[%(top)d] &= 255
            a[0] += c * 19
        k += 1
    c = 19  # q = 1 when a + 19 >= 2^255, i.e. when a >= p
    i = 0
    while i < %(top)d:
        c = (c + a[i]) >> %(bits)d
        i += 1
    c = 19 * ((c + a[%(top)d]) >> 8)
    i = 0
    while i < %(n)d:
        c += a[i]
        a[i] = c & %(mask)d
        c >>= %(bits)d
        i += 1
    a[%(top)d] &= 255  # a + 19q - 2^255 q
    acc = 0
    n = 0
    i = 0
    j = 0
    while j < 32:
        if n < 8:
            acc |= a[i] << n
            n += %(bits)d
            i += 1
        out[j] = acc & 255
        acc >>= 8
        n -= 8
        j += 1


@micropython.viper
def sqn(n: int, a, r):
    """r = a^(2^n), n >= 1 (r may be a)."""
    f = sq
    f(0, a, r)
    while n > 1:
        f(0, r, r)
        n -= 1


@micropython.viper
def invert(z, r, t0, t1, t2, t3):
    """r = z^(p-2) = 1/z (Fermat; z = 0 gives 0): the addition chain of curve25519's
    reference code, 254 squarings and 11 multiplications. t0..t3: scratch elements."""
    fmul = mul
    sqn(1, z, t0)  # z^2
    sqn(2, t0, t1)  # z^8
    fmul(0, z, t1, t1)  # z^9
    fmul(0, t1, t0, t0)  # z^11
    sqn(1, t0, t2)  # z^22
    fmul(0, t2, t1, t1)  # z^31 = z^(2^5 - 1)
    sqn(5, t1, t2)
    fmul(0, t1, t2, t1)  # z^(2^10 - 1)
    sqn(10, t1, t2)
    fmul(0, t1, t2, t2)  # z^(2^20 - 1)
    sqn(20, t2, t3)
    fmul(0, t2, t3, t3)  # z^(2^40 - 1)
    sqn(10, t3, t3)
    fmul(0, t1, t3, t1)  # z^(2^50 - 1)
    sqn(50, t1, t2)
    fmul(0, t1, t2, t2)  # z^(2^100 - 1)
    sqn(100, t2, t3)
    fmul(0, t2, t3, t3)  # z^(2^200 - 1)
    sqn(50, t3, t3)
    fmul(0, t1, t3, t3)  # z^(2^250 - 1)
    sqn(5, t3, t3)  # z^(2^255 - 32)
    fmul(0, t0, t3, r)  # z^(2^255 - 21) = z^(p - 2)
'''


def generate():
    out = [HEADER % {"limb_max": LIMB_MAX}]
    for f in (gen_mul(), gen_sq(), gen_ladder()):
        out.append("\n".join(f) + "\n\n")
    out.append(FIXED % {"n": N, "bits": BITS, "mask": MASK, "top": N - 1})
    return "".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(generate())
