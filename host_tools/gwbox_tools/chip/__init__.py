"""gwbox on an emulated RP2040 (rp2040js): the chip runner (docs/chip.md).

images: the flash (a MicroPython rp2 image, gwbox as ROMFS or littlefs files);
firmware: gwbox compiled as deploy compiles it, in each shipping form;
runner: the chip under Node, stepped in device time; repl: scripts through the raw REPL;
__main__: `python -m gwbox_tools.chip run script.py`.
"""
