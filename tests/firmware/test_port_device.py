"""gwbox.port.device: the poll loop glues UART, DCD, LED and watchdog to a node."""
# mp-heap: 128K  (hosts both parties: two devices, two 64K device heaps, in one interpreter)
from gwbox import ticks
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.node import Node
from gwbox.port.device import POLL_MS, DevicePort

PSK = b"\x33" * 32


class Wire:
    """One direction of a null-modem cable between two fake UARTs."""

    def __init__(self):
        self.buf = bytearray()


class FakeUart:
    def __init__(self, rx, tx):
        self.rx = rx
        self.tx = tx
        self.written = 0

    def read(self):
        if not self.rx.buf:
            return None
        data = bytes(self.rx.buf)
        self.rx.buf = bytearray()
        return data

    def write(self, data):
        self.tx.buf.extend(data)
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


class Clock:
    def __init__(self):
        self.t = ticks.PERIOD - 500  # just before the wrap

    def __call__(self):
        return self.t


def ports():
    cfg = LinkConfig(keepalive_idle_ms=2000, response_ms=500, retries=1)
    a2b, b2a = Wire(), Wire()
    clock = Clock()
    lines = []
    box = DevicePort(Node(Endpoint(cfg, b"box1", psk=PSK, expect_peer=b"gw1"), initiator=True),
                     FakeUart(b2a, a2b), dcd=FakePin(0), dtr=FakePin(0), led=FakePin(0), wdt=FakeWdt(),
                     log=lines.append, clock=clock)
    gw = DevicePort(Node(Endpoint(cfg, b"gw1", psks={b"box1": PSK})), FakeUart(a2b, b2a), clock=clock)
    return box, gw, clock, lines


def run(box, gw, clock, ms):
    end = ticks.add(clock.t, ms)
    while ticks.diff(end, clock.t) > 0:
        wait = min(box.step(), gw.step())
        clock.t = ticks.add(clock.t, max(1, wait))


def test_handshake_and_payload_through_the_poll_loop():
    box, gw, clock, lines = ports()
    assert box.dtr.value() == 1  # DTR held up from the start
    box.start()
    gw.start()
    run(box, gw, clock, 500)
    assert box.node.state == "up" and gw.node.state == "up"
    assert box.led.value() == 1
    assert any(" sa_established " in l for l in lines)
    assert not any("psk" in l.lower() for l in lines)
    box.node.send(b"over the uart", clock.t)
    run(box, gw, clock, 100)
    assert gw.node.take_received() == [b"over the uart"]
    assert box.wdt.fed > 10


def test_dcd_drop_is_link_down_at_once_and_led_goes_out():
    box, gw, clock, lines = ports()
    box.start()
    gw.start()
    run(box, gw, clock, 500)
    assert box.led.value() == 1
    box.dcd.value(1)  # carrier lost (active low)
    box.step()
    assert box.node.state != "up" and box.led.value() == 0
    assert any(" link_down " in l for l in lines)
    assert any(" sa_deleted " in l for l in lines)


def test_sleep_is_bounded_by_poll_interval_and_next_deadline():
    box, gw, clock, lines = ports()
    box.start()
    w = box.step()
    assert 0 <= w <= POLL_MS
    box.uart.rx.buf.extend(b"\x7e\x01\x02garbage\x7e")  # line noise: counted, never raised
    box.step()
    assert box.node.counters()["bad_fcs"] == 1 and box.node.state != "down"
