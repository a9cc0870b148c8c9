# The unix port as a board (tests, demo, measurements): the unix "standard" variant's own
# modules plus the gwbox firmware frozen in, as a production image would ship it. The
# board files (board.py, machine.py) stay loadable from boards/unix: the stand-in machine
# module must shadow the unix port's own, which a frozen module cannot.
# Build (docs/memory.md has the measurements; a MicroPython v1.28.0 tree with submodules):
#   make -C mpy-cross
#   make -C ports/unix MICROPY_FORCE_32BIT=1 MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 \
#        LDFLAGS_EXTRA=-static FROZEN_MANIFEST=$GWBOX/boards/unix/manifest.py
include("$(PORT_DIR)/variants/standard/manifest.py")
include("../manifest_gwbox.py")
