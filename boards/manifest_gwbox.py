# The gwbox firmware for a board's freeze manifest. A board's manifest.py includes it after
# the port's or board's own manifest and adds its board.py:
#     include("../manifest_gwbox.py")
#     module("board.py")
# Freezes every firmware module except the host-only ones, and main.py. (Paths here are
# relative to boards/, this file's folder.) Frozen code keeps its bytecode and names in
# flash, not on the heap.
import os

# The same list as HOST_ONLY in host_tools/gwbox_tools/deploy.py (tests/host/test_boards.py
# checks that they agree): modules that only ever run on the host.
HOST_ONLY = ("gwbox/port/host_aes.py", "gwbox/port/host_x25519.py", "gwbox/port/pipe.py")

_fw = os.path.join("..", "firmware")
_files = []
for _d, _dirs, _names in os.walk(os.path.join(_fw, "gwbox")):
    _dirs[:] = sorted(x for x in _dirs if x != "__pycache__")
    for _n in sorted(_names):
        _rel = os.path.relpath(os.path.join(_d, _n), _fw).replace(os.sep, "/")
        if _n.endswith(".py") and _rel not in HOST_ONLY:
            _files.append(_rel[len("gwbox/"):])
package("gwbox", files=_files, base_path=_fw, opt=0)
module("main.py", base_path=_fw)
