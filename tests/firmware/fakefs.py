"""A file system in memory that can lose power at any step (for gwbox.store and the console).

`disk` is what survives: {path: bytes}. Every step that changes something counts (open
for writing, write, flush, close, rename, remove); with `cut_at=n` the n-th step raises
PowerCut instead of happening, and so does every step after it (the box is off). Data
written but not yet flushed is lost at a cut, or with `torn=True` half of it lands (a
page that made it to flash). open(..., "w") truncates on disk at once, as littlefs and
FAT do for a new file. `rename` replaces its target atomically unless `fat=True`, where
it refuses an existing target as FAT does.
"""


class PowerCut(Exception):
    pass


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, n=-1):
        end = len(self.data) if n is None or n < 0 else self.pos + n
        out = self.data[self.pos:end]
        self.pos += len(out)
        return out

    def close(self):
        pass


class _Writer:
    def __init__(self, fs, path):
        self.fs = fs
        self.path = path
        self.buf = bytearray()

    def write(self, data):
        self.fs.step("write " + self.path)
        self.buf.extend(data)
        return len(data)

    def _land(self, part=None):
        data = bytes(self.buf) if part is None else bytes(self.buf[:part])
        self.fs.disk[self.path] = self.fs.disk.get(self.path, b"") + data
        self.buf = bytearray()

    def flush(self):
        self.fs.step("flush " + self.path)
        self._land()

    def close(self):
        if self in self.fs.open_files:
            self.fs.step("close " + self.path)
            self._land()
            self.fs.open_files.remove(self)


class FakeFs:
    def __init__(self, disk=None, cut_at=None, torn=False, fat=False):
        self.disk = dict(disk or {})
        self.cut_at = cut_at
        self.torn = torn
        self.fat = fat
        self.steps = 0
        self.done = []  # the steps that happened
        self.open_files = []
        self.dead = False

    def step(self, what):
        if self.dead:
            raise PowerCut(what)
        self.steps += 1
        if self.cut_at is not None and self.steps >= self.cut_at:
            self.dead = True
            for f in self.open_files:
                if self.torn and f.buf:
                    f._land(len(f.buf) // 2)
            self.open_files = []
            raise PowerCut(what)
        self.done.append(what)

    def open(self, path, mode):
        if "r" in mode:
            if self.dead or path not in self.disk:
                raise OSError(2)
            return _Reader(self.disk[path])
        self.step("open " + path)
        self.disk[path] = b""
        f = _Writer(self, path)
        self.open_files.append(f)
        return f

    def rename(self, a, b):
        if a not in self.disk or self.fat and b in self.disk:
            if self.dead:
                raise PowerCut("rename")
            raise OSError(17 if a in self.disk else 2)
        self.step("rename %s %s" % (a, b))
        self.disk[b] = self.disk.pop(a)

    def remove(self, path):
        if path not in self.disk:
            raise OSError(2)
        self.step("remove " + path)
        del self.disk[path]
