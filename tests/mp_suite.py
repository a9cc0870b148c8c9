"""Run the firmware suite under the real MicroPython interpreter, one process per module.

Each tests/firmware/test_*.py runs in a fresh `micropython -X heapsize=64K` (a device's
heap). A module that hosts both parties of the protocol in one interpreter, i.e. two
devices' state, declares two device heaps in its first lines as `# mp-heap: 128K`.
Prints every result line and ends with `micropython: N passed, N failed`.

    python tests/mp_suite.py [test_module.py ...]
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
from gwbox_tools.mpy_build import BUILD, BUILD_STAMP, build_mpy, micropython_binary, mpy_cross_binary  # noqa: E402

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


def run_module(module, timeout=300):
    """(passed, failed, output) for one module in its own interpreter."""
    build_mpy()
    proc = subprocess.run(
        # A relative script path from the checkout root: every module's __file__ is interned
        # in the heap, so the heap a test needs must not depend on where the checkout lives.
        [micropython_binary(), "-X", "heapsize=" + declared_heap(module), "tests/mp_run.py",
         module], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    totals = [l for l in out.splitlines() if l.startswith("micropython: ") and " passed, " in l]
    if not totals or proc.returncode not in (0, 1):
        return 0, 1, out + "\n(interpreter exit status %d)" % proc.returncode
    words = totals[-1].split()
    return int(words[1]), int(words[3]), out


def main(argv):
    passed = failed = 0
    for m in argv or modules():
        p, f, out = run_module(m)
        passed += p
        failed += f
        for line in out.splitlines():
            if not line.startswith("micropython: "):
                print(line)
        print("-- %s: heap %s, %d passed, %d failed" % (m, declared_heap(m), p, f))
    print("micropython: %d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
