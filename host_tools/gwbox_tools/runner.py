"""Real-time runner for one `gwbox.node.Node` on a serial device or a TCP socket (CPython).

The node is sans-I/O; this is its host port. One thread owns the node and the port:
it reads what arrives, feeds the node, writes what the node hands out, and ticks it,
sleeping in `select` no longer than the node's next deadline. The clock is the real
monotonic clock reduced into MicroPython ticks (`int(time.monotonic() * 1000) & MASK`),
so the node sees exactly what a device would. Other threads talk to the node only
through `send`/`post`/`call`, which are queued to the loop and woken through a pipe.

Ports (`port=`):
    "/dev/pts/4" or "serial:/dev/ttyUSB0"  pyserial, `serial.Serial(path, baud, timeout=0)`;
                                            the node is started at once (`node.start`).
    "tcp:HOST:PORT"                          connect; the node is started once connected;
                                            EOF is carrier loss (`node.carrier(False)`).
    "listen:HOST:PORT" ("listen:0" = any)    accept one connection at a time: accept is
                                            carrier up, EOF carrier down (a gateway).

Events go out as JSON lines `{"t_ms", "node", "event", ...fields}` (bytes fields decoded
to str) to `events=` (a path or a file object) and/or `on_event(dict)`; the runner keeps
them in `self.events` too (bounded by `keep_events`). Received payloads go to
`on_received(payload)` or `self.received`. `stop()` ends the thread and closes everything
the runner opened; it is idempotent and also the context manager's exit.
"""
import errno
import json
import os
import select
import socket
import threading
import time

import serial

from gwbox import ticks

READ_SIZE = 4096
MAX_WAIT_S = 1.0   # upper bound on one sleep, so a lost wake-up can never hang the loop


def clock_ms():
    """Real monotonic time as a MicroPython tick value (wraps at 2**30)."""
    return int(time.monotonic() * 1000) & ticks.MASK


def _json_value(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", "backslashreplace")
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def event_record(t_ms, node, ev):
    """The JSON-line dict for one gwbox Event."""
    d = {"t_ms": t_ms, "node": node, "event": ev.name}
    for k, v in ev.fields.items():
        if k not in d:
            d[k] = _json_value(v)
    return d


class _Ev:  # runner's own events, shaped like gwbox.events.Event
    def __init__(self, name, **fields):
        self.name = name
        self.fields = fields


class Runner:
    def __init__(self, node, port, name="node", baud=9600, events=None, on_event=None,
                 on_received=None, keep_events=100000, clock=clock_ms):
        self.node = node
        self.port = port
        self.name = name
        self.baud = baud
        self.on_event = on_event
        self.on_received = on_received
        self.keep_events = keep_events
        self.clock = clock
        self.events = []          # event dicts, oldest first (up to keep_events)
        self.received = []        # payloads, when no on_received callback
        self.error = None         # exception that ended the loop, if any
        self.bytes_in = 0         # bytes read from the port
        self.bytes_out = 0        # bytes written to the port
        self._events_path = events if isinstance(events, str) else None
        self._events_file = events if events is not None and not isinstance(events, str) else None
        self._own_file = False
        self._lock = threading.Condition()
        self._calls = []
        self._out = bytearray()   # node output not yet accepted by the port
        self._stopping = False
        self._thread = None
        self._ser = None
        self._sock = None         # connected socket (tcp / listen modes)
        self._listen = None
        self._fd = None           # fd carrying the line, or None (listen mode, no call)
        self._wake_r = self._wake_w = None
        self.address = None       # listen mode: (host, port) actually bound

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if self._thread is not None:
            return self
        try:
            if self._events_path is not None:
                self._events_file = open(self._events_path, "a")
                self._own_file = True
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._open_port()
        except BaseException:
            self._close_all()
            raise
        self._thread = threading.Thread(target=self._run, name="gwbox-runner-" + self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        """End the loop, close the port, the wake pipe and the event file. Idempotent."""
        t = self._thread
        self._stopping = True
        if t is not None and t.is_alive() and t is not threading.current_thread():
            self._wake()
            t.join(timeout)
        if t is None or not t.is_alive():
            self._close_all()

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ other threads

    def post(self, fn):
        """Run fn(node, now) on the loop thread, soon; returns at once."""
        with self._lock:
            self._calls.append((fn, None))
        self._wake()

    def call(self, fn, timeout=5.0):
        """Run fn(node, now) on the loop thread and return its result (or raise its error)."""
        box = {}
        done = threading.Event()
        with self._lock:
            self._calls.append((fn, (box, done)))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError("runner %s did not answer" % self.name)
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def send(self, payload, wait=False):
        """Tunnel payload into the node; with wait, return node.send's verdict."""
        payload = bytes(payload)
        if wait:
            return self.call(lambda node, now: node.send(payload, now))
        self.post(lambda node, now: node.send(payload, now))
        return None

    @property
    def tx_backlog(self):
        """Bytes the node has handed out that the port has not yet accepted."""
        return len(self._out)

    def wait_event(self, pred, timeout, start=0):
        """First event dict (index >= start) with pred(ev) true, waiting up to timeout s; or None."""
        if isinstance(pred, str):
            name = pred
            pred = lambda e: e["event"] == name  # noqa: E731
        end = time.monotonic() + timeout
        with self._lock:
            i = start
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = end - time.monotonic()
                if left <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    return None
                self._lock.wait(min(left, 0.2))

    def find_events(self, name, start=0):
        with self._lock:
            return [e for e in self.events[start:] if e["event"] == name]

    def event_count(self):
        with self._lock:
            return len(self.events)

    # ------------------------------------------------------------------ port

    def _open_port(self):
        p = self.port
        if p.startswith("tcp:"):
            host, _, port = p[4:].rpartition(":")
            s = socket.create_connection((host or "127.0.0.1", int(port)), timeout=5.0)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = s
            self._fd = s.fileno()
        elif p.startswith("listen:"):
            host, _, port = p[7:].rpartition(":")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host or "127.0.0.1", int(port)))
            s.listen(1)
            s.setblocking(False)
            self._listen = s
            self.address = s.getsockname()[:2]
        else:
            path = p[7:] if p.startswith("serial:") else p
            self._ser = serial.Serial(path, self.baud, timeout=0)
            self._fd = self._ser.fd  # pyserial opens O_NONBLOCK: os.read/os.write never block

    def _close_conn(self):
        s, self._sock = self._sock, None
        self._fd = None
        self._out.clear()
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def _close_all(self):
        self._close_conn()
        for obj in (self._ser, self._listen):
            if obj is not None:
                try:
                    obj.close()
                except OSError:
                    pass
        self._ser = self._listen = None
        self._fd = None
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = None
        f, self._events_file = self._events_file, None
        if f is not None and self._own_file:
            f.close()

    def _wake(self):
        try:
            os.write(self._wake_w, b"!")
        except (OSError, TypeError):
            pass

    # ------------------------------------------------------------------ loop

    def _run(self):
        node = self.node
        try:
            if self._fd is not None:
                node.start(self.clock())
            self._drain(self.clock())
            while not self._stopping:
                now = self.clock()
                self._run_calls(now)
                if ticks.reached(now, node.next_deadline()):
                    node.tick(now)
                self._drain(now)
                self._write()
                self._sleep_and_read()
        except BaseException as e:  # the loop must end cleanly; the owner checks .error
            self.error = e
            self._emit(self.clock(), _Ev("runner_error", reason=repr(e)))
        finally:
            with self._lock:
                self._lock.notify_all()
                calls, self._calls = self._calls, []
            for _fn, waiter in calls:
                if waiter is not None:
                    waiter[0]["error"] = RuntimeError("runner stopped")
                    waiter[1].set()

    def _run_calls(self, now):
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, waiter in calls:
            try:
                r = fn(self.node, now)
                if waiter is not None:
                    waiter[0]["result"] = r
            except Exception as e:
                if waiter is None:
                    raise
                waiter[0]["error"] = e
            if waiter is not None:
                waiter[1].set()
            self._drain(now)

    def _sleep_and_read(self):
        now = self.clock()
        dl = self.node.next_deadline()
        timeout = MAX_WAIT_S
        if dl is not None:
            timeout = min(timeout, max(0, ticks.diff(dl, now)) / 1000.0)
        with self._lock:
            if self._calls:
                timeout = 0
        rl = [self._wake_r]
        wl = []
        if self._fd is not None:
            rl.append(self._fd)
            if self._out:
                wl.append(self._fd)
        elif self._listen is not None:
            rl.append(self._listen.fileno())
        r, w, _ = select.select(rl, wl, [], timeout)
        if self._wake_r in r:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if self._fd is not None and self._fd in r:
            self._read()
        elif self._listen is not None and self._fd is None and self._listen.fileno() in r:
            self._accept()
        if w:
            self._write()

    def _read(self):
        try:
            data = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if self._sock is None and e.errno == errno.EIO:
                time.sleep(0.01)  # pty with no other side open yet: not an error
                return
            data = b""
        now = self.clock()
        if data:
            self.bytes_in += len(data)
            self.node.feed(data, now)
        elif self._sock is not None:  # EOF: the far end hung up
            self._close_conn()
            self.node.carrier(False, now)
            if self._listen is None:
                self._emit(now, _Ev("port_closed", port=self.port))
        self._drain(now)

    def _accept(self):
        try:
            s, _ = self._listen.accept()
        except (BlockingIOError, InterruptedError):
            return
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = s
        self._fd = s.fileno()
        now = self.clock()
        self.node.carrier(True, now)
        self._drain(now)

    def _write(self):
        while self._out and self._fd is not None:
            try:
                n = os.write(self._fd, self._out[:READ_SIZE])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                if self._sock is None:
                    raise
                self._close_conn()
                now = self.clock()
                self.node.carrier(False, now)
                self._drain(now)
                return
            self.bytes_out += n
            del self._out[:n]

    def _drain(self, now):
        node = self.node
        out = node.take_uart()
        if out and self._fd is not None:
            self._out.extend(out)
        for ev in node.take_events():
            self._emit(now, ev)
        got = node.take_received()
        if got:
            if self.on_received is not None:
                for p in got:
                    self.on_received(p)
            else:
                with self._lock:
                    self.received.extend(got)
                    self._lock.notify_all()

    def _emit(self, now, ev):
        rec = event_record(now, self.name, ev)
        f = self._events_file
        if f is not None:
            f.write(json.dumps(rec) + "\n")
            f.flush()
        if self.on_event is not None:
            self.on_event(rec)
        with self._lock:
            self.events.append(rec)
            if len(self.events) > self.keep_events:
                del self.events[: len(self.events) - self.keep_events]
            self._lock.notify_all()
