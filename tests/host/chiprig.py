"""The whole box on the emulated RP2040 against the virtual head office, in lockstep.

The chip (gwbox_tools.chip: MicroPython v1.28.0 rp2 firmware, gwbox in a shipping form,
boards/pico_emu, main.py and a policy on littlefs) boots and runs `main.py` exactly as a
board does: gwbox.start, the device port's loop, the watchdog, the console on USB CDC. Its
UART0 is the modem line of tests/firmware/clustersim.py's fake Hayes modem (access server,
gateways as firmware endpoints), its GP2 the modem's DCD (driven from the carrier, active
low), its GP3 the DTR the modem obeys (&D2: DTR low hangs up), its UART1 the LAN-side serial
device, USB the console.

Time (docs/chip.md, "Time"): the head office lives on the chip's clock. clustersim.Sim is
sans-I/O and keeps its own virtual time; here its "box" is `ChipBox`, whose deadline is
always STEP_MS ahead, and whose tick runs the chip up to the sim's now. So the sim advances
in steps of at most STEP_MS of device time, and sooner when the head office has something
due: whatever the head office does at a tick, the chip has reached that tick, and bytes
the chip sent during a step reach the modem at the step's end (at most STEP_MS late, well
inside the modem's 15 ms line delay). Nothing depends on host time: a run is the same
whatever the load, only slower.

Used by tests/host/test_chip_box.py (the scenario in `make test`) and bench/rp2_box.py.
"""
import hashlib
import json

import clustersim
from gwbox import ticks
from gwbox_tools.chip import firmware, images
from gwbox_tools.chip.__main__ import DEFAULT_IMAGE
from gwbox_tools.chip.runner import Chip, ChipError

STEP_MS = 4
DCD_PIN, DTR_PIN, SAFE_PIN = 2, 3, 22  # boards/pico_emu
G1, G2, G3, G4 = "143.1.0.64", "143.1.1.157", "143.1.0.63", "143.1.1.160"
PSK = bytes(range(32))
LAN_TARGET = "10.1.0.7"
LAN_PORT = 4001
PASSWORD = "chip-console"
SALT = b"gwbox-chip-salt!"
KDF_ITERATIONS = 1000  # the least the policy takes: the login is sliced over passes either way


def policy_text(general=""):
    """Two clusters on one call to the access server: Cluster1 (G1 preferred, G2, G3) carries
    the LAN UART's traffic, Cluster2 (G4 alone) only heartbeats, so its heartbeats go on while
    the box runs handshakes in Cluster1. Short liveness timers keep a run short."""
    pw = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, KDF_ITERATIONS)
    return """[GENERAL]
Identity = %s
Heartbeat = INSTANT
HeartbeatDeferTime = 1
HeartbeatResponseTime = 1
HeartbeatRetries = 2
RandomizeOrder = OFF
Dial = ras
FailbackTime = 4
StatusInterval = 1
LanUart = %s:%d
ConsolePassword = pbkdf2$%d$%s$%s
%s
[CLUSTER]
Cluster1 = %s %s %s
Preferred1 = %s
Cluster2 = %s

[TUNNEL]
Tunnel1 = 10.1.0.0 - 10.1.0.255 Cluster 1
Tunnel2 = 10.2.0.0 - 10.2.0.15 Cluster 2

[KEYS]
Default = hex:%s
""" % (clustersim.BOX_ID.decode(), LAN_TARGET, LAN_PORT, KDF_ITERATIONS, SALT.hex(), pw.hex(), general,
       G1, G2, G3, G1, G4, PSK.hex())


def flash_for(form="romfs", image=None, policy=None):
    """(flash, layout): the image with gwbox in `form`, boards/pico_emu, main.py and the policy."""
    image = image or DEFAULT_IMAGE[form]
    if image is None:
        raise images.ImageError("the frozen form needs an image with gwbox frozen in (--image)")
    layout = images.IMAGES[image][1] if image in images.IMAGES else ("pico_w" if "_W" in image.upper() else "pico")
    rom, files = firmware.layout(form, board="pico_emu", main=True,
                                 extra={"gwbox.policy": (policy or policy_text()).encode()})
    if form == "frozen":
        files = {p: d for p, d in files.items() if p == "gwbox.policy"}  # the image holds main.py and board.py
    return images.flash_image(images.image_path(image), layout, romfs=rom, files=files), layout


class ChipBox:
    """What clustersim.Sim drives as its box: the chip, run up to the sim's time at each tick."""

    def __init__(self, rig):
        self.rig = rig

    def start(self, now):
        pass

    def next_deadline(self):
        return ticks.add(self.rig.sim.now, STEP_MS) if self.rig.sim is not None else None

    def tick(self, now):
        self.rig.advance(now)

    def take_uart(self):
        out = self.rig.chip.uart_out[0]
        if not out:
            return b""
        data = bytes(out)
        del out[:]
        return data

    def feed(self, data, now):
        self.rig.chip.uart_write(0, data)

    def take_events(self):
        return []  # the box's events come as log lines on its console (ChipRig.records)

    def take_lan(self):
        return []  # the LAN side is UART1 (ChipRig.lan_send, ChipRig.lan_out)


class ChipRig:
    """The chip, the head office around it, and what the box printed (`records`: (device ms,
    JSON object) for each log line on the console, in order)."""

    def __init__(self, form="romfs", image=None, policy=None, gateways=(G1, G2, G3, G4)):
        flash, self.layout = flash_for(form, image, policy)
        self.sim = None
        self.records = []
        self.console = bytearray()  # everything the box printed on USB
        self._line = bytearray()
        self._dcd = None
        self.dtr_drops = 0
        self.chip = Chip(flash, watch_pins=[DTR_PIN], drive_pins={DCD_PIN: 1, SAFE_PIN: 1})
        try:
            self.chip.on_usb = self._usb
            self.chip.on_event = self._event
            self.sim = clustersim.Sim(lambda now: ChipBox(self), {g: PSK for g in gateways}, {"ras": "ras"})
            for g in self.sim.gateways.values():
                g.reply = True  # the LAN target answers every message: the way back to UART1 is used
        except BaseException:
            self.chip.close()
            raise

    # --- time ----------------------------------------------------------------------------
    def device_ms(self, tick=None):
        """Device time (ms since the chip's power-on) of a sim tick (default: now)."""
        return ticks.diff(self.sim.now if tick is None else tick, clustersim.START)

    def advance(self, now):
        dcd = 0 if self.sim.modem.online else 1  # active low
        if dcd != self._dcd:
            self._dcd = dcd
            self.chip.set_pin(DCD_PIN, dcd)
        self.chip.run_until(self.device_ms(now) * 1000)

    def run(self, ms):
        self.sim.run(ms)

    def run_until(self, cond, limit_ms, step_ms=50):
        """Run until cond() is true; ChipError after limit_ms of device time."""
        end = self.device_ms() + limit_ms
        while not cond():
            if self.device_ms() >= end:
                raise ChipError("still waiting after %d ms of device time (at %d ms)" % (limit_ms, end))
            self.sim.run(step_ms)

    # --- what the chip does ----------------------------------------------------------------
    def _usb(self, us, data):
        self.console += data
        for b in data:
            if b == 10:
                line = bytes(self._line).strip()
                self._line = bytearray()
                if line.startswith(b"{"):
                    try:
                        self.records.append((us / 1000.0, json.loads(line)))
                    except ValueError:
                        pass  # console echo or a partial line: not a log line
            else:
                self._line.append(b)

    def _event(self, ev):
        if ev.get("ev") == "pin" and ev.get("n") == DTR_PIN and ev.get("v") != 1:
            # DTR dropped (the driver's hang-up, or the pin let go by a reset): &D2 hangs up
            m = self.sim.modem if self.sim is not None else None
            if m is not None and m.online:
                m.online = False
                self.dtr_drops += 1
        self.chip.events.append(ev)

    def find(self, name, since=0, **fields):
        """[(device ms, record)] of the log lines `name` with `fields`, from record `since` on."""
        return [(t, r) for t, r in self.records[since:] if r.get("event") == name and
                all(r.get(k) == v for k, v in fields.items())]

    def wait_event(self, name, limit_ms, since=0, **fields):
        try:
            self.run_until(lambda: self.find(name, since, **fields), limit_ms)
        except ChipError as e:
            last = ["%.0f %s" % (t, {k: v for k, v in r.items() if k not in ("node", "t_ms")})
                    for t, r in self.records[since:] if r.get("event") != "status"][-20:]
            raise ChipError("%s: no %s %s; since then:\n%s" % (e, name, fields, "\n".join(last))) from None
        return self.find(name, since, **fields)[0]

    # --- the outside world -------------------------------------------------------------------
    def lan_send(self, payload):
        """Bytes from the LAN-side serial device into UART1 (one burst: one datagram)."""
        self.chip.uart_write(1, payload)

    def lan_out(self):
        return bytes(self.chip.uart_out[1])

    def console_send(self, text):
        self.chip.usb_write(text.encode() + b"\r\n")

    def console_reply(self, cmd, limit_ms=5000):
        """Type `cmd` on the console; the box's final JSON answer to it (the `console` record
        with `ok`; docs/console.md)."""
        since = len(self.records)
        self.console_send(cmd)
        words = cmd.split()
        name = " ".join(words[:2]) if words[0] in ("show", "test") else words[0]

        def answer():
            return [r for _, r in self.find("console", since, cmd=name) if "ok" in r]

        self.run_until(answer, limit_ms, step_ms=20)
        return answer()[0]

    def handed_on(self, gw):
        """(device ms, payload) of every message gateway `gw` handed to a target host."""
        g = self.sim.gateways[gw]
        return [(self.device_ms(t), m[4]) for t, m in zip(g.handed_at, g.handed_on)]

    def delivered(self):
        out = []
        for gw in self.sim.gateways:
            out += [p for _, p in self.handed_on(gw)]
        return out

    def stats(self):
        return self.chip.stats()

    def close(self):
        self.chip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- the scenario (tests/host/test_chip_box.py asserts on it, bench/rp2_box.py measures it) ---------

MESSAGES = 100
SPACING_MS = 100  # a message from the LAN-side device every 100 ms while traffic runs
RESPONSE_MS = 1000  # HeartbeatResponseTime in policy_text


class Scenario:
    """What one run of `run_scenario` saw: times in device ms."""

    def __init__(self):
        self.sent = b""
        self.console = {}
        self.failover = {}
        self.stats = None
        self.stream = b""


def _send(rig, sc, first, last):
    for i in range(first, last + 1):
        m = b"<m%03d>" % i
        sc.sent += m
        rig.lan_send(m)
        rig.run(SPACING_MS)


def stream(rig):
    """The bytes the gateways handed on, each message (space, number) once, in number order:
    what reached the LAN target, as the serial device's byte stream."""
    got = {}
    for g in rig.sim.gateways.values():
        for m in g.handed_on:
            got[(m[0], m[1])] = m[4]
    return b"".join(got[k] for k in sorted(got))


def _failover(rig, sc, kind, first, last):
    """Freeze G1 (in use in Cluster1) while traffic runs; the box detects it and takes the next
    gateway: with a key it already holds (cached) or a fresh handshake. Freeze -> the first
    message handed on through another gateway."""
    mark = len(rig.records)
    t0 = rig.device_ms()
    rig.sim.gateways[G1].frozen = True
    handed = {g: len(rig.sim.gateways[g].handed_on) for g in rig.sim.gateways}
    _send(rig, sc, first, last)
    how = "cached_key" if kind == "cached" else "authenticated"
    t_use, use = rig.wait_event("gateway_in_use", 30000, mark, cluster="Cluster1")
    if use["how"] != how:
        raise ChipError("the %s failover took %s by %s" % (kind, use["gateway"], use["how"]))
    dead = rig.find("gateway_dead", mark, gateway=G1)

    def first_through():
        out = [t for g in rig.sim.gateways if g != G1 for t, _ in rig.handed_on(g)[handed[g]:]]
        return min(out) if out else None

    rig.run_until(lambda: first_through() is not None, 30000)
    rig.sim.gateways[G1].frozen = False
    sc.failover[kind] = {"ms": round(first_through() - t0), "gateway": use["gateway"],
                         "detect_ms": round(dead[0][0] - t0) if dead else None, "switch_ms": round(t_use - t0)}


def in_use(rig, cluster):
    """The gateway the box last took into use in `cluster`, None if it has given it up since."""
    gw = None
    for _, r in rig.records:
        if r.get("cluster") != cluster:
            continue
        if r.get("event") == "gateway_in_use":
            gw = r["gateway"]
        elif r.get("event") == "gateway_dead" and r.get("gateway") == gw:
            gw = None
    return gw


def run_scenario(rig):
    """Boot from the policy, dial the access server, handshake in both clusters; 100 LAN
    messages on UART1, spread over: steady traffic, a console session on USB (status, show log,
    login, test link, logout), a fresh-key failover (G1 frozen, the next gateway keyed anew),
    failback to G1, a cached-key failover (G1 frozen again, the key of the gateway used before
    taken into use); heartbeats all along (Cluster2's G4 only heartbeats). Returns a Scenario."""
    sc = Scenario()
    rig.run_until(lambda: len(rig.find("gateway_in_use")) >= 2, 30000)
    sc.up_ms = rig.device_ms()
    _send(rig, sc, 1, 40)
    for cmd in ("status", "show log", "login " + PASSWORD, "test link", "logout"):
        sc.console[cmd.split()[0] if cmd.startswith("login") else cmd] = rig.console_reply(cmd, 10000)
    _failover(rig, sc, "fresh", 41, 70)
    # back on G1: by failback, or by failing over in order when the gateways after it are
    # given up (message_stuck, docs/chip.md)
    rig.run_until(lambda: in_use(rig, "Cluster1") == G1, 60000)
    rig.run(1000)
    _failover(rig, sc, "cached", 71, MESSAGES)
    rig.run_until(lambda: stream(rig) == sc.sent, 30000)
    rig.run(1500)  # a status line or two after the last delivery
    sc.stream = stream(rig)
    sc.stats = rig.stats()
    sc.end_ms = rig.device_ms()
    return sc


def handshakes(rig, cluster_peers):
    """[(start ms, end ms)] of the box's handshakes with `cluster_peers` (by t_ms: device time
    on the box's own clock since its boot)."""
    out = []
    open_ = {}
    for _, r in rig.records:
        e, p = r.get("event"), r.get("peer")
        if p not in cluster_peers:
            continue
        if e == "handshake_started":
            open_[p] = r["t_ms"]
        elif e in ("sa_established", "handshake_failed") and p in open_:
            out.append((open_.pop(p), r["t_ms"]))
    return out


def heartbeats(rig, peer):
    """[(sent t_ms, attempt, rtt_ms or None)] of the box's heartbeats to `peer`."""
    acks = {r["id"]: r["rtt_ms"] for _, r in rig.find("heartbeat_ack") if r.get("peer") == peer}
    return [(r["t_ms"], r["attempt"], acks.get(r["id"])) for _, r in rig.find("heartbeat_sent")
            if r.get("peer") == peer]
