"""The Hayes / V.250 command-mode half of the modem driver: loaded only while it is needed.

Initialising, dialling, result codes, the +++ escape, hang-up, back-off: everything the
driver does outside data mode, as functions on the Modem (`m`) whose state they share.
A call in data mode needs none of it (gwbox.link.modem keeps the data-mode path), so the
line drops this module once a call is up and imports it again to hang up or redial: on a
device heap that is about 9 KB while payload flows (docs/memory.md). States, timings and
events: docs/modem.md.
"""
from gwbox import const, ticks
from gwbox.link.modemstate import (BACKOFF, DATA, DIALING, ESCAPING, HANGUP, IDLE, INIT, READY,
                              printable as _printable)

OK = "OK"
CONNECT = "CONNECT"
RING = "RING"
NO_CARRIER = "NO CARRIER"
ERROR = "ERROR"
_NO_DIALTONE = const("NO DIALTONE")
BUSY = "BUSY"
_NO_ANSWER = const("NO ANSWER")
TIMEOUT = "TIMEOUT"        # driver verdicts, reported like result codes
UNEXPECTED = "UNEXPECTED"

WORDS = (OK, RING, NO_CARRIER, ERROR, _NO_DIALTONE, BUSY, _NO_ANSWER)
DIAL_FAILURES = (BUSY, _NO_DIALTONE, _NO_ANSWER, NO_CARRIER, ERROR)
# V.250 numeric codes, plus the Hayes CONNECT-rate codes that all vendors share
# (above 12 they disagree, so a numeric rate there is not guessed).
NUMERIC = {0: OK, 1: CONNECT, 2: RING, 3: NO_CARRIER, 4: ERROR, 5: "CONNECT 1200",
           6: _NO_DIALTONE, 7: BUSY, 8: _NO_ANSWER, 10: "CONNECT 2400",
           11: "CONNECT 4800", 12: "CONNECT 9600"}

MAX_LINE = 80   # a longer "line" is garbage: counted as junk, memory stays bounded


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
        s = _NO_DIALTONE
    if s in WORDS:
        return s, None
    return None



def start(m, now):
    """Begin (or repeat) initialisation; harmless while already busy."""
    m._clock(now)
    if m.state in (IDLE, READY):
        m.attempts = 0
        begin_init(m, now, False)


def request_link(m, now, target=None):
    """Latch a wish for the link (dial on demand): init and dial as needed."""
    m._clock(now)
    if target is not None:
        m.target = target
    if m.state == DATA:
        return
    fresh = not m.want_link
    m.want_link = True
    if fresh and m.state in (IDLE, READY):
        m.attempts = 0
    if m.state == IDLE:
        begin_init(m, now, False)
    elif m.state == READY:
        dial(m, now)


def hangup(m, now):
    """Go on hook: +++/ATH (or a DTR pulse) from data mode; abort a dial."""
    m._clock(now)
    st = m.state
    if st == DATA:
        m._held = b""
        m._doubt = None  # our own hang-up settles any doubt about the carrier
        m._emit("link_down", reason="hangup")
        drop_line(m, now, "hangup")
    elif st == DIALING:
        m._write(b"\r", now)  # any character aborts a dial in progress
        m.state = HANGUP
        wait(m, now, None, "dial abort", m.hangup_timeout_ms)
    elif st == BACKOFF and not m._retry_init:
        m.state = READY
        m._deadline = None
        m.attempts = 0


def wait(m, now, cmd, what, ms):
    """Start one bounded wait; cmd (if any) is sent and its echo ignored."""
    m._cmd = cmd
    m._waiting = what
    m._wait_ms = ms
    m._junk_wait = 0
    m._last_junk = None
    if cmd is not None:
        m._write(cmd.encode() + b"\r", now)
    m._deadline = ticks.add(now, ms)


def end_wait(m):
    m._cmd = None
    m._waiting = None
    m._deadline = None


def begin_init(m, now, flush):
    """Init; after silence first get a possibly-online modem to command mode."""
    m._ready = False
    if not flush:
        send_init(m, now, 0)
    elif m.use_dtr:
        dtr_pulse(m, now, "init")
    else:
        escape(m, now, "init")


def send_init(m, now, idx):
    m.state = INIT
    m._init_idx = idx
    cmd = m.init[idx]
    wait(m, now, cmd, cmd, m.init_timeout_ms)


def init_ok(m, now):
    if m._init_idx + 1 < len(m.init):
        send_init(m, now, m._init_idx + 1)
        return
    m._ready = True
    ready(m, now, "modem_ready")


def ready(m, now, event):
    """Command mode, on hook: dial if a link is wanted, else the attempts start over."""
    end_wait(m)
    m.state = READY
    m._unsure = False
    m._emit(event)
    if m.want_link:
        dial(m, now)
    else:
        m.attempts = 0


def dial(m, now):
    t = m.target
    if not t or "\r" in t or "\n" in t:
        m.want_link = False
        m._emit("dial_failed", result="NO TARGET", attempts=0, reason="no usable dial target")
        return
    m.state = DIALING
    m._emit("dialing", target=t, attempt=m.attempts + 1)
    cmd = "ATD" + t
    wait(m, now, cmd, cmd, m.dial_timeout_ms)


def link_up(m, rate, text):
    end_wait(m)
    m.state = DATA
    m.rate = rate
    m.want_link = False
    m.attempts = 0
    m._held = b""
    m._emit("link_up", rate=rate, result=text)


def drop_line(m, now, then):
    if m.use_dtr:
        dtr_pulse(m, now, then)
    else:
        escape(m, now, then)


def dtr_pulse(m, now, then):
    """Ask the port to hold DTR low; &D2 makes the modem hang up."""
    m.state = HANGUP
    m._then = then
    end_wait(m)
    m._dtr_low = True
    m.dtr = False
    m._emit("dtr", up=False)
    m._deadline = ticks.add(now, m.dtr_drop_ms)


def escape(m, now, then):
    """+++ only after guard_ms of silence on our side; nothing sent for guard_ms after."""
    m.state = ESCAPING
    m._then = then
    end_wait(m)
    m._phase = 0
    m._esc_ok = False
    m._deadline = ticks.add(m._tx_idle, m.guard_ms)
    m.tick(now)  # silent long enough already: +++ at once


def escape_step(m, now):
    ph = m._phase
    if ph == 0:
        m._write(b"+++", now)
        m._phase = 1
        m._deadline = ticks.add(m._tx_idle, m.guard_ms)
    elif ph == 1:
        if m._esc_ok:
            after_escape(m, now, False)
        else:
            m._phase = 2
            # Unsure: a modem still online says OK as its guard ends, one back in command
            # mode never does; a quarter guard of slack, then ATH (it answers that either way).
            m._deadline = ticks.add(m._deadline, m.guard_ms // 4 if m._unsure else m.escape_timeout_ms)
    else:
        if m._then == "hangup" and not m._unsure:
            m._emit("modem_error", reason="no OK to +++ within %d ms, trying ATH"
                       % (m.guard_ms + m.escape_timeout_ms))
        after_escape(m, now, False)


def after_escape(m, now, carrier_gone):
    if m._then == "init":
        send_init(m, now, 0)
    elif carrier_gone:
        hangup_done(m, now)
    else:
        m.state = HANGUP
        wait(m, now, "ATH", "ATH", m.hangup_timeout_ms)


def hangup_done(m, now):
    ready(m, now, "hangup_done")


def fail(m, now, result, reason, clean=False, flush=False):
    """One failed attempt: back off exponentially, or give up after max_attempts."""
    end_wait(m)
    if not clean:
        m._ready = False
        m._emit("modem_error", reason=reason)
    m.attempts += 1
    n = m.attempts
    if n >= m.max_attempts:
        m.attempts = 0
        m.state = READY if m._ready else IDLE
        if m.want_link:
            m.want_link = False
            m._emit("dial_failed", result=result, attempts=n, reason=reason)
        else:
            m._emit("modem_failed", reason=reason, attempts=n)
        return
    delay = m.backoff_base_ms
    for _ in range(n - 1):
        if delay >= m.backoff_cap_ms:
            break
        delay *= 2
    delay = min(delay, m.backoff_cap_ms)
    m.state = BACKOFF
    m._retry_init = not m._ready
    m._flush = flush
    m._deadline = ticks.add(now, delay)
    m._emit("backoff", result=result, attempt=n, delay_ms=delay)


def on_deadline(m, now):
    st = m.state
    if st == ESCAPING:
        escape_step(m, now)
    elif st == BACKOFF:
        m._deadline = None
        if m._retry_init:
            begin_init(m, now, m._flush)
        elif m.want_link:
            dial(m, now)
        else:
            m.state = READY
    elif st == HANGUP and m._dtr_low:
        m._dtr_low = False
        m.dtr = True
        m._emit("dtr", up=True)
        if m._then == "init":
            send_init(m, now, 0)
        else:
            hangup_done(m, now)
    elif st in (INIT, DIALING, HANGUP):
        if st == DIALING:
            m._write(b"\r", now)  # abort the dial before giving up on it
        what = m._waiting
        if m._last_junk is not None:
            # Bytes but no result code: a wrong baud rate, or a modem still online from
            # before a reboot of the box, its far end still sending. Escape first, as after
            # silence (harmless to a modem in command mode).
            fail(m, now, UNEXPECTED, "unexpected reply '%s' to %s" % (m._last_junk, what), flush=True)
        else:
            fail(m, now, TIMEOUT, "no response to %s within %d ms" % (what, m._wait_ms),
                       flush=True)
    else:
        m._deadline = None


def scan_lines(m, data, i, now):
    """Command mode: assemble CR/LF-ended lines; stop right after a CONNECT."""
    n = len(data)
    while i < n:
        b = data[i]
        i += 1
        if b == 13 or b == 10:
            if b == 10 and m._skip_lf:
                m._skip_lf = False
                continue
            if not m._line:
                continue
            raw = m._line
            m._line = bytearray()
            on_line(m, raw, now)
            if m.state == DATA:
                # V1 ends CONNECT with CR LF, V0 with CR alone: never eat a payload byte.
                verbose = not _printable(raw).strip().isdigit()
                if b == 13 and verbose:
                    if i < n:
                        if data[i] == 10:
                            i += 1
                    else:
                        m._skip_lf = True
                return i
        else:
            m._skip_lf = False
            m._line.append(b)
            if len(m._line) >= MAX_LINE:
                raw = m._line
                m._line = bytearray()
                junk(m, _printable(raw[:16]) + "...", now)
    return i


def on_line(m, raw, now):
    text = _printable(raw).strip()
    if not text:
        return
    cmd = m._cmd
    if cmd and text.upper().endswith(cmd.upper()):
        return  # our own command echoed back (E1)
    res = parse_result(text)
    if res is None:
        junk(m, text, now)
    else:
        on_result(m, res[0], res[1], text, now)


def junk(m, text, now):
    """Not a result code: count it; too many while waiting means a confused modem."""
    m.junk_lines += 1
    if m._waiting is not None and m.state != ESCAPING:
        m._junk_wait += 1
        m._last_junk = text
        if m._junk_wait >= m.max_junk:
            fail(m, now, UNEXPECTED, "unexpected reply '%s' to %s" % (text, m._waiting), flush=True)


def on_result(m, word, rate, text, now):
    st = m.state
    if word == RING:
        m.rings += 1  # we only originate calls
        return
    if st == INIT:
        if word == OK:
            init_ok(m, now)
        elif word == NO_CARRIER:
            m.unsolicited += 1  # left over from a call ATZ just ended
        elif word == ERROR:
            fail(m, now, ERROR, "ERROR reply to %s" % m._cmd)
        else:
            fail(m, now, UNEXPECTED, "unexpected reply '%s' to %s" % (text, m._cmd))
    elif st == DIALING:
        if word == CONNECT:
            link_up(m, rate, text)
        elif word in DIAL_FAILURES:
            fail(m, now, word, "%s reply to %s" % (word, m._cmd), clean=True)
        else:
            fail(m, now, UNEXPECTED, "unexpected reply '%s' to %s" % (text, m._cmd))
    elif st == ESCAPING:
        if word == NO_CARRIER:
            after_escape(m, now, True)
        elif word == OK and m._phase == 1:
            m._esc_ok = True  # ATH still waits for the guard after +++
        elif word == OK and m._phase == 2:
            after_escape(m, now, False)
        else:
            m.unsolicited += 1
    elif st == HANGUP and m._waiting is not None:
        if word == OK or word == NO_CARRIER:
            hangup_done(m, now)
        elif word == ERROR and m._unsure and m._waiting == "ATH":
            # What we sent into a call that was already gone sat in the modem's command
            # buffer in front of ATH; the CR flushed it: once more.
            m._unsure = False
            wait(m, now, "ATH", "ATH", m.hangup_timeout_ms)
        elif word == ERROR:
            fail(m, now, ERROR, "ERROR reply to %s" % m._waiting)
        else:
            m.unsolicited += 1
    else:
        m.unsolicited += 1
