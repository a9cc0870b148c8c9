"""X25519 and a handshake's box side on the emulated RP2040, in device time; X25519 on the PC.

On the chip (gwbox_tools.chip, the RPI_PICO image with a ROMFS partition, gwbox from ROMFS as
`gwbox deploy --romfs` writes it, native code built for armv6m):
  rp2_x25519_ms            median of 7 X25519 scalar multiplications (gwbox.crypto.x25519)
  rp2_x25519_step_max_ms   the longest Ladder.step (a slice: SLICE ladder bits, or the inversion)
  rp2_x25519_steps         steps of one Ladder
  rp2_x25519_gc2048_ms     the median again with gc.threshold(2048) set (main.py's old setting)
  rp2_x25519_integer_ms    median of 3 of the bytecode ladder (what a CPU without native code runs)
  rp2_x25519_native_heap_bytes  heap the native module takes once imported (it is not in flash:
                           MicroPython copies native code into RAM, from ROMFS too)
  rp2_wycheproof_failed    Wycheproof cases (all 518) whose result differs on the chip: 0
  rp2_handshake_box_ms     one handshake with a gateway on the same chip: device time spent in
                           the box's endpoint calls (connect, receive, tick), summed
  rp2_handshake_call_max_ms  the longest of those calls: what one pass of the box's loop does
                           for the handshake at most (connect, which imports the key exchange's
                           code as a running box does, the native code copied into RAM)
  rp2_x25519_check_ms      the native code's check at its first import since boot
                           (gwbox.crypto.x25519_check loaded, run, dropped): that import less
                           a later one (which does not check); the verdict must be "native"
  rp2_rekey_call_max_ms    the box's rekey after that handshake, then its spare key (the key
                           exchange's code dropped and imported again, as on a running box):
                           the longest endpoint call (its X25519s are sliced like the
                           handshake's: the call that starts it imports the code; docs/crypto.md)
  rp2_bench_free_bytes     gc.mem_free() after that rekey and the box's spare key (made once
                           no exchange runs, docs/crypto.md), both endpoints still on the heap
On the PC: mp32_x25519_ms (32-bit unix MicroPython, native x86 code), mp_x25519_ms (64-bit
unix MicroPython: the build's native code is x86, so the bytecode ladder), cpython_x25519_ms
(CPython, this module's own ladder): medians of 21.

    python bench/rp2_crypto.py      (prints one JSON object; bench/run.py runs it)
    python bench/rp2_crypto.py --form frozen --image IMAGE.uf2   (or --form littlefs: only the
        chip figures with gwbox in that form, keys ending in _frozen / _littlefs)
The full run adds the CHIP_SCRIPT figures with gwbox as .mpy files on littlefs (`*_littlefs`)
and, with GWBOX_RP2_FROZEN_IMAGE naming an RPI_PICO .uf2 with gwbox frozen in (built as
boards/README.md says), frozen (`*_frozen`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox_tools import mpy_build  # noqa: E402

CHIP_SCRIPT = r"""
import gc, sys, time
gc.collect()
a = gc.mem_alloc()
import gwbox.crypto.x25519_viper
gc.collect()
heap = gc.mem_alloc() - a
import gwbox.crypto.entropy, gwbox.errors
from gwbox import forget
t = time.ticks_us()
from gwbox.crypto import x25519  # the first import since boot: the native code is checked
first = time.ticks_diff(time.ticks_us(), t)
forget("gwbox.crypto.x25519")
t = time.ticks_us()
from gwbox.crypto import x25519  # checked already: not again
check = (first - time.ticks_diff(time.ticks_us(), t)) / 1000
verdict = gwbox.crypto.x25519_native
h = bytes.fromhex
K = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
U = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
WANT = h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")

def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.ticks_us()
        r = fn()
        out.append(time.ticks_diff(time.ticks_us(), t))
        assert r == WANT
    return sorted(out)[n // 2] / 1000

ms = timed(lambda: x25519.x25519(K, U), 7)
ld = x25519.Ladder(K, U)
steps = []
while True:
    t = time.ticks_us()
    done = ld.step()
    steps.append(time.ticks_diff(time.ticks_us(), t))
    if done:
        break
assert ld.result == WANT
gc.threshold(2048)
ms2048 = timed(lambda: x25519.x25519(K, U), 7)
gc.threshold(-1)
integer = timed(lambda: x25519.Ladder(K, U, native=False).run(), 3)
native = x25519._native is not None

from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
# as a running box holds it: the key exchange's code is dropped between exchanges, and
# the box's connect imports it again (from ROMFS: the native code is copied into RAM)
forget("gwbox.initiator", "gwbox.responder", "gwbox.admission", "gwbox.handshake", "gwbox.keyschedule",
       "gwbox.crypto.x25519", "gwbox.crypto.x25519_viper", "gwbox.message", "gwbox.control")
del x25519
gc.collect()
now = 1000
box = Endpoint(LinkConfig(rekey_ms=5000), b"box1", psk=b"\x11" * 32, expect_peer=b"gw1")
gw = Endpoint(LinkConfig(), b"gw1", psks={b"box1": b"\x11" * 32})
calls = []

def on_box(calls, fn, *args):
    t = time.ticks_us()
    fn(*args)
    calls.append(time.ticks_diff(time.ticks_us(), t))

def exchange(calls, now, done):
    while not done() and now < 60000:
        for _l, p in box.take_output():
            gw.receive(p, now)
        for _l, p in gw.take_output():
            on_box(calls, box.receive, p, now)
        on_box(calls, box.tick, now)
        now += 1
    return now

on_box(calls, box.connect, now)
now = exchange(calls, now, lambda: box.session() is not None)
assert box.session() is not None and gw.session() is not None
# the box's rekey (rekey_ms after the handshake; the key exchange's code was dropped
# meanwhile and is imported again): its X25519s a slice per call
first = box.session().current
assert "gwbox.crypto.x25519" not in sys.modules
rekey = []
now = exchange(rekey, first.created + 5000, lambda: box.session().current is not first)
assert box.session().current is not first
# then the box's next handshake key, made ahead a slice per call once no exchange runs (the
# handshake's end left it to be made; the key exchange's code goes when it is done)
now = exchange(rekey, now, lambda: box.spare.__class__ is not list)
gc.collect()
free = gc.mem_free()
print("RESULT", {"x25519_ms": ms, "step_max_ms": max(steps) / 1000, "steps": len(steps),
                 "gc2048_ms": ms2048, "integer_ms": integer, "heap": heap,
                 "handshake_ms": sum(calls) / 1000, "call_max_ms": max(calls) / 1000,
                 "native": native, "verdict": verdict, "check_ms": check, "rekey_call_max_ms": max(rekey) / 1000, "free": free})
"""

VECTORS = """
from gwbox.crypto import x25519
h = bytes.fromhex
bad = n = 0
with open("x25519_wycheproof.txt") as f:
    for line in f:
        if line[0] != "#":
            tc, k, u, want = line.split()
            n += 1
            if x25519.x25519(h(k), h(u)) != h(want):
                bad += 1
print("RESULT", {"failed": bad, "n": n})
"""
VECTOR_FILE = os.path.join(ROOT, "tests", "firmware", "x25519_wycheproof.txt")

PC_SCRIPT = """
import time
from gwbox.crypto import x25519
K = bytes(range(32))
ts = []
for _ in range(21):
    t = time.ticks_us()
    x25519.x25519(K, x25519.BASE_POINT)
    ts.append(time.ticks_diff(time.ticks_us(), t))
ts.sort()
print(ts[10] / 1000)
"""


def on_chip(code, limit_ms, extra=None, form="romfs", image=None):
    from gwbox_tools.chip import repl
    from gwbox_tools.chip.__main__ import build_flash
    from gwbox_tools.chip.runner import Chip
    flash, _ = build_flash(form, image, extra=extra)
    with Chip(flash) as chip:
        repl.wait_prompt(chip)
        r = repl.check_answer(repl.exec_raw(chip, code, limit_ms), "the benchmark script")
    for line in r.out.decode().splitlines():
        if line.startswith("RESULT "):
            return eval(line[7:], {"true": True, "false": False})
    raise SystemExit("no result from the chip:\n" + r.out.decode())


def pc_figures(out, notes):
    mpy_build.build_mpy()
    legs = [("mp", mpy_build.micropython_binary())]
    if mpy_build.micropython32_binary():
        legs.insert(0, ("mp32", mpy_build.micropython32_binary()))
    else:
        notes.append("rp2_crypto: no 32-bit interpreter: mp32_x25519_ms not measured")
    for name, exe in legs:
        r = subprocess.run([exe, "-X", "heapsize=128K", "-c", "import sys; sys.path[:0] = ['lib']\n" + PC_SCRIPT],
                           cwd=mpy_build.BUILD, capture_output=True, text=True, timeout=300, check=True)
        out[name + "_x25519_ms"] = float(r.stdout.split()[-1])
    from gwbox.crypto import x25519
    ts = []
    for _ in range(21):
        t = time.perf_counter()
        x25519.pure_x25519(bytes(range(32)), x25519.BASE_POINT)
        ts.append((time.perf_counter() - t) * 1000)
    out["cpython_x25519_ms"] = round(statistics.median(ts), 3)


def chip_figures(form="romfs", image=None):
    """The CHIP_SCRIPT figures with gwbox in `form`; keys end in _<form> but for ROMFS."""
    r = on_chip(CHIP_SCRIPT, 120000, form=form, image=image)
    if not r["native"] or r["verdict"] != "native":
        raise SystemExit("the chip did not load X25519's native code, or it failed its check (%s)" % r["verdict"])
    out = {"rp2_x25519_ms": r["x25519_ms"], "rp2_x25519_step_max_ms": r["step_max_ms"],
           "rp2_x25519_steps": r["steps"], "rp2_x25519_gc2048_ms": r["gc2048_ms"],
           "rp2_x25519_integer_ms": r["integer_ms"], "rp2_x25519_native_heap_bytes": r["heap"],
           "rp2_x25519_check_ms": round(r["check_ms"], 1), "rp2_handshake_box_ms": round(r["handshake_ms"], 1),
           "rp2_handshake_call_max_ms": r["call_max_ms"], "rp2_rekey_call_max_ms": r["rekey_call_max_ms"],
           "rp2_bench_free_bytes": r["free"]}
    if form == "romfs":
        return out
    return {k + "_" + form: v for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description="X25519 and a handshake on the emulated RP2040 (module docstring)")
    ap.add_argument("--form", choices=("romfs", "littlefs", "frozen"), default="romfs",
                    help="gwbox on the chip as in gwbox_tools.chip run; other than romfs: the chip figures "
                    "only, keys ending in _<form>")
    ap.add_argument("--image", help="the image (as gwbox_tools.chip run --image; needed for frozen)")
    a = ap.parse_args(argv)
    if a.form != "romfs":
        print(json.dumps(chip_figures(a.form, a.image)))
        return
    out, notes = chip_figures(), []
    out.update(chip_figures("littlefs"))
    frozen = os.environ.get("GWBOX_RP2_FROZEN_IMAGE")
    if frozen:
        out.update(chip_figures("frozen", frozen))
    else:
        notes.append("rp2_crypto: GWBOX_RP2_FROZEN_IMAGE not set (a .uf2 with gwbox frozen in): *_frozen not measured")
    with open(VECTOR_FILE, "rb") as f:  # on the chip's littlefs, read a line at a time there
        v = on_chip(VECTORS, 200000, {"x25519_wycheproof.txt": f.read()})
    assert v["n"] == 518
    out["rp2_wycheproof_failed"] = v["failed"]
    pc_figures(out, notes)
    out["notes"] = notes
    print(json.dumps(out))


if __name__ == "__main__":
    main()
