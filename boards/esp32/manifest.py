# ESP32 image with gwbox frozen in (boards/README.md has the build line).
include("$(PORT_DIR)/boards/manifest.py")  # what the ESP32_GENERIC image has
include("../manifest_gwbox.py")  # the firmware, without host-only modules, and main.py
module("board.py")
