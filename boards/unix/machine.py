"""Stand-in for MicroPython's `machine` module on the unix port (boards/unix).

Shadows the unix port's own `machine` when boards/unix is first on the module path, so
firmware/main.py runs unchanged: UART on a pty (raw mode is set by whoever made the pty),
Pin and WDT that do nothing. Reads only what is there: a pty read never blocks.
`reset()` ends the interpreter with RESET_EXIT: gwbox_tools.mp_box starts it again, as a
board restarts after machine.reset().
"""
import select
import sys

RESET_EXIT = 86


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, id, mode=IN, pull=None, value=None):
        self.id = id
        self.v = 0 if value is None else value

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class UART:
    def __init__(self, id, baudrate=9600, tx=None, rx=None, rxbuf=256, **kw):
        self.f = open(id, "r+b")
        self.p = select.poll()
        self.p.register(self.f, select.POLLIN)
        self.rxbuf = rxbuf

    def read(self, n=-1):
        """The bytes waiting now (at most rxbuf), or None: like a board's UART."""
        out = bytearray()
        lim = self.rxbuf if n is None or n < 0 else n
        while len(out) < lim and self.p.poll(0):
            b = self.f.read(1)
            if not b:
                break
            out += b
        return bytes(out) if out else None

    def write(self, data):
        return self.f.write(data)

    def any(self):
        return 1 if self.p.poll(0) else 0


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


def reset():
    sys.exit(RESET_EXIT)
