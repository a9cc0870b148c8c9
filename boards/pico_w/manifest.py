# Pico W image with gwbox frozen in (boards/README.md has the build line).
include("$(BOARD_DIR)/manifest.py")  # what the RPI_PICO_W image has (networking, Bluetooth)
include("../manifest_gwbox.py")  # the firmware, without host-only modules, and main.py
module("board.py")
