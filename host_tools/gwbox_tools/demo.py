"""`make demo`: one branch box and a three-gateway cluster over an emulated 9,600-baud modem.

The box runs its whole firmware (policy, failover, node, modem driver) under the real
MicroPython interpreter, its UART on the modem emulator's pty; it dials the head-office
access server, behind which three gateways (the same firmware on CPython) hand its
traffic on to target hosts. Embedded defaults for every timer. The story:

  1. the box keys with its preferred gateway; numbered messages flow (4 a second);
  2. that gateway freezes behind its router (carrier up, nothing answers): the box's
     heartbeat notices, it authenticates the next gateway and re-sends what was unconfirmed;
  3. the preferred gateway comes back: the box returns to it (failback);
  4. it freezes again: this time the other gateway's key is still cached, so the box
     fails over without a handshake; the preferred one is not chased in a loop;
  5. the traffic stops, everything unconfirmed is delivered.

A status view updates in place (a plain log when stdout is not a terminal). At the end: a
summary, the JSON-lines event log of every process (times relative to the start) and a
timeline picture. Exit status 0 only if no message was lost. Every process and pty is
stopped on every exit path, Ctrl-C included.

The box runs as a board would: on the 32-bit interpreter at an ESP32's heap where there is
one, else on the 64-bit one at 1.4 times it (gwbox_tools.mpy_build.device_interpreter).

    python -m gwbox_tools.demo [--out build/demo] [--heap 110K] [--micropython EXE]
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

from gwbox_tools.cluster_rig import GATEWAYS, ClusterRig
from gwbox_tools.mpy_build import DEVICE_HEAP, device_interpreter

G1, G2, G3 = GATEWAYS
RATE_HZ = 4.0
SHOWN = ("dialing", "link_up", "link_down", "handshake_started", "sa_established", "handshake_failed",
         "peer_dead", "sa_deleted", "gateway_dead", "gateway_trying", "gateway_in_use", "gateway_verified",
         "failback", "failback_trying", "key_request_rejected", "lan_refused", "redial", "out_of_memory")


class Abort(Exception):
    pass


class Demo:
    def __init__(self, out_dir, heap, tty, micropython=None, interpreter=""):
        self.out_dir = out_dir
        self.heap = heap
        self.micropython = micropython
        self.interpreter = interpreter  # what runs the box, for people
        self.tty = tty
        os.makedirs(out_dir, exist_ok=True)
        self.t0 = time.monotonic()
        self.log = []  # (mono, node, event dict) of everything, for the file and the picture
        self.faults = []  # (mono, what, gateway)
        self.recent = []  # lines for the status view
        self.status = {}
        self.sent = 0
        self._lock = threading.Lock()
        self._stop_traffic = threading.Event()
        self.rig = None

    # --- output ------------------------------------------------------------------------

    def rel(self, mono):
        return mono - self.t0

    def on_box_event(self, d):
        with self._lock:
            self.log.append((d["mono"], "box", d))
            if d["event"] == "status":
                self.status = d
                return
            if d["event"] in SHOWN:
                extra = " ".join("%s=%s" % (k, v) for k, v in d.items()
                                 if k not in ("t_ms", "node", "event", "mono", "boot", "ctl_spi", "data_spi", "spi"))
                self.say("%7.2f s  box   %-18s %s" % (self.rel(d["mono"]), d["event"], extra))

    def say(self, line):
        self.recent.append(line)
        del self.recent[:-9]
        if not self.tty:
            print(line, flush=True)

    def note(self, what, gateway=None):
        t = time.monotonic()
        with self._lock:
            self.faults.append((t, what, gateway))
            self.say("%7.2f s  >>>   %s" % (self.rel(t), what + (" " + gateway if gateway else "")))
        return t

    def draw(self):
        """The status view, in place, in 80 x 24."""
        st = self.status
        d = self.rig.delivered() if self.rig and self.rig.ho else {}
        rows = ["gwbox demo: box under MicroPython, 3-gateway cluster behind an access server, 9,600 baud",
                "-" * 79]
        if st:
            cl = (st.get("clusters") or [{}])[0]
            rows.append("line: %-8s call to %-6s calls %-3s uptime %4s s  heap %s" % (
                st.get("line"), st.get("number"), st.get("calls"), st.get("uptime_s"), self.heap))
            use = cl.get("in_use") or "-"
            rows.append("gateway in use: %-14s%s%s" % (use, " (verifying)" if cl.get("verifying") else "",
                                                       ("   keying " + cl["trying"]) if cl.get("trying") else ""))
            for sa in st.get("sas", [])[:3]:
                rows.append("  SA %-14s age %5s s  heartbeat %-8s last proof %6.1f s ago%s" % (
                    sa.get("peer"), sa.get("age_s"), sa.get("hb"), sa.get("proof_ms", 0) / 1000.0,
                    "  round %d" % sa["attempt"] if sa.get("attempt") else ""))
            rows.append("outbox: %3s messages (%5s bytes)  confirmed %5s  resent %4s  rerouted %4s" % (
                st.get("outbox"), st.get("outbox_bytes"), st.get("confirmed"), st.get("retransmitted"),
                st.get("rerouted")))
        else:
            rows.append("starting the head office and the box ...")
        dups = sum(len(v) - 1 for v in d.values())
        rows.append("messages: sent %5d  delivered %5d  duplicated %3d  not yet %4d" % (
            self.sent, len(d), dups, self.sent - len(d)))
        rows.append("-" * 79)
        rows += [r[:79] for r in self.recent]
        rows = rows[:23]
        sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(rows) + "\n")
        sys.stdout.flush()

    # --- the story ---------------------------------------------------------------------

    def traffic(self):
        i = 0
        next_t = time.monotonic()
        while not self._stop_traffic.is_set():
            i += 1
            self.rig.send(i)
            self.sent = i
            next_t += 1.0 / RATE_HZ
            self._stop_traffic.wait(max(0.0, next_t - time.monotonic()))

    def wait_box(self, pred, timeout, what, start=0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            e = self.rig.box.wait_event(pred, min(0.5, end - time.monotonic()), start)
            if e is not None:
                return e
            if self.tty:
                self.draw()
            if not self.rig.box.alive():
                raise Abort("the box stopped: %s" % "\n".join(self.rig.box.stderr[-10:]))
        raise Abort("the box never reported %s within %.0f s" % (what, timeout))

    def sleep(self, s):
        end = time.monotonic() + s
        while time.monotonic() < end:
            if self.tty:
                self.draw()
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))

    def run(self):
        self.rig = ClusterRig(heap=self.heap, general="StatusInterval = 1", on_event=self.on_box_event,
                              micropython=self.micropython)
        self.say("%7.2f s  head office up: access server + gateways %s" % (
            self.rel(time.monotonic()), ", ".join(GATEWAYS)))
        self.say("%7.2f s  the box (%s) dials 'ras'" % (self.rel(time.monotonic()), self.interpreter))
        first = self.wait_box(lambda e: e["event"] == "gateway_in_use", 60, "gateway_in_use")
        if first.get("gateway") != G1:
            raise Abort("the box started on %s, not its preferred %s" % (first.get("gateway"), G1))
        feeder = threading.Thread(target=self.traffic, name="demo-traffic", daemon=True)
        feeder.start()
        try:
            self.sleep(10)
            return self.story(feeder)
        finally:
            self._stop_traffic.set()
            feeder.join(5)

    def story(self, feeder):
        rig, box = self.rig, self.rig.box
        # 2. the gateway in use freezes: fresh authentication with the next one
        mark = box.count()
        f1 = rig.freeze(G1)
        self.note("freeze", G1)
        dead1 = self.wait_box(lambda e: e["event"] == "gateway_dead", 30, "gateway_dead", mark)
        use1 = self.wait_box(lambda e: e["event"] == "gateway_in_use", 30, "gateway_in_use", mark)
        other = use1.get("gateway")
        self.sleep(6)
        # 3. it comes back, and gets the traffic back (failback after FailbackTime)
        rig.thaw(G1)
        self.note("thaw", G1)
        fb = self.wait_box(lambda e: e["event"] == "failback", 60, "failback", mark)
        self.sleep(8)
        # 4. it freezes again: the other gateway's key is cached, no handshake needed
        mark2 = box.count()
        f2 = rig.freeze(G1)
        self.note("freeze", G1)
        dead2 = self.wait_box(lambda e: e["event"] == "gateway_dead", 30, "gateway_dead", mark2)
        use2 = self.wait_box(lambda e: e["event"] == "gateway_in_use", 30, "gateway_in_use", mark2)
        self.sleep(4)
        rig.thaw(G1)
        self.note("thaw", G1)
        self.sleep(3)
        # 5. stop the traffic, let everything unconfirmed through
        self._stop_traffic.set()
        feeder.join(5)
        self.note("traffic stops")
        sent = self.sent
        end = time.monotonic() + 40
        while time.monotonic() < end and len(rig.delivered()) < sent:
            self.sleep(0.5)
        self.sleep(1)
        return dict(f1=f1, dead1=dead1, use1=use1, other=other, fb=fb, f2=f2, dead2=dead2, use2=use2, sent=sent)

    # --- results -----------------------------------------------------------------------

    def collect(self):
        """Every process's events on one time line, written as JSON lines."""
        rig = self.rig
        rows = list(self.log)
        for name in list(GATEWAYS) + ["ras"]:
            for e in rig.ho.events(name):
                rows.append((rig.ho.t0 + e["t_ms"] / 1000.0, name, e))
        for t, what, gw in self.faults:
            rows.append((t, "demo", {"event": what, "gateway": gw}))
        rows.sort(key=lambda r: r[0])
        path = os.path.join(self.out_dir, "events.jsonl")
        with open(path, "w") as f:
            for t, node, e in rows:
                d = {"t_ms": int(round(self.rel(t) * 1000)), "node": node, "event": e.get("event")}
                for k, v in e.items():
                    if k not in ("t_ms", "node", "event", "mono"):
                        d[k] = v
                f.write(json.dumps(d) + "\n")
        self.rows = rows
        return path

    def first_handed_on(self, gateway, after):
        hs = [e for e in self.rig.handed_on(gateway, after)]
        return hs[0]["mono"] if hs else None

    def summary(self, r, events_path, png):
        rig = self.rig
        d = rig.delivered()
        sent = r["sent"]
        lost = [i for i in range(1, sent + 1) if i not in d]
        dups = sum(len(v) - 1 for v in d.values())
        up, down = rig.line_bytes()
        b = lambda e: e["mono"]  # noqa: E731
        fresh_first = self.first_handed_on(r["other"], r["f1"])
        cached_first = self.first_handed_on(r["use2"].get("gateway"), r["f2"])
        print("")
        print("summary")
        print("  failover 1 (fresh key):  %s frozen -> declared dead %5.2f s -> %s in use %5.2f s"
              " -> first message delivered %s" % (
                  G1, b(r["dead1"]) - r["f1"], r["other"], b(r["use1"]) - r["f1"],
                  "%5.2f s" % (fresh_first - r["f1"]) if fresh_first else "-"))
        print("  failback:                %s back in use %5.2f s after it came back" % (
            G1, b(r["fb"]) - [t for t, w, g in self.faults if w == "thaw"][0]))
        print("  failover 2 (cached key): %s frozen -> declared dead %5.2f s -> %s in use %5.2f s"
              " -> first message delivered %s" % (
                  G1, b(r["dead2"]) - r["f2"], r["use2"].get("gateway"), b(r["use2"]) - r["f2"],
                  "%5.2f s" % (cached_first - r["f2"]) if cached_first else "-"))
        print("  messages:                sent %d, delivered %d, duplicated %d, lost %d%s" % (
            sent, len([i for i in d if i <= sent]), dups, len(lost), (" " + repr(lost[:10])) if lost else ""))
        print("  serial line:             box -> modem %d bytes, modem -> box %d bytes" % (up, down))
        print("  events:                  %s" % events_path)
        print("  timeline:                %s" % png)
        return len(lost)

    def plot(self, r):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        lanes = ["box"] + list(GATEWAYS)
        y = {n: len(lanes) - 1 - i for i, n in enumerate(lanes)}
        fig, ax = plt.subplots(figsize=(13, 4.8))
        box_ev = [(t, e) for t, n, e in self.rows if n == "box"]
        # SA spans, seen from the box, on each gateway's lane
        open_sa = {}
        end = self.rel(time.monotonic())
        for t, e in box_ev:
            ev, peer = e["event"], e.get("peer") or e.get("gateway")
            if ev == "sa_established":
                open_sa[peer] = self.rel(t)
            elif ev == "sa_deleted" and peer in open_sa:
                s0 = open_sa.pop(peer)
                ax.broken_barh([(s0, self.rel(t) - s0)], (y[peer] - 0.12, 0.24), color="tab:purple", alpha=0.35)
        for peer, s0 in open_sa.items():
            ax.broken_barh([(s0, end - s0)], (y[peer] - 0.12, 0.24), color="tab:purple", alpha=0.35)
        # which gateway carries the traffic: a thick bar
        uses = [(self.rel(t), e.get("gateway")) for t, e in box_ev if e["event"] == "gateway_in_use"]
        deads = [(self.rel(t), e.get("gateway")) for t, e in box_ev if e["event"] == "gateway_dead"]
        for k, (t, g) in enumerate(uses):
            stop = [d for d, dg in deads if dg == g and d > t]
            nxt = [u for u, _ in uses[k + 1:]]
            t1 = min(stop + nxt + [end])
            ax.broken_barh([(t, t1 - t)], (y[g] - 0.05, 0.1), color="tab:blue")
        # heartbeats: answered (green) vs never answered (red x); acks on the box lane
        acked = set((e.get("peer"), e.get("id")) for t, e in box_ev if e["event"] == "heartbeat_ack")
        for t, e in box_ev:
            if e["event"] == "heartbeat_sent":
                ok = (e.get("peer"), e.get("id")) in acked
                ax.plot([self.rel(t)], [y["box"] + 0.18], "o" if ok else "x", ms=5 if ok else 7,
                        color="tab:green" if ok else "tab:red")
            elif e["event"] == "heartbeat_ack":
                ax.plot([self.rel(t)], [y["box"] - 0.18], "|", ms=9, color="tab:green")
        # messages handed on by each gateway
        for g in GATEWAYS:
            xs = [self.rel(self.rig.ho.t0 + e["t_ms"] / 1000.0) for e in self.rig.ho.events(g)
                  if e.get("event") == "handed_on"]
            ax.plot(xs, [y[g] + 0.25] * len(xs), "|", ms=4, color="tab:gray")
        # faults: frozen spans
        frz = {}
        for t, what, g in self.faults:
            if what == "freeze":
                frz[g] = self.rel(t)
            elif what == "thaw" and g in frz:
                s0 = frz.pop(g)
                ax.axvspan(s0, self.rel(t), ymin=(y[g] + 0.1) / len(lanes), ymax=(y[g] + 0.9) / len(lanes),
                           color="tab:red", alpha=0.15, hatch="//")
        for t, g in deads:
            ax.axvline(t, color="tab:red", ls="--", lw=1)
            ax.annotate("detected dead", (t, len(lanes) - 0.45), fontsize=8, color="tab:red", ha="right",
                        textcoords="offset points", xytext=(-3, 0))
        for t, g in uses[1:]:
            ax.axvline(t, color="tab:blue", ls=":", lw=1)
            ax.annotate("failover/failback to %s" % g, (t, -0.75), fontsize=8, color="tab:blue",
                        textcoords="offset points", xytext=(3, 0))
        ax.set_yticks([y[n] for n in lanes])
        ax.set_yticklabels(["box (MicroPython)"] + ["gateway %s" % g for g in GATEWAYS])
        ax.set_ylim(-1, len(lanes) - 0.3)
        ax.set_xlabel("seconds since start")
        ax.set_title("gwbox: heartbeat failover across a gateway cluster (9,600 baud, embedded defaults)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(handles=[
            Patch(color="tab:purple", alpha=0.35, label="SA (key) held by the box"),
            Line2D([], [], color="tab:blue", lw=4, label="gateway in use"),
            Line2D([], [], marker="o", ls="", color="tab:green", label="heartbeat answered"),
            Line2D([], [], marker="x", ls="", color="tab:red", label="heartbeat never answered"),
            Line2D([], [], marker="|", ls="", color="tab:gray", label="message handed on"),
            Patch(color="tab:red", alpha=0.15, hatch="//", label="gateway frozen (carrier up)"),
        ], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8)
        fig.tight_layout()
        path = os.path.join(self.out_dir, "timeline.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/demo", help="where events.jsonl and timeline.png go")
    ap.add_argument("--heap", default=DEVICE_HEAP, help="the box's heap as on a 32-bit board (1.4 times it on a "
                                                        "64-bit interpreter)")
    ap.add_argument("--micropython", metavar="EXE", help="the interpreter, given --heap as it is")
    ap.add_argument("--plain", action="store_true", help="a plain log even on a terminal")
    a = ap.parse_args(argv)
    tty = sys.stdout.isatty() and not a.plain
    exe, heap, what = device_interpreter(a.heap, a.micropython)
    demo = Demo(a.out, heap, tty, exe, what)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    code = 1
    try:
        try:
            r = demo.run()
        finally:
            if demo.rig is not None and demo.rig.ho is not None:
                events_path = demo.collect()
        if tty:
            demo.draw()
        png = demo.plot(r)
        lost = demo.summary(r, events_path, png)
        code = 0 if lost == 0 else 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it started is stopped", file=sys.stderr)
        code = 130
    except Abort as e:
        print("\ndemo: %s" % e, file=sys.stderr)
        code = 1
    finally:
        if demo.rig is not None:
            demo.rig.close()
        signal.signal(signal.SIGTERM, old)
    return code


if __name__ == "__main__":
    sys.exit(main())
