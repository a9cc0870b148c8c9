"""gwbox (the package): forget() drops modules from sys.modules and from their package."""
import sys

import gwbox
from gwbox import forget


def test_forget_drops_every_module_named_from_sys_modules_and_its_package():
    __import__("gwbox.ipv4")
    __import__("gwbox.policyvalue")
    assert hasattr(gwbox, "ipv4") and hasattr(gwbox, "policyvalue")
    forget("gwbox.ipv4", "gwbox.policyvalue")
    assert "gwbox.ipv4" not in sys.modules and "gwbox.policyvalue" not in sys.modules
    assert not hasattr(gwbox, "ipv4") and not hasattr(gwbox, "policyvalue")
    from gwbox.ipv4 import ip_to_int  # imported again when next needed
    assert ip_to_int("10.0.0.1") == 0x0A000001 and "gwbox.ipv4" in sys.modules


def test_forget_ignores_modules_that_are_not_loaded():
    forget("gwbox.policyvalue")
    forget("gwbox.policyvalue", "gwbox.no_such_module")
    assert "gwbox.policyvalue" not in sys.modules
    forget()
