"""One branch box and its head office, in real time on loopback: the rig behind `make demo`,
the end-to-end tests and the real-time benchmarks.

    box firmware (micropython, boards/unix) ══ pty ══ modem emulator ══ access server
        ══ head-office LAN (UDP) ══ gateways (firmware on CPython) ══ target hosts

The box runs firmware/main.py under the real MicroPython interpreter at a device heap,
its UART on the emulator's pty; the head office (gwbox_tools.headoffice) are real
processes. Messages go in through the box's LAN port as numbered payloads
(`send(i)`), and the rig says which numbers reached a target, how often, and when.
Everything it starts, `close()` stops (also when start-up fails half way).

Helpers for tests and benchmarks: `traffic(rate, count)` sends numbered messages at a
steady pace on a thread (a context manager), `wait_box(name, timeout, start, **fields)`
waits for a box event or raises RigError with the box's last events, `index(event)` is
an event's position in `box.events` (for `start=`), `heartbeat_rtts()` the round trips
the box measured.
"""
import os
import tempfile
import threading
import time

from gwbox.ipv4 import int_to_ip, ip_to_int
from gwbox_tools.headoffice import HeadOffice
from gwbox_tools.modem_emu import ModemEmulator
from gwbox_tools.mp_box import MpBox

GATEWAYS = ("143.1.0.64", "143.1.1.157", "143.1.0.63")
TARGETS = ("10.0.0.5", "10.0.0.6")
IDENTITY = "branch-7"
PORT = 5000


def policy_text(key, gateways=GATEWAYS, targets=TARGETS, preferred=GATEWAYS[0], direct=(), ras=True,
                general=""):
    """The box's policy: the topology and key; every timer at its embedded default unless
    `general` (extra [GENERAL] lines) says otherwise."""
    lo = min(ip_to_int(t) for t in targets)
    hi = max(ip_to_int(t) for t in targets)
    lines = ["# written by gwbox_tools.cluster_rig", "[GENERAL]", "Identity = %s" % IDENTITY]
    if ras:
        lines.append("Dial = ras")
    lines += [general.strip(), "[CLUSTER]", "Cluster1 = " + " ".join(gateways)]
    if preferred:
        lines.append("Preferred1 = %s" % preferred)
    lines += ["[TUNNEL]", "Tunnel1 = %s - %s Cluster 1" % (int_to_ip(lo), int_to_ip(hi)),
              "[KEYS]", "Default = hex:%s" % key.hex()]
    if direct:
        lines.append("[DIAL]")
        lines += ["%s = %s" % (g, g) for g in direct]
    return "\n".join(lines) + "\n"


class RigError(AssertionError):
    """Something the rig waited for did not happen (an AssertionError, so tests report it)."""


class Traffic:
    """Numbered messages first, first+1, ... into the box at `rate` a second, on a thread,
    until `count` were sent or `stop()`. `last` is the last number sent. Use it as a
    context manager (or call `stop`): the thread ends with it."""

    def __init__(self, rig, rate, count=None, first=1, pad=24, target=None):
        self.rig = rig
        self.rate = float(rate)
        self.count = count
        self.first = first
        self.pad = pad
        self.target = target
        self.last = first - 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rig-traffic", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        nxt = time.monotonic()
        while not self._stop.is_set() and (self.count is None or self.last - self.first + 1 < self.count):
            self.rig.send(self.last + 1, self.target, self.pad)
            self.last += 1
            nxt += 1.0 / self.rate
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def wait_for(self, i, timeout=60.0):
        """Wait until message `i` was sent."""
        end = time.monotonic() + timeout
        while self.last < i:
            if time.monotonic() > end or not self._thread.is_alive():
                raise RigError("traffic stuck at message %d (waiting for %d)" % (self.last, i))
            time.sleep(0.01)

    def join(self, timeout=60.0):
        """Wait until all `count` messages were sent."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RigError("traffic still running after %.0f s" % timeout)

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


class ClusterRig:
    def __init__(self, gateways=GATEWAYS, targets=TARGETS, preferred=GATEWAYS[0], direct=(), ras=True,
                 general="StatusInterval = 1", heap="256K", baud=9600, latency_ms=20, on_event=None,
                 workdir=None, micropython=None, start_box=True, box_env=None, box_console=False):
        self.key = os.urandom(32)
        self.gateways = list(gateways)
        self.targets = list(targets)
        self.on_event = on_event
        self.ho = self.emu = self.box = None
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="gwbox-rig-")
        self.policy_path = os.path.join(self.workdir, "box.policy")
        self.t0 = time.monotonic()
        self._sent = {}  # number -> monotonic time sent
        self._lock = threading.Lock()
        self.heap = heap
        self.baud = baud
        self.micropython = micropython
        self.box_env = box_env  # extra environment for the box (MICROPYPATH for a frozen build, say)
        self.box_console = box_console  # the box's console on a pty (rig.box.console_path); no restarts
        try:
            self.ho = HeadOffice({IDENTITY: self.key}, gateways=gateways, direct=direct, targets=targets,
                                 echo=False, ras=ras).start()
            self.emu = ModemEmulator(baud=baud, gateways=self.ho.dial_targets(), latency_ms=latency_ms).start()
            with open(self.policy_path, "w") as f:
                f.write(policy_text(self.key, gateways, targets, preferred, direct, ras, general))
            os.chmod(self.policy_path, 0o600)
            if start_box:
                self.start_box()
        except BaseException:
            self.close()
            raise

    def start_box(self, uart_path=None):
        """Start the box on the emulator's pty (or on `uart_path`: something in between)."""
        self.box = MpBox(uart_path or self.emu.box_path, self.policy_path, heap=self.heap, on_event=self.on_event,
                         micropython=self.micropython, baud=self.baud, env=self.box_env,
                         console=self.box_console, restart=False)
        return self.box

    # --- traffic ---------------------------------------------------------------------

    def send(self, i, target=None, pad=24):
        """LAN message number `i` for a target host, through the box."""
        payload = (b"%08d|" % i) + b"." * pad
        with self._lock:
            self._sent[i] = time.monotonic()
        self.box.send(ip_to_int(target or self.targets[0]), PORT, payload)

    def delivered(self):
        """{number: [monotonic times it reached a target]} so far (duplicates included)."""
        out = {}
        for name in self.targets:
            for t, payload in list(self.ho.targets.received[name]):
                try:
                    i = int(payload.split(b"|", 1)[0])
                except ValueError:
                    continue
                out.setdefault(i, []).append(t)
        return out

    def handed_on(self, gateway, since_mono=None):
        """Events `handed_on` of one gateway (their `mono` = monotonic time)."""
        out = []
        for e in self.ho.events(gateway):
            if e.get("event") != "handed_on":
                continue
            e = dict(e)
            e["mono"] = self.ho.t0 + e["t_ms"] / 1000.0
            if since_mono is None or e["mono"] >= since_mono:
                out.append(e)
        return out

    def first_handed_on(self, gateway, since_mono, timeout):
        """The first `handed_on` of a gateway at or after since_mono, waited for up to timeout
        seconds; None if none came."""
        end = time.monotonic() + timeout
        while True:
            h = self.handed_on(gateway, since_mono)
            if h:
                return h[0]
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)

    def sent(self):
        with self._lock:
            return dict(self._sent)

    def wait_delivered(self, numbers, timeout):
        end = time.monotonic() + timeout
        want = set(numbers)
        while time.monotonic() < end:
            if want <= set(self.delivered()):
                return True
            time.sleep(0.1)
        return want <= set(self.delivered())

    def traffic(self, rate, count=None, first=1, pad=24, target=None):
        """Numbered messages at a steady pace (see Traffic); not started yet."""
        return Traffic(self, rate, count, first, pad, target)

    def wait_box(self, name, timeout, start=0, **fields):
        """The first box event `name` (index >= start) whose fields match; RigError (with
        the box's last events and output) after `timeout` s or if the box process ended."""
        e = self.box.wait_event(lambda d: d["event"] == name and all(d.get(k) == v for k, v in fields.items()),
                                timeout, start)
        if e is None:
            with self.box._lock:
                last = [d["event"] for d in self.box.events[start:] if d["event"] != "status"][-15:]
            raise RigError("box: no %s %r within %.0f s (box %s); events since: %s; output: %s" % (
                name, fields, timeout, "alive" if self.box.alive() else "ended", last, self.box.stderr[-8:]))
        return e

    def index(self, event):
        """Position of `event` (a dict from box.events) in box.events."""
        with self.box._lock:
            for i in range(len(self.box.events) - 1, -1, -1):
                if self.box.events[i] is event:
                    return i
        raise ValueError("not a box event")

    def heartbeat_rtts(self, start=0):
        """rtt_ms of every heartbeat_ack the box reported (index >= start)."""
        return [e["rtt_ms"] for e in self.box.find("heartbeat_ack", start) if e.get("rtt_ms") is not None]

    def in_use(self, timeout=0.0, gateway=None, start=0):
        """Wait for the box to report `gateway_in_use` (of `gateway`, if given); the event."""
        def pred(e):
            return e["event"] == "gateway_in_use" and (gateway is None or e.get("gateway") == gateway)
        return self.box.wait_event(pred, timeout, start)

    def line_bytes(self):
        c = self.emu.status().get("counters", {})
        return c.get("bytes_from_box", 0), c.get("bytes_to_box", 0)

    # --- faults ------------------------------------------------------------------------

    def freeze(self, gateway):
        self.ho.freeze(gateway)
        return time.monotonic()

    def thaw(self, gateway):
        self.ho.thaw(gateway)
        return time.monotonic()

    # --- lifecycle -------------------------------------------------------------------

    def close(self):
        """Stop the box, the emulator and the head office. Idempotent."""
        for obj in (self.box, self.emu, self.ho):
            if obj is not None:
                try:
                    obj.close() if not isinstance(obj, MpBox) else obj.stop()
                except Exception:
                    pass
        self.box = self.emu = self.ho = None
        if self._own_dir and os.path.isdir(self.workdir):
            for f in os.listdir(self.workdir):
                os.unlink(os.path.join(self.workdir, f))
            os.rmdir(self.workdir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
