"""Device port: runs the box on a board's UART, modem lines, LAN side, LED and watchdog.

The only firmware code that touches hardware, and even it takes the hardware objects
from its caller (main.py builds them from the board file), so it runs, and is tested,
anywhere: on a board, under the unix MicroPython with host stand-ins (boards/unix), and
in virtual time. One poll loop: read the UART, watch DCD, drive DTR, move LAN datagrams,
tick the box at its deadline, write what it hands out, log its events, feed the watchdog
only while the loop makes progress, sleep until the next deadline (at most POLL_MS so
UART bytes are picked up promptly; `rxbuf` must cover POLL_MS of line time).

Log lines are gwbox.events.json_line with `t_ms` in ms since boot. A MemoryError inside
the loop is survived: the heap is collected, the loop backs off and reports it, and only
if it persists does the watchdog (no longer fed) reset the board.
"""
import gc
import time

from gwbox import ticks
from gwbox.events import json_line

POLL_MS = 20
_OOM_BACKOFF_MS = 200  # after a MemoryError: let the line breathe, then try again
_OOM_FATAL = 50  # MemoryErrors in a row after which the watchdog is left to reset the board

# LED patterns: (on ms, off ms); solid on = protected link up
LED_SEARCHING = (100, 900)  # no gateway in use yet
LED_FAILOVER = (100, 100)  # the gateway in use just died; another is being found
LED_ERROR = (1000, 1000)  # memory trouble, or every gateway refuses


def _free():
    f = getattr(gc, "mem_free", None)  # MicroPython only
    return f() if f is not None else -1


class DevicePort:
    def __init__(self, box, uart, dcd=None, dtr=None, led=None, wdt=None, lan=None, log=None,
                 clock=None, name="box", status_ms=0):
        self.box = box
        self.uart = uart
        self.dcd = dcd  # Pin in: modem carrier detect, active low on RS-232 level shifters
        self.dtr = dtr  # Pin out: data terminal ready, driven from the modem driver
        self.led = led
        self.wdt = wdt
        self.lan = lan  # .recv() -> (dst, port, payload) or None; .send(src, port, payload)
        self.log = log  # fn(line) for event lines, e.g. print to the console
        self.clock = clock or time.ticks_ms
        self.name = name
        self.status_ms = status_ms
        self.boot = self.now()
        self._status_at = self.boot
        self._dcd_up = None
        self._failing = False
        self.oom = 0  # MemoryErrors in a row
        self.oom_total = 0
        if dtr is not None:
            dtr.value(1)

    def now(self):
        return self.clock() & ticks.MASK

    def start(self):
        now = self.now()
        self.box.start(now)
        self._flush(now)

    def step(self):
        """One pass of the loop; returns how long to sleep (ms) before the next."""
        now = self.now()
        try:
            self._step(now)
        except MemoryError:
            self.oom += 1
            self.oom_total += 1
            gc.collect()
            self._line(now, "out_of_memory", {"in_a_row": self.oom, "free": _free()})
            if self.wdt is not None and self.oom < _OOM_FATAL:
                self.wdt.feed()
            self._show(now)
            return _OOM_BACKOFF_MS
        self.oom = 0
        if self.wdt is not None:
            self.wdt.feed()  # only after a pass that completed: a wedged loop is reset
        dl = self.next_deadline()
        return POLL_MS if dl is None else min(POLL_MS, max(0, ticks.diff(dl, now)))

    def next_deadline(self):
        """The box's next deadline, or the next status line's."""
        st = ticks.add(self._status_at, self.status_ms) if self.status_ms else None
        return ticks.earliest(self.box.next_deadline(), st)

    def _step(self, now):
        box = self.box
        data = self.uart.read()
        if data:
            box.feed(data, now)
        if self.dcd is not None:
            up = self.dcd.value() == 0
            if up != self._dcd_up:
                self._dcd_up = up
                box.carrier(up, now)
        lan = self.lan
        if lan is not None:
            for _ in range(8):
                d = lan.recv()
                if d is None:
                    break
                box.lan_send(d[0], d[1], d[2], now)
        if ticks.reached(now, box.next_deadline()):
            box.tick(now)
        self._flush(now)
        if self.status_ms and ticks.diff(now, self._status_at) >= self.status_ms:
            self._status_at = ticks.add(self._status_at, self.status_ms)
            self._line(now, "status", box.status(now))

    def run(self):
        self.start()
        while True:
            time.sleep_ms(self.step())

    def _line(self, now, name, fields):
        if self.log is not None:
            self.log(json_line(ticks.diff(now, self.boot), self.name, name, fields))

    def _flush(self, now):
        box = self.box
        out = box.take_uart()
        if out:
            self.uart.write(out)
        if self.lan is not None:
            for src, port, payload in box.take_lan():
                self.lan.send(src, port, payload)
        for e in box.take_events():
            n = e.name
            if n == "gateway_dead" or n == "key_request_rejected":
                self._failing = n
            elif n == "gateway_in_use":
                self._failing = False
            self._line(now, n, e.fields)
        if self.dtr is not None:
            self.dtr.value(1 if box.line.modem.dtr else 0)
        self._show(now)

    def _show(self, now):
        """LED: solid while payload can flow, else a blink pattern saying why not."""
        if self.led is None:
            return
        if not self.oom and self.box.carrying():
            self.led.value(1)
            return
        if self.oom or self._failing == "key_request_rejected":
            pat = LED_ERROR
        elif self._failing:
            pat = LED_FAILOVER
        else:
            pat = LED_SEARCHING
        on, off = pat
        self.led.value(1 if ticks.diff(now, self.boot) % (on + off) < on else 0)
