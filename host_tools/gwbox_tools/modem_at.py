"""The Hayes/V.250 command side of the emulated modem: settings, parsing, result codes, escape.

Why a module of its own: everything here is pure (bytes and a clock value in, bytes and
decisions out), so the command language and the `+++` guard-time rule can be read and
tested apart from the event loop in `modem_emu`, which owns calls, sockets and time.

Covered subset: E V Q X L M I Z H O D S<n>=<v> S<n>? &F &C &D &K &W, several per line,
`A/` (repeat last line), backspace editing. Anything else answers ERROR.
"""

# Result codes (ITU-T V.250 / Hayes numbering).
RESULT_CODES = {
    "OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4,
    "NO DIALTONE": 6, "BUSY": 7, "NO ANSWER": 8,
}

# Numeric `CONNECT <rate>` codes, the common Hayes/Rockwell extended table (X1..X4).
# A rate missing here is reported as plain code 1 in numeric mode.
CONNECT_CODES = {
    300: 1, 1200: 5, 2400: 10, 4800: 11, 9600: 12, 7200: 13, 12000: 14,
    14400: 15, 19200: 16, 38400: 17, 57600: 18, 115200: 19,
}

# Factory S-register values. S1 is the ring counter; all others are stored, and the
# emulator uses S2 (escape char), S3/S4/S5 (CR, LF, BS), S7 (wait for carrier, s) and
# S12 (escape guard time, 1/50 s).
DEFAULT_S = {
    0: 0, 1: 0, 2: 43, 3: 13, 4: 10, 5: 8, 6: 2, 7: 50, 8: 2, 9: 6, 10: 14, 11: 95, 12: 50,
}

MAX_LINE = 255  # characters kept in the command buffer; longer lines are discarded

REPEAT = object()  # LineEditor's answer to `A/`: re-run the previous command line


class ATError(Exception):
    """A command line the modem answers with ERROR."""


class ModemSettings:
    """What AT commands change: echo, verbosity, quiet mode, X level, &C/&D, S-registers."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Factory profile (ATZ and AT&F both load it; there is no stored profile)."""
        self.echo = True
        self.verbose = True
        self.quiet = False
        self.x = 4
        self.dcd_mode = 1      # &C: stored only, a pty has no DCD line
        self.dtr_mode = 2      # &D: stored only, a pty has no DTR line
        self.s = dict(DEFAULT_S)

    @property
    def guard_s(self):
        return self.s[12] / 50.0

    @property
    def escape_char(self):
        return self.s[2]

    @property
    def carrier_wait_s(self):
        return float(self.s[7])

    @property
    def cr(self):
        return self.s[3]

    @property
    def lf(self):
        return self.s[4]

    @property
    def bs(self):
        return self.s[5]

    def crlf(self):
        return bytes((self.cr, self.lf))


def parse(body):
    """Split the text after `AT` into [(name, arg)]; raise ATError on bad syntax.

    name is a letter ('E'), an ampersand command ('&C'), 'S?' (arg = register),
    'S=' (arg = (register, value)) or 'D' (arg = the rest of the line: D ends the line).
    arg is an int or None when no digits follow.
    """
    cmds = []
    i, n = 0, len(body)
    while i < n:
        c = body[i].upper()
        i += 1
        if c == " ":
            continue
        if c == "D":
            cmds.append(("D", body[i:].strip()))
            break
        if c == "S":
            reg, i = _digits(body, i)
            if reg is None:
                raise ATError("S needs a register number")
            i = _skip_spaces(body, i)
            if i < n and body[i] == "?":
                cmds.append(("S?", reg))
                i += 1
            elif i < n and body[i] == "=":
                val, i = _digits(body, _skip_spaces(body, i + 1))
                cmds.append(("S=", (reg, 0 if val is None else val)))
            else:
                raise ATError("S%d needs ? or =" % reg)
            continue
        if c == "&":
            if i >= n:
                raise ATError("lone &")
            name = "&" + body[i].upper()
            i += 1
        elif c.isalpha():
            name = c
        else:
            raise ATError("unexpected %r" % c)
        arg, i = _digits(body, i)
        cmds.append((name, arg))
    return cmds


def _skip_spaces(s, i):
    while i < len(s) and s[i] == " ":
        i += 1
    return i


def _digits(s, i):
    i = _skip_spaces(s, i)
    j = i
    while j < len(s) and s[j].isdigit():
        j += 1
    return (int(s[i:j]) if j > i else None), j


def check_arg(arg, allowed):
    """The command's numeric argument (absent = 0) if allowed, else ATError."""
    v = 0 if arg is None else arg
    if v not in allowed:
        raise ATError("value out of range")
    return v


def apply(settings, name, arg):
    """Execute one command that only touches settings; return information text lines.

    D, H, O and Z act on the call and are handled by the emulator, not here.
    """
    if name == "E":
        settings.echo = check_arg(arg, (0, 1)) == 1
    elif name == "V":
        settings.verbose = check_arg(arg, (0, 1)) == 1
    elif name == "Q":
        settings.quiet = check_arg(arg, (0, 1)) == 1
    elif name == "X":
        settings.x = check_arg(arg, range(5))
    elif name in ("L", "M"):
        check_arg(arg, range(4))            # speaker volume / mode: nothing to hear
    elif name == "I":
        v = check_arg(arg, range(10))
        if v == 3:
            return ["gwbox modem emulator (V.250 subset)"]
        return ["GWBOX-EMU"]
    elif name == "&F":
        check_arg(arg, (0,))
        settings.reset()
    elif name == "&C":
        settings.dcd_mode = check_arg(arg, (0, 1))
    elif name == "&D":
        settings.dtr_mode = check_arg(arg, (0, 1, 2, 3))
    elif name == "&K":
        check_arg(arg, range(7))            # flow control: stored nowhere, no lines on a pty
    elif name == "&W":
        check_arg(arg, (0, 1))              # no non-volatile profile; accepted
    elif name == "S?":
        if arg not in settings.s:
            raise ATError("no such register")
        return ["%03d" % settings.s[arg]]
    elif name == "S=":
        reg, val = arg
        if reg not in settings.s or reg == 1 or not 0 <= val <= 255:
            raise ATError("bad register or value")
        settings.s[reg] = val
    else:
        raise ATError("unknown command %s" % name)
    return []


def _x_filter(name, x):
    """Fold extended result codes into NO CARRIER at low X levels, as Hayes modems do."""
    if name == "NO DIALTONE" and x < 2:
        return "NO CARRIER"
    if name == "BUSY" and x < 3:
        return "NO CARRIER"
    if name == "NO ANSWER" and x < 1:
        return "NO CARRIER"
    return name


def result(settings, name, baud=None):
    """Bytes of a result code as the DTE sees them (nothing when Q1)."""
    if settings.quiet:
        return b""
    name = _x_filter(name, settings.x)
    with_rate = name == "CONNECT" and baud and settings.x > 0
    if settings.verbose:
        text = "CONNECT %d" % baud if with_rate else name
        return settings.crlf() + text.encode() + settings.crlf()
    code = CONNECT_CODES.get(baud, 1) if with_rate else RESULT_CODES[name]
    return str(code).encode() + bytes((settings.cr,))


def info(settings, text):
    """Bytes of an information response line (sent even when Q1)."""
    if settings.verbose:
        return settings.crlf() + text.encode() + settings.crlf()
    return text.encode() + settings.crlf()


class LineEditor:
    """Collects a command line from DTE bytes: echo, backspace, CR ends it, `A/` repeats."""

    def __init__(self):
        self.buf = bytearray()

    def clear(self):
        self.buf = bytearray()

    def feed(self, b, settings):
        """One byte in; returns (echo bytes, None | line str | REPEAT)."""
        echo = bytes((b,)) if settings.echo else b""
        if b == settings.cr:
            line = self.buf.decode("latin-1")
            self.buf = bytearray()
            return echo, line
        if b == settings.bs:
            if self.buf:
                self.buf.pop()
            return echo, None
        if b == settings.lf or b == 0:
            return echo, None
        self.buf.append(b)
        if len(self.buf) > MAX_LINE:
            # Before its "AT" nothing is part of a command line (V.250 5.2.1): line noise is
            # dropped as it comes, only a last byte that may start "AT" is kept; past "AT" a
            # line too long for the buffer is thrown away.
            i = self.buf.upper().find(b"AT")
            self.buf = self.buf[-1:] if i < 0 else self.buf[i:]
            if len(self.buf) > MAX_LINE:
                self.buf = bytearray()
            return echo, None
        up = self.buf.upper()
        if up.endswith(b"A/") and b"AT" not in up:
            self.buf = bytearray()
            return echo, REPEAT
        return echo, None


GUARD_SLACK = 0.05  # fraction of the guard time forgiven on the silences before and after


class EscapeDetector:
    """The `+++` escape with guard time, watched on DTE bytes in data mode.

    Escape = silence >= guard, three escape chars each less than guard after the previous,
    then silence >= guard. The two silences are measured with GUARD_SLACK of leeway (the
    DTE times its guard from its writes, we from our reads; scheduling jitter must not make
    an honest escape fail). Candidate escape chars are held back (not sent to the line)
    until the sequence either completes (they are discarded) or fails (they are released as
    data, in order). guard == 0 drops the timing rules: three escape chars in a row escape.
    An escape char > 127 (S2) disables the escape, as on Hayes modems.
    """

    def __init__(self, now=0.0, guard_s=1.0, char=43):
        self.reset(now, guard_s, char)

    def reset(self, now, guard_s, char):
        self.guard = guard_s
        self.char = char
        self.last_rx = now          # entering data mode counts as the last DTE byte
        self.pending = 0            # escape chars held back
        self.t_plus = now

    def _silence(self):
        return self.guard * (1.0 - GUARD_SLACK)

    def deadline(self):
        """When poll() may change something, or None."""
        if self.pending == 3:
            return self.t_plus + self._silence()
        if self.pending:
            return self.t_plus + self.guard
        return None

    def poll(self, now):
        """(bytes released as data, escaped?) once the guard after held chars has passed."""
        if self.pending == 3 and now - self.t_plus >= self._silence():
            self.pending = 0
            return b"", True
        if self.pending and now - self.t_plus >= self.guard:
            held = bytes((self.char,)) * self.pending
            self.pending = 0
            return held, False
        return b"", False

    def feed(self, data, now):
        """DTE bytes in; returns (bytes for the line, escaped?, bytes after the escape)."""
        out, escaped = self.poll(now)
        if escaped:
            return out, True, data
        out = bytearray(out)
        ch = self.char
        for i, b in enumerate(data):
            if ch > 127:
                out.append(b)
            elif self.pending == 0:
                if b == ch and (self.guard == 0 or now - self.last_rx >= self._silence()):
                    self.pending = 1
                    self.t_plus = now
                else:
                    out.append(b)
            elif self.pending < 3 and b == ch and (self.guard == 0 or now - self.t_plus < self.guard):
                self.pending += 1
                self.t_plus = now
            else:
                out += bytes((ch,)) * self.pending
                self.pending = 0
                out.append(b)
            self.last_rx = now
            if self.guard == 0 and self.pending == 3:
                self.pending = 0
                return bytes(out), True, bytes(data[i + 1:])
        return bytes(out), False, b""
