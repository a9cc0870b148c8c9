"""`make demo`: one branch box and a three-gateway cluster over an emulated 9,600-baud modem.

The box runs its whole firmware (policy, failover, node, modem driver) under the real
MicroPython interpreter, its UART on the modem emulator's pty; it dials the head-office
access server, behind which three gateways (the same firmware on CPython) hand its
traffic on to target hosts. Embedded defaults for every timer. The story:

  1. the box keys with its preferred gateway; numbered messages flow (4 a second);
  2. the box loses its power and comes back (its interpreter is killed and started again,
     between two LAN messages): it dials, keys and carries on, its messages numbered anew,
     and the gateway must hand those on rather than take them for replays;
  3. the preferred gateway freezes behind its router (carrier up, nothing answers): the
     box's heartbeat notices, it authenticates the next gateway and re-sends what was
     unconfirmed;
  4. the preferred gateway comes back: the box returns to it (failback);
  5. it freezes again: this time the other gateway's key is still cached, so the box
     fails over without a handshake; the preferred one is not chased in a loop;
  6. the traffic stops, everything unconfirmed is delivered.

A status view updates in place (a plain log when stdout is not a terminal). At the end: a
summary, the JSON-lines event log of every process (times relative to the start) and a
timeline picture (gwbox_tools.demo_timeline). Exit status 0 only if no message was lost.
Every process and pty is stopped on every exit path, Ctrl-C included.

The box runs as a board would: on the 32-bit interpreter at an ESP32's heap where there is
one, else on the 64-bit one at 1.4 times it (gwbox_tools.mpy_build.device_interpreter).

    python -m gwbox_tools.demo [--out build/demo] [--heap 110K] [--micropython EXE]
"""
import argparse
import json
import os
import signal
import sys
import textwrap
import threading
import time

from gwbox_tools.cluster_rig import GATEWAYS, ClusterRig
from gwbox_tools.mpy_build import DEVICE_HEAP, device_interpreter

G1, G2, G3 = GATEWAYS
RATE_HZ = 4.0
WIDTH = 79  # the status view fits 80 x 24
SHOWN = ("boot", "modem_error", "dialing", "link_up", "link_down", "handshake_started", "sa_established", "handshake_failed",
         "peer_dead", "sa_deleted", "gateway_dead", "gateway_trying", "gateway_in_use", "gateway_verified",
         "failback", "failback_trying", "key_request_rejected", "lan_refused", "redial", "out_of_memory")
HIDDEN_FIELDS = ("t_ms", "node", "event", "mono", "boot", "ctl_spi", "data_spi", "spi")


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
        self._lan_up = threading.Event()  # the box's LAN port takes datagrams
        self._lan_up.set()
        self._send_lock = threading.Lock()
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
            if d["event"] == "boot":
                self.say("%7.2f s  box   %-18s boots=%s (the interpreter started)" % (
                    self.rel(d["mono"]), "boot", d.get("boots")))
            elif d["event"] in SHOWN:
                extra = " ".join("%s=%s" % (k, v) for k, v in d.items() if k not in HIDDEN_FIELDS)
                self.say("%7.2f s  box   %-18s %s" % (self.rel(d["mono"]), d["event"], extra))

    def say(self, line):
        self.recent.append(line)
        del self.recent[:-12]
        if not self.tty:
            print(line, flush=True)

    def note(self, what, gateway=None):
        t = time.monotonic()
        with self._lock:
            self.faults.append((t, what, gateway))
            self.say("%7.2f s  >>>   %s" % (self.rel(t), what + (" " + gateway if gateway else "")))
        return t

    def draw(self):
        """The status view, in place, in 80 x 24; event lines wrap, never cut."""
        st = self.status
        d = self.rig.delivered() if self.rig and self.rig.ho else {}
        rows = ["gwbox demo: a box (MicroPython), 3 gateways behind an access server, 9,600 baud",
                "-" * WIDTH]
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
        dups = sum(1 for v in d.values() if len(v) > 1)
        rows.append("messages: sent %5d  delivered %5d  duplicated %3d  not yet %4d" % (
            self.sent, len(d), dups, self.sent - len(d)))
        rows.append("-" * WIDTH)
        events = []
        for r in self.recent:
            events += textwrap.wrap(r, WIDTH, subsequent_indent=" " * 29) or [""]
        rows += events[-(23 - len(rows)):]
        sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(rows) + "\n")
        sys.stdout.flush()

    # --- the story ---------------------------------------------------------------------

    def traffic(self):
        """Message i at i / RATE_HZ s. While the box's LAN port is closed (a reboot), the next
        message waits, as a LAN host's would, and what fell due goes out once it is open."""
        i = 0
        next_t = time.monotonic()
        while not self._stop_traffic.is_set():
            while not self._lan_up.wait(0.2):
                if self._stop_traffic.is_set():
                    return
            with self._send_lock:
                if not self._lan_up.is_set():
                    continue
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
            self.sleep(6)
            return self.story(feeder)
        finally:
            self._stop_traffic.set()
            feeder.join(5)

    def reboot(self):
        """Power-cycle the box between two LAN messages: the LAN host holds its next one until
        every message sent so far was delivered (a box loses what it holds in RAM at a power
        cut, by design: docs/cluster.md), the interpreter is killed and started again, and
        the traffic goes on once its LAN port is open. Messages 1..`before` were taken by the
        box before the reboot; every later one by the box after it."""
        rig, box = self.rig, self.rig.box
        with self._send_lock:
            self._lan_up.clear()
            before = self.sent
        end = time.monotonic() + 10
        while time.monotonic() < end and any(i not in rig.delivered() for i in range(1, before + 1)):
            time.sleep(0.02)
        unconfirmed = [i for i in range(1, before + 1) if i not in rig.delivered()]
        t = self.note("power cut and back: the box reboots")
        boot = box.power_cycle()
        if box.running(30) is None:
            raise Abort("the box did not start again after the power cut: %s" % "\n".join(box.stderr[-10:]))
        self._lan_up.set()
        use = self.wait_box(lambda e: e["event"] == "gateway_in_use" and e.get("boot") == boot, 60,
                            "gateway_in_use after the reboot")
        return dict(t=t, before=before, unconfirmed=unconfirmed, boot=boot, use=use)

    def story(self, feeder):
        rig, box = self.rig, self.rig.box
        # 2. a power cut: the box boots again, keys with its preferred gateway, numbers anew
        rb = self.reboot()
        self.sleep(4)
        # 3. the gateway in use freezes: fresh authentication with the next one
        mark = box.count()
        f1 = rig.freeze(G1)
        self.note("freeze", G1)
        dead1 = self.wait_box(lambda e: e["event"] == "gateway_dead", 30, "gateway_dead", mark)
        use1 = self.wait_box(lambda e: e["event"] == "gateway_in_use", 30, "gateway_in_use", mark)
        other = use1.get("gateway")
        self.sleep(4)
        # 4. it comes back, and gets the traffic back (failback after FailbackTime)
        rig.thaw(G1)
        self.note("thaw", G1)
        fb = self.wait_box(lambda e: e["event"] == "failback", 60, "failback", mark)
        self.sleep(6)
        # 5. it freezes again: the other gateway's key is cached, no handshake needed
        mark2 = box.count()
        f2 = rig.freeze(G1)
        self.note("freeze", G1)
        dead2 = self.wait_box(lambda e: e["event"] == "gateway_dead", 30, "gateway_dead", mark2)
        use2 = self.wait_box(lambda e: e["event"] == "gateway_in_use", 30, "gateway_in_use", mark2)
        self.sleep(3)
        rig.thaw(G1)
        self.note("thaw", G1)
        self.sleep(2)
        # 6. stop the traffic, let everything unconfirmed through
        self._stop_traffic.set()
        feeder.join(5)
        self.note("traffic stops")
        sent = self.sent
        end = time.monotonic() + 40
        while time.monotonic() < end and len(rig.delivered()) < sent:
            self.sleep(0.5)
        self.sleep(1)
        return dict(rb=rb, f1=f1, dead1=dead1, use1=use1, other=other, fb=fb, f2=f2, dead2=dead2, use2=use2,
                    sent=sent)

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
        return path

    def first_handed_on(self, gateway, after):
        hs = [e for e in self.rig.handed_on(gateway, after)]
        return hs[0]["mono"] if hs else None

    def duplicates(self, d):
        """{message: why} for each message delivered more than once. Each copy beyond the first
        is a confirmation that died with a gateway: the frozen gateway handed the message on
        "before" it froze (its confirmation not yet sent) or "after" it thawed (it read what had
        queued in its socket meanwhile), while the box, which had declared it dead, sent the
        message again through the next gateway; anything else is "other"."""
        freezes = [t for t, what, _g in self.faults if what == "freeze"]
        thaws = [t for t, what, _g in self.faults if what == "thaw"]
        out = {}
        for i, ts in d.items():
            if len(ts) < 2:
                continue
            if any(0 <= max(ts) - t <= 5.0 for t in thaws):
                out[i] = "after"
            elif any(0 <= t - min(ts) <= 3.0 for t in freezes):
                out[i] = "before"
            else:
                out[i] = "other"
        return out

    def summary(self, r, events_path, png):
        rig = self.rig
        d = rig.delivered()
        sent = r["sent"]
        lost = [i for i in range(1, sent + 1) if i not in d]
        dups = self.duplicates(d)
        up, down = rig.line_bytes()
        b = lambda e: e["mono"]  # noqa: E731
        rb = r["rb"]
        before = rb["before"]
        after_first = min([min(d[i]) for i in d if i > before] or [None]) if d else None
        fresh_first = self.first_handed_on(r["other"], r["f1"])
        cached_first = self.first_handed_on(r["use2"].get("gateway"), r["f2"])
        lost_before = [i for i in lost if i <= before]
        lost_after = [i for i in lost if i > before]
        print("")
        print("summary")
        print("  reboot (power cut):      the box lost its power between messages %d and %d -> back, %s in use "
              "%5.2f s -> first new message delivered %s" % (
                  before, before + 1, rb["use"].get("gateway"), b(rb["use"]) - rb["t"],
                  "%5.2f s" % (after_first - rb["t"]) if after_first else "-"))
        print("                           messages 1-%d, taken before it: %d delivered, %d lost; %d-%d, taken "
              "after it (numbered anew by the box): %d delivered, %d lost" % (
                  before, before - len(lost_before), len(lost_before), before + 1, sent,
                  sent - before - len(lost_after), len(lost_after)))
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
            sent, len([i for i in d if i <= sent]), len(dups), len(lost), (" " + repr(lost[:10])) if lost else ""))
        if dups:
            why = list(dups.values())
            parts = ["%d handed on %s" % (why.count(k), text) for k, text in (
                ("before", "by %s just before it froze, its confirmation not yet sent" % G1),
                ("after", "by %s when it thawed (they had queued in its socket while it was frozen)" % G1))
                if why.count(k)]
            if why.count("other"):
                parts.append("%d sent again after a confirmation was lost" % why.count("other"))
            print(textwrap.fill(
                "duplicates are confirmations that died with a gateway, never a loss: %s; the box had declared "
                "that gateway dead and sent them again through the next one" % "; ".join(parts),
                100, initial_indent=" " * 27, subsequent_indent=" " * 27))
        if lost_after:
            print(textwrap.fill(
                "messages after the reboot went missing: a gateway that still holds the numbers of the box's "
                "last boot confirms the new ones as replays without handing them on (issue 19; a per-boot "
                "epoch told at login is the cure)", 100, initial_indent=" " * 27, subsequent_indent=" " * 27))
        print("  serial line:             box -> modem %d bytes, modem -> box %d bytes" % (up, down))
        print("  events:                  %s" % events_path)
        print("  timeline:                %s" % png)
        return len(lost)


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
        from gwbox_tools.demo_timeline import plot
        png = os.path.join(demo.out_dir, "timeline.png")
        with open(events_path) as f:
            plot([json.loads(line) for line in f], png)
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
