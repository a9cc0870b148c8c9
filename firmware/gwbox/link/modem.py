"""Hayes / ITU-T V.250 modem driver, sans-I/O.

Bytes and `now` in; bytes for the UART, events and one deadline out. The driver
never reads a clock, sleeps or touches a pin: the port writes `take_output()`,
feeds `receive()`, reports DCD with `set_dcd()`, drives DTR from `dtr`, and
calls `tick()` at `next_deadline()`. States and timings: docs/modem.md.

Two halves: this module holds the state and the data-mode path (payload through,
NO CARRIER spotted, DCD), which a call needs all the time; gwbox.link.hayes holds the
command mode (init, dial, result codes, +++, hang-up, back-off), imported when needed
and dropped again (`unload_command_mode`) once a call is up.
"""
from gwbox import const, forget, ticks
from gwbox.events import Event
from gwbox.link.modemstate import DATA, ESCAPING, HANGUP, IDLE, READY

# ATZ alone, because most modems ignore whatever follows Z on the same line;
# then E0 (no echo: fewer bytes, though echo is handled), V1 (verbose codes,
# needed to spot NO CARRIER in data mode), Q0 (codes on), &C1 (DCD follows the
# carrier), &D2 (DTR drop hangs up and returns to command mode).
_DEFAULT_INIT = const(("ATZ", "ATE0V1Q0&C1&D2"))

# What a verbose modem sends after losing carrier in data mode (see docs/modem.md).
NO_CARRIER_MARK = b"\r\nNO CARRIER\r\n"


class Modem:
    def __init__(self, init=_DEFAULT_INIT, dial_target=None, guard_ms=1000,
                 init_timeout_ms=2000, dial_timeout_ms=60000, escape_timeout_ms=2000,
                 hangup_timeout_ms=5000, backoff_base_ms=2000, backoff_cap_ms=60000,
                 max_attempts=5, max_junk=8, use_dtr=False, dtr_drop_ms=500, baud=None, doubt_ms=3000):
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
        self.doubt_ms = doubt_ms  # an in-band NO CARRIER must be followed by silence this long

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
        self.marks = 0          # in-band NO CARRIER marks seen in data mode
        self._doubt = None      # tick by which an in-band NO CARRIER must be disproved
        # Where, in the payload `receive` last returned, the bytes that may disprove a pending
        # doubt start (those before the mark came before it); None: no doubt pending.
        self.fresh = None
        self._unsure = False    # hanging up a call the modem may already have dropped

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
        _hayes().start(self, now)

    def request_link(self, now, target=None):
        """Latch a wish for the link (dial on demand): init and dial as needed."""
        if self.state == DATA:  # nothing to do: the call is up (no need to load command mode)
            self._clock(now)
            if target is not None:
                self.target = target
            return
        _hayes().request_link(self, now, target)

    def release_link(self, now):
        """The node has nothing to send: drop the wish and go on hook."""
        self.want_link = False
        self.hangup(now)

    def hangup(self, now, unsure=False):
        """Go on hook: +++/ATH (or a DTR pulse) from data mode; abort a dial. `unsure`: the
        modem may be back in command mode already (a dead call), so no OK to +++ is awaited."""
        self._unsure = unsure and self.state == DATA
        _hayes().hangup(self, now)

    def receive(self, data, now):
        """Bytes from the UART; returns the payload part (data mode only)."""
        self._clock(now)
        if not isinstance(data, bytes):
            data = bytes(data)
        payload = b""
        i = 0
        n = len(data)
        self.fresh = None if self._doubt is None else 0
        while i < n:
            if self.state == DATA:
                p, i = self._scan_data(data, i, now)
                payload = payload + p if payload else p
            else:
                i = _hayes().scan_lines(self, data, i, now)
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
            _hayes().hangup_done(self, now)

    def tick(self, now):
        """Act on an expired deadline (a late tick may pass several)."""
        self._clock(now)
        if self._doubt is not None and ticks.reached(now, self._doubt):
            self._carrier_lost("no carrier")  # nothing authenticated followed it: it was real
            # ...or forged, with the answers dropped: without DCD the modem may still be online,
            # and would take an ATD as payload. Hang up (+++ ATH, or DTR) before any dial.
            self._unsure = True
            _hayes().drop_line(self, now, "hangup")
            return
        for _ in range(4):
            if not ticks.reached(now, self._deadline):
                return
            _hayes().on_deadline(self, now)

    def take_output(self):
        out = bytes(self._out)
        self._out = bytearray()
        return out

    def take_events(self):
        ev = self._events
        self._events = []
        return ev

    def next_deadline(self):
        return ticks.earliest(self._deadline, self._doubt)

    # ---- time, output and data mode --------------------------------------

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

    def tx_done(self, now):
        """Tick by which what was queued for the UART should have left it (now if nothing)."""
        self._clock(now)
        t = self._tx_idle
        return t if ticks.diff(t, now) > 0 else now

    def authentic(self, now):
        """An authenticated packet, framed from bytes after an in-band NO CARRIER, arrived
        over the call: that mark was forged."""
        if self._doubt is not None:
            self._doubt = None
            self._emit("carrier_confirmed", reason="authenticated traffic after an in-band NO CARRIER")

    def _carrier_lost(self, reason):
        """The call is gone; with &C1/&D2 the modem is back in command mode."""
        self._doubt = None
        self.state = READY
        self._held = b""
        self._line = bytearray()
        self._deadline = None
        self._emit("link_down", reason=reason)

    def _scan_data(self, data, i, now):
        """Payload passes through; CR LF NO CARRIER CR LF is spotted, even split across chunks.

        That mark is in band: anyone on the line can send those 14 bytes. Where the board
        wires DCD (the port has reported it), DCD is the only truth and the mark is just
        bytes. Without DCD it raises a doubt, not a verdict: the call is lost only if no
        authenticated packet (`authentic`) framed from bytes after the mark (`fresh`) arrives
        within doubt_ms. A packet from before it proves nothing: a modem sends what it had
        received, then NO CARRIER, and both often reach us in one read."""
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
        # Every byte goes on to the framer, which discards what is no frame.
        k = buf.rfind(NO_CARRIER_MARK)
        start = 0
        if k >= 0:
            start = k + len(NO_CARRIER_MARK)
            self.marks += buf.count(NO_CARRIER_MARK)
            if self.dcd is None:
                if self._doubt is None:
                    self._doubt = ticks.add(now, self.doubt_ms)
                    self._emit("carrier_doubt", reason="in-band NO CARRIER", wait_ms=self.doubt_ms)
                self.fresh = start  # only what follows the last mark can disprove it
        # Hold back a tail that could still become the marker (frames end in 0x7E, so rarely).
        m = len(buf)
        j = buf.find(b"\r", max(start, m - len(NO_CARRIER_MARK) + 1))
        while j >= 0 and not NO_CARRIER_MARK.startswith(buf[j:]):
            j = buf.find(b"\r", j + 1)
        if j < 0:
            self._held = b""
            return buf, n
        self._held = buf[j:]
        return buf[:j], n


def _hayes():
    from gwbox.link import hayes
    return hayes


def unload_command_mode():
    """Drop the command-mode half (a call is up: it is not needed until the next hang-up)."""
    forget("gwbox.link.hayes")
