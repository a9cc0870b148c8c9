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

import xdist_groups  # noqa: E402

pytest_collection_modifyitems = xdist_groups.pytest_collection_modifyitems  # make test's xdist groups hold


MP_RESULTS = {}  # (module, leg) -> (passed, failed), from the reports of this run's workers


def pytest_runtest_logreport(report):
    """Gather the MicroPython suite's per-module counts from each test's report: with
    `make test`'s workers (pytest-xdist) the tests run in other processes, and only their
    reports (with user_properties) come back to this one."""
    if report.when == "call":
        for name, value in report.user_properties:
            if name == "micropython":
                module, leg, passed, failed = value
                MP_RESULTS[(module, leg)] = (passed, failed)


def pytest_terminal_summary(terminalreporter):
    """Print the MicroPython suite's own totals (its tests are counted inside one pytest item
    per module), as `micropython: N passed, N failed`."""
    results = MP_RESULTS
    if results:
        passed = sum(p for p, _ in results.values())
        failed = sum(f for _, f in results.values())
        legs = sorted(set(k[1] for k in results))
        terminalreporter.write_line("micropython (%d module runs on %s, device-sized heaps): %d passed, %d failed"
                                    % (len(results), "+".join(legs), passed, failed))
        if "mp32" not in legs:
            terminalreporter.write_line("micropython32: not on this machine: the 32-bit leg was skipped")
