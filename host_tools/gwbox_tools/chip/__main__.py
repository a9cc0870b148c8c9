"""`python -m gwbox_tools.chip run SCRIPT`: run a MicroPython script on the emulated RP2040
with gwbox loaded, print its output, then (on stderr) the device time it took.

Device time is the chip's own clock (125 MHz simulated cycles): time.ticks_ms() and
time.ticks_us() in the script read it too, so a script can time its own parts.
"""
import argparse
import sys
import time

from gwbox_tools.chip import firmware, images, repl
from gwbox_tools.chip.runner import Chip, ChipError

DEFAULT_IMAGE = {"romfs": "pico_romfs", "littlefs": "pico", "frozen": None}


def build_flash(form, image, board=None, main=False, extra=None):
    """(flash bytes, layout) for `image` with gwbox in `form` (firmware.FORMS)."""
    image = image or DEFAULT_IMAGE[form]
    if image is None:
        raise images.ImageError("the frozen form needs --image: a .uf2 built with gwbox frozen in")
    layout = images.IMAGES[image][1] if image in images.IMAGES else ("pico_w" if "_W" in image.upper() else "pico")
    if form == "romfs" and image in images.IMAGES and not images.IMAGES[image][2]:
        raise images.ImageError("image %s has no ROMFS partition: use pico_romfs or pico_w_romfs, "
                                "or --form littlefs" % image)
    rom, files = firmware.layout(form, board=board, main=main, extra=extra)
    return images.flash_image(images.image_path(image), layout, romfs=rom, files=files), layout


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m gwbox_tools.chip", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a MicroPython script on the chip, gwbox loaded")
    run.add_argument("script", help="the script (a .py file; - for standard input)")
    run.add_argument("--form", choices=firmware.FORMS, default="romfs",
                     help="how gwbox is on the chip (default romfs: the .mpy files run in place)")
    run.add_argument("--image", help="a MicroPython image: %s, or a .uf2[.gz] path (default: "
                     "pico_romfs for --form romfs, pico for littlefs)" % ", ".join(sorted(images.IMAGES)))
    run.add_argument("--board", help="a boards/ folder whose board.py goes on the chip too (e.g. pico_emu)")
    run.add_argument("--limit-ms", type=float, default=120000,
                     help="give up after this much device time (default 120000)")
    args = ap.parse_args(argv)
    code = sys.stdin.read() if args.script == "-" else open(args.script).read()
    t0 = time.monotonic()
    try:
        flash, _layout = build_flash(args.form, args.image, board=args.board)
        with Chip(flash) as chip:
            repl.wait_prompt(chip)
            boot_ms = chip.ms
            result = repl.exec_raw(chip, code, args.limit_ms)
    except (ChipError, images.ImageError) as e:
        print("chip: %s" % e, file=sys.stderr)
        return 2
    sys.stdout.write(result.out.decode(errors="replace").replace("\r\n", "\n"))
    sys.stdout.flush()
    if result.err:
        sys.stderr.write(result.err.decode(errors="replace").replace("\r\n", "\n"))
    print("chip: device time %.1f ms (boot to prompt %.1f ms); host time %.1f s"
          % (result.device_ms, boot_ms, time.monotonic() - t0), file=sys.stderr)
    return 1 if result.err else 0


if __name__ == "__main__":
    sys.exit(main())
