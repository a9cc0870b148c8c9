"""An active attacker on the serial line, as a test helper: a man in the middle on a real pty.

```
box (opens attacker.path) <-> [LineAttacker: own pty pair; opens upstream] <-> upstream pty
```

The box (any program that would open `upstream_path`) opens `attacker.path` instead: the
slave of a pty pair the attacker owns. The attacker opens `upstream_path` with pyserial,
exactly as the box would, and moves bytes both ways: "up" is box -> line, "down" is
line -> box. Bytes outside RFC 1662 frames (AT commands, result codes, `+++`, noise) pass
at once and untouched. A frame (flag ... flag) is collected up to its closing flag and then
handed to the rule of its direction, which returns an action: pass (byte-identical), drop,
hold (for `release`), delay, bit-flip (with or without a valid FCS), or replace. The test
thread may also `replay` recorded frames, `inject` forged frames (framed by the firmware's
own `Framer`) and `inject_raw` bytes. Every frame is recorded (bounded ring) and counted.

Threads: one background thread runs a `selectors` loop; calls from the test thread are
queued to it and woken through a pipe, so all state has one owner; rules run on that
thread. `close()` stops it and closes every fd it opened.

Test-only: host tools must never import this module. See docs/attacker.md.
"""
import collections
import heapq
import os
import random
import selectors
import threading
import time
import tty

import serial

from gwbox.link.framing import DEFAULT_MAX_PAYLOAD, ESC, ESC_XOR, FLAG, FCS_LEN, Framer, fcs16
from gwbox_tools.loopthread import LoopCalls

UP, DOWN = "up", "down"
DIRECTIONS = (UP, DOWN)
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
READ_SIZE = 4096
BACKLOG_MAX = 65536      # per direction: stop reading the source while this much waits
_FLAG_BYTE = bytes((FLAG,))

COUNTERS = (
    "bytes_in",        # bytes read from the direction's source
    "bytes_out",       # bytes written to the direction's sink
    "bytes_outside",   # bytes passed outside frames (incl. inter-frame fill and flushed runs)
    "frames",          # frames seen (closed by a flag), before any rule
    "bad_fcs",         # ... of which the firmware Framer would not deliver (FCS, runt, abort, oversize)
    "passed",          # frames forwarded byte-identical at once
    "dropped",         # frames discarded by a rule
    "held",            # frames kept by a rule for release()
    "delayed",         # frames forwarded later by a delay rule
    "modified",        # frames replaced by something else (bit flip, replace)
    "released",        # held frames sent by release()
    "replayed",        # frames re-sent by replay() (each copy counts)
    "injected",        # forged frames sent by inject()
    "injected_raw",    # inject_raw() calls
    "bytes_removed",   # raw bytes of frames not forwarded as read (dropped, held, modified)
    "bytes_added",     # bytes sent that were not read (released, replayed, injected, modified)
    "bytes_lost",      # bytes that could not be written (sink gone)
    "flushed",         # unterminated runs given up and passed as outside bytes
    "rule_errors",     # rules that raised (the frame was then passed)
)


# ------------------------------------------------------------------ frames and actions

class Frame:
    """One frame as seen on the wire.

    raw: the bytes as on the wire, both flags included. payload: unescaped, FCS stripped,
    exactly what the firmware Framer would deliver; None if it would not (bad FCS, runt,
    abort, oversize). fcs_ok: payload is not None. direction: "up" or "down". index: 0, 1, ...
    per direction. t: time.monotonic() when the closing flag was read. action: what was done
    with it ("pass", "drop", "hold", "delay", "flip", "replace", "replace_raw").
    """

    __slots__ = ("raw", "payload", "fcs_ok", "direction", "index", "t", "action")

    def __init__(self, raw, payload, direction, index, t):
        self.raw = raw
        self.payload = payload
        self.fcs_ok = payload is not None
        self.direction = direction
        self.index = index
        self.t = t
        self.action = None

    def __repr__(self):
        return "<Frame %s#%d %dB fcs_ok=%s %s>" % (self.direction, self.index, len(self.raw),
                                                  self.fcs_ok, self.action)


class Action:
    """What a rule does with a frame. Use the constants and constructors below."""

    __slots__ = ("kind", "ms", "keep_order", "byte", "bit", "fix_fcs", "data")

    def __init__(self, kind, ms=0, keep_order=True, byte=0, bit=0, fix_fcs=True, data=None):
        self.kind = kind
        self.ms = ms
        self.keep_order = keep_order
        self.byte = byte
        self.bit = bit
        self.fix_fcs = fix_fcs
        self.data = data

    def __repr__(self):
        return "<Action %s>" % self.kind


PASS = Action("pass")
DROP = Action("drop")
HOLD = Action("hold")
_BY_NAME = {"pass": PASS, "drop": DROP, "hold": HOLD}


def delay(ms, keep_order=True):
    """Forward the frame `ms` later. keep_order: everything after it in this direction
    (frames and outside bytes) waits behind it; False: it alone is late (reordering)."""
    if ms < 0:
        raise ValueError("delay must be >= 0 ms")
    return Action("delay", ms=ms, keep_order=keep_order)


def flip(byte, bit=0, fix_fcs=True):
    """Flip bit `bit` (0 = LSB) of payload byte `byte` (negative counts from the end).
    fix_fcs=True: re-frame with a correct FCS so the frame reaches the protocol layer (what
    a real attacker does); False: keep the original FCS so framing rejects it (line noise).
    Needs a frame whose FCS was good; otherwise the rule counts as an error and it passes."""
    if not 0 <= bit <= 7:
        raise ValueError("bit must be 0..7")
    return Action("flip", byte=byte, bit=bit, fix_fcs=fix_fcs)


def replace(payload):
    """Forward a properly framed `payload` instead of the frame."""
    return Action("replace", data=bytes(payload))


def replace_raw(data):
    """Forward these raw bytes instead of the frame."""
    return Action("replace_raw", data=bytes(data))


# ------------------------------------------------------------------ rule constructors

def on_if(pred, action):
    """Rule: `action` for frames where pred(frame) is true, pass for the others."""
    action = _as_action(action)
    return lambda f: action if pred(f) else PASS


def on_nth(n, action, pred=None):
    """Rule: `action` for exactly the n-th frame (1-based) this rule sees that matches
    `pred` (every frame without pred); pass for all the others."""
    if n < 1:
        raise ValueError("n is 1-based")
    action = _as_action(action)
    seen = [0]

    def rule(f):
        if pred is not None and not pred(f):
            return PASS
        seen[0] += 1
        return action if seen[0] == n else PASS
    return rule


def drop_if(pred):
    return on_if(pred, DROP)


def drop_nth(n, pred=None):
    """Drop exactly the n-th frame (1-based) this rule sees (that matches pred)."""
    return on_nth(n, DROP, pred)


def drop_random(p, seed=None, pred=None):
    """Drop each frame (that matches pred) with probability p, from random.Random(seed)."""
    rng = random.Random(seed)
    return lambda f: DROP if (pred is None or pred(f)) and rng.random() < p else PASS


def hold_if(pred):
    return on_if(pred, HOLD)


def delay_if(pred, ms, keep_order=True):
    return on_if(pred, delay(ms, keep_order))


def flip_if(pred, byte, bit=0, fix_fcs=True):
    return on_if(pred, flip(byte, bit, fix_fcs))


def chain(*rules):
    """Rule: the first of `rules` whose action is not pass decides (every rule still sees
    every frame until one decides, so counting rules count only what reaches them)."""
    def rule(f):
        for r in rules:
            a = _as_action(r(f) if callable(r) else r)
            if a.kind != "pass":
                return a
        return PASS
    return rule


# ------------------------------------------------------------------ payload predicates

def _payload(p):
    return p.payload if isinstance(p, Frame) else p


def is_cleartext(payload, offset=0):
    """True for a cleartext handshake message (marker byte 0x00 at `offset`; docs/protocol.md).
    Takes a payload (bytes or None) or a Frame. `offset`: where the packet starts in the
    payload (e.g. after an outer address header)."""
    p = _payload(payload)
    return p is not None and len(p) > offset and p[offset] == 0


def spi_of(payload, offset=0):
    """The SPI (4 bytes big-endian at `offset`) of a protected packet; None for a cleartext
    message, a payload too short or None. Takes a payload or a Frame."""
    p = _payload(payload)
    if p is None or len(p) < offset + 4 or p[offset] == 0:
        return None
    return int.from_bytes(bytes(p[offset:offset + 4]), "big")


# ------------------------------------------------------------------ helpers

def _as_action(a):
    if a is None:
        return PASS
    if isinstance(a, Action):
        return a
    if isinstance(a, str) and a in _BY_NAME:
        return _BY_NAME[a]
    raise TypeError("a rule must return an Action, None or 'pass'/'drop'/'hold', not %r" % (a,))


def _escape(data, accm=0):
    """RFC 1662 escaping of `data` (flag, escape, ACCM control chars), no flags added.
    Only used to build a deliberately wrong frame, which Framer.encode cannot make."""
    out = bytearray()
    for b in data:
        if b == FLAG or b == ESC or (b < 32 and accm >> b & 1):
            out.append(ESC)
            out.append(b ^ ESC_XOR)
        else:
            out.append(b)
    return bytes(out)


class _Dir:
    """One direction: parser state, rule, queues, held frames, record, counters."""

    def __init__(self, name, max_payload, accm, record):
        self.name = name
        self.src = None             # fd read from
        self.dst = None             # fd written to
        self.src_closed = False
        self.dst_closed = False
        self.rule = None
        self.decoder = Framer(max_payload, accm)   # fed exactly one whole frame at a time
        self.run = bytearray()      # raw bytes of the open frame, opening flag included
        self.open = False
        self.t_last = 0.0
        self.pipeline = collections.deque()        # [due, bytes] in order
        self.later = []             # heap (due, seq, bytes): delays that may reorder
        self.queued = 0             # bytes in pipeline + later
        self.wbuf = bytearray()     # due, not yet accepted by the sink
        self.paused = False
        self.held = []
        self.index = 0
        self.record = collections.deque(maxlen=record)
        self.c = dict.fromkeys(COUNTERS, 0)

    def pending(self):
        return len(self.run) + self.queued + len(self.wbuf)


# ------------------------------------------------------------------ the attacker

class LineAttacker(LoopCalls):
    """A man in the middle on a real pty (see module docstring).

    upstream_path: the pty the box would open (e.g. ModemEmulator.box_path); opened with
        pyserial (raw, non-blocking) at `baud` (default 9600; a pty ignores it).
    up, down: initial rules for each direction (callable(frame) -> Action, or an Action).
    record: frames kept per direction for frames()/wait_frame().
    flush_ms: an unterminated frame (a flag, then no closing flag) idle this long is given
        up and its bytes passed as outside bytes, so a stray flag never stalls AT text.
    max_payload, accm: as the firmware Framer (decoding, inject, replace, flip).
    """

    LOOP_NAME = "line attacker"

    def __init__(self, upstream_path, baud=None, up=None, down=None, record=1000,
                 flush_ms=1000, max_payload=DEFAULT_MAX_PAYLOAD, accm=0):
        self.upstream_path = upstream_path
        self.baud = int(baud) if baud else 9600
        self.flush_s = flush_ms / 1000.0
        self.max_payload = max_payload
        self.accm = accm & 0xFFFFFFFF
        self.max_raw = 2 * (max_payload + FCS_LEN) + 2   # longest well-formed frame on the wire
        self._encoder = Framer(max_payload, accm)
        self._dirs = {d: _Dir(d, max_payload, accm, record) for d in DIRECTIONS}
        self._dirs[UP].rule = self._check_rule(up)
        self._dirs[DOWN].rule = self._check_rule(down)
        self.path = None
        self.errors = collections.deque(maxlen=100)    # (direction, frame index, exception)
        self._ser = None
        self._master = self._slave = None
        self._init_calls()
        self._sel = None
        self._masks = {}
        self._cv = threading.Condition()
        self._closed = False
        self._seq = 0

    # ----------------------------------------------------------------- life cycle

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Open upstream, create the pty pair, start the loop thread; returns self."""
        if self._closed:
            raise RuntimeError("attacker already closed")
        if self._thread is not None:
            return self
        try:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)     # no echo, no line discipline before the box opens it
            tty.setraw(self._master)
            os.set_blocking(self._master, False)
            self.path = os.ttyname(self._slave)
            self._ser = serial.Serial(self.upstream_path, self.baud, timeout=0)
            up_fd = self._ser.fd        # pyserial opens O_NONBLOCK
            self._dirs[UP].src, self._dirs[UP].dst = self._master, up_fd
            self._dirs[DOWN].src, self._dirs[DOWN].dst = up_fd, self._master
            self._open_wake()
            self._sel = selectors.DefaultSelector()
        except BaseException:
            self._close_fds()
            raise
        self._start_loop()
        return self

    def close(self):
        """Stop the thread, close every fd. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_loop()
        self._close_fds()

    def _close_fds(self):
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        self._masks.clear()
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except OSError:
                pass
        fds = [self._master, self._slave, self._wake_r, self._wake_w]
        self._master = self._slave = self._wake_r = self._wake_w = None
        for fd in fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ test-thread API

    def set_rule(self, direction, rule):
        """Rule for "up", "down" or "both" (the same object): callable(frame) -> Action
        (None = pass), or an Action for every frame; None = pass everything."""
        rule = self._check_rule(rule)
        names = DIRECTIONS if direction == "both" else (self._name(direction),)

        def do():
            for n in names:
                self._dirs[n].rule = rule
        self._in_loop(do)

    def release(self, direction, n=None):
        """Send held frames of `direction` now, in the order held (only the first n if
        given), byte-identical; returns them."""
        d = self._dir(direction)

        def do():
            k = len(d.held) if n is None else max(0, min(n, len(d.held)))
            out, d.held[:k] = d.held[:k], []
            now = time.monotonic()
            for f in out:
                self._queue(d, f.raw, now)
                d.c["released"] += 1
                d.c["bytes_added"] += len(f.raw)
            self._pump(d)
            return out
        return self._in_loop(do)

    def held(self, direction):
        """Frames of `direction` held now, oldest first."""
        d = self._dir(direction)
        return self._in_loop(lambda: list(d.held))

    def drop_held(self, direction, n=None):
        """Forget held frames (the first n, or all); returns them."""
        d = self._dir(direction)

        def do():
            k = len(d.held) if n is None else max(0, min(n, len(d.held)))
            out, d.held[:k] = d.held[:k], []
            return out
        return self._in_loop(do)

    def replay(self, direction, frame, count=1):
        """Send a recorded Frame (or raw frame bytes) `count` times into `direction`,
        byte-identical, after whatever is already queued there."""
        raw = bytes(frame.raw if isinstance(frame, Frame) else frame)
        d = self._dir(direction)

        def do():
            now = time.monotonic()
            for _ in range(count):
                self._queue(d, raw, now)
            d.c["replayed"] += count
            d.c["bytes_added"] += count * len(raw)
            self._pump(d)
        self._in_loop(do)

    def inject(self, direction, payload):
        """Frame `payload` (escape, FCS, flags: the firmware Framer) and send it into
        `direction`; returns the frame's bytes."""
        d = self._dir(direction)

        def do():
            raw = self._encoder.encode(bytes(payload))
            self._queue(d, raw, time.monotonic())
            d.c["injected"] += 1
            d.c["bytes_added"] += len(raw)
            self._pump(d)
            return raw
        return self._in_loop(do)

    def inject_raw(self, direction, data):
        """Send `data` into `direction` exactly as given (e.g. b"\\r\\nNO CARRIER\\r\\n").
        It goes between whole frames: never inside a frame the attacker forwards."""
        data = bytes(data)
        d = self._dir(direction)

        def do():
            self._queue(d, data, time.monotonic())
            d.c["injected_raw"] += 1
            d.c["bytes_added"] += len(data)
            self._pump(d)
        self._in_loop(do)

    def pause(self, direction):
        """Hold everything in `direction` (frames and outside bytes) until resume()."""
        d = self._dir(direction)

        def do():
            d.paused = True
        self._in_loop(do)

    def resume(self, direction):
        d = self._dir(direction)

        def do():
            d.paused = False
            self._pump(d)
        self._in_loop(do)

    def counters(self, direction=None):
        """Counters of one direction (dict, see COUNTERS, plus "pending": bytes read or
        added and not yet written), or {"up": {...}, "down": {...}}."""
        def snap(d):
            c = dict(d.c)
            c["pending"] = d.pending()
            c["held_now"] = len(d.held)
            return c
        if direction is None:
            return self._in_loop(lambda: {n: snap(d) for n, d in self._dirs.items()})
        d = self._dir(direction)
        return self._in_loop(lambda: snap(d))

    def frames(self, direction):
        """The recorded frames of `direction` (the last `record`), oldest first."""
        d = self._dir(direction)
        with self._cv:
            return list(d.record)

    def frame_count(self, direction):
        """Frames seen so far in `direction` (the index the next one will get)."""
        d = self._dir(direction)
        with self._cv:
            return d.index

    def wait_frame(self, direction, pred=None, timeout=5.0, start=0):
        """The first recorded frame of `direction` with index >= start and pred(frame)
        true, waiting up to `timeout` s; None if none came."""
        d = self._dir(direction)
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for f in d.record:
                    if f.index >= start and (pred is None or pred(f)):
                        return f
                left = end - time.monotonic()
                if left <= 0 or not self.running:
                    return None
                self._cv.wait(min(left, 0.2))

    def drain(self, timeout=2.0):
        """Wait until nothing waits to be written in either direction (held frames and
        pauses aside); True if so within `timeout` s."""
        end = time.monotonic() + timeout
        while True:
            if self._in_loop(lambda: all(d.pending() == 0 or d.paused or d.dst_closed
                                         for d in self._dirs.values())):
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)

    @property
    def upstream_closed(self):
        """True once reading the upstream pty failed (its other side was closed)."""
        return self._dirs[DOWN].src_closed

    # ------------------------------------------------------------ internals

    def _name(self, direction):
        if direction not in self._dirs:
            raise ValueError("direction must be 'up' or 'down', not %r" % (direction,))
        return direction

    def _dir(self, direction):
        return self._dirs[self._name(direction)]

    @staticmethod
    def _check_rule(rule):
        if rule is None or callable(rule):
            return rule
        a = _as_action(rule)
        return lambda f: a

    def _run(self):
        try:
            while not self._stopping:
                now = time.monotonic()
                for d in self._dirs.values():
                    self._service(d, now)
                self._update_interest()
                for key, mask in self._sel.select(self._next_timeout(now)):
                    if self._stopping:
                        break
                    if key.fd == self._wake_r:
                        self._on_wake()
                    else:
                        self._on_fd(key.fd, mask)
        except BaseException as e:
            self._crash = e
            import traceback
            traceback.print_exc()
        finally:
            self._stopping = True
            self._run_queued()      # nobody waits forever on a dead loop
            with self._cv:
                self._cv.notify_all()

    def _want(self, fd, mask):
        cur = self._masks.get(fd)
        if not mask:
            if cur is not None:
                self._sel.unregister(fd)
                del self._masks[fd]
            return
        if cur is None:
            self._sel.register(fd, mask)
        elif cur != mask:
            self._sel.modify(fd, mask)
        self._masks[fd] = mask

    def _update_interest(self):
        masks = {self._wake_r: R}
        for d in self._dirs.values():
            if not d.src_closed and d.pending() < BACKLOG_MAX:
                masks[d.src] = masks.get(d.src, 0) | R
            if d.wbuf and not d.paused and not d.dst_closed:
                masks[d.dst] = masks.get(d.dst, 0) | W
        for fd in list(self._masks):
            if fd not in masks:
                self._want(fd, 0)
        for fd, m in masks.items():
            self._want(fd, m)

    def _next_timeout(self, now):
        ts = []
        for d in self._dirs.values():
            if d.pipeline:
                ts.append(d.pipeline[0][0])
            if d.later:
                ts.append(d.later[0][0])
            if d.open:
                ts.append(d.t_last + self.flush_s)
        if not ts:
            return None
        return max(0.0, min(ts) - now)

    def _on_fd(self, fd, mask):
        for d in self._dirs.values():
            if mask & W and d.dst == fd:
                self._write(d)
        for d in self._dirs.values():
            if mask & R and d.src == fd and not d.src_closed:
                self._read(d)

    # ---------------------------------------------------------------- data path

    def _read(self, d):
        try:
            data = os.read(d.src, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:             # EIO: the other side of the upstream pty is gone
            data = b""
        if not data:
            d.src_closed = True
            return
        now = time.monotonic()
        d.c["bytes_in"] += len(data)
        self._parse(d, data, now)
        self._pump(d)

    def _parse(self, d, data, now):
        """Split `data` into outside bytes (queued at once) and frames (to the rule)."""
        i, n = 0, len(data)
        while i < n:
            j = data.find(_FLAG_BYTE, i)
            if not d.open:
                if j < 0:
                    self._outside(d, data[i:], now)
                    return
                if j > i:
                    self._outside(d, data[i:j], now)
                d.run = bytearray(_FLAG_BYTE)
                d.open = True
                d.t_last = now
                i = j + 1
                continue
            d.t_last = now
            if j < 0:
                d.run += data[i:]
                if len(d.run) > self.max_raw:
                    self._flush_run(d, now)
                return
            if j == i and len(d.run) == 1:
                # Flag after flag: the first is inter-frame fill, the second opens a frame.
                self._outside(d, _FLAG_BYTE, now)
                i = j + 1
                continue
            d.run += data[i:j + 1]
            raw, d.run, d.open = bytes(d.run), bytearray(), False
            i = j + 1
            if len(raw) > self.max_raw:
                self._outside(d, raw, now)     # no well-formed frame is this long
                d.c["flushed"] += 1
                continue
            self._frame(d, raw, now)

    def _flush_run(self, d, now):
        run, d.run, d.open = bytes(d.run), bytearray(), False
        if run:
            self._outside(d, run, now)
            d.c["flushed"] += 1

    def _outside(self, d, data, now):
        d.c["bytes_outside"] += len(data)
        self._queue(d, bytes(data), now)

    def _frame(self, d, raw, now):
        got = d.decoder.feed(raw)
        f = Frame(raw, got[0] if len(got) == 1 else None, d.name, d.index, now)
        d.index += 1
        c = d.c
        c["frames"] += 1
        if not f.fcs_ok:
            c["bad_fcs"] += 1
        a = PASS
        if d.rule is not None:
            try:
                a = _as_action(d.rule(f))
                out = self._apply(d, f, a, now)
            except Exception as e:
                self.errors.append((d.name, f.index, e))
                c["rule_errors"] += 1
                a, out = PASS, None
        else:
            out = None
        kind = a.kind
        if kind == "pass":
            self._queue(d, raw, now)
            c["passed"] += 1
        elif kind == "drop":
            c["dropped"] += 1
            c["bytes_removed"] += len(raw)
        elif kind == "hold":
            d.held.append(f)
            c["held"] += 1
            c["bytes_removed"] += len(raw)
        elif kind == "delay":
            due = now + a.ms / 1000.0
            if a.keep_order:
                self._queue(d, raw, due)
            else:
                self._seq += 1
                heapq.heappush(d.later, (due, self._seq, raw))
                d.queued += len(raw)
            c["delayed"] += 1
        else:   # flip, replace, replace_raw: `out` replaces the frame
            self._queue(d, out, now)
            c["modified"] += 1
            c["bytes_removed"] += len(raw)
            c["bytes_added"] += len(out)
        f.action = kind
        with self._cv:
            d.record.append(f)
            self._cv.notify_all()

    def _apply(self, d, f, a, now):
        """The bytes that replace the frame for modifying actions (None otherwise)."""
        if a.kind == "flip":
            if f.payload is None:
                raise ValueError("flip needs a frame with a good FCS")
            p = bytearray(f.payload)
            p[a.byte] ^= 1 << a.bit
            if a.fix_fcs:
                return self._encoder.encode(bytes(p))
            fcs = fcs16(f.payload) ^ 0xFFFF
            return _FLAG_BYTE + _escape(bytes(p) + bytes((fcs & 0xFF, fcs >> 8)), self.accm) + _FLAG_BYTE
        if a.kind == "replace":
            return self._encoder.encode(a.data)
        if a.kind == "replace_raw":
            return a.data
        if a.kind not in ("pass", "drop", "hold", "delay"):
            raise ValueError("unknown action %r" % (a.kind,))
        return None

    def _queue(self, d, data, due):
        if data:
            d.pipeline.append((due, data))
            d.queued += len(data)

    def _service(self, d, now):
        if d.open and now - d.t_last >= self.flush_s:
            self._flush_run(d, now)
        self._pump(d, now)

    def _pump(self, d, now=None):
        """Move what is due to the write buffer (in order) and write what the sink takes."""
        if now is None:
            now = time.monotonic()
        while d.later and d.later[0][0] <= now:
            _, _, data = heapq.heappop(d.later)
            d.queued -= len(data)
            d.wbuf += data
        while d.pipeline and d.pipeline[0][0] <= now:
            _, data = d.pipeline.popleft()
            d.queued -= len(data)
            d.wbuf += data
        if d.wbuf and not d.paused:
            self._write(d)

    def _write(self, d):
        while d.wbuf and not d.paused and not d.dst_closed:
            try:
                n = os.write(d.dst, d.wbuf[:READ_SIZE])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:         # EIO: nobody on the other side any more
                d.dst_closed = True
                d.c["bytes_lost"] += len(d.wbuf)
                d.wbuf.clear()
                return
            d.c["bytes_out"] += n
            del d.wbuf[:n]
        if d.dst_closed and d.wbuf:
            d.c["bytes_lost"] += len(d.wbuf)
            d.wbuf.clear()
