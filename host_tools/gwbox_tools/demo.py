"""`make demo`: one branch box and its gateway over an emulated 9,600 baud modem line.

Real time, real ptys, embedded defaults (LinkConfig()). The box dials, authenticates and
exchanges protected data; the line then idles and carries only keepalives; then the
gateway dies behind a router that keeps the carrier up (the case no modem can notice)
and the box's protected keepalive detects it and tears the SA down. Events print as they
happen; the run ends with a summary and a timeline picture.

    python -m gwbox_tools.demo [--out build/demo] [--idle-s 25]
"""
import argparse
import json
import os
import sys
import threading
import time

from gwbox import ticks
from gwbox.config import LinkConfig
from gwbox_tools.rig import LinkRig
from gwbox_tools.runner import clock_ms

BAUD = 9600
PSK = os.urandom(32)  # a fresh per-run key shared by the two emulated ends; never printed
SHOWN = ("dialing", "link_up", "link_down", "handshake_started", "sa_established", "handshake_failed",
         "keepalive_sent", "keepalive_ack", "peer_dead", "sa_deleted", "rekeyed", "hangup_done", "dial_failed")


class Demo:
    def __init__(self, out_dir, idle_s):
        self.out_dir = out_dir
        self.idle_s = idle_s
        self.cfg = LinkConfig()
        self.t0 = clock_ms()
        self.log = []
        self._lock = threading.Lock()  # both runners' threads report events
        os.makedirs(out_dir, exist_ok=True)
        self.events_path = os.path.join(out_dir, "events.jsonl")
        self._events = open(self.events_path, "w")

    def on_event(self, d):
        with self._lock:
            self._on_event(d)

    def _on_event(self, d):
        self._events.write(json.dumps(d) + "\n")
        self.log.append(d)
        if d["event"] in SHOWN:
            extra = " ".join("%s=%s" % (k, v) for k, v in d.items()
                             if k not in ("t_ms", "node", "event", "ctl_spi", "data_spi", "spi"))
            print("%8.3f s  %-5s %-18s %s" % (self.rel(d["t_ms"]) / 1000.0, d["node"], d["event"], extra), flush=True)

    def rel(self, t):
        return ticks.diff(t, self.t0)

    def wait(self, node, name, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for d in self.log:
                if d["node"] == node and d["event"] == name:
                    return d
            time.sleep(0.05)
        raise SystemExit("demo: %s never reported %s within %.0f s" % (node, name, timeout_s))

    def run(self):
        cfg = self.cfg
        print("gwbox demo: box1 dials gw1 through an emulated modem at %d baud" % BAUD)
        print("policy (embedded defaults): keepalive after %d s idle, %d s response time, %d retries"
              " -> a dead gateway is declared dead within %.0f s\n" % (
                  cfg.keepalive_idle_ms // 1000, cfg.response_ms // 1000, cfg.retries, cfg.detect_bound_ms() / 1000.0))
        report = dict(on_event=self.on_event)
        try:
            with LinkRig(cfg, PSK, BAUD, box_runner=report, gw_runner=report) as rig:
                killed = self.scenario(rig)
        finally:
            self._events.close()
        self.plot(killed)

    def scenario(self, rig):
        """Data, idle keepalives, then the gateway dies; returns when it died (ticks)."""
        box, gw = rig.box, rig.gw
        self.wait("box1", "sa_established", 60)
        for i in range(10):
            box.send(b"branch record %02d" % i)
            gw.send(b"head-office reply %02d" % i)
        time.sleep(3)
        print("\n%8.3f s  data: box1 got %d messages, gw1 got %d; now the line idles\n" % (
            self.rel(clock_ms()) / 1000.0, len(box.received), len(gw.received)), flush=True)
        time.sleep(self.idle_s)
        killed = clock_ms()
        rig.emu.freeze("gw1")
        print("\n%8.3f s  >>> gw1 dies behind its router: carrier stays up, nothing comes back\n"
              % (self.rel(killed) / 1000.0), flush=True)
        dead = self.wait("box1", "sa_deleted", self.cfg.detect_bound_ms() / 1000.0 + 30)
        time.sleep(3)  # let the hang-up show
        self.summary(killed, dead, box, gw)
        return killed

    def summary(self, killed, dead, box, gw):
        cfg = self.cfg
        est = next(d for d in self.log if d["node"] == "box1" and d["event"] == "sa_established")
        dial = next(d for d in self.log if d["node"] == "box1" and d["event"] == "dialing")
        acks = [d for d in self.log if d["node"] == "box1" and d["event"] == "keepalive_ack"]
        print("\nsummary")
        print("  dial to protected link:   %6.2f s" % (ticks.diff(est["t_ms"], dial["t_ms"]) / 1000.0))
        print("  data delivered:           box1 %d/10, gw1 %d/10 (protected, in order)" % (
            len(box.received), len(gw.received)))
        print("  keepalive rounds acked:   %d" % len(acks))
        print("  gateway death -> SA gone: %6.2f s  (bound: %.0f s after last heard)" % (
            ticks.diff(dead["t_ms"], killed) / 1000.0, cfg.detect_bound_ms() / 1000.0))
        print("  serial line bytes:        box->modem %d, modem->box %d" % (box.bytes_out, box.bytes_in))
        print("  events:                   %s" % self.events_path)

    def plot(self, killed):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lanes = ["box1", "gw1"]
        colors = {"keepalive_sent": "tab:blue", "keepalive_ack": "tab:green", "peer_dead": "tab:red",
                  "sa_deleted": "tab:red", "sa_established": "tab:purple", "link_up": "tab:gray",
                  "link_down": "tab:gray", "handshake_started": "tab:purple", "dialing": "tab:gray"}
        fig, ax = plt.subplots(figsize=(11, 3.2))
        for d in self.log:
            if d["event"] not in colors or d["node"] not in lanes:
                continue
            y = lanes.index(d["node"])
            x = self.rel(d["t_ms"]) / 1000.0
            ax.plot([x], [y], "o", color=colors[d["event"]], ms=7)
            label = {"sa_established": "SA up", "sa_deleted": "peer dead: SAs deleted"}.get(d["event"])
            if label:
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(0, 10), ha="center", fontsize=8)
        k = self.rel(killed) / 1000.0
        ax.axvline(k, color="tab:red", ls="--", alpha=0.6)
        ax.annotate("gw1 dies (carrier stays up)", (k, 1.55), ha="right", fontsize=8, color="tab:red",
                    textcoords="offset points", xytext=(-4, 0))
        for d in self.log:
            if d["event"] == "keepalive_sent" and d["node"] == "box1":
                ax.annotate("", (self.rel(d["t_ms"]) / 1000.0, 0.9), (self.rel(d["t_ms"]) / 1000.0, 0.1),
                            arrowprops=dict(arrowstyle="->", color="tab:blue", alpha=0.4))
        ax.set_yticks(range(len(lanes)))
        ax.set_yticklabels(lanes)
        ax.set_ylim(-0.6, 1.8)
        ax.set_xlabel("seconds")
        ax.set_title("gwbox: protected keepalive detects a dead gateway (blue: keepalive, green: ack, red: teardown)")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = os.path.join(self.out_dir, "timeline.png")
        fig.savefig(path, dpi=110)
        print("  timeline:                 %s" % path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/demo", help="where events.jsonl and timeline.png go")
    ap.add_argument("--idle-s", type=float, default=25.0, help="idle seconds before the gateway dies")
    a = ap.parse_args(argv)
    Demo(a.out, a.idle_s).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
