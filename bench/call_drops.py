"""call_drop_stuck / payload_lost_call_drops: the call dropped every 20-35 s for 10 minutes
while payload flows; does the box always come back, and does every message arrive?

Set-up: gwbox_tools.cluster_rig (box firmware under micropython, 256K heap, as .mpy; modem
emulator at 9,600 baud, latency 20 ms each way; access server and three gateways as
processes), the default policy (every timer at its embedded default; StatusInterval 1).
Numbered LAN messages at TRAFFIC_HZ throughout. Every 20-35 s (uniform, seeded) the
emulator drops the call: half of the drops (at random) as a plain carrier loss (NO CARRIER
to the box, what was still on the line lost), half right behind the next frame for the box
with NO CARRIER in the same write (`drop frame`: the box reads the gateway's last frame and
the mark at once, the case that once left it offline for good). For DURATION_S.

Per drop: recovered = the drop -> the first message sent after it reaching a target host.
A drop from which the box does not recover within STUCK_S counts in call_drop_stuck (and
the run goes on: the next drop may or may not free it). At the end the traffic stops and
every message sent must reach a target within 120 s: the rest is payload_lost_call_drops.
Also: the drops, messages sent, messages the box refused (`lan_refused`), redials that were
backed off (`redial` events: every call was verified, so none should be), dial attempts
that failed (`backoff` events, e.g. an ATD answered ERROR), the box's `modem_error` events
(their reasons in details.json), its `dead_call` events,
and the median / largest recovery. Prints one JSON object.
"""
import json
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox_tools.cluster_rig import ClusterRig  # noqa: E402

DURATION_S = float(os.environ.get("GWBOX_CALL_DROPS_S", 600))
TRAFFIC_HZ = 4.0
GAP_S = (20.0, 35.0)
STUCK_S = 60.0
SEED = 19


def main():
    rng = random.Random(SEED)
    drops = []
    with ClusterRig(baud=9600) as rig:
        rig.wait_box("gateway_in_use", 60)
        t_end = time.monotonic() + DURATION_S
        with rig.traffic(TRAFFIC_HZ) as feed:
            nxt = time.monotonic() + rng.uniform(*GAP_S)
            while True:
                time.sleep(max(0.0, min(nxt, t_end) - time.monotonic()))
                if time.monotonic() >= t_end:
                    break
                how = rng.choice((None, "frame"))
                t = time.monotonic()
                if not rig.emu.drop(how)["ok"]:  # no call up at this moment: still down from before
                    drops.append({"t": t, "how": how, "skipped": True})
                    nxt = t + rng.uniform(*GAP_S)
                    continue
                first = feed.last + 1
                got = None
                while time.monotonic() < t + STUCK_S and got is None:
                    d = rig.delivered()
                    got = min((ts[0] for n, ts in d.items() if n >= first and ts), default=None)
                    if got is None:
                        time.sleep(0.1)
                drops.append({"t": t, "how": how, "recovered_ms": None if got is None else int((got - t) * 1000)})
                nxt = t + rng.uniform(*GAP_S)
            feed.stop()
        sent = feed.last
        rig.wait_delivered(range(1, sent + 1), 120)
        d = rig.delivered()
        lost = [n for n in range(1, sent + 1) if n not in d]
        if not rig.box.alive():
            raise SystemExit("call_drops bench: the box died: %s" % rig.box.stderr[-10:])
        done = [x for x in drops if not x.get("skipped")]
        rec = [x["recovered_ms"] for x in done if x["recovered_ms"] is not None]
        out = {
            "call_drop_stuck": sum(1 for x in done if x["recovered_ms"] is None),
            "payload_lost_call_drops": len(lost),
            "call_drops": len(done),
            "call_drops_frame": sum(1 for x in done if x["how"] == "frame"),
            "call_drop_messages": sent,
            "call_drop_duplicated": sum(len(v) - 1 for v in d.values()),
            "call_drop_refused": len(rig.box.find("lan_refused")),
            "call_drop_redials_backed_off": len(rig.box.find("redial")),
            "call_drop_dial_failures": len(rig.box.find("backoff")),
            "call_drop_modem_errors": len(rig.box.find("modem_error")),
            "call_drop_modem_error_reasons": [e.get("reason") for e in rig.box.find("modem_error")],
            "call_drop_dead_calls": len(rig.box.find("dead_call")),
            "call_drop_carrier_confirmed": len(rig.box.find("carrier_confirmed")),
            "call_drop_recover_ms": int(statistics.median(rec)) if rec else None,
            "call_drop_recover_ms_max": max(rec) if rec else None,
            "call_drop_seconds": DURATION_S,
            "call_drop_detail": drops,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
