"""pytest set-up: firmware/ and the dual-runtime tests are importable on CPython."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware"),
          os.path.join(ROOT, "host_tools"), ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)

from gwbox.port import host_aes  # noqa: E402  (CPython is a port: it hands the firmware its AES)

host_aes.install()


def pytest_terminal_summary(terminalreporter):
    """Print the MicroPython suite's own totals (its tests are counted inside one pytest item
    per module), as `micropython: N passed, N failed`."""
    mod = sys.modules.get("test_micropython_suite")
    results = getattr(mod, "RESULTS", None)
    if results:
        passed = sum(p for p, _ in results.values())
        failed = sum(f for _, f in results.values())
        legs = sorted(set(k[1] for k in results))
        terminalreporter.write_line("micropython (%d module runs on %s, device-sized heaps): %d passed, %d failed"
                                    % (len(results), "+".join(legs), passed, failed))
        if "mp32" not in legs:
            terminalreporter.write_line("micropython32: not on this machine: the 32-bit leg was skipped")
