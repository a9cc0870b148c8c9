"""The re-authentication storm: 10,000 real boxes over a 3-gateway cluster, one gateway killed.

    python bench/storm.py            (GWBOX_STORM_BOXES=N for another size)

Two runs of gwbox_tools.loadtest (docs/headoffice.md has the set-up), each with BOXES
boxes (the firmware Box, a 9,600-baud modem line each, 20 ms one way) in worker processes,
three access servers and three gateway processes on loopback, logins spread over
BOXES / 50 s, one message per box every INTERVAL_S (HeartbeatDeferTime beyond it, so
payload left unanswered is what notices the death), FailbackTime 30 s:
  1. cached: once all carry, every box keys the next gateway of its order too; then the
     first gateway is SIGKILLed; then restarted (the failback wave);
  2. fresh: the same without the cached keys, no restart.
Keys (times from the kill; a box has recovered when a message of it is confirmed through
another gateway):
  storm_boxes, storm_boxes_on_victim, storm_recovery_ms (run 1: the last box, cached
  keys), storm_recovery_ms_median / _p95, storm_recovery_ms_fresh (run 2: the last box,
  fresh handshakes) and its _median / _p95, storm_payload_lost (both runs: messages a box
  accepted that never reached a target), storm_messages (accepted, both runs),
  storm_survivor_cpu_share (CPU s per wall s of the busiest survivor during run 2's
  storm), storm_survivor_rss_kb (its peak RSS), storm_cookies / storm_turned_away (run 2's
  admission at the survivors), storm_handshakes_per_s_max (largest growth of a survivor's
  sessions per second, run 2), failback_s / failback_wave_s / failback_handshakes_per_s_max
  (run 1), storm_host_load_max (the 1-minute load average during the storms: the machine
  is shared), storm_login_s (run 1: all 10,000 logged in).
Prints one JSON object; the full results of both runs go to bench/out/storm.json.
"""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox_tools.loadtest import LoadTest  # noqa: E402

BOXES = int(os.environ.get("GWBOX_STORM_BOXES", "10000"))
INTERVAL_S = 30.0


def progress(text):
    print("storm %s" % text, file=sys.stderr, flush=True)


def run(cached):
    with LoadTest(BOXES, 3, interval_s=INTERVAL_S, start_s=BOXES / 50.0, progress=progress) as lt:
        lt.login()
        if cached:
            lt.cache()
        lt.storm()
        if cached:
            lt.failback()
        lt.drain(timeout=300)
        return dict(lt.result)


def main():
    t0 = time.monotonic()
    a = run(True)
    b = run(False)
    busiest = max(b["storm_survivor_cpu_share"], key=lambda g: b["storm_survivor_cpu_share"][g])
    adm = b["storm_admission"].values()
    out = {
        "storm_boxes": BOXES,
        "storm_boxes_on_victim": a["storm_boxes_on_victim"],
        "storm_recovery_ms": a["storm_all_ms_max"],
        "storm_recovery_ms_median": a["storm_all_ms_median"],
        "storm_recovery_ms_p95": a["storm_all_ms_p95"],
        "storm_recovery_cached_boxes": a.get("storm_cached_key_boxes", 0),
        "storm_recovery_ms_fresh": b["storm_all_ms_max"],
        "storm_recovery_ms_fresh_median": b["storm_all_ms_median"],
        "storm_recovery_ms_fresh_p95": b["storm_all_ms_p95"],
        "storm_payload_lost": a["messages_lost"] + b["messages_lost"],
        "storm_messages": a["messages_accepted"] + b["messages_accepted"],
        "storm_survivor_cpu_share": b["storm_survivor_cpu_share"][busiest],
        "storm_survivor_rss_kb": b["storm_survivor_rss_kb"][busiest],
        "storm_cookies": sum(x["cookies_sent"] for x in adm),
        "storm_turned_away": sum(x["turned_away"] for x in adm),
        "storm_handshakes_per_s_max": max(x["handshakes_per_s_max"] for x in adm),
        "failback_s": a["failback_s"],
        "failback_wave_s": a["failback_wave_s"],
        "failback_handshakes_per_s_max": a["failback_handshakes_per_s_max"],
        "storm_host_load_max": max(a["storm_host_load_max"], b["storm_host_load_max"]),
        "storm_login_s": a["login_s"],
        "storm_bench_s": round(time.monotonic() - t0),
    }
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "storm.json"), "w") as f:
        json.dump({"cached": a, "fresh": b}, f, indent=1, sort_keys=True)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
