"""The box's console: line commands on the REPL's UART/USB, beside the running box.

Imported by the device port (gwbox.port.device) only when console input arrives, and
dropped again when the console falls idle, so it costs no heap while nobody types. The
policy commands (load, set, save, show policy/pending) live in gwbox.policyedit, which
comes and goes with each of them together with the parser. Reference and protocol:
docs/console.md. Every reply is a `console` event line (gwbox.events.json_line): zero or
more {"cmd", "line"}, then one final {"cmd", "ok", "msg", ...}; {"note"} lines come
unasked. Nothing here ever prints a key, a password or a password's hash, and unknown
input is never echoed (it may be a password typed at the wrong prompt).

Reading needs nothing; changing anything needs `login` when the policy sets
ConsolePassword, and safe mode when it sets none. Wrong passwords lock the login for a
delay that doubles with each (the count lives in the port, so it survives this module).
"""
import gc

from gwbox import POLICY_MAX, const, forget, ticks
from gwbox.crypto import mac

_LINE_MAX = const(256)  # bytes of one command or policy line
_IN_MAX = const(1024)  # input bytes held while a command runs
_LOAD_IDLE_MS = const(60000)  # a paste that stops for this long is abandoned
_KDF_STEP = const(32)  # PBKDF2 iterations per pass of the loop: 32 x ~4.4 ms on an RP2040 (docs/console.md)
_LOCK_MS = const(1000)  # first lock after a wrong password; doubles, up to:
_LOCK_MAX_MS = const(300000)
_IDLE_MS = const(5000)  # a console with no login and nothing in hand leaves the heap after this
_LOGOUT_MS = const(300000)  # a login with no input for this long is logged out

_HELP = const((
    "read: help, status, show log, show policy, show pending",
    "login PASSWORD, logout",
    "set KEY VALUE  (a [GENERAL] key; pending until save)",
    "load  (then the policy, then a line holding only '.')",
    "save, reboot [safe], test link, repl (safe mode)",
))
_CHANGES = const(("set", "load", "save", "test link", "reboot", "repl"))
_EDIT = const(("show policy", "show pending", "set", "load", "save"))  # gwbox.policyedit
# Console methods _c_<name>. Looked up only for these names: getattr() interns the name it
# is given, and the heap must not grow with every word someone types.
_OWN = const(("help", "status", "show log", "login", "logout", "reboot", "repl", "test link"))


def serve(port, data, now):
    """One pass of the device port's loop: console input in, replies out; when the console
    has been idle long enough, this module (and what it loaded) leaves the heap. A bug
    here is reported and the console dropped: it never stops the box."""
    con = port._con
    if data:
        port._con_at = now
        if con is None:
            con = port._con = Console(port)
    if con is None:
        return
    try:
        if data:
            con.feed(data)
        con.poll(now)
        if con.busy() or con.loading is not None or con.watch is not None:
            return
        if ticks.diff(now, port._con_at) < (_LOGOUT_MS if con.user or con.pending is not None else _IDLE_MS):
            return
        con.close(now, "idle")
    except MemoryError:
        raise
    except Exception as e:
        port._line(now, "console_error", {"error": type(e).__name__})
    port._con = None
    forget("gwbox.console", "gwbox.policyedit", "gwbox.store", "gwbox.policy", "gwbox.policyvalue")
    gc.collect()


class _Kdf:
    """PBKDF2-HMAC-SHA256 (RFC 8018), one 32-byte block, computed a slice at a time."""

    def __init__(self, password, salt, iterations):
        self.pads = mac.hmac_key(password)
        self.u = mac.hmac_digest(self.pads, salt, b"\x00\x00\x00\x01")
        self.t = int.from_bytes(self.u, "big")
        self.left = iterations - 1

    def step(self, n):
        """Run up to n iterations; the derived key once done, else None."""
        pads, u, t = self.pads, self.u, self.t
        n = min(n, self.left)
        for _ in range(n):
            u = mac.hmac_digest(pads, u)
            t ^= int.from_bytes(u, "big")
        self.u, self.t = u, t
        self.left -= n
        return t.to_bytes(32, "big") if not self.left else None


def pbkdf2(password, salt, iterations):
    """PBKDF2-HMAC-SHA256, 32 bytes: what `gwbox console-password` stores (hashlib.pbkdf2_hmac)."""
    return _Kdf(password, salt, iterations).step(iterations)


class Console:
    def __init__(self, port):
        self.port = port  # gwbox.port.device.DevicePort: box, policy path, password, lock, ring
        self.inbuf = bytearray()
        self.user = False
        self.loading = None  # pasted lines while a `load` runs
        self.load_size = 0
        self.load_at = 0
        self.pending = None  # policy text made by load/set, not saved
        self.kdf = None
        self.watch = None  # `test link`: (gateway, deadline, ms)
        self.skip = False  # dropping the rest of an over-long line
        self.cr = False  # the last line ended with \r: a \n right after it is part of that end

    # --- the port's side ------------------------------------------------------------------

    def feed(self, data):
        buf = self.inbuf
        for b in data:
            if b == 3:  # Ctrl-C (while the box runs it is not a KeyboardInterrupt): ends the line, cancels
                buf.extend(b"\x03\n")
            elif b == 8 or b == 127:
                if buf and buf[-1] != 10 and buf[-1] != 13:
                    buf[len(buf) - 1:] = b""  # (MicroPython's bytearray has no pop)
            elif len(buf) < _IN_MAX:
                buf.append(b)

    def busy(self):
        """Work to do now (a password being checked, a complete line waiting): the port polls
        again without sleeping. A paste or a `test link` in progress only waits."""
        return self.kdf is not None or b"\n" in self.inbuf or b"\r" in self.inbuf

    def poll(self, now):
        if self.kdf is not None:
            self._login_step(now)
            if self.kdf is not None:
                return
        w = self.watch
        if w is not None and ticks.reached(now, w[1]):
            self.watch = None
            self._say(now, "test link", False, "no answer from %s within %d s" % (w[0], w[2] // 1000))
        if self.loading is not None and ticks.diff(now, self.load_at) >= _LOAD_IDLE_MS:
            self.loading = None
            forget("gwbox.policyedit")
            self._say(now, "load", False, "load abandoned: no input for %d s; nothing changed" % (_LOAD_IDLE_MS // 1000))
        for _ in range(8):  # a few lines per pass; the box runs in between
            if self.kdf is not None or self.port.rebooting is not None:
                return
            line = self._take_line()
            if line is None:
                return
            try:
                if b"\x03" in line:
                    if self.loading is not None:
                        self.loading = None
                        self._say(now, "load", False, "load cancelled: nothing changed")
                elif self.loading is not None:
                    self._load_line(line, now)
                else:
                    self._command(line, now)
            except MemoryError:
                self.loading = None
                self._say(now, "?", False, "out of memory: nothing changed; `reboot safe`, then try again")
            if self.loading is None:
                forget("gwbox.policyedit", "gwbox.policy", "gwbox.policyvalue")

    def on_event(self, name, fields, now):
        w = self.watch
        if w is None or w[0].encode() not in (fields.get("peer"), fields.get("gateway")):
            return
        if name == "heartbeat_ack":
            self.watch = None
            self._say(now, "test link", True, "%s answered in %s ms" % (w[0], fields.get("rtt_ms")),
                      gateway=w[0], rtt_ms=fields.get("rtt_ms"))
        elif name == "sa_deleted" or name == "gateway_dead":
            self.watch = None
            self._say(now, "test link", False, "%s did not answer: the box gave it up (%s)" % (
                w[0], fields.get("reason")), gateway=w[0])

    def close(self, now, why):
        if self.user or self.pending is not None or self.loading is not None:
            self._note(now, "console %s: logged out%s" % (why, ", the unsaved policy dropped" if self.pending else ""))
        self.user = False
        self.pending = self.loading = self.watch = self.kdf = None

    # --- input ------------------------------------------------------------------------------

    def _take_line(self):
        """The next complete line (bytes, without its end: \n, \r or \r\n), or None."""
        while True:
            buf = self.inbuf
            if buf and self.cr:
                self.cr = False
                if buf[0] == 10:
                    buf = buf[1:]  # the \n of a \r\n
            i = buf.find(b"\n")
            j = buf.find(b"\r", 0, i if i >= 0 else len(buf))
            i = j if j >= 0 else i
            if i < 0:
                if len(buf) > _LINE_MAX:
                    self.skip = True
                    buf = bytearray()
                self.inbuf = buf
                return None
            self.cr = buf[i] == 13
            line = bytes(buf[:i])
            self.inbuf = buf[i + 1:]
            if self.skip or len(line) > _LINE_MAX:
                self.skip = False
                self._say(self.port.now(), "?", False, "line longer than %d bytes: ignored" % _LINE_MAX)
                continue
            return line

    def _load_line(self, raw, now):
        self.load_at = now
        s = raw.strip()
        if s[:1] == b"." and (len(s) == 1 or s[1:2] == b" "):
            lines, self.loading = self.loading, None
            from gwbox.policyedit import loaded
            return loaded(self, lines, s[1:].strip(), now)
        self.load_size += len(raw) + 1
        if self.load_size <= POLICY_MAX:
            self.loading.append(raw)
        elif self.loading != [None]:
            self.loading = [None]  # too long: the rest is dropped, the end refuses it

    # --- output -----------------------------------------------------------------------------

    def say(self, now, cmd, ok, msg, **extra):
        """The final reply to a command."""
        extra["cmd"] = cmd
        extra["ok"] = ok
        extra["msg"] = msg
        self.port._line(now, "console", extra)

    _say = say

    def line(self, now, cmd, text):
        """One line of a command's output, before its final reply."""
        self.port._line(now, "console", {"cmd": cmd, "line": text})

    def text(self, now, cmd, masked, where, checksum):
        """A policy's (masked) text, a line each, then the final reply."""
        for ln in masked.split("\n"):
            if ln:
                self.line(now, cmd, ln)
        self.say(now, cmd, True, where, checksum=checksum)

    def _note(self, now, text):
        self.port._line(now, "console", {"note": text})

    # --- commands ---------------------------------------------------------------------------

    def _command(self, raw, now):
        try:
            line = raw.decode().strip()
        except UnicodeError:
            return self._say(now, "?", False, "not UTF-8 text: ignored")
        words = line.split(None, 1)
        if not words:
            return
        w = words[0].lower()
        rest = words[1].strip() if len(words) > 1 else ""
        if (w == "show" or w == "test") and rest:
            sub = rest.split(None, 1)
            w = w + " " + sub[0].lower()
            rest = sub[1] if len(sub) > 1 else ""
        if w in _OWN:
            fn = getattr(self, "_c_" + w.replace(" ", "_"))
        elif w in _EDIT:
            fn = None
        else:
            return self._say(now, "?", False, "unknown command: type help")
        if w in _CHANGES:
            why = self._may_change()
            if why:
                return self._say(now, w, False, why)
        if fn is not None:
            return fn(rest, now)
        shown = self.port.shown
        if w == "show policy" and shown is not None:  # the policy this boot runs, rendered at boot:
            return self.text(now, w, shown[0], "stored in " + shown[1], shown[2])  # no policyedit
        import gwbox.policyedit
        gwbox.policyedit.command(self, w, rest, now)

    def _may_change(self):
        p = self.port
        if p.password is None:
            if p.safe:
                return None
            return "this policy sets no ConsolePassword: the console changes nothing outside safe mode " \
                   "(docs/console.md)"
        if not self.user:
            return "login first"
        return None

    def _c_help(self, rest, now):
        for h in _HELP:
            self.line(now, "help", h)
        self._say(now, "help", True, "docs/console.md has the rest")

    def _c_status(self, rest, now):
        p = self.port
        self._say(now, "status", True, "safe mode: " + p.safe if p.safe else "running",
                  status=p.status(now), login=self.user, password=p.password is not None)

    def _c_show_log(self, rest, now):
        ring = self.port.ring
        for ln in ring:
            self.line(now, "show log", ln)
        self._say(now, "show log", True, "%d recent events" % len(ring))

    def _c_login(self, rest, now):
        p = self.port
        if p.password is None:
            return self._say(now, "login", False, "this policy sets no ConsolePassword: nothing to log in to")
        if not rest:
            return self._say(now, "login", False, "usage: login PASSWORD")
        if p.locked_until is not None and not ticks.reached(now, p.locked_until):
            left = (ticks.diff(p.locked_until, now) + 999) // 1000
            return self._say(now, "login", False, "too many wrong passwords: try again in %d s" % left, wait_s=left)
        self.kdf = _Kdf(rest.encode(), p.password[1], p.password[0])
        self._login_step(now)

    def _login_step(self, now):
        k = self.kdf.step(_KDF_STEP)
        if k is None:
            return
        self.kdf = None
        p = self.port
        if mac.ct_equal(k, p.password[2]):
            p.fails = 0
            p.locked_until = None
            self.user = True
            return self._say(now, "login", True, "logged in: changes allowed")
        p.fails += 1
        ms = min(_LOCK_MS << min(p.fails - 1, 16), _LOCK_MAX_MS)
        p.locked_until = ticks.add(now, ms)
        self._say(now, "login", False, "wrong password: next try in %d s" % (ms // 1000), wait_s=ms // 1000)

    def _c_logout(self, rest, now):
        dropped = self.pending is not None
        self.user = False
        self.pending = None
        self._say(now, "logout", True, "logged out" + (": the unsaved policy dropped" if dropped else ""))

    def _c_reboot(self, rest, now):
        safe = rest.lower() == "safe"
        if rest and not safe:
            return self._say(now, "reboot", False, "usage: reboot [safe]")
        self._say(now, "reboot", True, "rebooting" + (" into safe mode" if safe else ""))
        self.port.rebooting = safe  # done by the port once this module has left the heap

    def _c_repl(self, rest, now):
        if not self.port.safe:
            return self._say(now, "repl", False, "only in safe mode (the watchdog may be running): `reboot safe` first")
        self._say(now, "repl", True, "leaving for the MicroPython REPL: Ctrl-D restarts the box")
        self.port.running = False

    def _c_test_link(self, rest, now):
        """A heartbeat to the gateway in use, now; the answer (or its absence) is the reply."""
        box = self.port.box
        if box is None:
            return self._say(now, "test link", False, "safe mode: the box is not running")
        r = box.probe(now)
        if r is None:
            return self._say(now, "test link", False, "no gateway in use (line %s)" % box.line.state)
        gw = r[0].decode()
        wait = r[1] + 1000
        self.watch = (gw, ticks.add(now, wait), wait)
        self.line(now, "test link", "heartbeat to %s" % gw)
