"""Drive the firmware suite under the real MicroPython interpreter at device heap size.

One pytest item per firmware test module, each in a fresh `micropython -X heapsize=64K`
process, so a failure names its module and one module's heap use cannot hide another's.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FW_TESTS = os.path.join(ROOT, "tests", "firmware")
HEAP = os.environ.get("GWBOX_MP_HEAP", "64K")


def micropython_binary():
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    return here if os.path.exists(here) else "micropython"


MODULES = sorted(n for n in os.listdir(FW_TESTS) if n.startswith("test_") and n.endswith(".py"))


def test_suite_is_not_empty():
    assert len(MODULES) >= 1


@pytest.mark.parametrize("module", MODULES)
def test_firmware_module_under_micropython(module):
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=" + HEAP, os.path.join(ROOT, "tests", "mp_run.py"), module],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    last = [l for l in out.splitlines() if " passed, " in l]
    assert last, out
    assert last[-1].startswith("micropython: "), out
    assert " 0 failed" in last[-1], out
    assert proc.returncode == 0, out
