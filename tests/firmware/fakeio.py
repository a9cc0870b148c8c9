"""Stand-ins for a board's UART, pins, watchdog and LAN side, shared by the device-port tests."""
from gwbox import ticks


class FakeUart:
    """rx: what the far end sent (read takes all of it); tx: everything written. `room`: like a
    board's UART buffers (MicroPython rp2: 288 bytes, timeout 0), a write takes only what fits
    beside the tx not yet drained and returns that count, None when it takes nothing."""

    def __init__(self, room=None):
        self.rx = bytearray()
        self.tx = bytearray()
        self.written = 0
        self.room = room
        self.short_writes = 0

    def read(self):
        if not self.rx:
            return None
        data = bytes(self.rx)
        self.rx = bytearray()
        return data

    def write(self, data):
        n = len(data)
        if self.room is not None and n > self.room - len(self.tx):
            n = max(0, self.room - len(self.tx))
            self.short_writes += 1
            if n == 0:
                return None
        self.tx.extend(data[:n])
        self.written += n
        return n


class PacedUart(FakeUart):
    """A board's UART on the line's clock, as MicroPython's rp2 port has it: `write` puts
    what fits into a transmit buffer of `room` bytes (txbuf 256 and the 32-byte FIFO) and
    returns how many it took (None for none: EAGAIN), dropping nothing itself; the buffer
    drains at the baud rate (10 bits a character). What has left the box is in `tx`.
    `clock()` is the tick the test drives."""

    def __init__(self, clock, baud=9600, room=288):
        FakeUart.__init__(self)
        self.clock = clock
        self.baud = baud
        self.room = room
        self.queue = bytearray()  # in the buffer, not yet on the line
        self.at = None  # tick the line started sending the queue (the line's own clock)
        self.gone = 0  # characters sent since then
        self.refused = 0  # bytes a write did not take

    def drain(self):
        if self.queue:
            n = ticks.diff(self.clock(), self.at) * self.baud // 10000 - self.gone  # characters sent since
            if n > 0:
                self.tx.extend(self.queue[:n])
                self.queue = self.queue[n:]
                self.gone += n
        if not self.queue:
            self.at = None

    def deadline(self):
        """When the next byte has left (None: nothing queued)."""
        if not self.queue:
            return None
        return ticks.add(self.at, ((self.gone + 1) * 10000 + self.baud - 1) // self.baud)

    def write(self, data):
        self.drain()
        n = min(len(data), self.room - len(self.queue))
        self.refused += len(data) - n
        if n <= 0:
            return None
        if self.at is None:
            self.at = self.clock()
            self.gone = 0
        self.queue.extend(data[:n])
        self.written += n
        return n


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
    """inbox: datagrams the LAN side will deliver (src, port, payload); sent: what went out."""

    def __init__(self):
        self.inbox = []
        self.sent = []

    def recv(self):
        return self.inbox.pop(0) if self.inbox else None

    def send(self, src, port, payload):
        self.sent.append((src, port, payload))
