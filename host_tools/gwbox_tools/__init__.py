"""gwbox host tools (CPython only): modem emulator and the pieces the `gwbox` CLI is built from.

Kept import-free so that `python -m gwbox_tools.<tool>` runs each tool without dragging in
the others.
"""
