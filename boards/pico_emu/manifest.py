# Plain Pico (RPI_PICO) image with gwbox frozen in, for the emulated RP2040 (docs/chip.md).
include("$(PORT_DIR)/boards/manifest.py")  # what the RPI_PICO image has (no networking)
include("../manifest_gwbox.py")  # the firmware, without host-only modules, and main.py
module("board.py")
