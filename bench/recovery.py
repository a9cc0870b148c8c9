"""recovery_two_dead_ms / recovery_all_down_ms: how soon payload flows again once a live
gateway is reachable, whatever the others do (issue 19, docs/cluster.md "Recovery").

Set-up: gwbox_tools.cluster_rig (box firmware under micropython, 256K heap, as .mpy; modem
emulator at 9,600 baud, latency 20 ms each way; access server and three gateways as
processes). Policy: topology and keys, every liveness and handshake timer at its embedded
default (HeartbeatDeferTime 5 s, HeartbeatResponseTime 1 s, HeartbeatRetries 5,
HandshakeRetryTime 3 s, HandshakeRetries 3); `RandomizeOrder = OFF` (so "the next in
order" is known: G1, G2, G3) and `StatusInterval = 1`. Each of RUNS runs per case uses a
fresh rig; the box boots on G1 and idles IDLE_S (heartbeats measure the round trip).

two_dead: numbered messages at TRAFFIC_HZ; G1 (in use) and G2 (next in order) are killed
  (SIGKILL) together; recovery_two_dead_ms = the kill -> the first message G3 hands to
  its target host after it. Before the race this was ~20 s (12 s of handshake with G2).
all_down: the traffic stops, all three are killed, DOWN_S (60 s) + 0-8 s (seeded: each
  run meets the box's probing at another phase) later one of them (G2, G3, G1 in turn over
  the runs) is started again; recovery_all_down_ms = its restart
  (returned: the process is ready) -> the first message it hands on. Messages are sent
  while all are down (they wait in the outbox) and after.
Every message sent must arrive (payload_lost_recovery, summed); medians over the runs,
max too. The line bytes the box sent while all were down give the probing cost
(recovery_all_down_line_bps: bytes a second, box -> head office).
Prints one JSON object.
"""
import json
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox_tools.cluster_rig import GATEWAYS, ClusterRig  # noqa: E402

G1, G2, G3 = GATEWAYS
RUNS = 3
TRAFFIC_HZ = 4.0
IDLE_S = 6.5
DOWN_S = 60.0
DOWN_JITTER_S = 8.0  # plus 0-8 s (seeded): each run finds the box's probing at another phase
GENERAL = "RandomizeOrder = OFF\nStatusInterval = 1"


def first_handed_on(rig, gw, since, timeout=60):
    h = rig.first_handed_on(gw, since, timeout)
    if h is not None:
        return h
    raise SystemExit("recovery bench: %s handed nothing on within %d s; box: %s" % (
        gw, timeout, [e["event"] for e in rig.box.events[-20:]]))


def lost(rig, sent):
    rig.wait_delivered(range(1, sent + 1), 60)
    d = rig.delivered()
    return len([n for n in range(1, sent + 1) if n not in d])


def booted():
    rig = ClusterRig(general=GENERAL, baud=9600)
    try:
        rig.wait_box("gateway_in_use", 60, gateway=G1)
        time.sleep(IDLE_S)
    except BaseException:
        rig.close()
        raise
    return rig


def two_dead():
    with booted() as rig:
        with rig.traffic(TRAFFIC_HZ) as feed:
            feed.wait_for(10)
            mark = rig.box.count()
            t = time.monotonic()
            rig.ho.kill(G1)
            rig.ho.kill(G2)
            h = first_handed_on(rig, G3, t)
            use = rig.wait_box("gateway_in_use", 30, mark, gateway=G3)
            dead = rig.wait_box("gateway_dead", 30, mark, gateway=G1)
            time.sleep(3.0)
            feed.stop()
        sent = feed.last
        n_lost = lost(rig, sent)
        if not rig.box.alive():
            raise SystemExit("recovery bench: the box died: %s" % rig.box.stderr[-10:])
        ms = lambda a, b: int(round((b - a) * 1000))  # noqa: E731
        return {"total": ms(t, h["mono"]), "detect": ms(t, dead["mono"]), "race": ms(dead["mono"], use["mono"]),
                "sent": sent, "lost": n_lost}


def all_down(back, down_s):
    with booted() as rig:
        with rig.traffic(TRAFFIC_HZ) as feed:
            feed.wait_for(10)
            feed.stop()
        for g in GATEWAYS:
            rig.ho.kill(g)
        up0 = rig.line_bytes()[0]
        t_down = time.monotonic()
        sent = feed.last
        for i in range(5):  # taken while all are down: they wait in the outbox
            time.sleep(down_s / 6)
            sent += 1
            rig.send(sent)
        time.sleep(down_s / 6)
        up1 = rig.line_bytes()[0]
        t_back = time.monotonic()
        rig.ho.restart(back)
        t = time.monotonic()
        h = first_handed_on(rig, back, t)
        with rig.traffic(TRAFFIC_HZ, 10, first=sent + 1) as feed:
            feed.join()
        sent = feed.last
        n_lost = lost(rig, sent)
        if not rig.box.alive():
            raise SystemExit("recovery bench: the box died: %s" % rig.box.stderr[-10:])
        return {"total": int(round((h["mono"] - t) * 1000)), "gateway": back, "down_s": round(down_s, 1), "sent": sent, "lost": n_lost,
                "line_bps": round((up1 - up0) / (t_back - t_down), 1),
                "restart_ms": int(round((t - t_back) * 1000))}


def main():
    two = [two_dead() for _ in range(RUNS)]
    rnd = random.Random(19)
    down = [all_down((G2, G3, G1)[i % 3], DOWN_S + rnd.uniform(0, DOWN_JITTER_S)) for i in range(RUNS)]
    out = {
        "recovery_two_dead_ms": int(statistics.median(r["total"] for r in two)),
        "recovery_two_dead_ms_max": max(r["total"] for r in two),
        "recovery_two_dead_detect_ms": int(statistics.median(r["detect"] for r in two)),
        "recovery_two_dead_race_ms": int(statistics.median(r["race"] for r in two)),
        "recovery_all_down_ms": int(statistics.median(r["total"] for r in down)),
        "recovery_all_down_ms_max": max(r["total"] for r in down),
        "recovery_all_down_line_bps": statistics.median(r["line_bps"] for r in down),
        "payload_lost_recovery": sum(r["lost"] for r in two + down),
        "recovery_runs": RUNS,
        "recovery_runs_detail": {"two_dead": two, "all_down": down},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
