"""A virtual head office for box tests (runs on both runtimes): modem, access server, gateways.

The box (gwbox.box.Box, with a real Modem driver and framing) talks to a byte-level fake
Hayes modem. ATD<number> reaches either the access server (number "ras": every gateway
behind it, routed by the outer address of each frame) or a gateway's own number. Each
gateway is a real firmware Endpoint (the responder), which hands tunnel messages on to
"target hosts" (recorded here) and can answer them. Faults: freeze a gateway (it neither
receives nor sends, the call stays up), reboot it (state lost), cut its route to a target,
take a number off the phone network, drop the call (with NO CARRIER, right behind a frame
for the box, or without a word), mute the line towards the box, lose frames at random or
the ones a test picks (`drop_up`), reboot the box. Virtual time, starting just before
the 2**30 tick wrap.
"""
from gwbox import ticks, tunnel, wire
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.link.framing import Framer

START = ticks.PERIOD - 3000
DELAY = 15  # one-way line delay, ms
LAN_DELAY = 1  # access server <-> gateway, ms
GUARD = 200  # +++ guard time (the fake's S12 and the driver's guard_ms)
BOX_ID = b"branch-7"


class Rand:
    """A small deterministic generator (the same sequence on both runtimes)."""

    def __init__(self, seed):
        self.s = seed & 0x7FFFFFFF or 1

    def next(self):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return self.s

    def bytes(self, n):
        return bytes(self.next() >> 16 & 0xFF for _ in range(n))

    def chance(self, p):
        return self.next() % 100000 < int(p * 100000)


class Gateway:
    """A head-office gateway: the firmware endpoint, answering boxes, handing messages on."""

    def __init__(self, sim, addr, psk, cfg):
        self.sim = sim
        self.addr = addr
        self.psk = psk
        self.cfg = cfg
        self.frozen = False
        self.reply = False  # answer every message with an NH_REPLY from its target
        self.no_route = set()  # target addresses it cannot hand messages on to (never confirmed)
        self.handed_on = []  # (space, number, dst, port, payload) given to target hosts
        self.handed_at = []  # the tick of each of them
        self.reboot()

    def reboot(self):
        self.ep = Endpoint(self.cfg, self.addr.encode(), psks={BOX_ID: self.psk})

    def receive(self, packet, link):
        if self.frozen:
            return
        self.ep.receive(packet, self.sim.now, link)
        self.sim.gw_settle(self)


class FakeModem:
    """Hayes modem at the byte level: OK to commands, ATD<number> to the head office."""

    def __init__(self, sim):
        self.sim = sim
        self.online = False
        self.number = None
        self.line = b""
        self.cmds = []
        self.to_box = b""
        self.last_rx = None
        self.plus_at = None
        self.framer = Framer()  # the far end's: frames from the box
        self.bound = {}  # access server: context -> gateway address, this call
        self.bytes_up = 0  # data-mode bytes on the line, box -> head office
        self.bytes_down = 0  # and head office -> box
        self.drop_next = False  # drop the call right behind the next frame for the box
        self.mute_until = None  # frames for the box are lost until this tick
        self.muted = 0

    def from_box(self, data, now):
        if self.online:
            quiet = self.last_rx is None or ticks.diff(now, self.last_rx) >= GUARD
            self.plus_at = now if data == b"+++" and quiet else None
            self.last_rx = now
            if self.plus_at is None:
                self.bytes_up += len(data)
                self.sim.after(DELAY, self._to_far_end, data)
            return
        for b in data:
            if b != 13:
                self.line += bytes([b])
                continue
            cmd = "".join(chr(b) for b in self.line).upper()  # a modem in command mode sees any byte
            self.line = b""
            at = cmd.find("AT")
            if at < 0:
                continue  # a Hayes modem ignores everything up to "AT"
            cmd = cmd[at:].strip()
            self.cmds.append(cmd)
            if cmd.startswith("ATD"):
                number = cmd[3:].strip().lower()
                if number in self.sim.unreachable or number not in self.sim.numbers:
                    self.sim.after(500, self._result, b"NO CARRIER")
                else:
                    self.sim.after(300, self._connect, number)
            elif cmd == "ATH" or cmd.startswith("ATZ") or cmd.startswith("ATE"):
                self.to_box += b"\r\nOK\r\n"
            else:
                self.to_box += b"\r\nOK\r\n"

    def _result(self, word):
        self.to_box += b"\r\n" + word + b"\r\n"

    def _connect(self, number):
        self.online = True
        self.number = number
        self.bound = {}
        self.framer = Framer()
        self.last_rx = self.sim.now
        self.sim.calls.append(number)
        self.to_box += b"\r\nCONNECT 9600\r\n"

    def _to_far_end(self, data):
        if not self.online:
            return
        for frame in self.framer.feed(data):
            if self.sim.loss and self.sim.rand.chance(self.sim.loss):
                self.sim.lost += 1
                continue
            if self.sim.drop_up is not None and self.sim.drop_up(frame):
                self.sim.lost += 1
                continue
            try:
                ctx, addr, off = tunnel.decode_outer(frame)
            except Exception:
                self.sim.bad_outer += 1
                continue
            if addr is not None:
                self.bound[ctx] = addr
            target = self.sim.numbers[self.number]
            if target == "ras":
                a = self.bound.get(ctx)
                gw = self.sim.by_int.get(a)
                if gw is None:
                    self.sim.unroutable += 1
                    continue
                self.sim.after(LAN_DELAY, gw.receive, frame[off:], "ras")
            else:
                gw = self.sim.gateways[target]
                gw.receive(frame[off:], "line")

    def to_box_frame(self, gw, link, packet):
        """A gateway's packet for the box, over the call if the call reaches that gateway."""
        if not self.online or gw.frozen:
            return
        target = self.sim.numbers[self.number]
        if (link == "ras" and target != "ras") or (link == "line" and target != gw.addr):
            return
        if self.sim.loss and self.sim.rand.chance(self.sim.loss):
            self.sim.lost += 1
            return
        self.sim.after(DELAY + (LAN_DELAY if link == "ras" else 0), self._deliver, Framer().encode(packet))

    def _deliver(self, data):
        if not self.online:
            return
        if self.mute_until is not None and not ticks.reached(self.sim.now, self.mute_until):
            self.muted += 1
            return
        self.bytes_down += len(data)
        self.to_box += data
        if self.drop_next:
            self.drop_next = False
            self.drop()

    def drop(self, behind_frame=False, silent=False):
        """Carrier lost: NO CARRIER to the box, back to command mode. `behind_frame`: right
        after the next frame for the box, in the same read (a modem hands over what it had,
        then says NO CARRIER). `silent`: no result code at all (lost on the UART, say)."""
        if behind_frame:
            self.drop_next = True
            return
        self.online = False
        if not silent:
            self.to_box += b"\r\nNO CARRIER\r\n"

    def mute(self, ms):
        """Frames for the box are lost for `ms` (an attacker dropping them); the call stays up."""
        self.mute_until = ticks.add(self.sim.now, ms)

    def deadline(self):
        return None if self.plus_at is None else ticks.add(self.plus_at, GUARD)

    def poll(self, now):
        if self.plus_at is not None and ticks.reached(now, self.deadline()):
            self.plus_at = None
            self.online = False
            self.to_box += b"\r\nOK\r\n"


class Sim:
    def __init__(self, box_factory, gateways, numbers, cfg=None, loss=0.0, seed=1):
        """`gateways` {address: psk}; `numbers` {dial number: "ras" or a gateway address};
        `box_factory(modem_start)` builds the Box (it needs the sim's clock)."""
        self.now = START
        self.rand = Rand(seed)
        self.loss = loss
        self.lost = 0
        self.drop_up = None  # fn(frame from the box) -> True to lose it (an attacker's choice)
        self.bad_outer = 0
        self.unroutable = 0
        self.numbers = numbers
        self.unreachable = set()
        self.calls = []
        self.queue = []  # (due tick, seq, fn, args)
        self._seq = 0
        self.gateways = {}
        self.by_int = {}
        gcfg = cfg or LinkConfig()
        for addr in gateways:
            g = Gateway(self, addr, gateways[addr], gcfg)
            self.gateways[addr] = g
            parts = [int(x) for x in addr.split(".")]
            self.by_int[(parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]] = g
        self.modem = FakeModem(self)
        self.events = []  # (tick, Event) of the box
        self.lan_in = []  # (src, port, payload) the box handed to its LAN
        self.box_factory = box_factory
        self.box = box_factory(self.now)
        self.box.start(self.now)
        self.settle()

    def reboot_box(self):
        """The box restarts (reset, watchdog, power cycle): everything it held in RAM is gone,
        its modem drops the call (DTR) and it boots again from its policy."""
        m = self.modem
        m.online = False
        m.to_box = m.line = b""
        m.plus_at = None
        self.box = self.box_factory(self.now)
        self.box.start(self.now)
        self.settle()

    # --- plumbing ---------------------------------------------------------------------

    def after(self, ms, fn, *args):
        self._seq += 1
        self.queue.append((ticks.add(self.now, ms), self._seq, fn, args))

    def gw_settle(self, g):
        for link, p in g.ep.take_output():
            self.modem.to_box_frame(g, link, p)
        for peer, nh, body in g.ep.take_messages():
            if nh == wire.NH_MSG:
                if body[2] in g.no_route:
                    continue  # undeliverable: not handed on, so not confirmed
                g.handed_on.append(body)
                g.handed_at.append(self.now)
                g.ep.handed_on(peer, body[0], body[1], self.now)
                if g.reply:
                    g.ep.send_plain(tunnel.encode_reply(body[2], body[3], b"re:" + body[4]), self.now, peer)
        for link, p in g.ep.take_output():
            self.modem.to_box_frame(g, link, p)
        g.ep.take_events()
        g.ep.take_received()

    def settle(self):
        box = self.box
        for _ in range(100):
            moved = False
            out = box.take_uart()
            if out:
                self.modem.from_box(out, self.now)
                moved = True
            if self.modem.to_box:
                data, self.modem.to_box = self.modem.to_box, b""
                box.feed(data, self.now)
                moved = True
            for e in box.take_events():
                self.events.append((self.now, e))
            self.lan_in.extend(box.take_lan())
            if not moved:
                return

    def run_until(self, t):
        for _ in range(200000):
            self.settle()
            ds = [self.box.next_deadline(), self.modem.deadline()] + self.deadlines()
            for g in self.gateways.values():
                ds.append(g.ep.next_deadline())
            nxt = ticks.earliest(*(ds + [q[0] for q in self.queue]))
            if nxt is None or ticks.diff(nxt, t) > 0:
                break
            if ticks.diff(nxt, self.now) > 0:
                self.now = nxt
            due = [q for q in self.queue if ticks.reached(self.now, q[0])]
            if due:
                due.sort(key=lambda q: q[1])
                self.queue = [q for q in self.queue if not ticks.reached(self.now, q[0])]
                for _, _, fn, args in due:
                    fn(*args)
            self.modem.poll(self.now)
            self.box.tick(self.now)
            for g in self.gateways.values():
                if not g.frozen:
                    g.ep.tick(self.now)
                    self.gw_settle(g)
        else:
            raise AssertionError("simulation does not settle: a timer spins")
        self.now = t
        self.settle()

    def deadlines(self):
        """Extra deadlines of whatever runs the box (a port's status lines, say)."""
        return []

    def run(self, ms):
        self.run_until(ticks.add(self.now, ms))

    def run_until_event(self, name, limit_ms, **fields):
        """Run until the box reports `name` (with `fields`); its tick, or None."""
        start = len(self.events)
        end = ticks.add(self.now, limit_ms)
        while ticks.diff(end, self.now) > 0:
            self.run(50)
            for t, e in self.events[start:]:
                if e.name == name and all(e.get(k) == v for k, v in fields.items()):
                    return t
        return None

    # --- looking at what happened -------------------------------------------------------

    def names(self, since=0):
        return [e.name for _, e in self.events[since:]]

    def find(self, name, since=0, **fields):
        return [e for _, e in self.events[since:] if e.name == name and
                all(e.get(k) == v for k, v in fields.items())]

    def in_use(self, cluster=0):
        return self.box.clusters[cluster].in_use

    def delivered(self):
        """Every (space, number) handed on by any gateway, duplicates included."""
        out = []
        for g in self.gateways.values():
            for m in g.handed_on:
                out.append((m[0], m[1]))
        return out
