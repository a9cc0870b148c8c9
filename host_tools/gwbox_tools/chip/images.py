"""The emulated chip's flash: a MicroPython rp2 image, plus gwbox as ROMFS or littlefs files.

Why here and not on the chip: a real board gets its image from `gwbox flash` and the
firmware from `gwbox deploy` over USB; the emulated board starts from a flash dump that
holds what those would have left, built from this tree with the same pieces
(`deploy.build` compiles, `romfs_image` writes the ROMFS image `gwbox deploy --romfs`
writes, littlefs-python writes the file system MicroPython's `_boot.py` mounts: LFS2,
block 4096, prog 256).

Layouts (shared/tools/rp2/README.md; offsets from the start of flash, 2 MiB):
RPI_PICO littlefs 1408 KiB at 0xA0000, ROMFS 0x60000..0xA0000; RPI_PICO_W littlefs
848 KiB at 0x12C000, ROMFS 0xEC000..0x12C000. A stock image has no ROMFS partition.
"""
import gzip
import os
import struct

from gwbox_tools import mpy_build

FLASH_BASE = 0x10000000
FLASH_SIZE = 2 * 1024 * 1024
LFS_BLOCK = 4096
LFS_PROG = 256

# board layout: (littlefs offset, littlefs size, ROMFS offset, ROMFS size)
LAYOUTS = {
    "pico": (0xA0000, 1408 * 1024, 0x60000, 256 * 1024),
    "pico_w": (0x12C000, 848 * 1024, 0xEC000, 256 * 1024),
}
# image name -> (file in shared/tools/rp2/firmware, layout, has a ROMFS partition)
IMAGES = {
    "pico": ("RPI_PICO-v1.28.0.uf2.gz", "pico", False),
    "pico_romfs": ("RPI_PICO_ROMFS256K-v1.28.0.uf2.gz", "pico", True),
    "pico_w": ("RPI_PICO_W-v1.28.0.uf2.gz", "pico_w", False),
    "pico_w_romfs": ("RPI_PICO_W_ROMFS256K-v1.28.0.uf2.gz", "pico_w", True),
}

UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
UF2_FAMILY_RP2040 = 0xE48BFF56


class ImageError(Exception):
    """A chip image that cannot be used; the message says which file and why."""


def rp2_tools():
    """shared/tools/rp2 (boot ROM, images): $GWBOX_RP2_TOOLS, /work/shared/tools/rp2, or
    shared/ beside the checkout (as CI lays it out)."""
    cands = [os.environ.get("GWBOX_RP2_TOOLS"), "/work/shared/tools/rp2",
             os.path.join(os.path.dirname(mpy_build.ROOT), "shared", "tools", "rp2")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "bootrom-b1.bin")):
            return c
    return None


def bootrom_path():
    tools = rp2_tools()
    if not tools:
        raise ImageError("no RP2040 boot ROM: shared/tools/rp2/bootrom-b1.bin was not found "
                         "(set GWBOX_RP2_TOOLS to the folder that holds it)")
    return os.path.join(tools, "bootrom-b1.bin")


def image_path(name):
    """A named image of shared/tools/rp2 (IMAGES), or a path to a .uf2 / .uf2.gz."""
    if name in IMAGES:
        tools = rp2_tools()
        if not tools:
            raise ImageError("image %r: shared/tools/rp2 was not found (set GWBOX_RP2_TOOLS)" % name)
        return os.path.join(tools, "firmware", IMAGES[name][0])
    if not os.path.isfile(name):
        raise ImageError("image %r: neither one of %s nor a file" % (name, ", ".join(sorted(IMAGES))))
    return name


def read_uf2(path):
    """Flash offset -> bytes of every block of the UF2 file (gzipped or not)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) % 512:
        raise ImageError("%s: %d bytes is not a whole number of 512-byte UF2 blocks" % (path, len(data)))
    blocks = {}
    for i in range(0, len(data), 512):
        m0, m1, flags, addr, size, _no, _count, family = struct.unpack_from("<8I", data, i)
        (m_end,) = struct.unpack_from("<I", data, i + 508)
        if (m0, m1, m_end) != UF2_MAGIC:
            raise ImageError("%s: block %d is not a UF2 block (bad magic)" % (path, i // 512))
        if flags & 1:  # "not main flash"
            continue
        if flags & 0x2000 and family != UF2_FAMILY_RP2040:
            raise ImageError("%s: block %d is for family 0x%08x, not the RP2040" % (path, i // 512, family))
        off = addr - FLASH_BASE
        if not 0 <= off <= FLASH_SIZE - size or size > 476:
            raise ImageError("%s: block %d writes 0x%x..0x%x, outside the 2 MiB flash"
                             % (path, i // 512, addr, addr + size))
        blocks[off] = data[i + 32:i + 32 + size]
    if not blocks:
        raise ImageError("%s: no flash blocks" % path)
    return blocks


def littlefs_image(files, size):
    """A littlefs image as MicroPython's rp2 `_boot.py` mounts it, holding {path: bytes}."""
    from littlefs import LittleFS
    fs = LittleFS(block_size=LFS_BLOCK, block_count=size // LFS_BLOCK, prog_size=LFS_PROG,
                  read_size=32, cache_size=LFS_PROG, lookahead_size=32)
    for path in sorted(files):
        parent = os.path.dirname(path.strip("/"))
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path.strip("/"), "wb") as f:
            f.write(files[path])
    return bytes(fs.context.buffer)


def flash_image(uf2, layout, romfs=None, files=None):
    """The 2 MiB flash: the UF2 image, the ROMFS image (bytes) at its partition, littlefs
    with `files` ({path: bytes}) at its offset (or left erased, for MicroPython to format)."""
    lfs_off, lfs_size, rom_off, rom_size = LAYOUTS[layout]
    # The ROMFS partition is only there when an image is built with one; an image without
    # (a stock or frozen one: firmware up to the file system) may use that flash itself.
    limit = rom_off if romfs is not None else lfs_off
    flash = bytearray(b"\xff" * FLASH_SIZE)
    for off, data in read_uf2(uf2).items():
        if off + len(data) > limit and off < lfs_off + lfs_size:
            raise ImageError("%s writes at 0x%x, inside the file system partitions of a %s layout"
                             % (uf2, off, layout))
        flash[off:off + len(data)] = data
    if romfs is not None:
        if len(romfs) > rom_size:
            raise ImageError("the ROMFS image is %d bytes; the partition holds %d" % (len(romfs), rom_size))
        flash[rom_off:rom_off + len(romfs)] = romfs
    if files:
        flash[lfs_off:lfs_off + lfs_size] = littlefs_image(files, lfs_size)
    return bytes(flash)


def read_littlefs(flash, layout):
    """{path: bytes} of every file in the chip's littlefs partition (after a run)."""
    from littlefs import LittleFS
    lfs_off, lfs_size, _r, _s = LAYOUTS[layout]
    fs = LittleFS(block_size=LFS_BLOCK, block_count=lfs_size // LFS_BLOCK, prog_size=LFS_PROG,
                  read_size=32, cache_size=LFS_PROG, lookahead_size=32, mount=False)
    fs.context.buffer[:] = flash[lfs_off:lfs_off + lfs_size]
    fs.mount()
    out = {}
    for root, _dirs, names in fs.walk("/"):
        for n in names:
            p = (root.rstrip("/") + "/" + n).lstrip("/")
            with fs.open(p, "rb") as f:
                out[p] = f.read()
    return out
