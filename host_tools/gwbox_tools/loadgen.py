"""Many real boxes in one process: the load generator's worker (`gwbox loadtest` starts them).

Each box is the device's own code, a firmware `Box` built from its own policy (identity,
PSK, preferred gateway, dial number), with the firmware's Hayes `Modem` driver on its
UART. The far side of that UART is `VModem`, a modem in process: it answers the AT
commands the driver sends, dials by opening a TCP connection to the access server the
number names (a call, exactly as the modem emulator places it), and carries data mode
through one `LineShaper` per direction (baud / 10 bytes a second, a one-way latency), so
every box sees a 9,600-baud line, not a loopback socket. `+++` and NO CARRIER work as
on the emulator. One selector loop and one heap of wake-up times serve all boxes of the
process; nothing here is timed by sleeping.

    python -m gwbox_tools.loadgen --spec FILE     (FILE: JSON, see LoadWorker)

The worker reads commands from stdin, one JSON object a line, and writes reports to
stdout the same way:
    {"cmd": "mark", "name": M, "gateway": A}   from now on, record per box when it next
        carries payload (a message confirmed) through a gateway other than A, and how its
        cluster chose that gateway (gateway_in_use how=...): the storm's measurement
    {"cmd": "cache"}   every box also keys the gateway after its in-use one in its cluster's
        order (Box.connect, as its cluster would): the one a failover then takes, cached
    {"cmd": "quiet"}   no new messages (what was accepted is still carried)
    {"cmd": "status"}  {"cmd": "report"}  {"cmd": "stop"}
Reports: {"ready": n}, {"status": {...}}, {"report": {...}} (per box: messages accepted,
refused numbers, the marks' recoveries), {"stopped": true}.
"""
import heapq
import json
import os
import random
import selectors
import socket
import sys
import time

import gwbox

# A device drops code it does not need right now (gwbox.forget: the key exchange after a
# handshake, the modem's AT half once a call is up, the box's builder) to free its heap.
# Thousands of boxes in one CPython process would only import (compile) it again and again:
# here every module stays loaded. Set before any firmware module takes `forget` in.
gwbox.forget = lambda *names: None

from gwbox import ticks  # noqa: E402
from gwbox.box import Box  # noqa: E402
from gwbox.link.modem import Modem  # noqa: E402
from gwbox.policy import parse  # noqa: E402

from .line_shaper import LineShaper  # noqa: E402
from .modem_at import EscapeDetector  # noqa: E402

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
READ_SIZE = 4096
OK = b"\r\nOK\r\n"
NO_CARRIER = b"\r\nNO CARRIER\r\n"
TARGET_PORT = 5000
SHAPER_TICK_S = 0.05  # line bytes due within 50 ms of each other travel together (fewer wake-ups)


def now_ms(t):
    return int(t * 1000) & ticks.MASK


def policy_text(identity, key, gateways, preferred, dial, targets, general=""):
    """One box's policy: its identity, key, dial number and preferred gateway; the cluster and
    the tunnel to the target hosts as every box has them."""
    lines = ["[GENERAL]", "Identity = %s" % identity, "Dial = %s" % dial, general.strip(), "[CLUSTER]",
             "Cluster1 = " + " ".join(gateways), "Preferred1 = %s" % preferred, "[TUNNEL]",
             "Tunnel1 = %s - %s Cluster 1" % (targets[0], targets[-1]), "[KEYS]", "Default = hex:%s" % key]
    return "\n".join(lines) + "\n"


class VModem:
    """The modem at the far end of one box's UART: V.250 command mode (the subset the
    firmware driver uses: Z, E, V, Q, &C, &D, D, H, O), a call = a TCP connection to the
    dialled access server, data mode through two LineShapers, `+++` with its guard time."""

    def __init__(self, unit, numbers, baud, latency_s, connect_delay_s):
        self.unit = unit
        self.numbers = numbers  # dial number -> TCP port
        self.baud = baud
        self.latency = latency_s
        self.connect_delay = connect_delay_s
        self.mode = "command"
        self.line = bytearray()
        self.sock = None
        self.dial_at = None  # CONNECT reported no earlier than this
        self.connected = False
        self.up = self.down = None
        self.tcp_out = bytearray()
        self.escape = None
        self.to_box = bytearray()
        self.calls = 0
        self.carrier_losses = 0

    def from_box(self, data, now):
        if self.mode == "data":
            out, escaped, rest = self.escape.feed(data, now)
            if out:
                self.up.push(out, now)
            if escaped:
                self.mode = "command"
                self.to_box += OK
                if rest:
                    self.from_box(rest, now)
            return
        if self.mode == "dialing":
            self._hangup()  # any byte aborts a dial (V.250 6.3.1)
            self.to_box += NO_CARRIER
            return
        for b in data:
            if b != 13:
                if b != 10 and len(self.line) < 255:
                    self.line.append(b)
                continue
            cmd = self.line.decode("latin-1").upper()
            self.line = bytearray()
            i = cmd.find("AT")
            if i < 0:
                continue
            body = cmd[i + 2:].strip()
            if body.startswith("D"):
                self._dial(body[1:].strip(), now)
                return
            if body.startswith("H"):
                self._hangup()
            elif body.startswith("O") and self.sock is not None:
                self._online(now)
                continue
            self.to_box += OK

    def _dial(self, number, now):
        port = self.numbers.get(number.lower())
        if port is None:
            self.to_box += b"\r\nNO ANSWER\r\n"
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, 115):  # EINPROGRESS
            s.close()
            self.to_box += NO_CARRIER
            return
        self.sock = s
        self.connected = False
        self.mode = "dialing"
        self.dial_at = now + self.connect_delay
        self.unit.gen.watch(self, R | W)

    def on_socket(self, mask, now):
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._lost(now)
                return
            self.connected = True
            self.unit.gen.watch(self, R)
            return
        if mask & W:
            self._flush()
        if mask & R:
            try:
                data = self.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost(now)
                return
            if self.down is not None:
                self.down.push(data, now)

    def _online(self, now):
        self.mode = "data"
        self.escape = EscapeDetector(now, 1.0, 43)
        self.to_box += b"\r\nCONNECT %d\r\n" % self.baud

    def _hangup(self):
        if self.sock is not None:
            self.unit.gen.unwatch(self)
            self.sock.close()
        self.sock = None
        self.connected = False
        self.mode = "command"
        self.tcp_out = bytearray()

    def _lost(self, now):
        if self.mode == "data":
            self.carrier_losses += 1
        self._hangup()
        self.to_box += NO_CARRIER

    def _flush(self):
        if self.tcp_out and self.sock is not None:
            try:
                n = self.sock.send(self.tcp_out)
                del self.tcp_out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                return
            self.unit.gen.watch(self, R | W if self.tcp_out else R)

    def service(self, now):
        """Move what is due: the dial's outcome, line bytes each way, the escape guard."""
        if self.mode == "dialing" and self.connected and now >= self.dial_at:
            self.calls += 1
            self.up = LineShaper(self.baud / 10.0, self.latency, SHAPER_TICK_S)
            self.down = LineShaper(self.baud / 10.0, self.latency, SHAPER_TICK_S)
            self._online(now)
        if self.up is not None and self.sock is not None:
            if self.mode == "data":
                data, escaped = self.escape.poll(now)
                if data:
                    self.up.push(data, now)
                if escaped:
                    self.mode = "command"
                    self.to_box += OK
            got = self.up.pop(now)
            if got:
                self.tcp_out += got
                self._flush()
            if self.mode == "data":
                got = self.down.pop(now)
                if got:
                    self.to_box += got

    def next_time(self):
        ts = []
        if self.mode == "dialing" and self.connected:
            ts.append(self.dial_at)
        if self.up is not None and self.sock is not None:
            ts.append(self.up.next_deadline())
            if self.mode == "data":
                ts.append(self.down.next_deadline())
                ts.append(self.escape.deadline())
        ts = [t for t in ts if t is not None]
        return min(ts) if ts else None

    def take(self):
        out, self.to_box = bytes(self.to_box), bytearray()
        return out


class Unit:
    """One box: the firmware Box, its modem, its traffic and what the load test records."""

    def __init__(self, gen, spec, t0):
        self.gen = gen
        self.name = spec["identity"]
        self.vm = VModem(self, gen.numbers, gen.baud, gen.latency, gen.connect_delay)
        pol = parse(policy_text(self.name, spec["key"], gen.gateways, spec["preferred"], spec["dial"],
                                gen.targets, gen.general))
        self.box = Box(pol, Modem(baud=gen.baud), start=now_ms(t0))
        self.dl = None  # the box's next deadline as of its last run
        self.targets = [int.from_bytes(socket.inet_aton(t), "big") for t in gen.targets]
        self.seq = 0
        self.refused = []
        self.next_msg = None  # time of the next message, once the box carries
        self.confirmed = 0
        self.wake = None
        self.recovered = {}  # mark name -> seconds from the mark to the first confirmation elsewhere
        self.how = {}  # mark name -> how its cluster chose the gateway after the mark
        self.was_on = {}  # mark name -> the box was on the marked gateway then
        self.started = False
        self.cache_at = None  # when to key the next gateway of its order too ("cache")

    def in_use(self):
        return self.box.clusters[0].in_use

    def run(self, now):
        box = self.box
        nm = now_ms(now)
        if not self.started:
            self.started = True
            box.start(nm)
        if self.cache_at is not None and now >= self.cache_at:
            self.cache_at = None
            cl = box.clusters[0]
            if cl.in_use is not None:
                gw = cl.order[(cl.order.index(cl.in_use) + 1) % len(cl.order)]
                if not box.has_key(gw):
                    box.connect(gw, nm)
                    box.tick(nm)
        if ticks.reached(nm, self.dl):
            box.tick(nm)
        for _ in range(8):
            self.vm.service(now)
            data = self.vm.take()
            if data:
                box.feed(data, nm)
            if self.next_msg is not None and now >= self.next_msg:
                self._send(nm)
                self.next_msg = None if self.gen.interval is None else self.next_msg + self.gen.interval
            out = box.take_uart()
            if out:
                self.vm.from_box(out, now)
            for e in box.take_events():
                if e.name == "gateway_in_use":
                    for m in self.gen.marks:
                        if m not in self.how and self.was_on.get(m):
                            self.how[m] = e.get("how")
            box.take_lan()
            if not out and not self.vm.to_box:
                break
        c = box.outbox.confirmed
        if c != self.confirmed:
            self.confirmed = c
            gw = self.in_use()
            for m, (t_mark, dead) in self.gen.marks.items():
                if m not in self.recovered and gw is not None and gw != dead:
                    self.recovered[m] = now - t_mark
        if self.next_msg is None and self.seq == 0 and self.gen.interval and box.carrying():
            self.next_msg = now + self.gen.rng.random() * self.gen.interval  # steady, random phase
        ts = [self.vm.next_time(), self.next_msg, self.cache_at]
        dl = self.dl = box.next_deadline()
        if dl is not None:
            ts.append(now + max(0, ticks.diff(dl, nm)) / 1000.0)
        ts = [t for t in ts if t is not None]
        return min(ts) if ts else None

    def _send(self, nm):
        self.seq += 1
        payload = b"%s|%d|" % (self.name.encode(), self.seq) + b"." * self.gen.pad
        dst = self.targets[self.seq % len(self.targets)]
        if not self.box.lan_send(dst, TARGET_PORT, payload, nm):
            self.refused.append(self.seq)


class LoadWorker:
    """Boxes of one process. spec: {"boxes": [{"identity", "key" (hex), "preferred", "dial"}],
    "gateways", "targets", "numbers" {dial number: TCP port}, "baud", "latency_ms",
    "connect_delay_ms", "interval_s", "pad", "start_s" (boxes start spread over this),
    "general" (extra [GENERAL] lines), "seed"}."""

    def __init__(self, spec, out=sys.stdout):
        self.out = out
        self.gateways = spec["gateways"]
        self.targets = spec["targets"]
        self.numbers = dict((k.lower(), v) for k, v in spec["numbers"].items())
        self.baud = spec.get("baud", 9600)
        self.latency = spec.get("latency_ms", 20) / 1000.0
        self.connect_delay = spec.get("connect_delay_ms", 200) / 1000.0
        self.interval = spec.get("interval_s", 10.0)
        self.pad = spec.get("pad", 16)
        self.general = spec.get("general", "")
        self.rng = random.Random(spec.get("seed", 1))
        self.sel = selectors.DefaultSelector()
        self.marks = {}  # name -> (monotonic time, gateway marked dead)
        self.heap = []
        self._seq = 0
        t0 = time.monotonic()
        self.units = [Unit(self, b, t0) for b in spec["boxes"]]
        spread = spec.get("start_s", 0.0)
        for i, u in enumerate(self.units):
            self._schedule(u, t0 + spread * i / max(1, len(self.units)))
        self.stop = False
        self.errors = 0
        self.lag = 0.0  # the latest a box was served after its wake-up time, since the last status

    # --- the loop ----------------------------------------------------------------------

    def watch(self, vm, mask):
        try:
            self.sel.modify(vm.sock, mask, vm)
        except KeyError:
            self.sel.register(vm.sock, mask, vm)

    def unwatch(self, vm):
        try:
            self.sel.unregister(vm.sock)
        except (KeyError, ValueError):
            pass

    def _schedule(self, u, t):
        if t is None:
            u.wake = None
            return
        if u.wake is not None and u.wake <= t:
            return
        u.wake = t
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, u))

    def _run_unit(self, u, now):
        try:
            t = u.run(now)
        except Exception as e:  # a firmware bug: reported, the box stays in the run
            self.errors += 1
            if self.errors <= 5:
                import traceback
                traceback.print_exc()
                self.emit({"error": "%s: %s" % (u.name, e)})
            t = now + 0.1
        u.wake = None
        self._schedule(u, t)

    def run(self):
        os.set_blocking(0, False)
        self.sel.register(0, R, None)
        self.emit({"ready": len(self.units)})
        buf = b""
        while not self.stop:
            now = time.monotonic()
            h = self.heap
            while h and h[0][0] <= now:
                t, _, u = heapq.heappop(h)
                if u.wake == t:
                    self.lag = max(self.lag, now - t)  # how late this process serves its boxes
                    self._run_unit(u, now)
            timeout = 0.05 if not h else min(0.05, max(0.0, h[0][0] - time.monotonic()))
            for key, mask in self.sel.select(timeout):
                if key.data is None:
                    try:
                        chunk = os.read(0, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        self.stop = True
                        break
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            self.command(json.loads(line))
                    continue
                vm = key.data
                now = time.monotonic()
                vm.on_socket(mask, now)
                self._run_unit(vm.unit, now)
        for u in self.units:
            u.vm._hangup()
        self.emit({"stopped": True})

    def emit(self, obj):
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    # --- commands --------------------------------------------------------------------

    def command(self, c):
        cmd = c.get("cmd")
        now = time.monotonic()
        if cmd == "mark":
            dead = c["gateway"].encode()
            self.marks[c["name"]] = (now, dead)
            for u in self.units:
                u.was_on[c["name"]] = u.in_use() == dead
        elif cmd == "cache":
            spread = c.get("spread_s", 0.0)  # the keying spread out, as boxes' logins are
            for i, u in enumerate(self.units):
                u.cache_at = now + spread * i / max(1, len(self.units))
                self._schedule(u, u.cache_at)
        elif cmd == "quiet":
            self.interval = None
            for u in self.units:
                u.next_msg = None
        elif cmd == "status":
            self.emit({"status": self.status()})
        elif cmd == "report":
            self.emit({"report": self.report()})
        elif cmd == "stop":
            self.stop = True

    def status(self):
        by_gw = {}
        carrying = cached = on_line = handshaking = candidates = 0
        for u in self.units:
            on_line += u.vm.mode == "data"
            for hs in u.box.endpoint.initiators:
                handshaking += 1
                candidates += len(hs.candidates)
            gw = u.in_use()
            key = gw.decode() if gw else "-"
            by_gw[key] = by_gw.get(key, 0) + 1
            if u.box.carrying():
                carrying += 1
            if len(u.box.endpoint.sessions) > 1:
                cached += 1
        return {"boxes": len(self.units), "carrying": carrying, "in_use": by_gw, "cached": cached,
                "sent": sum(u.seq for u in self.units), "confirmed": sum(u.confirmed for u in self.units),
                "errors": self.errors, "on_line": on_line, "handshaking": handshaking, "candidates": candidates,
                "lag_ms": round(self._lag() * 1000)}

    def _lag(self):
        lag, self.lag = self.lag, 0.0
        return lag

    def report(self):
        boxes = {}
        for u in self.units:
            boxes[u.name] = {"sent": u.seq, "refused": u.refused, "recovered": u.recovered, "how": u.how,
                             "was_on": u.was_on, "calls": u.vm.calls, "carrier_losses": u.vm.carrier_losses}
        return {"boxes": boxes, "status": self.status()}


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python -m gwbox_tools.loadgen", description=__doc__.split("\n")[0])
    p.add_argument("--spec", required=True, help="JSON file: the boxes and their head office (LoadWorker)")
    a = p.parse_args(argv)
    with open(a.spec) as f:
        spec = json.load(f)
    from gwbox.port import host_x25519
    host_x25519.install()  # the boxes' key exchanges: the device's code path, OpenSSL's arithmetic
    LoadWorker(spec).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
