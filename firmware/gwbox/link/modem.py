"""Hayes / ITU-T V.250 modem driver, sans-I/O.

Bytes and `now` in; bytes for the UART, events and one deadline out. The driver
never reads a clock, sleeps or touches a pin: the port writes `take_output()`,
feeds `receive()`, reports DCD with `set_dcd()`, drives DTR from `dtr`, and
calls `tick()` at `next_deadline()`. States and timings: docs/modem.md.
"""
from gwbox import ticks
from gwbox.events import Event

IDLE = "idle"          # not initialised (or gave up): modem state unknown
INIT = "init"          # sending the init string, one command at a time
READY = "ready"        # command mode, initialised, on hook
DIALING = "dialing"    # ATD sent, waiting for CONNECT or a failure code
DATA = "data"          # online: bytes are payload
ESCAPING = "escaping"  # guard, +++, guard, waiting for OK
HANGUP = "hangup"      # ATH sent, dial being aborted, or DTR held low
BACKOFF = "backoff"    # waiting before the next attempt

# ATZ alone, because most modems ignore whatever follows Z on the same line;
# then E0 (no echo: fewer bytes, though echo is handled), V1 (verbose codes,
# needed to spot NO CARRIER in data mode), Q0 (codes on), &C1 (DCD follows the
# carrier), &D2 (DTR drop hangs up and returns to command mode).
DEFAULT_INIT = ("ATZ", "ATE0V1Q0&C1&D2")

OK = "OK"
CONNECT = "CONNECT"
RING = "RING"
NO_CARRIER = "NO CARRIER"
ERROR = "ERROR"
NO_DIALTONE = "NO DIALTONE"
BUSY = "BUSY"
NO_ANSWER = "NO ANSWER"
TIMEOUT = "TIMEOUT"        # driver verdicts, reported like result codes
UNEXPECTED = "UNEXPECTED"

WORDS = (OK, RING, NO_CARRIER, ERROR, NO_DIALTONE, BUSY, NO_ANSWER)
DIAL_FAILURES = (BUSY, NO_DIALTONE, NO_ANSWER, NO_CARRIER, ERROR)
# V.250 numeric codes, plus the Hayes CONNECT-rate codes that all vendors share
# (above 12 they disagree, so a numeric rate there is not guessed).
NUMERIC = {0: OK, 1: CONNECT, 2: RING, 3: NO_CARRIER, 4: ERROR, 5: "CONNECT 1200",
           6: NO_DIALTONE, 7: BUSY, 8: NO_ANSWER, 10: "CONNECT 2400",
           11: "CONNECT 4800", 12: "CONNECT 9600"}

# What a verbose modem sends after losing carrier in data mode (see docs/modem.md).
NO_CARRIER_MARK = b"\r\nNO CARRIER\r\n"
MAX_LINE = 80   # a longer "line" is garbage: counted as junk, memory stays bounded


def _printable(raw):
    """Bytes as safe ASCII text, for parsing and for error reasons."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in raw)


def _rate(rest):
    """Leading digits of a CONNECT suffix (' 115200/ARQ' -> 115200), else None."""
    rest = rest.strip()
    n = 0
    while n < len(rest) and "0" <= rest[n] <= "9":
        n += 1
    return int(rest[:n]) if n else None


def parse_result(text):
    """(word, rate) for a verbose or numeric result-code line; None for anything else."""
    s = text.strip().upper()
    if s.isdigit():
        s = NUMERIC.get(int(s))
        if s is None:
            return None
    if s.startswith(CONNECT):
        rest = s[len(CONNECT):]
        if rest and rest[0] not in " /":
            return None  # "CONNECTED" and the like are not result codes
        return CONNECT, _rate(rest)
    if s == "NO DIAL TONE":
        s = NO_DIALTONE
    if s in WORDS:
        return s, None
    return None


class Modem:
    def __init__(self, init=DEFAULT_INIT, dial_target=None, guard_ms=1000,
                 init_timeout_ms=2000, dial_timeout_ms=60000, escape_timeout_ms=2000,
                 hangup_timeout_ms=5000, backoff_base_ms=2000, backoff_cap_ms=60000,
                 max_attempts=5, max_junk=8, use_dtr=False, dtr_drop_ms=500, baud=None):
        self.init = (init,) if isinstance(init, str) else tuple(init)
        self.target = dial_target
        self.guard_ms = guard_ms
        self.init_timeout_ms = init_timeout_ms
        self.dial_timeout_ms = dial_timeout_ms
        self.escape_timeout_ms = escape_timeout_ms
        self.hangup_timeout_ms = hangup_timeout_ms
        self.backoff_base_ms = backoff_base_ms
        self.backoff_cap_ms = backoff_cap_ms
        self.max_attempts = max_attempts
        self.max_junk = max_junk
        self.use_dtr = use_dtr
        self.dtr_drop_ms = dtr_drop_ms
        self.baud = baud

        self.state = IDLE
        self.want_link = False
        self.attempts = 0       # consecutive failures towards the current goal
        self.dtr = True         # the level the port should drive DTR to
        self.dcd = None         # last level from set_dcd, None if never told
        self.rate = None        # rate of the current/last CONNECT
        self.junk_lines = 0     # lines that were neither echo nor result code
        self.unsolicited = 0    # result codes nobody was waiting for
        self.rings = 0
        self.tx_dropped = 0     # payload bytes refused outside data mode

        self._out = bytearray()
        self._events = []
        self._line = bytearray()
        self._skip_lf = False   # a verbose CONNECT's LF may arrive after its CR
        self._held = b""        # data-mode tail that may be the start of NO CARRIER
        self._deadline = None
        self._tx_idle = None    # tick when the last queued byte has left the UART
        self._ready = False     # init completed and nothing since cast doubt on it
        self._cmd = None        # command line awaiting its echo/result
        self._waiting = None    # what the current wait is for, named in errors
        self._wait_ms = 0
        self._junk_wait = 0
        self._last_junk = None
        self._init_idx = 0
        self._then = None       # after escape / DTR pulse: "hangup" or "init"
        self._phase = 0         # escape: 0 guard before, 1 guard after, 2 await OK
        self._esc_ok = False
        self._dtr_low = False
        self._retry_init = False  # backoff ends in init (modem state in doubt), not a redial
        self._flush = False       # ...and that init first gets the modem out of data mode

    # ---- public API -------------------------------------------------------

    def start(self, now):
        """Begin (or repeat) initialisation; harmless while already busy."""
        self._clock(now)
        if self.state in (IDLE, READY):
            self.attempts = 0
            self._begin_init(now, False)

    def request_link(self, now, target=None):
        """Latch a wish for the link (dial on demand): init and dial as needed."""
        self._clock(now)
        if target is not None:
            self.target = target
        if self.state == DATA:
            return
        fresh = not self.want_link
        self.want_link = True
        if fresh and self.state in (IDLE, READY):
            self.attempts = 0
        if self.state == IDLE:
            self._begin_init(now, False)
        elif self.state == READY:
            self._dial(now)

    def release_link(self, now):
        """The node has nothing to send: drop the wish and go on hook."""
        self.want_link = False
        self.hangup(now)

    def hangup(self, now):
        """Go on hook: +++/ATH (or a DTR pulse) from data mode; abort a dial."""
        self._clock(now)
        st = self.state
        if st == DATA:
            self._held = b""
            self._emit("link_down", reason="hangup")
            self._drop_line(now, "hangup")
        elif st == DIALING:
            self._write(b"\r", now)  # any character aborts a dial in progress
            self.state = HANGUP
            self._wait(now, None, "dial abort", self.hangup_timeout_ms)
        elif st == BACKOFF and not self._retry_init:
            self.state = READY
            self._deadline = None
            self.attempts = 0

    def receive(self, data, now):
        """Bytes from the UART; returns the payload part (data mode only)."""
        self._clock(now)
        if not isinstance(data, bytes):
            data = bytes(data)
        payload = b""
        i = 0
        n = len(data)
        while i < n:
            if self.state == DATA:
                p, i = self._scan_data(data, i)
                payload = payload + p if payload else p
            else:
                i = self._scan_lines(data, i, now)
        return payload

    def send(self, payload, now):
        """Queue payload for the UART; refused (False) outside data mode."""
        self._clock(now)
        if self.state != DATA:
            self.tx_dropped += len(payload)
            return False
        self._write(payload, now)
        return True

    def set_dcd(self, up, now):
        """The port saw DCD change; a drop means the call is gone, now."""
        self._clock(now)
        self.dcd = up
        if up:
            return
        st = self.state
        if st == DATA:
            self._carrier_lost("dcd")
        elif (st == ESCAPING and self._then == "hangup") or (st == HANGUP and self._waiting == "ATH"):
            self._hangup_done(now)

    def tick(self, now):
        """Act on an expired deadline (a late tick may pass several)."""
        self._clock(now)
        for _ in range(4):
            if not ticks.reached(now, self._deadline):
                return
            self._on_deadline(now)

    def take_output(self):
        out = bytes(self._out)
        self._out = bytearray()
        return out

    def take_events(self):
        ev = self._events
        self._events = []
        return ev

    def next_deadline(self):
        return self._deadline

    # ---- time and output --------------------------------------------------

    def _clock(self, now):
        """Keep the last-sent mark within guard_ms of now so it never ages past the wrap."""
        if self._tx_idle is None or ticks.diff(now, self._tx_idle) > self.guard_ms:
            self._tx_idle = ticks.add(now, -self.guard_ms)

    def _write(self, data, now):
        """Queue bytes and move the mark of when the UART falls silent (the +++ guard)."""
        self._out.extend(data)
        start = self._tx_idle if ticks.diff(self._tx_idle, now) > 0 else now
        ms = (len(data) * 10000 + self.baud - 1) // self.baud if self.baud else 0
        self._tx_idle = ticks.add(start, ms)

    def _emit(self, name, **fields):
        self._events.append(Event(name, **fields))

    def _wait(self, now, cmd, what, ms):
        """Start one bounded wait; cmd (if any) is sent and its echo ignored."""
        self._cmd = cmd
        self._waiting = what
        self._wait_ms = ms
        self._junk_wait = 0
        self._last_junk = None
        if cmd is not None:
            self._write(cmd.encode() + b"\r", now)
        self._deadline = ticks.add(now, ms)

    def _end_wait(self):
        self._cmd = None
        self._waiting = None
        self._deadline = None

    # ---- sequences --------------------------------------------------------

    def _begin_init(self, now, flush):
        """Init; after silence first get a possibly-online modem to command mode."""
        self._ready = False
        if not flush:
            self._send_init(now, 0)
        elif self.use_dtr:
            self._dtr_pulse(now, "init")
        else:
            self._escape(now, "init")

    def _send_init(self, now, idx):
        self.state = INIT
        self._init_idx = idx
        cmd = self.init[idx]
        self._wait(now, cmd, cmd, self.init_timeout_ms)

    def _init_ok(self, now):
        if self._init_idx + 1 < len(self.init):
            self._send_init(now, self._init_idx + 1)
            return
        self._end_wait()
        self.state = READY
        self._ready = True
        self._emit("modem_ready")
        if self.want_link:
            self._dial(now)
        else:
            self.attempts = 0

    def _dial(self, now):
        t = self.target
        if not t or "\r" in t or "\n" in t:
            self.want_link = False
            self._emit("dial_failed", result="NO TARGET", attempts=0, reason="no usable dial target")
            return
        self.state = DIALING
        self._emit("dialing", target=t, attempt=self.attempts + 1)
        cmd = "ATD" + t
        self._wait(now, cmd, cmd, self.dial_timeout_ms)

    def _link_up(self, rate, text):
        self._end_wait()
        self.state = DATA
        self.rate = rate
        self.want_link = False
        self.attempts = 0
        self._held = b""
        self._emit("link_up", rate=rate, result=text)

    def _carrier_lost(self, reason):
        """The call is gone; with &C1/&D2 the modem is back in command mode."""
        self.state = READY
        self._held = b""
        self._line = bytearray()
        self._deadline = None
        self._emit("link_down", reason=reason)

    def _drop_line(self, now, then):
        if self.use_dtr:
            self._dtr_pulse(now, then)
        else:
            self._escape(now, then)

    def _dtr_pulse(self, now, then):
        """Ask the port to hold DTR low; &D2 makes the modem hang up."""
        self.state = HANGUP
        self._then = then
        self._end_wait()
        self._dtr_low = True
        self.dtr = False
        self._emit("dtr", up=False)
        self._deadline = ticks.add(now, self.dtr_drop_ms)

    def _escape(self, now, then):
        """+++ only after guard_ms of silence on our side; nothing sent for guard_ms after."""
        self.state = ESCAPING
        self._then = then
        self._end_wait()
        self._phase = 0
        self._esc_ok = False
        self._deadline = ticks.add(self._tx_idle, self.guard_ms)
        self.tick(now)  # silent long enough already: +++ at once

    def _escape_step(self, now):
        ph = self._phase
        if ph == 0:
            self._write(b"+++", now)
            self._phase = 1
            self._deadline = ticks.add(self._tx_idle, self.guard_ms)
        elif ph == 1:
            if self._esc_ok:
                self._after_escape(now, False)
            else:
                self._phase = 2
                self._deadline = ticks.add(self._deadline, self.escape_timeout_ms)
        else:
            if self._then == "hangup":
                self._emit("modem_error", reason="no OK to +++ within %d ms, trying ATH"
                           % (self.guard_ms + self.escape_timeout_ms))
            self._after_escape(now, False)

    def _after_escape(self, now, carrier_gone):
        if self._then == "init":
            self._send_init(now, 0)
        elif carrier_gone:
            self._hangup_done(now)
        else:
            self.state = HANGUP
            self._wait(now, "ATH", "ATH", self.hangup_timeout_ms)

    def _hangup_done(self, now):
        self._end_wait()
        self.state = READY
        self._emit("hangup_done")
        if self.want_link:
            self._dial(now)
        else:
            self.attempts = 0

    def _fail(self, now, result, reason, clean=False, flush=False):
        """One failed attempt: back off exponentially, or give up after max_attempts."""
        self._end_wait()
        if not clean:
            self._ready = False
            self._emit("modem_error", reason=reason)
        self.attempts += 1
        n = self.attempts
        if n >= self.max_attempts:
            self.attempts = 0
            self.state = READY if self._ready else IDLE
            if self.want_link:
                self.want_link = False
                self._emit("dial_failed", result=result, attempts=n, reason=reason)
            else:
                self._emit("modem_failed", reason=reason, attempts=n)
            return
        delay = self.backoff_base_ms
        for _ in range(n - 1):
            if delay >= self.backoff_cap_ms:
                break
            delay *= 2
        delay = min(delay, self.backoff_cap_ms)
        self.state = BACKOFF
        self._retry_init = not self._ready
        self._flush = flush
        self._deadline = ticks.add(now, delay)
        self._emit("backoff", result=result, attempt=n, delay_ms=delay)

    def _on_deadline(self, now):
        st = self.state
        if st == ESCAPING:
            self._escape_step(now)
        elif st == BACKOFF:
            self._deadline = None
            if self._retry_init:
                self._begin_init(now, self._flush)
            elif self.want_link:
                self._dial(now)
            else:
                self.state = READY
        elif st == HANGUP and self._dtr_low:
            self._dtr_low = False
            self.dtr = True
            self._emit("dtr", up=True)
            if self._then == "init":
                self._send_init(now, 0)
            else:
                self._hangup_done(now)
        elif st in (INIT, DIALING, HANGUP):
            if st == DIALING:
                self._write(b"\r", now)  # abort the dial before giving up on it
            what = self._waiting
            if self._last_junk is not None:
                self._fail(now, UNEXPECTED, "unexpected reply '%s' to %s" % (self._last_junk, what))
            else:
                self._fail(now, TIMEOUT, "no response to %s within %d ms" % (what, self._wait_ms),
                           flush=True)
        else:
            self._deadline = None

    # ---- incoming bytes ---------------------------------------------------

    def _scan_data(self, data, i):
        """Payload passes through; stop at CR LF NO CARRIER CR LF, even split across chunks."""
        n = len(data)
        if self._skip_lf:
            self._skip_lf = False
            if i < n and data[i] == 10:
                i += 1
        held = self._held
        if held:
            buf = held + data[i:]
        else:
            buf = data[i:] if i else data
        k = buf.find(NO_CARRIER_MARK)
        if k >= 0:
            self._carrier_lost("no carrier")
            return buf[:k], i + k + len(NO_CARRIER_MARK) - len(held)
        # Hold back a tail that could still become the marker (frames end in 0x7E, so rarely).
        m = len(buf)
        j = buf.find(b"\r", m - len(NO_CARRIER_MARK) + 1 if m >= len(NO_CARRIER_MARK) else 0)
        while j >= 0 and not NO_CARRIER_MARK.startswith(buf[j:]):
            j = buf.find(b"\r", j + 1)
        if j < 0:
            self._held = b""
            return buf, n
        self._held = buf[j:]
        return buf[:j], n

    def _scan_lines(self, data, i, now):
        """Command mode: assemble CR/LF-ended lines; stop right after a CONNECT."""
        n = len(data)
        while i < n:
            b = data[i]
            i += 1
            if b == 13 or b == 10:
                if b == 10 and self._skip_lf:
                    self._skip_lf = False
                    continue
                if not self._line:
                    continue
                raw = self._line
                self._line = bytearray()
                self._on_line(raw, now)
                if self.state == DATA:
                    # V1 ends CONNECT with CR LF, V0 with CR alone: never eat a payload byte.
                    verbose = not _printable(raw).strip().isdigit()
                    if b == 13 and verbose:
                        if i < n:
                            if data[i] == 10:
                                i += 1
                        else:
                            self._skip_lf = True
                    return i
            else:
                self._skip_lf = False
                self._line.append(b)
                if len(self._line) >= MAX_LINE:
                    raw = self._line
                    self._line = bytearray()
                    self._junk(_printable(raw[:16]) + "...", now)
        return i

    def _on_line(self, raw, now):
        text = _printable(raw).strip()
        if not text:
            return
        cmd = self._cmd
        if cmd and text.upper().endswith(cmd.upper()):
            return  # our own command echoed back (E1)
        res = parse_result(text)
        if res is None:
            self._junk(text, now)
        else:
            self._on_result(res[0], res[1], text, now)

    def _junk(self, text, now):
        """Not a result code: count it; too many while waiting means a confused modem."""
        self.junk_lines += 1
        if self._waiting is not None and self.state != ESCAPING:
            self._junk_wait += 1
            self._last_junk = text
            if self._junk_wait >= self.max_junk:
                self._fail(now, UNEXPECTED, "unexpected reply '%s' to %s" % (text, self._waiting))

    def _on_result(self, word, rate, text, now):
        st = self.state
        if word == RING:
            self.rings += 1  # we only originate calls
            return
        if st == INIT:
            if word == OK:
                self._init_ok(now)
            elif word == NO_CARRIER:
                self.unsolicited += 1  # left over from a call ATZ just ended
            elif word == ERROR:
                self._fail(now, ERROR, "ERROR reply to %s" % self._cmd)
            else:
                self._fail(now, UNEXPECTED, "unexpected reply '%s' to %s" % (text, self._cmd))
        elif st == DIALING:
            if word == CONNECT:
                self._link_up(rate, text)
            elif word in DIAL_FAILURES:
                self._fail(now, word, "%s reply to %s" % (word, self._cmd), clean=True)
            else:
                self._fail(now, UNEXPECTED, "unexpected reply '%s' to %s" % (text, self._cmd))
        elif st == ESCAPING:
            if word == NO_CARRIER:
                self._after_escape(now, True)
            elif word == OK and self._phase == 1:
                self._esc_ok = True  # ATH still waits for the guard after +++
            elif word == OK and self._phase == 2:
                self._after_escape(now, False)
            else:
                self.unsolicited += 1
        elif st == HANGUP and self._waiting is not None:
            if word == OK or word == NO_CARRIER:
                self._hangup_done(now)
            elif word == ERROR:
                self._fail(now, ERROR, "ERROR reply to %s" % self._waiting)
            else:
                self.unsolicited += 1
        else:
            self.unsolicited += 1
