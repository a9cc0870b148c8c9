# Freeze gwbox into the board firmware: bytecode and names stay in flash, not the heap.
# Build: make BOARD=... FROZEN_MANIFEST=$(pwd)/manifest.py  in micropython/ports/<port>
include("$(PORT_DIR)/boards/manifest.py")
package("gwbox", base_path="../../firmware", opt=0)
module("board.py")
module("main.py", base_path="../../firmware")
