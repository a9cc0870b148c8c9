"""Drive the firmware suite under the real MicroPython interpreter at device heap size.

One pytest item per firmware test module and interpreter, each in a fresh micropython
process with the heap the module declares (64K per device the module hosts: 64K, 128K for
a box and a gateway, 256K for a box and three gateways): as is on the 32-bit interpreter
(boards are 32-bit) where there is one, 1.4 times it on the 64-bit one.
"""
import pytest

import mp_suite


def test_suite_is_not_empty():
    assert len(mp_suite.modules()) >= 10


def test_heap_declarations_are_device_sized():
    # 64K per device hosted in the module's one interpreter: a box and three gateways, 256K
    for m in mp_suite.modules():
        assert mp_suite.declared_heap(m) in ("64K", "128K", "256K"), m


@pytest.mark.xdist_group("cpu")  # CPU-bound: one such test at a time in `make test` (Makefile)
@pytest.mark.parametrize("leg", mp_suite.legs(), ids=lambda leg: leg[0])
@pytest.mark.parametrize("module", mp_suite.modules())
def test_firmware_module_under_micropython(module, leg, record_property):
    passed, failed, out = mp_suite.run_module(module, leg)
    # Through the test's report, so tests/conftest.py prints the totals whichever process ran it.
    record_property("micropython", (module, leg[0], passed, failed))
    assert failed == 0 and passed > 0, out
