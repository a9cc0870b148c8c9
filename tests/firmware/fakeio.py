"""Stand-ins for a board's UART, pins, watchdog and LAN side, shared by the device-port tests."""


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
