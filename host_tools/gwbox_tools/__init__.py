"""gwbox host tools (CPython only): the `gwbox` command and the pieces it is built from.

Kept nearly import-free so that `python -m gwbox_tools.<tool>` runs each tool without
dragging in the others. The tools run the firmware's own code (the gateway, the policy
parser, the emulated box), which is not packaged: it is read from this checkout, so its
folder goes on the module path here, once, for every entry point (the `gwbox` script
installed by `make venv` included).
"""
import os as _os
import sys as _sys

_FIRMWARE = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))),
                          "firmware")
if _FIRMWARE not in _sys.path:
    _sys.path.append(_FIRMWARE)

from gwbox.port import host_aes as _host_aes  # noqa: E402  (the firmware's AES on CPython)

_host_aes.install()
