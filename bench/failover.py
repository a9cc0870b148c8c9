"""failover_cached_ms / failover_fresh_ms: the gateway in use dies -> the first message
delivered through the next gateway, with and without a cached key; payload lost and
duplicated across the failovers.

Set-up: gwbox_tools.cluster_rig (box firmware under micropython, 256K heap, as .mpy; modem
emulator at 9,600 baud, latency 20 ms each way; access server and three gateways as
processes), preferred gateway G1. Policy: topology and keys, every liveness timer at its
embedded default (HeartbeatDeferTime 5 s, HeartbeatResponseTime 1 s, HeartbeatRetries 5);
only `FailbackTime = 5` (how soon the box returns to G1: not a liveness setting, it only
shortens the set-up) and `StatusInterval = 1` (status lines on the box's console, to read
its own count of possibly duplicated messages). Numbered messages flow at TRAFFIC_HZ
throughout. Each of RUNS runs uses a fresh rig:

  1. boot on G1, idle for IDLE_S (a heartbeat round trip is measured), traffic starts;
  2. fresh: G1 freezes (SIGSTOP: carrier up, nothing answers); the box detects it and
     authenticates the next gateway X (no key with it yet);
  3. G1 thaws, the box fails back to it (new handshake with G1); X's key stays cached;
  4. cached: G1 freezes again; the box takes X's cached key into use at once;
  5. G1 thaws, the traffic stops, everything sent must arrive.

Times on the host's monotonic clock: freeze -> `gateway_dead` (detection) -> the box's
`gateway_in_use` (switch) -> the first `handed_on` event of X after the freeze (first
delivery: X handed a message to its target host). failover_*_ms = freeze -> that first
delivery, median over the runs; components likewise. One round trip = the median
`rtt_ms` of the box's heartbeat acks while idle. payload_lost_failover (sum over the
runs: numbers sent that never reached a target) and payload_duplicated_failover (sum:
extra copies that reached a target), next to the box's own count (`rerouted`).
Prints one JSON object.
"""
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox_tools.cluster_rig import GATEWAYS, ClusterRig  # noqa: E402

G1 = GATEWAYS[0]
RUNS = 3
TRAFFIC_HZ = 4.0
IDLE_S = 6.5
STEADY_S = 4.0
GENERAL = "FailbackTime = 5\nStatusInterval = 1"


def first_handed_on(rig, gw, since, timeout=30):
    h = rig.first_handed_on(gw, since, timeout)
    if h is None:
        raise SystemExit("failover bench: %s handed nothing on within %d s" % (gw, timeout))
    return h


def failover(rig, kind):
    """Freeze G1 (in use), measure until the first message is handed on by the next one."""
    mark = rig.box.count()
    t = rig.freeze(G1)
    dead = rig.wait_box("gateway_dead", 60, mark, gateway=G1)
    use = rig.wait_box("gateway_in_use", 60, mark)
    x = use["gateway"]
    want = "cached_key" if kind == "cached" else "authenticated"
    if use.get("how") != want:
        raise SystemExit("failover bench: %s failover used %s (%s)" % (kind, x, use.get("how")))
    h = first_handed_on(rig, x, t)
    rig.thaw(G1)
    ms = lambda a, b: int(round((b - a) * 1000))  # noqa: E731
    return {"total": ms(t, h["mono"]), "detect": ms(t, dead["mono"]), "switch": ms(dead["mono"], use["mono"]),
            "first": ms(use["mono"], h["mono"]), "gateway": x}


def one_run():
    with ClusterRig(general=GENERAL, baud=9600) as rig:
        rig.wait_box("gateway_in_use", 60, gateway=G1)
        i = rig.box.count()
        time.sleep(IDLE_S)
        rtts = rig.heartbeat_rtts(i)
        with rig.traffic(TRAFFIC_HZ) as feed:
            time.sleep(STEADY_S)
            mark = rig.box.count()
            fresh = failover(rig, "fresh")
            rig.wait_box("failback", 60, mark, gateway=G1)
            time.sleep(STEADY_S)
            cached = failover(rig, "cached")
            if cached["gateway"] != fresh["gateway"]:
                raise SystemExit("failover bench: the cached key was %s's, not %s's" % (
                    cached["gateway"], fresh["gateway"]))
            time.sleep(STEADY_S)
            feed.stop()
        sent = feed.last
        rig.wait_delivered(range(1, sent + 1), 60)
        d = rig.delivered()
        lost = [n for n in range(1, sent + 1) if n not in d]
        dups = sum(len(v) - 1 for v in d.values())
        st = rig.wait_box("status", 20, rig.box.count(), outbox=0)
        if not rig.box.alive():
            raise SystemExit("failover bench: the box died: %s" % rig.box.stderr[-10:])
        return {"fresh": fresh, "cached": cached, "rtts": rtts, "sent": sent, "lost": len(lost),
                "duplicated": dups, "maybe_duplicated": st.get("rerouted"), "refused": st.get("refused")}


def main():
    runs = [one_run() for _ in range(RUNS)]
    med = lambda kind, part: int(statistics.median(r[kind][part] for r in runs))  # noqa: E731
    rtts = [x for r in runs for x in r["rtts"]]
    out = {
        "failover_cached_ms": med("cached", "total"),
        "failover_fresh_ms": med("fresh", "total"),
        "payload_lost_failover": sum(r["lost"] for r in runs),
        "payload_duplicated_failover": sum(r["duplicated"] for r in runs),
        "payload_maybe_duplicated_failover": sum(r["maybe_duplicated"] or 0 for r in runs),
        "payload_sent_failover": sum(r["sent"] for r in runs),
        "failover_round_trip_ms": int(statistics.median(rtts)) if rtts else None,
        "failover_runs": len(runs),
        "failover_runs_detail": runs,
    }
    for kind in ("cached", "fresh"):
        for part in ("detect", "switch", "first"):
            out["failover_%s_%s_ms" % (kind, part)] = med(kind, part)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
