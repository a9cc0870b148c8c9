"""Peak heap of a node under MicroPython: the smallest -X heapsize that completes the scenario.

Runs the two-process scenario of tests/host/test_mp_two_node_scenario.py at decreasing
per-node heap sizes (firmware as .mpy) and reports the smallest that passes three runs
in a row, the heap in use right after a node's imports, and the difference. Also the
live peak: the most a node holds after a collection, sampled through the same scenario
at a roomy heap; what the smallest heap needs beyond it is transient objects and
fragmentation. Prints one JSON object.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, p) for p in ("firmware", "tests/firmware", "host_tools", "tests", "tests/host")]

from gwbox_tools import mpy_build  # noqa: E402


def passes(heap_k, runs=3):
    """The scenario completes `runs` times in a row at this per-node heap."""
    env = dict(os.environ, GWBOX_NODE_HEAP="%dK" % heap_k)
    for _ in range(runs):
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            os.path.join(ROOT, "tests/host/test_mp_two_node_scenario.py")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            return False
    return True


def import_heap():
    mpy_build.build_mpy()
    code = ("import gc\ngc.collect()\na=gc.mem_alloc()\nimport gwbox.port.pipe, gwbox.initiator\n"
            "gc.collect()\nprint(gc.mem_alloc()-a)")
    env = dict(os.environ, MICROPYPATH="lib")  # as gwbox_tools.mp_node runs a node
    out = subprocess.run([mpy_build.micropython_binary(), "-X", "heapsize=256K", "-c", code],
                         env=env, cwd=mpy_build.BUILD, capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def live_peak(heap="96K"):
    """Largest gc.mem_alloc() after gc.collect() of either node through the scenario."""
    import netsim
    from gwbox_tools.mp_node import MpNode
    from test_mp_two_node_scenario import SETTINGS as settings  # the very scenario the test runs
    peak = 0
    with MpNode(b"box1", psk=netsim.PSK, expect_peer=b"gw1", settings=settings, heap=heap) as a, \
            MpNode(b"gw1", psks={b"box1": netsim.PSK}, settings=settings, heap=heap) as b:
        n = netsim.Net(a, b)
        n.keep_payloads = False
        n.connect()
        for i in range(1000):
            a.send(b"box->gw %04d" % i, n.now)
            b.send(b"gw->box %04d" % i, n.now)
            n.run_for(10)
            if i % 5 == 0:
                peak = max(peak, a.heap()[0], b.heap()[0])
        for _ in range(30):
            n.run_for(1000)
            peak = max(peak, a.heap()[0], b.heap()[0])
        assert not a.errors and not b.errors, (a.errors, b.errors)
    return peak


def main():
    lo, hi = 48, 80  # K; bisect on 1K steps, three runs per step
    assert passes(hi), "scenario fails even at %dK" % hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    peak = hi * 1024
    imports = import_heap()
    print(json.dumps({"mp_peak_heap_bytes": peak, "mp_import_heap_bytes": imports,
                      "mp_state_heap_bytes": peak - imports, "mp_live_peak_bytes": live_peak(),
                      "mp_heap_word_bits": 64}))


if __name__ == "__main__":
    main()
