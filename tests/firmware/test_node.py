"""gwbox.node: modem + framing + endpoint stacked, against a scripted byte-level fake modem."""
# mp-heap: 128K  (hosts both parties: two devices, two 64K device heaps, in one interpreter)
# The box node drives a real `Modem` over a fake Hayes modem that answers AT commands and,
# once online, carries bytes to a modemless gateway node with a one-way delay. Virtual
# clock, starting just before the 2**30 tick wrap. The real-pty end-to-end test is
# tests/host/test_link_e2e.py.
from array import array

from gwbox import ticks
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.link.framing import Framer
from gwbox.link.modem import Modem
from gwbox.node import DOWN, LINE, UP, Node


START = ticks.PERIOD - 3000
PSK = b"\x22" * 32
DELAY = 15      # one-way line delay, ms
GUARD = 200     # +++ guard time (the fake's S12 and the driver's guard_ms)
CFG = dict(keepalive_idle_ms=2000, response_ms=1000, retries=1)


class FakeModem:
    """Hayes modem at the byte level: OK to every command, CONNECT to ATD, +++ with guard."""

    def __init__(self):
        self.online = False
        self.frozen = False  # router frozen: carrier up, no byte passes either way
        self.line = b""
        self.cmds = []
        self.to_box = b""
        self.to_gw = b""
        self.last_rx = None
        self.plus_at = None

    def from_box(self, data, now):
        if self.online:
            quiet = self.last_rx is None or ticks.diff(now, self.last_rx) >= GUARD
            self.plus_at = now if data == b"+++" and quiet else None
            self.last_rx = now
            if self.plus_at is None and not self.frozen:
                self.to_gw += data
            return
        for b in data:
            if b != 13:
                self.line += bytes([b])
                continue
            cmd = self.line.decode().upper()
            self.line = b""
            self.cmds.append(cmd)
            if cmd.startswith("ATD"):
                self.online = True
                self.last_rx = now
                self.to_box += b"\r\nCONNECT 9600\r\n"
            else:
                self.to_box += b"\r\nOK\r\n"

    def from_gw(self, data):
        if self.online and not self.frozen:
            self.to_box += data

    def drop(self):
        """Carrier lost: NO CARRIER to the box, back to command mode."""
        self.online = False
        self.frozen = False
        self.to_box += b"\r\nNO CARRIER\r\n"

    def deadline(self):
        return None if self.plus_at is None else ticks.add(self.plus_at, GUARD)

    def poll(self, now):
        if self.plus_at is not None and ticks.reached(now, self.deadline()):
            self.plus_at = None
            self.online = False
            self.to_box += b"\r\nOK\r\n"


class Log:
    """A node's events as (tick, name, one field) in preallocated slots.

    Two devices share this heap: keeping every Event (and its dict) alive would scatter
    long-lived objects between the handshake's transient ones and fragment the heap.
    Names and most reasons are interned strings, ticks are small ints: no allocation.
    """
    KEY = {"queue_flushed": "payloads", "payload_dropped": "bytes"}  # else "reason"

    def __init__(self, size=24):  # a test here logs at most 13 events per node
        self.t = array("i", bytes(4 * size))  # ticks < 2**30 fit
        self.name = [None] * size
        self.val = [None] * size
        self.n = 0

    def add(self, now, e):
        i = self.n
        assert i < len(self.name), "event log full"
        self.t[i] = now
        self.name[i] = e.name
        self.val[i] = e.get(self.KEY.get(e.name, "reason"))
        self.n = i + 1

    def names(self, after=None):
        return [self.name[i] for i in range(self.n) if after is None or ticks.diff(self.t[i], after) >= 0]

    def first(self, name, after=None):
        """(tick, field) of the first `name` at or after `after`; (None, None) if none."""
        for i in range(self.n):
            if self.name[i] == name and (after is None or ticks.diff(self.t[i], after) >= 0):
                return self.t[i], self.val[i]
        return None, None


class Rig:
    def __init__(self, queue_bytes=4096, start=True, **cfg):
        c = dict(CFG)
        c.update(cfg)
        self.now = START
        self.cfg = LinkConfig(**c)
        modem = Modem(dial_target="gw1", guard_ms=GUARD, baud=9600)
        # Frames of at most 256 bytes (the largest here is 90): two 1,600-byte receive
        # buffers would cost 2.5 KB of the two-device heap.
        self.box = Node(Endpoint(self.cfg, b"box1", psk=PSK, expect_peer=b"gw1"), modem,
                        Framer(256), queue_bytes=queue_bytes)
        self.gw = Node(Endpoint(self.cfg, b"gw1", psks={b"box1": PSK}), None, Framer(256))
        self.fake = FakeModem()
        self.flight = []  # (due tick, "gw" | "modem", bytes)
        self.ev = {"box": Log(), "gw": Log()}
        self.got = {"box": [], "gw": []}
        self.gw.start(self.now)
        if start:
            self.box.start(self.now)

    def settle(self):
        for _ in range(100):
            moved = False
            out = self.box.take_uart()
            if out:
                self.fake.from_box(out, self.now)
                moved = True
            if self.fake.to_box:
                data, self.fake.to_box = self.fake.to_box, b""
                self.box.feed(data, self.now)
                moved = True
            if self.fake.to_gw:
                self.flight.append((ticks.add(self.now, DELAY), "gw", self.fake.to_gw))
                self.fake.to_gw = b""
            out = self.gw.take_uart()
            if out:
                self.flight.append((ticks.add(self.now, DELAY), "modem", out))
            for name, n in (("box", self.box), ("gw", self.gw)):
                for e in n.take_events():
                    self.ev[name].add(self.now, e)
                self.got[name].extend(n.take_received())
            if not moved:
                return

    def run_until(self, t):
        for _ in range(5000):
            self.settle()
            nxt = ticks.earliest(self.box.next_deadline(), self.gw.next_deadline(),
                                 self.fake.deadline(), *[f[0] for f in self.flight])
            if nxt is None or ticks.diff(nxt, t) > 0:
                break
            if ticks.diff(nxt, self.now) > 0:
                self.now = nxt
            due = [f for f in self.flight if ticks.reached(self.now, f[0])]
            self.flight = [f for f in self.flight if not ticks.reached(self.now, f[0])]
            for _, dst, data in due:
                if dst == "gw":
                    self.gw.feed(data, self.now)
                else:
                    self.fake.from_gw(data)
            self.fake.poll(self.now)
            self.box.tick(self.now)
            self.gw.tick(self.now)
        self.now = t
        self.settle()

    def run(self, ms):
        self.run_until(ticks.add(self.now, ms))

    def names(self, who, after=None):
        return self.ev[who].names(after)

    def first(self, who, name, after=None):
        return self.ev[who].first(name, after)

    def up(self):
        self.run(1500)
        assert self.box.state == UP, (self.box.state, self.names("box"))
        assert self.gw.state == UP, self.names("gw")


def test_dial_link_up_handshake_data_keepalive_and_line_noise():
    r = Rig()  # ATZ written, the modem waits for its OK; no SA yet
    assert r.box.endpoint.next_deadline() is None
    assert r.box.next_deadline() == r.box.modem.next_deadline() == ticks.add(START, 2000)
    r.up()
    n = r.names("box")
    order = [n.index(x) for x in ("modem_ready", "dialing", "link_up", "handshake_started", "sa_established")]
    assert order == sorted(order), n
    assert r.fake.cmds == ["ATZ", "ATE0V1Q0&C1&D2", "ATDGW1"]
    assert r.box.modem.next_deadline() is None
    assert r.box.next_deadline() == r.box.endpoint.next_deadline()
    assert r.box.send(b"up the line", r.now)
    assert r.gw.send(b"down the line", r.now)
    r.run(200)
    assert r.got["gw"] == [b"up the line"]
    assert r.got["box"] == [b"down the line"]
    # Line noise and broken frames are counted by the framers, never raised.
    r.gw.feed(b"\x7e\x01\x02\x03\x04\x05\x7e\x7d\x7e\x7e" + bytes(range(256)) + b"\x7e", r.now)
    r.box.feed(b"\x7e\x55\x66\x77\x7e", r.now)  # online: through the modem to the framer
    fr = r.gw.framer
    assert fr.bad_fcs >= 1 and fr.aborts >= 1 and fr.resyncs == fr.bad_fcs + fr.aborts + fr.runts
    assert r.box.framer.bad_fcs == 1
    # Keepalives cross the wrap without a false teardown.
    r.run(8000)
    assert "keepalive_ack" in r.names("box")
    assert "peer_dead" not in r.names("box") + r.names("gw")
    assert r.box.state == UP and r.gw.state == UP


def test_link_down_deletes_the_sa_at_once():
    r = Rig()
    r.up()
    r.run(500)
    t0 = r.now
    r.fake.drop()
    r.settle()
    t_down, down = r.first("box", "link_down", t0)
    t_del, deleted = r.first("box", "sa_deleted", t0)
    assert down == "no carrier"
    assert deleted == "link_down"
    assert t_down == t0 and t_del == t0  # same instant, no keepalive waited for
    n = r.names("box")
    assert n.index("link_down") < n.index("sa_deleted")
    assert r.box.endpoint.session() is None and r.box.state == DOWN
    assert "keepalive_sent" not in r.names("box", t0)
    # A raw-line gateway whose port reports the carrier gone does the same.
    r.gw.carrier(False, r.now)
    r.settle()
    assert r.names("gw")[-2:] == ["link_down", "sa_deleted"]
    assert r.gw.state == DOWN and r.gw.endpoint.session() is None
    r.gw.carrier(True, r.now)
    assert r.gw.state == LINE


def test_peer_dead_hangs_up_the_line():
    r = Rig()
    r.up()
    t0 = r.now
    r.fake.frozen = True
    r.run(6000)
    t_dead = r.first("box", "peer_dead", t0)[0]
    assert t_dead is not None, r.names("box")
    assert ticks.diff(t_dead, t0) <= r.cfg.detect_bound_ms()
    t_del, deleted = r.first("box", "sa_deleted", t0)
    assert deleted == "peer_dead" and t_del == t_dead
    t_hang, down = r.first("box", "link_down", t0)
    assert down == "hangup" and t_hang == t_dead
    assert r.first("box", "hangup_done", t0)[0] is not None
    assert r.fake.cmds[-1] == "ATH" and not r.fake.online
    assert r.box.state == DOWN and r.box.modem.state == "ready"


def test_release_sends_delete_then_hangs_up():
    r = Rig()
    r.up()
    t0 = r.now
    r.box.release_link(r.now)
    r.run(1000)
    assert r.first("box", "sa_deleted", t0)[1] == "released"
    assert r.first("gw", "sa_deleted", t0)[1] == "peer_deleted"
    assert r.first("box", "hangup_done", t0)[0] is not None
    assert r.fake.cmds[-1] == "ATH" and r.box.state == DOWN and r.gw.state == LINE


def test_send_while_down_queues_dials_and_delivers_in_order():
    r = Rig(queue_bytes=100, start=False)
    assert r.box.state == DOWN
    assert r.box.send(b"a" * 60, r.now)
    assert not r.box.send(b"b" * 60, r.now)  # full: refused, the queue keeps what it has
    assert r.box.send(b"c" * 40, r.now)
    assert not r.box.send(b"d", r.now)
    assert r.box.queued == 100 and r.box.queue_dropped == 2
    r.settle()
    assert r.names("box")[0] == "payload_queued"
    log = r.ev["box"]
    assert [log.val[i] for i in range(log.n) if log.name[i] == "payload_dropped"] == [60, 1]  # bytes
    r.run(1500)
    assert r.got["gw"] == [b"a" * 60, b"c" * 40]
    assert r.first("box", "queue_flushed")[1] == 2  # payloads
    assert r.box.queued == 0 and r.box.state == UP


def test_redial_on_demand_after_carrier_loss():
    r = Rig()
    r.up()
    r.fake.drop()
    r.settle()
    assert r.box.state == DOWN
    # The gateway's keepalive retires its stale SA (a pty gateway sees no carrier) ...
    r.run(r.cfg.detect_bound_ms() + r.cfg.response_ms + 100)
    assert r.first("gw", "sa_deleted")[1] == "peer_dead"
    # ... and payload sent while down dials a fresh call, handshakes and is delivered.
    assert r.box.send(b"after the drop", r.now)
    r.run(1500)
    assert r.got["gw"] == [b"after the drop"]
    assert r.names("box").count("dialing") == 2
    assert r.names("gw").count("sa_established") == 2
