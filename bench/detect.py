"""detect_ms: gateway death to SA deleted at the box, real time, default LinkConfig.

Box and gateway run in real time (host runner) over the modem emulator at 9,600 baud.
Once the SA is up, the gateway is frozen (carrier stays up, nothing passes: the case
only the keepalive can catch) at a fixed offset after the last keepalive ack, and the
time until the box reports sa_deleted is measured on the runners' event clock. Runs at
offsets spread over the idle period; reports the median and the worst, and the bound
(keepalive_idle_ms + (retries+1) * response_ms after the last packet heard).
"""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox import ticks  # noqa: E402
from gwbox.config import LinkConfig  # noqa: E402
from gwbox_tools.rig import LinkRig  # noqa: E402
from gwbox_tools.runner import clock_ms  # noqa: E402

PSK = os.urandom(32)
OFFSETS_S = (1.0, 5.0, 9.0)  # freeze this long after an ack: early, middle, late in the idle period


def wait_for(runner, name, start, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for e in runner.events[start:]:
            if e["event"] == name:
                return e
        time.sleep(0.01)
    raise SystemExit("detect bench: no %s within %.0f s" % (name, timeout_s))


def one_run(cfg, offset_s):
    with LinkRig(cfg, PSK) as rig:
        box = rig.box
        wait_for(box, "sa_established", 0, 60)
        ack = wait_for(box, "keepalive_ack", 0, cfg.keepalive_idle_ms / 1000.0 + 10)
        while ticks.diff(clock_ms(), ack["t_ms"]) < offset_s * 1000:
            time.sleep(0.005)
        mark = len(box.events)
        killed = clock_ms()
        rig.emu.freeze("gw1")
        dead = wait_for(box, "sa_deleted", mark, cfg.detect_bound_ms() / 1000.0 + 10)
        return ticks.diff(dead["t_ms"], killed), ticks.diff(dead["t_ms"], ack["t_ms"])


def main():
    cfg = LinkConfig()
    runs = [one_run(cfg, o) for o in OFFSETS_S]
    detect = sorted(r[0] for r in runs)
    print(json.dumps({"detect_ms": detect[len(detect) // 2], "detect_ms_max": detect[-1],
                      "detect_since_heard_ms_max": max(r[1] for r in runs),
                      "detect_bound_ms": cfg.detect_bound_ms(), "detect_runs_ms": [r[0] for r in runs]}))


if __name__ == "__main__":
    main()
