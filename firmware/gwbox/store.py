"""The box's files: its policy, saved atomically with a checksum, and its boot record.

    P      the policy in use: "#gwbox-policy <sha256/16 hex> <bytes>" line, then the text
    P.bak  the policy P held before the last save: the last good one
    P.tmp  a save in progress (never read)
    dir/gwbox.boot  "<boots not yet stable>[ safe]": crash-loop count, one-shot safe mode

`save` writes P.tmp (open, write, flush, close), reads it back, then renames the good P
to P.bak and P.tmp to P. A power cut at any step leaves P or P.bak complete and
checksummed, and `load` takes the first of them that is whole and passes the caller's
check (the policy parser), saying what it skipped and why. The first line is a `#`
comment, so the file is still a policy file; a file without it (written by hand or
copied) is taken as it is. A policy is at most gwbox.POLICY_MAX bytes (the console's `load`
and `gwbox config check` hold it to the same constant). Everything goes through `fs` (open, rename, remove), so tests
run it on a fake file system that cuts the power at every step.
"""
import hashlib
import os

from gwbox import POLICY_MAX, const

_HEAD = const("#gwbox-policy ")
_CHUNK = const(512)  # read a file this much at a time: read(n) allocates all n bytes up front
CRASH_LIMIT = 3  # boots in a row that did not stay up a minute -> safe mode


class StoreError(Exception):
    pass


class _Fs:
    """The device's own file system (littlefs on a board, the host's under unix)."""

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, a, b):
        os.rename(a, b)

    def remove(self, path):
        os.remove(path)


def _digest(body):
    return "".join("%02x" % b for b in hashlib.sha256(body).digest()[:8])


def _dir(path):
    i = path.rfind("/")
    return path[:i + 1] if i >= 0 else ""


class Store:
    def __init__(self, path, fs=None):
        self.path = path
        self.fs = fs or _Fs()
        self.boot_path = _dir(path) + "gwbox.boot"

    # --- the policy ----------------------------------------------------------------------

    def read(self, path):
        """The policy text of one file; StoreError saying what is wrong with it."""
        try:
            f = self.fs.open(path, "rb")
        except OSError:
            raise StoreError("missing")
        # In pieces, not f.read(POLICY_MAX + 64): MicroPython would take 12 KB of heap in one piece
        # for a file of one or two (on a running box, from the console).
        parts = []
        n = 0
        try:
            while True:
                b = f.read(_CHUNK)
                if not b:
                    break
                n += len(b)
                if n > POLICY_MAX + 60:  # the checksum line's 60 bytes besides the policy
                    raise StoreError("larger than %d bytes" % POLICY_MAX)
                parts.append(b)
        finally:
            f.close()
        data = b"".join(parts)
        parts = None
        if data[:len(_HEAD)] == _HEAD.encode():
            i = data.find(b"\n")
            w = data[len(_HEAD):i].split() if i > 0 else ()
            body = data[i + 1:]
            if len(w) != 2 or w[1] != str(len(body)).encode():
                raise StoreError("incomplete (%d bytes after its first line: a write that did not finish)"
                                 % len(body))
            if w[0].decode() != _digest(body):
                raise StoreError("checksum mismatch (corrupt)")
        else:
            body = data
        try:
            return body.decode()
        except UnicodeError:
            raise StoreError("not UTF-8 text")

    def load(self, check=None):
        """(text, path, notes) of the first of P, P.bak that is whole and passes `check(text)`
        (raises ValueError: str(e) says why); (None, None, notes) if neither does. `notes`
        says what was skipped and what is used instead."""
        notes = []
        for path in (self.path, self.path + ".bak"):
            try:
                text = self.read(path)
                if check is not None:
                    check(text)
            except (StoreError, ValueError) as e:
                if path == self.path or not isinstance(e, StoreError) or str(e) != "missing":
                    notes.append("%s: %s" % (path, _first(e)))
                continue
            if notes:
                notes.append("using the last good policy, %s" % path)
            return text, path, notes
        notes.append("no policy can be loaded: the box starts in safe mode; load and save one on the console")
        return None, None, notes

    def save(self, text):
        """Store `text` as P atomically; the P it replaces (if whole) becomes P.bak."""
        body = text.encode() if isinstance(text, str) else bytes(text)
        if len(body) > POLICY_MAX:
            raise StoreError("the policy is larger than %d bytes" % POLICY_MAX)
        tmp = self.path + ".tmp"
        fs = self.fs
        f = fs.open(tmp, "wb")
        try:
            f.write(("%s%s %d\n" % (_HEAD, _digest(body), len(body))).encode())
            f.write(body)
            f.flush()
        finally:
            f.close()
        if self.read(tmp) != body.decode():
            raise StoreError("%s does not read back as written: the file system may be failing" % tmp)
        try:
            self.read(self.path)
            good = True
        except StoreError:
            good = False
        if good:  # keep it as the last good one; a broken P never replaces a good P.bak
            _replace(fs, self.path, self.path + ".bak")
        _replace(fs, tmp, self.path)

    # --- the boot record --------------------------------------------------------------------

    def boot_record(self):
        """(boots in a row that did not stay up, safe mode requested)."""
        try:
            f = self.fs.open(self.boot_path, "rb")
            try:
                w = f.read(32).split()
            finally:
                f.close()
            return int(w[0]), len(w) > 1 and w[1] == b"safe"
        except (OSError, ValueError, IndexError):
            return 0, False  # missing or torn: count from nothing

    def write_boot_record(self, count, safe=False):
        try:
            f = self.fs.open(self.boot_path, "wb")
            try:
                f.write(("%d%s\n" % (count, " safe" if safe else "")).encode())
            finally:
                f.close()
        except OSError:
            pass  # a read-only or full file system must not stop the box


def _replace(fs, src, dst):
    try:
        fs.rename(src, dst)  # littlefs and POSIX replace dst atomically
    except OSError:
        try:
            fs.remove(dst)  # FAT refuses to rename onto a file
        except OSError:
            pass
        fs.rename(src, dst)


def _first(e):
    s = str(e)
    i = s.find("\n")
    return s if i < 0 else "%s (and %d more)" % (s[:i], s.count("\n"))
