"""Device port: runs the box on a board's UART, modem lines, LAN side, LED, watchdog and console.

The only firmware code that touches hardware, and even it takes the hardware objects
from its caller (gwbox.start builds them from the board file), so it runs, and is
tested, anywhere: on a board, under the unix MicroPython with host stand-ins
(boards/unix), and in virtual time. One poll loop: read the UART, watch DCD, drive DTR
from the modem driver, move LAN datagrams, tick the box at its deadline, write what it
hands out, log its events, serve the console, feed the watchdog only after a pass that
completed, sleep until the next deadline (at most POLL_MS so UART bytes are picked up
promptly). No pass takes longer than LONG_PASS_MS (250 ms; `rxbuf` holds twice that line
time): X25519 is computed a slice per pass (docs/crypto.md), a UART is read for the bytes
it holds without waiting for more (`take`), the box starts a handshake in passes of its own,
and a pass that has used _ROOM_MS already leaves the box's tick and the status line to the
next pass (docs/chip.md, "The loop's passes"). A longer pass is reported (`long_pass`).

Log lines are gwbox.events.json_line with `t_ms` in ms since boot. A MemoryError inside
the loop is survived: the heap is collected, the loop backs off and reports it, and only
if it persists does the watchdog (no longer fed) reset the board.

The console (gwbox.console, docs/console.md) is imported only when console input arrives
and dropped again once it is idle, so it costs nothing while nobody types. What must
outlive it stays here: the wrong-password count and lock, and a small ring of recent
event lines for `show log`. With `box=None` the port runs the console alone: safe mode.
"""
import gc
import sys
import time

from gwbox import const, forget, ticks
from gwbox.events import json_line, text_line

POLL_MS = 20
_OOM_BACKOFF_MS = const(200)  # after a MemoryError: let the line breathe, then try again
_OOM_FATAL = const(50)  # MemoryErrors in a row after which the watchdog is left to reset the board
_OOM_SHED = const(3)  # ... after which the box gives up what it makes ahead of a failover (Box.shed)
_CON_READ = const(256)  # console bytes taken per pass
_RING = const(6)  # event lines kept for `show log`, as text for people (events.text_line)
_RING_LINE = const(160)  # characters kept of each
LONG_PASS_MS = const(250)  # the bound on a pass of the loop; a longer one is reported (`long_pass`)
_ROOM_MS = const(50)  # a pass that has used this much leaves the box's tick and the status line to the next
RX_POLL_MS = 4  # after a pass that took line bytes: a frame still arriving is read as it ends
_TAKE_MAX = const(512)  # UART bytes taken per pass: about a board's RXBUF (half a second at 9,600 baud)
_TX_HOLD = const(4096)  # line bytes held for a UART that takes none (a wedged one): beyond, dropped and counted

# LED patterns: (on ms, off ms); solid on = protected link up
LED_SEARCHING = (100, 900)  # no gateway in use yet
_LED_FAILOVER = const((100, 100))  # the gateway in use just died; another is being found
_LED_ERROR = const((1000, 1000))  # memory trouble, or every gateway refuses
LED_SAFE = (1900, 100)  # safe mode: the box does not run, the console does


def take(uart, cap=_TAKE_MAX):
    """The bytes a UART holds now (at most about `cap`), or None, without waiting for more.

    A board's `read()` waits `timeout_char` (at least a character time, 2 ms at 9,600 baud)
    after each byte for the next, so while a burst arrives it reads on to the burst's end:
    on the RP2040, 180-270 ms of a pass in one read of a handshake's messages. `any()` says
    how many bytes are there (some ports say 1 for "some"), and reading no more than that
    never waits. A UART without `any()` (a host stand-in that never waits) is just read."""
    any_ = getattr(uart, "any", None)
    if any_ is None:
        return uart.read()
    out = None
    n = any_()
    while n:
        b = uart.read(n)
        if not b:
            break
        if out is None:
            out = b
        else:
            if not isinstance(out, bytearray):
                out = bytearray(out)
            out.extend(b)
        if len(out) >= cap:
            break
        n = any_()
    return out


def write_all(uart, held, data, hold_max):
    """Write `held` (what the UART did not take before) and then `data` to `uart`, in order;
    returns (what it did not take now, or None; bytes dropped).

    A board's `write()` takes what fits its buffers and returns that count: MicroPython's rp2
    UART (timeout 0) takes its 256-byte ring buffer and the 32-byte FIFO and returns 288 for a
    longer write, and None when it takes nothing. The rest is the box's line output, already
    counted as sent: it waits here for the next pass (the loop passes at least every POLL_MS),
    never dropped, except beyond `hold_max` (a UART that takes nothing at all)."""
    if held:
        data = held + data if data else held
    n = uart.write(data)
    n = 0 if n is None else n
    if n >= len(data):
        return None, 0
    rest = data[n:]
    if len(rest) > hold_max:
        return None, len(rest)
    return rest, 0


def _free():
    f = getattr(gc, "mem_free", None)  # MicroPython only
    return f() if f is not None else -1


class StdinConsole:
    """The REPL's input (a board's UART or USB, the unix port's stdin), read without blocking:
    `read()` returns the bytes waiting now, or None. At end of input it stops polling."""

    def __init__(self, stream=None):
        import select
        s = stream or sys.stdin
        self.s = getattr(s, "buffer", s)
        self.p = select.poll()
        self.p.register(s, select.POLLIN)

    def read(self):
        p = self.p
        out = None
        while p is not None and (out is None or len(out) < _CON_READ) and p.poll(0):
            b = self.s.read(1)
            if not b:
                self.p = p = None  # end of input (a closed pipe): never spin on it
                break
            if out is None:
                out = bytearray()
            out.extend(b)
        return out


class DevicePort:
    def __init__(self, box, uart, dcd=None, dtr=None, led=None, wdt=None, lan=None, log=None,
                 clock=None, name="box", status_ms=0, console=None, policy_path="gwbox.policy",
                 password=None, safe=None, reset=None, entropy=None, stable_ms=0, retry_ms=0, fs=None):
        self.box = box  # None: safe mode, the console alone
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
        self.cin = console  # .read() -> bytes or None: the console's input (StdinConsole)
        self.policy_path = policy_path
        self.fs = fs  # the file system for gwbox.store (None: the device's own)
        self.password = password  # (iterations, salt, hash) of ConsolePassword, or None
        # (masked text, file, checksum) of the policy this boot runs, rendered while the parser was
        # loaded anyway: `show policy` then needs no parser beside the running box. None: parse.
        self.shown = None
        self.safe = safe  # why the box is in safe mode, or None
        self.reset = reset  # fn(): restart the board (machine.reset)
        self.stable_ms = stable_ms  # once the loop has run this long, the boot counts as good
        self.retry_ms = retry_ms  # safe mode: reboot normally after this long without console input
        self.boot = self.now()
        self._status_at = self.boot
        self._dcd_up = None
        self._failing = False
        self.oom = 0  # MemoryErrors in a row
        self.oom_total = 0
        self.pass_max = 0  # the longest pass of the loop so far, ms
        self.pass_recent = 0  # ... since the last status line
        self._deferred = False  # the box's tick was left to the next pass
        self._rx = False  # this pass took line bytes
        self._marks = [0, 0, 0, 0, 0]  # this pass: ticks after input, tick, output, status, console
        self._tx = None  # line bytes the modem UART did not take yet (write_all)
        self.tx_dropped = 0  # line bytes given up because the UART took none for _TX_HOLD of them
        self.fails = 0  # wrong console passwords in a row
        self.locked_until = None  # no login before this tick
        self.ring = []  # recent event lines (`show log`)
        self.running = False
        self._con = None  # gwbox.console.Console while the console is in use
        self._con_at = self.boot  # the last console input
        self.rebooting = None  # console `reboot` (False) or `reboot safe` (True), done once the console left
        if dtr is not None:
            dtr.value(1)
        if entropy is not None:
            from gwbox.crypto.entropy import add_entropy
            add_entropy(entropy() if callable(entropy) else entropy)

    def now(self):
        return self.clock() & ticks.MASK

    def start(self):
        now = self.now()
        if self.box is not None:
            self.box.start(now)
        self._flush(now)

    def event(self, name, fields):
        self._line(self.now(), name, fields)

    def restart(self):
        """A deliberate restart (console `reboot`, a crash caught in main.py): the box first
        reports what its outbox loses with the RAM (`outbox_lost`), then the board resets."""
        if self.box is not None:
            now = self.now()
            for _ in range(2):  # the report loads code; a reboot never fails for want of heap
                try:
                    self.box.shutdown(now)
                    self._flush(now)
                    break
                except MemoryError:
                    gc.collect()
        if self.reset is not None:
            self.reset()

    def step(self):
        """One pass of the loop; returns how long to sleep (ms) before the next. The longest
        pass since boot is `pass_max_ms` in the status (docs/crypto.md: at most 250 ms)."""
        now = self.now()
        m = self._marks
        m[0] = m[1] = m[2] = m[3] = m[4] = now
        sleep = self._pass(now)
        took = ticks.diff(self.now(), now)
        if took > self.pass_recent:
            self.pass_recent = took
            if took > self.pass_max:
                self.pass_max = took
        if took > LONG_PASS_MS:
            self._long(now, took)
        return sleep

    def _long(self, now, took):
        """Report a pass over LONG_PASS_MS, with where its time went (ms): UART and LAN
        input fed to the box, the box's tick, output (UART writes, event lines), the status
        line, the console. Operators see which part starves the line; nothing is kept."""
        m = self._marks
        t = now
        parts = []
        for v in m:
            if ticks.diff(v, t) < 0:
                v = t  # a part the pass did not reach (it raised): nothing spent there
            parts.append(ticks.diff(v, t))
            t = v
        self._line(now, "long_pass", {"ms": took, "input": parts[0], "tick": parts[1], "output": parts[2],
                                      "status": parts[3], "console": parts[4]})

    def _pass(self, now):
        try:
            self._step(now)
            if self.cin is not None:
                self._console(now)
            self._marks[4] = self.now()
        except MemoryError:
            self.oom += 1
            self.oom_total += 1
            gc.collect()
            if self.wdt is not None and self.oom < _OOM_FATAL:
                self.wdt.feed()
            try:  # the report is best effort: with no heap even for its line, oom_total tells later
                if self.oom == _OOM_SHED and self.box is not None:
                    self.box.shed()
                    gc.collect()
                self._line(now, "out_of_memory", {"in_a_row": self.oom, "free": _free()})
                self._show(now)
            except MemoryError:
                pass
            return _OOM_BACKOFF_MS
        self.oom = 0
        if self.wdt is not None:
            self.wdt.feed()  # only after a pass that completed: a wedged loop is reset
        if self.stable_ms and ticks.diff(now, self.boot) >= self.stable_ms:
            try:
                self.record(0)  # this boot stayed up: not a crash
                self.stable_ms = 0
            except MemoryError:
                self.stable_ms += 10000  # the store's code did not fit now: later
        if self.retry_ms and self._con is None and ticks.diff(now, self._con_at) >= self.retry_ms:
            self.retry_ms = 0
            self._line(now, "safe_mode_retry", {"after_s": ticks.diff(now, self.boot) // 1000})
            from gwbox.store import CRASH_LIMIT
            self.record(CRASH_LIMIT - 1)  # one more crash in the first minute: safe mode again
            self.reset()
        if self._con is not None and self._con.busy():
            return 0
        dl = self.next_deadline()
        wait = POLL_MS if dl is None else min(POLL_MS, max(0, ticks.diff(dl, now)))
        # Line bytes came: more of the frame may follow (at 9,600 baud a byte a millisecond),
        # and the box acts on it once it is whole: on the chip a handshake's msg2 and msg4 waited
        # up to POLL_MS after their last byte (docs/chip.md).
        return min(wait, RX_POLL_MS) if self._rx else wait

    def next_deadline(self):
        """The box's next deadline, or the next status line's."""
        st = ticks.add(self._status_at, self.status_ms) if self.status_ms else None
        return ticks.earliest(self.box.next_deadline() if self.box is not None else None, st)

    def _step(self, now):
        box = self.box
        self._rx = False
        if box is not None:
            data = take(self.uart)
            if data:
                self._rx = True
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
            m = self._marks
            m[0] = t = self.now()
            if ticks.reached(now, box.next_deadline()):
                # after input that took long (a burst of frames, a failover it caused), the tick
                # is the next pass's, which comes at once (never two passes in a row)
                if self._deferred or ticks.diff(t, now) < _ROOM_MS:
                    self._deferred = False
                    box.tick(now)
                else:
                    self._deferred = True
            m[1] = self.now()
        self._flush(now)
        m = self._marks
        m[2] = m[3] = self.now()
        if self.status_ms and ticks.diff(now, self._status_at) >= self.status_ms:
            # In a pass of its own if it can (it collects the heap and prints a long line: 50-65
            # ms on an RP2040): after a pass that is busy already, the next one (at once); not
            # while the box hurries (a handshake of its own runs: a status pass delayed msg2 or
            # msg4 on the chip); at most a status interval late,
            # so a loop that never idles still reports.
            if ticks.diff(m[2], now) < _ROOM_MS and (box is None or not box.hurry()) or \
                    ticks.diff(now, self._status_at) >= 2 * self.status_ms:
                self._status_at = ticks.add(self._status_at, self.status_ms)
                self._line(now, "status", self.status(now))
                self.pass_recent = 0
            m[3] = self.now()

    def run(self):
        self.start()
        self.running = True
        while self.running:
            time.sleep_ms(self.step())

    def status(self, now):
        """What the monitor shows: the box's status, and the port's own."""
        st = self.box.status(now) if self.box is not None else {
            "uptime_s": ticks.diff(now, self.boot) // 1000, "line": "off"}
        st["safe"] = self.safe
        gc.collect()  # a status line every few seconds at most: the figure is the live heap
        st["heap_free"] = _free()
        st["heap_used"] = gc.mem_alloc() if hasattr(gc, "mem_alloc") else -1
        st["oom"] = self.oom_total
        st["pass_max_ms"] = self.pass_max
        st["pass_recent_ms"] = self.pass_recent  # since the last status line (this pass not counted)
        st["tx_held"] = len(self._tx) if self._tx else 0
        st["tx_dropped"] = self.tx_dropped
        return st

    def _line(self, now, name, fields):
        if self.log is None:
            return
        t = ticks.diff(now, self.boot)
        if name != "console" and name != "status":
            ring = self.ring
            ring.append(text_line(t, name, fields)[:_RING_LINE])
            if len(ring) > _RING:
                ring.pop(0)
        self.log(json_line(t, self.name, name, fields))

    def _flush(self, now):
        box = self.box
        if box is None:
            self._show(now)
            return
        out = box.take_uart()
        if out or self._tx:
            self._tx, lost = write_all(self.uart, self._tx, out, _TX_HOLD)
            self.tx_dropped += lost
        if self.lan is not None:
            for src, port, payload in box.take_lan():
                self.lan.send(src, port, payload)
        con = self._con
        for e in box.take_events():
            n = e.name
            if n == "gateway_dead" or n == "key_request_rejected":
                self._failing = n
            elif n == "gateway_in_use":
                self._failing = False
            self._line(now, n, e.fields)
            if con is not None:
                con.on_event(n, e.fields, now)
        if self.dtr is not None:
            self.dtr.value(1 if box.line.modem.dtr else 0)
        self._show(now)

    def _show(self, now):
        """LED: solid while payload can flow, else a blink pattern saying why not."""
        if self.led is None:
            return
        box = self.box
        if box is not None and not self.oom and box.carrying():
            self.led.value(1)
            return
        if box is None:
            pat = LED_SAFE
        elif self.oom or self._failing == "key_request_rejected":
            pat = _LED_ERROR
        elif self._failing:
            pat = _LED_FAILOVER
        else:
            pat = LED_SEARCHING
        on, off = pat
        self.led.value(1 if ticks.diff(now, self.boot) % (on + off) < on else 0)

    # --- the console ------------------------------------------------------------------------

    def _console(self, now):
        data = self.cin.read()
        if data or self._con is not None:
            from gwbox.console import serve  # only now: the console costs nothing until used
            serve(self, data, now)
            serve = None
            if self.rebooting is not None:
                self._reboot()

    def _reboot(self):
        """The console's `reboot`, once the console has left the heap: the boot record's code
        (gwbox.store) then has the console's room, so a reboot never fails for want of heap."""
        safe, self.rebooting, self._con = self.rebooting, None, None
        forget("gwbox.console", "gwbox.policyedit", "gwbox.store", "gwbox.policy", "gwbox.policyvalue")
        gc.collect()
        self.record(0, safe)  # a deliberate restart, not a crash: the count starts again
        self.restart()  # the outbox's messages are reported lost first

    def record(self, count, safe=False):
        """Write the boot record (gwbox.store): boots that did not stay up, one-shot safe mode."""
        from gwbox.store import Store
        Store(self.policy_path, self.fs).write_boot_record(count, safe)
        if self._con is None:
            forget("gwbox.store")
