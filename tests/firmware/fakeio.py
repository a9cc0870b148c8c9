"""Stand-ins for a board's UART, pins, watchdog and LAN side, shared by the device-port tests."""


class FakeUart:
    """rx: what the far end sent (read takes all of it); tx: everything written."""

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
    """inbox: datagrams the LAN side will deliver (src, port, payload); sent: what went out."""

    def __init__(self):
        self.inbox = []
        self.sent = []

    def recv(self):
        return self.inbox.pop(0) if self.inbox else None

    def send(self, src, port, payload):
        self.sent.append((src, port, payload))
