"""A ROMFS partition on the unix port: GWBOX_ROMFS names an image file (gwbox_tools.romfs_image).

A board with a ROMFS partition mounts it at /rom before main.py runs and appends /rom and
/rom/lib to sys.path; its modules then run in place from flash. The unix port has no
flash: the image is read into one bytearray, the first thing boot allocates, and mounted
from there. Modules imported from it are not copied again, as on a board, so the heap
the box needs is the heap it runs in minus that one allocation (bench/mp_box_heap.py
subtracts it; docs/memory.md).
"""
import os
import sys
import vfs


def mount(path):
    image = bytearray(os.stat(path)[6])
    with open(path, "rb") as f:
        f.readinto(image)
    vfs.mount(vfs.VfsRom(image), "/rom")
    sys.path.append("/rom")
    sys.path.append("/rom/lib")
