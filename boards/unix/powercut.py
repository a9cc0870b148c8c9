"""A power cut for the unix board: the interpreter dies at the n-th file system step.

GWBOX_POWER_CUT_AT=n (boards/unix/board.py) makes the box's file system this wrapper of
the host's: every step that changes a file of the box (open for writing, write, flush,
close, rename, remove; the boot record excepted) counts, and the n-th one does not happen:
the interpreter ends with POWER_CUT_EXIT instead, and every step after it (finally
blocks on the way out) does nothing either. The unix port writes straight to the host
file (no buffer of its own), so what was written before the cut is on "flash".
"""
import os
import sys

POWER_CUT_EXIT = 87


class _Writer:
    def __init__(self, fs, f, path):
        self.fs = fs
        self.f = f
        self.path = path

    def write(self, data):
        self.fs.step()
        return self.f.write(data)

    def flush(self):
        self.fs.step()
        self.f.flush()

    def close(self):
        self.fs.step()
        self.f.close()


class CutFs:
    def __init__(self, at):
        self.at = at
        self.steps = 0
        self.dead = False

    def step(self):
        if not self.dead:
            self.steps += 1
            if self.steps < self.at:
                return
            self.dead = True
            print('{"event": "power_cut", "node": "box", "t_ms": -1, "step": %d}' % self.steps)
        sys.exit(POWER_CUT_EXIT)

    def open(self, path, mode):
        if "r" in mode or path.endswith("gwbox.boot"):
            return open(path, mode)
        self.step()
        return _Writer(self, open(path, mode), path)

    def rename(self, a, b):
        self.step()
        os.rename(a, b)

    def remove(self, path):
        self.step()
        os.remove(path)
