"""Run the firmware suite under the real MicroPython interpreter, one process per module.

Each tests/firmware/test_*.py runs in a fresh interpreter with a device's heap: 64K, or
64K per device for a module that hosts several (it declares `# mp-heap: 128K` in its
first lines). Devices are 32-bit: the heap is given as is to the 32-bit interpreter
(shared/tools/micropython32) where there is one, and 1.4 times it to the pinned 64-bit
one (gwbox_tools.mpy_build.interpreters); both run when both are there. Prints every
result line and ends with `micropython: N passed, N failed`.

    python tests/mp_suite.py [test_module.py ...]      (GWBOX_MP=mp32|mp64: one leg only)
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FW_TESTS = os.path.join(ROOT, "tests", "firmware")
DEFAULT_HEAP = os.environ.get("GWBOX_MP_HEAP", "64K")


# The compile step is a host tool (`gwbox deploy` builds with it too): tests import it,
# never the other way round. Same build tree (build/mpy), same options, same names.
if os.path.join(ROOT, "host_tools") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "host_tools"))
from gwbox_tools.mpy_build import (BUILD, BUILD_STAMP, build_mpy, interpreters, micropython_binary,  # noqa: E402
                                   mpy_cross_binary, scaled_heap)

# What bench/ and host tools use from here (BUILD, build_mpy, micropython_binary), re-exported.
__all__ = ["BUILD", "BUILD_STAMP", "build_mpy", "micropython_binary", "mpy_cross_binary", "modules",
           "declared_heap", "run_module", "main"]


def modules():
    return sorted(n for n in os.listdir(FW_TESTS) if n.startswith("test_") and n.endswith(".py"))


def declared_heap(module):
    with open(os.path.join(FW_TESTS, module)) as f:
        for _ in range(5):
            line = f.readline()
            if line.startswith("# mp-heap:"):
                return line.split(":", 1)[1].split()[0]
    return DEFAULT_HEAP


def legs():
    """The interpreters this machine runs the suite on: [(name, binary, heap scale)]."""
    only = os.environ.get("GWBOX_MP")
    return [i for i in interpreters() if not only or i[0] == only]


def run_module(module, leg=None, timeout=300):
    """(passed, failed, output) for one module in its own interpreter (default: the first leg)."""
    build_mpy()
    name, exe, scale = leg or legs()[0]
    proc = subprocess.run(
        # A relative script path from the checkout root: every module's __file__ is interned
        # in the heap, so the heap a test needs must not depend on where the checkout lives.
        [exe, "-X", "heapsize=" + scaled_heap(declared_heap(module), scale), "tests/mp_run.py",
         module], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    totals = [l for l in out.splitlines() if l.startswith("micropython: ") and " passed, " in l]
    if not totals or proc.returncode not in (0, 1):
        return 0, 1, out + "\n(interpreter exit status %d)" % proc.returncode
    words = totals[-1].split()
    return int(words[1]), int(words[3]), out


def main(argv):
    passed = failed = 0
    for leg in legs():
        for m in argv or modules():
            p, f, out = run_module(m, leg)
            passed += p
            failed += f
            for line in out.splitlines():
                if not line.startswith("micropython: "):
                    print(line)
            print("-- %s [%s]: heap %s, %d passed, %d failed" % (
                m, leg[0], scaled_heap(declared_heap(m), leg[2]), p, f))
    if not any(leg[0] == "mp32" for leg in legs()):
        print("micropython32: not on this machine: the 32-bit leg was skipped")
    print("micropython: %d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
