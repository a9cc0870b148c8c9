"""A tiny virtual network and clock for protocol tests (runs on both runtimes).

Two endpoints joined by a link with a fixed one-way delay; a test can cut the link
(drop everything), drop single packets through a filter, or tap what passes. Time
is virtual and starts just before the 2**30 tick wrap, so every timer is exercised
across it.
"""
import hashlib

from gwbox import ticks
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint

START = ticks.PERIOD - 5000
PSK = b"\x11" * 32
TAP_KEEP = 64  # a device-sized heap cannot keep every packet of a long test


def pair(cfg=None, box_cfg=None, gw_cfg=None, psk=PSK, gw_psk=None, box_id=b"box1", gw_id=b"gw1", expect=None):
    """A box (initiator, expecting gateway `expect`, default `gw_id`) and a gateway."""
    cfg = cfg or LinkConfig()
    box = Endpoint(box_cfg or cfg, box_id, psk=psk, expect_peer=expect or gw_id)
    gw = Endpoint(gw_cfg or cfg, gw_id, psks={box_id: gw_psk if gw_psk is not None else psk})
    return Net(box, gw)


def output(ep, now):
    """What `ep` sends at `now`, once the X25519 work it does a slice per tick is done
    (a box computes its public key before its SA_INIT goes out)."""
    out = ep.take_output()
    while not out and ticks.reached(now, ep.next_deadline()):
        ep.tick(now)
        out = ep.take_output()
    return out


class Net:
    def __init__(self, a, b, delay_ms=20):
        self.a = a
        self.b = b
        self.delay = delay_ms
        self.now = START
        self.queue = []  # (due tick, destination endpoint, packet)
        self.cut = False  # True: everything is lost (dead peer / frozen router)
        self.drop = None  # optional fn(src, packet) -> True to drop that packet
        self.tap = []  # (src name, packet) of the last TAP_KEEP packets put on the wire
        self.tapped = 0  # how many packets were ever put on the wire
        self.events = {id(a): [], id(b): []}
        self.got = {id(a): [], id(b): []}  # payloads delivered, while keep_payloads
        self.keep_payloads = True
        self.stream = {id(a): hashlib.sha256(), id(b): hashlib.sha256()}  # order-sensitive digest
        self.count = {id(a): 0, id(b): 0}

    def name(self, ep):
        return "a" if ep is self.a else "b"

    def _collect(self):
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            for _link, p in src.take_output():
                self.tap.append((self.name(src), p))
                self.tapped += 1
                if len(self.tap) > TAP_KEEP:
                    self.tap.pop(0)
                if self.cut or (self.drop is not None and self.drop(self.name(src), p)):
                    continue
                self.queue.append((ticks.add(self.now, self.delay), dst, p))
            self.events[id(src)].extend(src.take_events())
            for _peer, d in src.take_received():
                if self.keep_payloads:
                    self.got[id(src)].append(d)
                self.stream[id(src)].update(d)
                self.count[id(src)] += 1

    def inject(self, dst, packet):
        """Deliver `packet` to `dst` now, as an attacker or a noisy line would."""
        dst.receive(packet, self.now)
        self._collect()

    def next_time(self):
        return ticks.earliest(self.a.next_deadline(), self.b.next_deadline(),
                              *[q[0] for q in self.queue])

    def run_until(self, t):
        """Advance virtual time to `t`, delivering packets and firing timers in order."""
        self._collect()
        while True:
            nxt = self.next_time()
            if nxt is None or ticks.diff(nxt, t) > 0:
                break
            self.now = nxt
            due = [q for q in self.queue if ticks.reached(self.now, q[0])]
            self.queue = [q for q in self.queue if not ticks.reached(self.now, q[0])]
            for _, dst, p in due:
                dst.receive(p, self.now)
                self._collect()
            self.a.tick(self.now)
            self.b.tick(self.now)
            self._collect()
        self.now = t

    def run_for(self, ms):
        self.run_until(ticks.add(self.now, ms))

    def since(self, mark):
        """Packets put on the wire since `mark` (a past value of `tapped`)."""
        n = self.tapped - mark
        assert n <= len(self.tap), "tap ring too small for this test"
        return self.tap[len(self.tap) - n:] if n else []

    def names(self, ep):
        return [e.name for e in self.events[id(ep)]]

    def first(self, ep, name):
        for e in self.events[id(ep)]:
            if e.name == name:
                return e
        return None

    def connect(self, settle_ms=1000):
        self.a.connect(self.now)
        self.run_for(settle_ms)
        assert self.a.session() is not None, self.names(self.a)
        assert self.b.session() is not None, self.names(self.b)
