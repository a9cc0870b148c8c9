"""Device port: runs a Node on a board's UART, modem lines, LED and watchdog.

The only firmware code that touches hardware, and even it takes the hardware objects
from its caller (main.py builds them from the board file), so it runs, and is tested,
anywhere. One poll loop: read the UART, watch DCD, tick the node at its deadline, write
what it hands out, feed the watchdog, sleep until the next deadline (at most POLL_MS so
UART bytes are picked up promptly; `rxbuf` must cover POLL_MS of line time).
"""
import time

from gwbox import ticks

POLL_MS = 20


class DevicePort:
    def __init__(self, node, uart, dcd=None, dtr=None, led=None, wdt=None, log=None, clock=None):
        self.node = node
        self.uart = uart
        self.dcd = dcd  # Pin in: modem carrier detect, active low on RS-232 level shifters
        self.dtr = dtr  # Pin out: data terminal ready, held up; dropped to force a hang-up
        self.led = led  # Pin out: lit while payload can flow
        self.wdt = wdt
        self.log = log  # fn(line) for event lines, e.g. print to the console
        self.clock = clock or time.ticks_ms
        self._dcd_up = None
        if dtr is not None:
            dtr.value(1)

    def now(self):
        return self.clock() & ticks.MASK

    def start(self):
        self.node.start(self.now())
        self._flush(self.now())

    def step(self):
        """One pass of the loop; returns how long to sleep (ms) before the next."""
        now = self.now()
        data = self.uart.read()
        if data:
            self.node.feed(data, now)
        if self.dcd is not None:
            up = self.dcd.value() == 0
            if up != self._dcd_up:
                self._dcd_up = up
                self.node.carrier(up, now)
        if ticks.reached(now, self.node.next_deadline()):
            self.node.tick(now)
        self._flush(now)
        if self.wdt is not None:
            self.wdt.feed()
        dl = self.node.next_deadline()
        wait = POLL_MS if dl is None else min(POLL_MS, max(0, ticks.diff(dl, now)))
        return wait

    def run(self):
        self.start()
        while True:
            time.sleep_ms(self.step())

    def _flush(self, now):
        out = self.node.take_uart()
        if out:
            self.uart.write(out)
        for e in self.node.take_events():
            if self.log is not None:
                self.log("%d %s %s" % (now, e.name, " ".join("%s=%s" % (k, e.fields[k]) for k in e.fields
                                                            if k not in ("ctl_spi", "data_spi", "spi"))))
        if self.led is not None:
            self.led.value(1 if self.node.state == "up" else 0)
