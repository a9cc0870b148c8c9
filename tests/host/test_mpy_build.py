"""gwbox_tools.mpy_build: builds of one tree never race, and no build leaves half a file.

`make test` runs its tests in several processes at once (pytest-xdist), and every one of
them may build build/mpy or build/deploy first. Each case here runs the other builders as
real processes: a lock held by one blocks the next until it is let go or its process is
killed; two builds of a fresh tree at once both finish with every module whole.
Cost: about 5 s (mpy-cross, for three builds of a small tree).
"""
import os
import selectors
import shutil
import subprocess
import sys

import pytest

from gwbox_tools import deploy, mpy_build

ROOT = mpy_build.ROOT
TIMEOUT_S = 60

# A process that takes build_lock(DIR), says "held" and keeps it until its stdin closes
# (or it is killed); with "nested" it takes the lock again inside (re-entrant).
HOLDER = """
import sys
from gwbox_tools import mpy_build
with mpy_build.build_lock(sys.argv[1]):
    if len(sys.argv) > 2:
        with mpy_build.build_lock(sys.argv[1]):
            pass
    print("held", flush=True)
    sys.stdin.read()
print("released", flush=True)
"""


def holder(build_dir, *extra):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "host_tools"))
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(build_dir), *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)


def has_output(proc, seconds):
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        return bool(sel.select(seconds))


def read_line(proc):
    """The holder's next line, or a failure after TIMEOUT_S (never a hang)."""
    assert has_output(proc, TIMEOUT_S), "no answer from the lock holder in %d s" % TIMEOUT_S
    return proc.stdout.readline().strip()


def ends(proc):
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        return proc.wait(TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_held_lock_blocks_the_next_builder_until_it_is_let_go(tmp_path):
    tree = tmp_path / "build" / "mpy"
    first = holder(tree)
    second = None
    try:
        assert read_line(first) == "held"
        second = holder(tree)
        assert not has_output(second, 1.0), "the second builder got the lock while the first held it"
        first.stdin.close()
        assert read_line(first) == "released"
        assert read_line(second) == "held"
    finally:
        assert ends(first) == 0
        if second:
            assert ends(second) == 0
    assert os.path.exists(str(tree) + ".lock") and not tree.exists()  # the lock file lives beside the tree


def test_a_killed_builder_never_leaves_the_lock_held(tmp_path):
    tree = tmp_path / "tree"
    first = holder(tree)
    assert read_line(first) == "held"
    first.kill()
    ends(first)
    second = holder(tree, "nested")  # and the lock is re-entrant within one process
    assert read_line(second) == "held"
    assert ends(second) == 0


def test_the_lock_is_re_entrant_and_let_go_when_the_outermost_hold_ends(tmp_path):
    tree = str(tmp_path / "tree")
    with mpy_build.build_lock(tree):
        with mpy_build.build_lock(tree):
            pass
        other = holder(tree)
        try:
            assert not has_output(other, 0.5), "the inner release let the lock go"
        except BaseException:
            ends(other)
            raise
    assert read_line(other) == "held"
    assert ends(other) == 0


def test_a_failed_compile_leaves_neither_output_nor_temporary_file(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("def broken(:\n")
    dst = tmp_path / "out" / "bad.mpy"
    dst.parent.mkdir()
    dst.write_bytes(b"old")
    with pytest.raises(subprocess.CalledProcessError):
        mpy_build.compile_module(str(src), str(dst), "bad.py")
    assert dst.read_bytes() == b"old"
    assert sorted(os.listdir(dst.parent)) == ["bad.mpy"]


BUILDER = """
import sys
from gwbox_tools import deploy
fw = sys.argv[1]
built = deploy.build(fw, deploy.sources(fw), [])
print(len(built), flush=True)
"""


SMALL_TREE = ("main.py", "gwbox/__init__.py", "gwbox/errors.py", "gwbox/ticks.py", "gwbox/deadlines.py",
              "gwbox/wire.py", "gwbox/crypto/__init__.py", "gwbox/crypto/mac.py")


def checkout(path):
    """A small firmware tree (mpy-cross takes ~0.2 s a module: the whole one would cost 10 s a build)."""
    fw = path / "firmware"
    for rel in SMALL_TREE:
        (fw / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.join(mpy_build.FIRMWARE, rel), fw / rel)
    return str(fw)


def test_two_builds_of_a_fresh_tree_at_once_both_finish_with_every_module_whole(tmp_path):
    fw = checkout(tmp_path / "checkout")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "host_tools"))
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(fw)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT_S * 2)
            assert p.returncode == 0, err
            outs.append(out.split())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert outs[0] == outs[1] and int(outs[0][0]) == len(SMALL_TREE)
    built = deploy.build(fw, deploy.sources(fw), [])
    ref_fw = checkout(tmp_path / "alone")  # the same tree built by one process alone
    ref = deploy.build(ref_fw, deploy.sources(ref_fw), [])
    mpys = sorted(rel for rel, path in built.items() if path.endswith(".mpy"))
    assert len(mpys) == len(SMALL_TREE) - 1 and mpys == sorted(rel for rel, path in ref.items() if path.endswith(".mpy"))
    for rel in mpys:
        with open(built[rel], "rb") as f, open(ref[rel], "rb") as g:
            assert f.read() == g.read(), rel
    leftovers = [n for _d, _s, files in os.walk(tmp_path / "checkout" / "build") for n in files
                 if n.endswith(".tmp")]
    assert leftovers == []
