"""pytest set-up: firmware/ and the dual-runtime tests are importable on CPython."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware"),
          os.path.join(ROOT, "host_tools"), ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)
