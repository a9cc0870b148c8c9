"""Peak heap of a protocol node under MicroPython: the least -X heapsize that completes the
two-node scenario, per interpreter.

The scenario is tests/host/test_mp_two_node_scenario.py's, run as it is (its test
function, in a fresh CPython process per run, GWBOX_NODE_HEAP set): box and gateway each
in its own `micropython` process, firmware as .mpy, handshake, 1,000 messages each way,
heartbeats, rekeys by time and by bytes, the peer goes silent and is declared dead.

The search is heapsearch.py's, from LOW_K (a node cannot even finish its handshake
there; checked), 20 of 20 runs at the answer, PARALLEL runs at a time. Also the heap a node's imports hold (gwbox.port.pipe and
gwbox.initiator, after a collection, over the bare interpreter) and the live peak: the
most either node holds after a collection through the same traffic (gc.mem_alloc after
gc.collect, sampled every 5 messages and through 30 s of idle), at LIVE_K or, if the
scenario needs more, at the least heap + 16K.

Keys (64-bit: the .venv `micropython`; 32-bit: MICROPYTHON32 or
../shared/tools/micropython32/micropython, as mp32_*, skipped with a note when absent):
  mp_peak_heap_bytes    the least per-node heap (bytes), 20 of 20 runs passing
  mp_import_heap_bytes  heap held by a node's imports
  mp_state_heap_bytes   the difference
  mp_live_peak_bytes    the live peak
  mp_heap_word_bits     struct.calcsize("P") * 8 of the interpreter
Prints one JSON object.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = [os.path.join(ROOT, p) for p in ("firmware", "tests/firmware", "host_tools", "tests", "tests/host")]
sys.path[:0] = PATHS

from gwbox_tools import mpy_build  # noqa: E402
from heapsearch import CONFIRM_RUNS, HeapSearch, interpreters, mp_run, word_bits  # noqa: E402

LOW_K = 16
LIVE_K = 96
PARALLEL = int(os.environ.get("GWBOX_HEAP_PARALLEL", "2"))

# One run of the test's scenario, both nodes on interpreter argv[1].
# The heap is GWBOX_NODE_HEAP exactly (scale 1.0): the search is per interpreter.
RUN = """
import sys
import test_mp_two_node_scenario as t
t.test_two_micropython_nodes_full_scenario(("bench", sys.argv[1], 1.0))
"""


def scenario(exe, heap_k):
    """One run at heap_k: None if it passed, else the last line of what went wrong."""
    env = dict(os.environ, GWBOX_NODE_HEAP="%dK" % heap_k,
               PYTHONPATH=os.pathsep.join(PATHS + [os.environ.get("PYTHONPATH", "")]))
    try:
        r = subprocess.run([sys.executable, "-c", RUN, exe], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "timeout"
    if r.returncode == 0:
        return None
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    return (lines[-1] if lines else "exit %d" % r.returncode)[:200]


def import_heap(exe):
    return int(mp_run("mp_heap", exe, "import gc\ngc.collect()\na=gc.mem_alloc()\nimport gwbox.port.pipe, gwbox.initiator\n"
                           "gc.collect()\nprint(gc.mem_alloc()-a)", mpy_build.BUILD, "lib")[-1])  # as mp_node runs a node


def live_peak(exe, heap_k):
    """Largest gc.mem_alloc() after gc.collect() of either node through the scenario's traffic."""
    import netsim
    from gwbox_tools.mp_node import MpNode
    from test_mp_two_node_scenario import SETTINGS as settings  # the very scenario the test runs
    peak = 0
    heap = "%dK" % heap_k
    with MpNode(b"box1", psk=netsim.PSK, expect_peer=b"gw1", settings=settings, heap=heap, micropython=exe) as a, \
            MpNode(b"gw1", psks={b"box1": netsim.PSK}, settings=settings, heap=heap, micropython=exe) as b:
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
    mpy_build.build_mpy()
    out = {"notes": [], "mp_heap_log": {}, "mp_heap_seconds": {}}
    exes = interpreters(out["notes"], "mp32_*")
    for prefix, exe in exes:
        t1 = time.monotonic()
        log = out["mp_heap_log"][prefix] = []
        least = HeapSearch("mp_heap", scenario, LOW_K, PARALLEL).least_heap(exe, log)
        imports = import_heap(exe)
        live_k = max(LIVE_K, least + 16)
        out[prefix + "_peak_heap_bytes"] = least * 1024
        out[prefix + "_import_heap_bytes"] = imports
        out[prefix + "_state_heap_bytes"] = least * 1024 - imports
        out[prefix + "_live_peak_bytes"] = live_peak(exe, live_k)
        out[prefix + "_live_peak_at_heap_bytes"] = live_k * 1024
        out[prefix + "_heap_word_bits"] = word_bits("mp_heap", exe, mpy_build.BUILD)
        out[prefix + "_heap_runs"] = sum(x["runs"] for x in log)
        out["mp_heap_seconds"][prefix] = round(time.monotonic() - t1, 1)
    out["mp_heap_confirm_runs"] = CONFIRM_RUNS
    print(json.dumps(out))


if __name__ == "__main__":
    main()
