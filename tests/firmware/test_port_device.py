"""gwbox.port.device: the poll loop glues UART, DCD, DTR, LAN, LED and watchdog to the box."""
# mp-heap: 256K  (the box and three gateways: four devices, four 64K device heaps, in one interpreter)
import json

import clustersim
from test_box import DST, G1, G2, G3, PSK, policy_text
from gwbox.box import Box
from gwbox.link.modem import Modem
from gwbox.policy import parse
from gwbox.port.device import LED_SEARCHING, POLL_MS, DevicePort


class FakeUart:
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()
        self.written = 0

    def read(self):
        if not self.rx:
            return None
        data = bytes(self.rx)
        self.rx = bytearray()
        return data

    def write(self, data):
        self.tx.extend(data)
        self.written += len(data)
        return len(data)


class FakePin:
    def __init__(self, v=0):
        self.v = v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class FakeWdt:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


class FakeLan:
    def __init__(self):
        self.inbox = []
        self.sent = []

    def recv(self):
        return self.inbox.pop(0) if self.inbox else None

    def send(self, src, port, payload):
        self.sent.append((src, port, payload))


class PortSim(clustersim.Sim):
    """The virtual head office, with the box behind a DevicePort (its loop, its fakes)."""

    def __init__(self, text=None, **port_kw):
        self.uart = FakeUart()
        self.lines = []
        self.pins = {"dcd": FakePin(0), "dtr": FakePin(0), "led": FakePin(0)}
        self.wdt = FakeWdt()
        self.lan = FakeLan()
        pol = parse(text or policy_text())

        def factory(now):
            box = Box(pol, Modem(guard_ms=clustersim.GUARD, baud=9600), rand_bytes=clustersim.Rand(7).bytes,
                      start=now)
            self.port = DevicePort(box, self.uart, dcd=self.pins["dcd"], dtr=self.pins["dtr"], led=self.pins["led"],
                                   wdt=self.wdt, lan=self.lan, log=self.lines.append, clock=lambda: self.now, **port_kw)
            return box

        clustersim.Sim.__init__(self, factory, {G1: PSK, G2: PSK,
                                                G3: PSK}, {"ras": "ras"})

    def settle(self):
        if not hasattr(self, "port"):
            return
        for _ in range(100):
            self.port.step()
            moved = False
            if self.uart.tx:
                data, self.uart.tx = bytes(self.uart.tx), bytearray()
                self.modem.from_box(data, self.now)
                moved = True
            if self.modem.to_box:
                self.uart.rx.extend(self.modem.to_box)
                self.modem.to_box = b""
                moved = True
            if not moved:
                return

    def deadlines(self):
        return [self.port.next_deadline()] if hasattr(self, "port") else []

    def records(self):
        return [json.loads(l) for l in self.lines]

    def names(self, since=0):
        return [r["event"] for r in self.records()[since:]]


def test_boot_dial_handshake_and_lan_payload_through_the_poll_loop():
    s = PortSim()
    assert s.pins["dtr"].value() == 1  # DTR held up from the start
    s.run(3000)
    assert "sa_established" in s.names()
    assert s.pins["led"].value() == 1  # solid: payload can flow
    s.lan.inbox.append((DST, 5000, b"over the uart"))
    s.run(500)
    assert s.gateways[G1].handed_on[0][4] == b"over the uart"
    assert s.wdt.fed > 10
    assert not any("5a5a5a5a" in l or "psk" in l.lower() for l in s.lines)  # no secret is ever logged


def test_log_lines_are_json_with_time_since_boot():
    s = PortSim()
    s.run(3000)
    recs = s.records()
    assert recs[0]["t_ms"] == 0 and all(r["node"] == "box" for r in recs)
    assert all(0 <= r["t_ms"] <= 3000 for r in recs)


def test_status_lines_carry_what_the_monitor_shows():
    s = PortSim(status_ms=1000)
    s.run(3500)
    st = [r for r in s.records() if r["event"] == "status"]
    assert len(st) == 3
    last = st[-1]
    assert last["clusters"][0]["in_use"] == G1 and last["line"] == "up"
    assert last["sas"][0]["peer"] == G1 and "outbox" in last and last["uptime_s"] == 3


def test_dcd_drop_is_carrier_loss_and_the_led_blinks_while_searching():
    s = PortSim()
    s.run(3000)
    s.pins["dcd"].value(1)  # carrier lost (active low)
    s.modem.online = False
    s.run(10)
    assert "link_down" in s.names() and s.box.line.state != "up"
    s.run(2000)
    on, off = LED_SEARCHING
    assert s.box.carrying() is False
    seen = set()
    for _ in range(20):
        s.run(50)
        seen.add(s.pins["led"].value())
    assert seen == {0, 1}  # a pattern, not a steady light


def test_sleep_is_bounded_by_poll_interval_and_next_deadline_and_noise_is_counted():
    s = PortSim()
    s.run(3000)
    w = s.port.step()
    assert 0 <= w <= POLL_MS
    s.uart.rx.extend(b"\x7e\x01\x02garbage\x7e")  # line noise: counted, never raised
    s.port.step()
    assert s.box.line.framer.bad_fcs == 1 and s.box.line.state == "up"


def test_a_memory_error_in_the_loop_is_survived_and_reported():
    s = PortSim()
    s.run(3000)
    real = s.box.tick

    def failing(now):
        raise MemoryError("memory allocation failed")

    s.box.tick = failing
    s.box.next_deadline = lambda: s.now
    fed = s.wdt.fed
    waits = [s.port.step() for _ in range(3)]
    assert waits == [200, 200, 200]  # backs off instead of spinning
    assert s.names()[-3:] == ["out_of_memory"] * 3 and s.port.oom == 3
    assert s.wdt.fed == fed + 3  # not yet fatal: the watchdog is still fed
    s.box.tick = real
    del s.box.next_deadline
    s.port.step()
    assert s.port.oom == 0
