"""gwbox as the emulated chip loads it: compiled as `gwbox deploy` compiles it, in one of
the shipping forms (docs/chip.md):

* "romfs": the package's .mpy files in the ROMFS image `gwbox deploy --romfs` writes
  (run in place from flash), the top-level files (main.py, board.mpy) on littlefs;
* "littlefs": every module as a .mpy file on littlefs (the development form, which a
  stock image runs);
* "frozen": nothing but the top-level files the image does not hold; the image has gwbox
  frozen in (built outside the project, boards/README.md).
"""
from gwbox_tools import deploy, mpy_build, romfs_image

FORMS = ("romfs", "littlefs", "frozen")


def _compiled(board):
    """{device path relative to / (gwbox/sa.mpy, board.mpy, main.py): bytes}."""
    srcs = deploy.sources(mpy_build.FIRMWARE, board)
    local = deploy.build(mpy_build.FIRMWARE, srcs, chip_mpy_args(), board)
    out = {}
    for rel, path in local.items():
        with open(path, "rb") as f:
            out[deploy.device_path(rel).lstrip("/")] = f.read()
    return out


def chip_mpy_args():
    """mpy-cross options for the RP2040 (Cortex-M0+, armv6m), as `gwbox deploy` picks them
    for a Pico: the native-code modules are built for its CPU."""
    return ["-march=armv6m"]


def layout(form, board=None, main=True, extra=None):
    """(ROMFS image bytes or None, {littlefs path: bytes}) for a form.

    board: the boards/ folder whose board.py goes on the file system (None: none);
    main: whether main.py goes too (without it the chip boots to the REPL, for scripts);
    extra: more files for littlefs ({path: bytes}, e.g. a policy)."""
    if form not in FORMS:
        raise ValueError("form must be one of %s, not %r" % (", ".join(FORMS), form))
    files = _compiled(board)
    if not main:
        files.pop("main.py", None)
    package = {p: d for p, d in files.items() if "/" in p}
    top = {p: d for p, d in files.items() if "/" not in p}
    if form == "littlefs":
        lfs, rom = dict(files), None
    elif form == "romfs":
        lfs, rom = top, romfs_image.build_image(package)
    else:
        lfs, rom = top, None
    lfs.update(extra or {})
    return rom, lfs
