"""The host side of the box's console protocol (docs/console.md), over a serial port.

The box prints JSON event lines (gwbox.events.json_line) on its REPL's UART/USB; its
console replies are `console` events among them: zero or more {"cmd", "line"}, then one
final {"cmd", "ok", "msg", ...}, and unasked {"note"} lines. `DeviceConsole` sends one
command line at a time and collects its reply; every other line it reads is kept in
`seen` (events) or `text` (anything that is not JSON: a traceback, the REPL).

    with DeviceConsole("/dev/ttyUSB0") as c:
        r = c.command("status")          # Reply(ok, msg, lines, final)
        c.login(password)                # ConsoleError with the box's words if refused
        r = c.load(policy_text)          # validated on the box; r.lines are its errors
        c.command("save")

Also the password hash format of the policy's ConsolePassword (`hash_password`).
"""
import hashlib
import json
import os
import time

BAUD = 115200
ITERATIONS = 4000  # PBKDF2 rounds of a new console password: ~0.1-0.5 s on the board, spread over its loop
MIN_PASSWORD = 8
LINE_MAX = 256  # bytes of one console line (gwbox.console)


STATUS_TRIES = 3  # `status` answered out of memory: asked again this many times in all


class ConsoleError(Exception):
    """The box refused or did not answer; the message says what it said (or that it was silent)."""


class Reply:
    def __init__(self, final, lines):
        self.final = final
        self.ok = bool(final.get("ok"))
        self.msg = final.get("msg", "")
        self.lines = lines

    def __repr__(self):
        return "Reply(%r, %r, %d lines)" % (self.ok, self.msg, len(self.lines))


def hash_password(password, iterations=ITERATIONS, salt=None):
    """The ConsolePassword value for `password`: pbkdf2$<iterations>$<salt hex>$<hash hex>."""
    if isinstance(password, str):
        password = password.encode()
    salt = salt or os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    return "pbkdf2$%d$%s$%s" % (iterations, salt.hex(), dk.hex())


def command_name(line):
    """The name the box gives a command line in its reply ("show policy", "login", ...)."""
    w = line.split(None, 2)
    if not w:
        return ""
    name = w[0].lower()
    if name in ("show", "test") and len(w) > 1:
        name += " " + w[1].lower()
    return name


def open_serial(port, baud=BAUD):
    """The port opened raw without touching DTR/RTS: an ESP32 DevKit wires them to reset/boot."""
    import serial
    ser = serial.serial_for_url(port, baudrate=baud, timeout=0.05, do_not_open=True)
    try:
        ser.dtr = False
        ser.rts = False
    except (OSError, ValueError, serial.SerialException):
        pass
    ser.open()
    return ser


class DeviceConsole:
    def __init__(self, port, baud=BAUD, timeout=15.0, ser=None):
        self.port = port
        self.timeout = timeout
        self.ser = ser if ser is not None else open_serial(port, baud)
        self.buf = b""
        self.seen = []  # events other than console replies, in order
        self.text = []  # lines that were not JSON
        self.notes = []

    def close(self):
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- lines -----------------------------------------------------------------------------

    def read_line(self, timeout):
        """The next line from the box (bytes without its end), or None after `timeout` s."""
        end = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                return line.rstrip(b"\r")
            left = end - time.monotonic()
            if left <= 0:
                return None
            data = self.ser.read(4096)
            if data:
                self.buf += data

    def read_event(self, timeout):
        """The next JSON event (dict) from the box, or None; other lines go to `text`."""
        end = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.0, end - time.monotonic()))
            if line is None:
                return None
            try:
                d = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                d = None
            if isinstance(d, dict) and "event" in d:
                return d
            self.text.append(line.decode("utf-8", "replace"))

    def sync(self, quiet_s=0.3):
        """Drop what the box printed before; end any half-typed line on it."""
        self.ser.reset_input_buffer()
        self.buf = b""
        self.ser.write(b"\r")
        self.ser.flush()
        end = time.monotonic() + quiet_s
        while time.monotonic() < end:
            self.ser.read(4096)

    def write_line(self, text):
        self.ser.write(text.encode() + b"\r")
        self.ser.flush()

    # --- commands --------------------------------------------------------------------------

    def wait_reply(self, name, timeout=None):
        """Collect the reply to command `name`: its lines, then its final event."""
        end = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            e = self.read_event(max(0.0, end - time.monotonic()))
            if e is None:
                raise ConsoleError("the box on %s did not answer `%s` within %d s: is the gwbox firmware "
                                   "running on it (gwbox deploy, then reset it)?" % (
                                       self.port, name, timeout or self.timeout))
            if e["event"] != "console":
                self.seen.append(e)
                continue
            if "note" in e:
                self.notes.append(e["note"])
                continue
            if e.get("cmd") not in (name, "?"):
                continue  # the tail of an earlier command
            if "ok" in e:
                return Reply(e, lines)
            if "line" in e:
                lines.append(e["line"])

    def command(self, line, timeout=None):
        self.write_line(line)
        return self.wait_reply(command_name(line), timeout)

    def status(self, tries=STATUS_TRIES):
        """The box's status. `status` changes nothing, so an out-of-memory answer (a moment's peak
        on a board-sized heap, e.g. a key exchange's code still loaded) is asked again, a second
        apart, before it counts."""
        for i in range(tries):
            r = self.command("status")
            if r.ok or not r.msg.startswith("out of memory") or i == tries - 1:
                break
            time.sleep(1.0)
        if not r.ok:
            raise ConsoleError("status: " + r.msg)
        return r.final

    def login(self, password):
        """Log in; ConsoleError with the box's own words (wrong password, locked for N s)."""
        if "\r" in password or "\n" in password:
            raise ConsoleError("a password is one line")
        r = self.command("login " + password, timeout=max(self.timeout, 60))
        if not r.ok:
            raise ConsoleError("login refused by the box: " + r.msg)
        return r

    def load(self, text, pace_s=0.002):
        """Paste `text` with `load`; the box's verdict (its error lines in .lines)."""
        body = text if text.endswith("\n") else text + "\n"
        if "\r" in body:
            body = body.replace("\r\n", "\n")
        digest = hashlib.sha256(body.encode()).hexdigest()
        for n, ln in enumerate(body.split("\n"), 1):
            if len(ln.encode()) > LINE_MAX:
                raise ConsoleError("line %d is longer than %d bytes: the box's console takes no longer lines"
                                   % (n, LINE_MAX))
        self.write_line("load")
        end = time.monotonic() + self.timeout
        while True:  # the box says it is ready (or why not) before the text goes
            e = self.read_event(max(0.0, end - time.monotonic()))
            if e is None:
                raise ConsoleError("the box on %s did not answer `load`" % self.port)
            if e.get("event") != "console" or e.get("cmd") not in ("load", "?"):
                if e.get("event") != "console":
                    self.seen.append(e)
                continue
            if "ok" in e:
                return Reply(e, [])
            if "line" in e:
                break
        for ln in body[:-1].split("\n"):
            self.ser.write(ln.encode() + b"\n")
            self.ser.flush()
            if pace_s:
                time.sleep(pace_s)
        self.write_line(". " + digest)
        return self.wait_reply("load")
