"""A ROMFS image of the compiled firmware, for boards that run `.mpy` in place from flash.

MicroPython 1.25 and later can mount a read-only ROMFS partition at /rom. Modules
imported from it are not copied into the heap: bytecode, string constants and the
characters of interned names stay in flash, and only function objects, module
dictionaries and qstr pool entries use RAM. Loaded from a littlefs file, the same `.mpy`
is copied into the heap whole (docs/memory.md has both figures).

The image holds the gwbox package at its root (/rom/gwbox on the board, where /rom is on
`sys.path`); main.py, boot.py and board.py stay files on the board's file system, as
MicroPython runs them by name. The encoding is mpremote's (VfsRomWriter), the same as
`mpremote romfs build` writes.
"""
import os

from mpremote.romfs import VfsRomWriter

# The image starts with these bytes, then its length as a variable-length integer.
ROMFS_HEADER = VfsRomWriter.ROMFS_HEADER


def build_image(files):
    """{path inside the image ("gwbox/sa.mpy"): bytes} -> the image (bytes), directories sorted."""
    tree = {}
    for path, data in files.items():
        parts = path.strip("/").split("/")
        node = tree
        for d in parts[:-1]:
            node = node.setdefault(d, {})
            if not isinstance(node, dict):
                raise ValueError("%s: %s is a file and a directory" % (path, d))
        if parts[-1] in node:
            raise ValueError("%s is in the image twice" % path)
        node[parts[-1]] = data
    writer = VfsRomWriter()
    _write(writer, tree)
    return writer.finalise()


def _write(writer, node):
    for name in sorted(node):
        value = node[name]
        if isinstance(value, dict):
            writer.opendir(name)
            _write(writer, value)
            writer.closedir()
        else:
            writer.mkfile(name, bytes(value))


def image_length(head):
    """How many bytes the image that starts `head` declares (header, length, contents), or
    None if `head` does not start a ROMFS image."""
    if bytes(head[:3]) != ROMFS_HEADER:
        return None
    n = 0
    for i in range(3, min(len(head), 13)):
        n = n << 7 | head[i] & 0x7F
        if not head[i] & 0x80:
            return i + 1 + n
    return None


def write_image(paths, out):
    """The image of the local files {image path: local path}, written to `out` (directories
    made) unless `out` already holds exactly that image, so its mtime tells when it changed."""
    files = {}
    for path, local in paths.items():
        with open(local, "rb") as f:
            files[path] = f.read()
    image = build_image(files)
    try:
        with open(out, "rb") as f:
            if f.read() == image:
                return
    except OSError:
        pass
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(image)
    os.replace(tmp, out)
