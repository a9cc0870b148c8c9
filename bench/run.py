"""Run every benchmark and write bench/results.json (one flat JSON object of numbers).

Each benchmark is a script printing one JSON object; CPython scripts run in the venv,
MicroPython ones under the real interpreter with the firmware as .mpy. Keys a script
does not produce are simply absent: nothing here is estimated or filled in. Lists,
per-run samples, the scripts' `notes` (e.g. no 32-bit interpreter) and how long each
script took go to bench/out/details.json only.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox_tools import mpy_build  # noqa: E402

# Virtual-time first, then the real-time ones over the rig (box under micropython), then
# the heap searches (several minutes each).
CPYTHON = ["protocol_bytes.py", "false_teardowns.py", "framing_overhead.py", "delivery.py", "detect.py", "failover.py",
           "recovery.py", "goodput.py", "call_drops.py", "mp_heap.py", "mp_box_heap.py", "attacks.py", "rp2_crypto.py",
           "rp2_box.py",
           "gateway_scale.py", "flood_lan.py", "storm.py"]
MICROPYTHON = [("mp_cpu.py", "128K")]


def run(cmd, seconds, env=None):
    name = os.path.basename(cmd[-1])
    print("bench:", " ".join(os.path.basename(c) for c in cmd), flush=True)
    t0 = time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=3600)
    seconds[name] = round(time.monotonic() - t0, 1)
    if out.returncode != 0:
        raise SystemExit("benchmark failed: %s\n%s%s" % (cmd, out.stdout, out.stderr))
    print("bench: %s took %.1f s" % (name, seconds[name]), flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    results = {}
    notes = []
    seconds = {}
    for script in CPYTHON:
        path = os.path.join(HERE, script)
        if os.path.exists(path):
            r = run([sys.executable, path], seconds)
            notes += r.pop("notes", [])
            results.update(r)
    mpy_build.build_mpy()
    for script, heap in MICROPYTHON:
        results.update(run([mpy_build.micropython_binary(), "-X", "heapsize=" + heap, os.path.join(HERE, script)],
                           seconds))
    results["notes"] = notes
    results["bench_seconds"] = seconds
    for n in notes:
        print("bench: note:", n, flush=True)
    numbers = {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(numbers, f, indent=1, sort_keys=True)
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "details.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)  # per-run samples, lists: not contract numbers
    print(json.dumps(numbers, sort_keys=True))


if __name__ == "__main__":
    main()
