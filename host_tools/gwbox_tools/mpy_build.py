"""Compile firmware to .mpy with mpy-cross, as a device loads it.

One place for how gwbox compiles: `gwbox deploy` builds what it copies to a board with
it, and the MicroPython test suite (tests/mp_suite.py) builds build/mpy with it. Every
module is compiled with its dotted name as source name (`mpy-cross -s gwbox.sa`), so
tracebacks still say where, and no per-module path string lands in the device heap.
Only stale outputs are rebuilt (source newer than output, or compile options changed).
Builds of one tree never race (`make test` runs its tests in several processes at once):
each holds the tree's lock file, and every output is written beside its place and renamed
into it, so nothing ever reads half a file, even after a build was killed.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import threading

try:
    import fcntl
except ImportError:  # not a POSIX host: one build at a time is then up to the user
    fcntl = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, "firmware")
FW_TESTS = os.path.join(ROOT, "tests", "firmware")
# The test suite's build: firmware under lib/, dual-runtime tests under tests/.
BUILD = os.path.join(ROOT, "build", "mpy")

# Run by name on a device (boot.py, then main.py): stay source, never compiled.
ENTRY_POINTS = ("main.py", "boot.py")

# Bump when the compile options change, so .mpy files built the old way are rebuilt.
BUILD_STAMP = "mpy-cross -s <dotted module name> v4 (native modules -march=%s)"

# Modules of native code (viper): compiled only for a given CPU (`mpy-cross -march=...`);
# where none is given, or a device cannot load them, the firmware falls back to bytecode.
NATIVE = ("gwbox/crypto/x25519_viper.py",)
# The test build's native code is for the 32-bit unix interpreter (x86), the one that
# stands in for the 32-bit boards: the 64-bit one cannot load it and runs the fallback.
TEST_MARCH = "x86"
BUILD_STAMP = BUILD_STAMP % TEST_MARCH


def mpy_cross_binary():
    """mpy-cross beside this interpreter (the pinned one in .venv), else from PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else "mpy-cross"


def micropython_binary():
    """The unix micropython beside this interpreter (the pinned one in .venv), else from PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    return here if os.path.exists(here) else "micropython"


# Boards are 32-bit: 4-byte pointers, 16-byte GC blocks. The pinned unix interpreter is
# 64-bit and needs about 1.4 times the heap for the same objects (measured: the whole box
# 158K / 117K, the two-node core 79K / 57K; docs/memory.md). A device heap is therefore
# checked at its size on a 32-bit interpreter where there is one, and at HEAP_SCALE_64
# times that size on the 64-bit one.
HEAP_SCALE_64 = 1.4


def micropython32_binary():
    """The 32-bit unix micropython (shared/tools/micropython32, or $MICROPYTHON32), or None."""
    cands = [os.environ.get("MICROPYTHON32"), "/work/shared/tools/micropython32/micropython",
             os.path.join(os.path.dirname(ROOT), "shared", "tools", "micropython32", "micropython")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def interpreters():
    """[(name, binary, heap scale)] to hold the firmware to device heaps with: the 32-bit
    interpreter at the device heap (where present), the 64-bit one at HEAP_SCALE_64 times it."""
    out = []
    mp32 = micropython32_binary()
    if mp32:
        out.append(("mp32", mp32, 1.0))
    out.append(("mp64", micropython_binary(), HEAP_SCALE_64))
    return out


# The heap `make demo` and `gwbox emulate` give the box: an ESP32 without PSRAM's (docs/memory.md).
DEVICE_HEAP = "110K"


def device_interpreter(heap=DEVICE_HEAP, micropython=None):
    """(binary, heap, description) to run the box as a board would: the 32-bit interpreter at
    `heap` where it is present, else the pinned 64-bit one at HEAP_SCALE_64 times `heap`.
    A `micropython` named by the user gets `heap` as it is."""
    if micropython:
        return micropython, heap, "%s at %s" % (micropython, heap)
    mp32 = micropython32_binary()
    if mp32:
        return mp32, heap, "32-bit MicroPython, a %s heap as on an ESP32" % heap
    big = scaled_heap(heap, HEAP_SCALE_64)
    return micropython_binary(), big, "64-bit MicroPython, a %s heap (%s on a 32-bit board; no 32-bit interpreter here)" % (
        big, heap)


def scaled_heap(heap, scale):
    """'64K' at scale 1.4 -> '92K' (rounded up to 4K)."""
    k = int(heap.rstrip("Kk"))
    if scale == 1.0:
        return "%dK" % k
    return "%dK" % ((int(k * scale) + 3) // 4 * 4)


def module_name(rel):
    """gwbox/sa.py -> gwbox.sa; gwbox/crypto/__init__.py -> gwbox.crypto."""
    name = rel[:-3].replace(os.sep, "/").replace("/", ".")
    return name[:-9] if name.endswith(".__init__") else name


def is_native(rel):
    return rel.replace(os.sep, "/") in NATIVE


def has_march(args):
    return any(a.startswith("-march=") for a in args)


def compile_module(src, dst, rel, extra_args=()):
    """Compile one source file to dst (directories made as needed). dst appears whole or
    not at all: a half-written .mpy newer than its source would never be rebuilt."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = "%s.%d.tmp" % (dst, os.getpid())
    try:
        # The module's dotted name as source name: tracebacks still say where, and the
        # interpreter already holds that name, so no extra path string per module.
        subprocess.run([mpy_cross_binary(), *extra_args, "-o", tmp, "-s", module_name(rel), src], check=True)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_held = {}  # lock file path -> [open file, depth]: this process's build locks
_held_guard = threading.RLock()


@contextlib.contextmanager
def build_lock(build_dir):
    """Hold build_dir's lock (the file build_dir + ".lock", beside it so emptying the tree
    keeps it) while building or reading the tree: several test processes build the same
    tree at once. Re-entrant within a process (a build that calls another build); the
    kernel drops it when the process dies, so a killed build never leaves it held."""
    path = os.path.abspath(build_dir) + ".lock"
    with _held_guard:  # threads of one process take turns too
        entry = _held.get(path)
        if entry is None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(path, "a")
            try:
                if fcntl:
                    fcntl.flock(f, fcntl.LOCK_EX)
            except BaseException:
                f.close()
                raise
            entry = _held[path] = [f, 0]
        entry[1] += 1
        try:
            yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[path]
                entry[0].close()  # closing the file releases the lock


def stale_jobs(src_root, dst_root, skip_entry_points=True):
    """(src, dst, rel) for every .py under src_root whose .mpy under dst_root is missing or
    older than its source. Entry points at the top of src_root are left out."""
    jobs = []
    for d, _dirs, files in os.walk(src_root):
        for f in sorted(files):
            if not f.endswith(".py") or skip_entry_points and d == src_root and f in ENTRY_POINTS:
                continue
            src = os.path.join(d, f)
            rel = os.path.relpath(src, src_root)
            dst = os.path.join(dst_root, rel)[:-3] + ".mpy"
            if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
                jobs.append((src, dst, rel))
    return jobs


def drop_stale_build(build_dir, stamp_text=BUILD_STAMP):
    """Empty build_dir unless it was built with the current compile options."""
    stamp = os.path.join(build_dir, "stamp")
    try:
        with open(stamp) as f:
            if f.read() == stamp_text:
                return
    except OSError:
        pass
    shutil.rmtree(build_dir, ignore_errors=True)
    os.makedirs(build_dir)
    with open(stamp, "w") as f:
        f.write(stamp_text)


def build_mpy():
    """Compile firmware/ and tests/firmware/ to .mpy under build/mpy, as a device loads them.

    Compiling source on the device needs transient heap a deployed box never spends, so
    the suite measures what matters: the firmware as shipped. Only stale files are rebuilt.
    Returns the number of files compiled.
    """
    with build_lock(BUILD):
        drop_stale_build(BUILD)
        jobs = stale_jobs(FIRMWARE, os.path.join(BUILD, "lib")) + stale_jobs(FW_TESTS, os.path.join(BUILD, "tests"))
        for src, dst, rel in jobs:
            compile_module(src, dst, rel, ["-march=" + TEST_MARCH] if is_native(rel) else [])
        return len(jobs)
