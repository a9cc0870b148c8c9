"""X25519 on the emulated RP2040 (docs/crypto.md): the native code the chip's images carry
(viper compiled for armv6m) gives the vectors' results, in the ROMFS and littlefs forms,
sliced or in one go, and the integer ladder beside it too.

Timing is the benchmark's (bench/rp2_crypto.py, `rp2_x25519_ms`), never asserted here.
Cost: two chip boots and about 3 s of device time; 15-30 s of host time (more under load).
"""
import pytest

from gwbox_tools.chip import repl
from gwbox_tools.chip.__main__ import build_flash
from gwbox_tools.chip.runner import Chip
import leakcheck
from test_crypto_x25519 import wycheproof

nothing_leaks, time_limit = leakcheck.nothing_leaks, leakcheck.time_limit  # autouse: a limit, no leaks

TEST_LIMIT_S = 240
pytestmark = pytest.mark.xdist_group("cpu")  # CPU-bound: one such test at a time in `make test` (Makefile)
EVERY = 32  # Wycheproof cases run on the chip: every 32nd (17 of 518); bench/rp2_crypto.py runs all

SCRIPT = """
from gwbox.crypto import x25519
h = bytes.fromhex
print("native", x25519._native is not None)
bad = []
for tc, k, u, want in CASES:
    if x25519.x25519(h(k), h(u)) != h(want):
        bad.append(tc)
tc, k, u, want = CASES[0]
ld = x25519.Ladder(h(k), h(u))
steps = 1
while not ld.step():
    steps += 1
if ld.result != h(want):
    bad.append("sliced")
tc, k, u, want = CASES[-1]
if x25519.Ladder(h(k), h(u), native=False).run() != h(want):
    bad.append("integer %d" % tc)
print("steps", steps)
print("bad", bad)
"""


def cases(every):
    out = []
    for tc, priv, pub, shared in wycheproof():
        if tc % every == 1:
            out.append((tc, priv.hex(), pub.hex(), shared.hex()))
    return out


@pytest.mark.parametrize("form,every", [("romfs", EVERY), ("littlefs", 256)])
def test_vectors_on_the_chip(form, every):
    flash, _ = build_flash(form, None)
    code = "CASES = %r\n%s" % (cases(every), SCRIPT)
    with Chip(flash) as chip:
        repl.wait_prompt(chip)
        r = repl.check_answer(repl.exec_raw(chip, code, 60000), "the X25519 script")
    lines = r.out.decode().split("\r\n")
    assert "native True" in lines  # armv6m native code, not the fallback
    assert "bad []" in lines
    assert "steps 3" in lines  # ceil(255 / NATIVE_SLICE) = 2 ladder steps, then the inversion
