"""detect_ms: the gateway in use freezes -> the box starts its failover, real time, default policy.

Set-up: gwbox_tools.cluster_rig, i.e. the whole box firmware under micropython (256K heap,
firmware as .mpy) on the modem emulator's pty at 9,600 baud (latency 20 ms each way), the
access server and three gateways as processes. The policy gives only topology and keys
(`general=""`, no preferred gateway, so no failback interferes): every liveness timer is
at its embedded default (HeartbeatDeferTime 5 s, HeartbeatResponseTime 1 s,
HeartbeatRetries 5). The gateway in use is frozen (SIGSTOP: carrier up, the call and the
access server stay, nothing answers); detection = freeze -> the box's `gateway_dead`
event, both on the host's monotonic clock (the box's events are stamped when the host
reads them from its stdout).

Two situations, reported separately and together:
  idle     freeze at OFFSETS_S after a `heartbeat_ack` of the gateway in use, i.e.
           spread over one heartbeat period;
  traffic  numbered messages at TRAFFIC_HZ; freeze at points spread over one message
           period.
One rig for all runs: after each detection the frozen gateway is thawed, the box is on
another gateway (fresh handshake), and the next run starts once that gateway carries
(idle: an answered heartbeat; traffic: messages handed on for SETTLE_S).

detect_ms = median over every run of both situations; detect_ms_max the worst;
detect_bound_ms = HeartbeatDeferTime + (retries + 1) x HeartbeatResponseTime (the idle
worst case after the last proof of life). Prints one JSON object.
"""
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox.policy import parse  # noqa: E402
from gwbox_tools.cluster_rig import ClusterRig  # noqa: E402

OFFSETS_S = (0.5, 1.5, 2.5, 3.5, 4.5)  # idle: freeze this long after an answered heartbeat
TRAFFIC_HZ = 4.0
SETTLE_S = 3.0


def current_gateway(rig, start):
    """The gateway the box uses, once it is in use (a cached key also verified)."""
    use = rig.wait_box("gateway_in_use", 60, start)
    if use.get("how") == "cached_key":
        rig.wait_box("gateway_verified", 30, rig.index(use), gateway=use["gateway"])
    return use["gateway"], rig.index(use)


def measure(rig, gw, freeze_at):
    """Freeze `gw` at monotonic time `freeze_at`; ms until the box's gateway_dead."""
    while time.monotonic() < freeze_at:
        time.sleep(0.001)
    mark = rig.box.count()
    t = rig.freeze(gw)
    dead = rig.wait_box("gateway_dead", 60, mark, gateway=gw)
    rig.thaw(gw)
    if dead.get("reason") != "peer_dead":
        raise SystemExit("detect bench: %s declared dead for %s" % (gw, dead.get("reason")))
    return int(round((dead["mono"] - t) * 1000)), rig.index(dead)


def idle_runs(rig, start):
    runs = []
    for off in OFFSETS_S:
        gw, i = current_gateway(rig, start)
        # an answered heartbeat of a round that began on time (attempt 1), after the gateway came in use
        ack = None
        while ack is None:
            e = rig.wait_box("heartbeat_ack", 30, i, peer=gw)
            i = rig.index(e) + 1
            sent = [s for s in rig.box.find("heartbeat_sent", 0, peer=gw, id=e["id"])]
            if sent and sent[-1].get("attempt") == 1:
                ack = e
        ms, start = measure(rig, gw, ack["mono"] + off)
        runs.append(ms)
    return runs, start


def traffic_runs(rig, start, n):
    runs = []
    with rig.traffic(TRAFFIC_HZ) as feed:
        for k in range(n):
            gw, i = current_gateway(rig, start)
            t_use = rig.box.events[i]["mono"]
            while not rig.handed_on(gw, t_use) or time.monotonic() < t_use + SETTLE_S:
                time.sleep(0.05)
            # spread the freeze over one message period
            sent = feed.last
            feed.wait_for(sent + 1, 10)
            ms, start = measure(rig, gw, time.monotonic() + (k + 0.5) / n / TRAFFIC_HZ)
            runs.append(ms)
        last = feed.last
    return runs, start, last


def main():
    with ClusterRig(general="", preferred=None, baud=9600) as rig:
        with open(rig.policy_path) as f:
            pol = parse(f.read())
        bound = pol.defer_ms + (pol.retries + 1) * pol.response_ms
        idle, start = idle_runs(rig, 0)
        traffic, start, sent = traffic_runs(rig, start, len(OFFSETS_S))
        rig.wait_delivered(range(1, sent + 1), 30)
        lost = [i for i in range(1, sent + 1) if i not in rig.delivered()]
        rtts = rig.heartbeat_rtts()
        if not rig.box.alive():
            raise SystemExit("detect bench: the box died: %s" % rig.box.stderr[-10:])
    both = idle + traffic
    print(json.dumps({
        "detect_ms": int(statistics.median(both)),
        "detect_ms_max": max(both),
        "detect_ms_idle": int(statistics.median(idle)),
        "detect_ms_traffic": int(statistics.median(traffic)),
        "detect_bound_ms": bound,
        "detect_runs_idle_ms": idle,
        "detect_runs_traffic_ms": traffic,
        "detect_idle_offsets_s": list(OFFSETS_S),
        "detect_heartbeat_rtt_ms": int(statistics.median(rtts)) if rtts else None,
        "detect_traffic_messages": sent,
        "detect_traffic_lost": len(lost),
    }))


if __name__ == "__main__":
    main()
