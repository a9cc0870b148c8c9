"""pytest plugin: `--dist loadgroup` keeps each xdist_group in one worker with pytest 9.2.

pytest-xdist (3.8) tells its scheduler a test's group by appending "@<group>" to the
test's node id in the worker (`item._nodeid = ...`). pytest 9.2 keeps node ids as a
structured `_id`, so that assignment changes nothing and every group is silently spread
over the workers (pytest-xdist issue 1386): the CPU-heavy tests `make test` keeps apart
would run side by side. This hook appends the suffix where pytest 9.2 reads it, with
xdist's rule for the name (several groups: their names sorted, joined by "_"), and does
nothing where the id already carries it (an xdist or pytest that works by itself).
tests/host/test_cli_setup.py checks that the groups hold.
"""
import pytest


def group_suffix(item):
    names = set()
    for mark in item.iter_markers("xdist_group"):
        names.add(str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")))
    return "@" + "_".join(sorted(names)) if names else ""


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers under --dist loadgroup
        return
    for item in items:
        suffix = group_suffix(item)
        if not suffix or item.nodeid.endswith(suffix):
            continue
        if hasattr(item, "_id"):  # pytest >= 9.2: a NodeId; its parse keeps the string as given
            item._id = type(item._id).parse(item.nodeid + suffix)
        else:
            item._nodeid = item.nodeid + suffix
