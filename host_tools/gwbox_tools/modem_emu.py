"""Hayes-compatible modem emulator on a real pty, placing calls to emulated gateways.

Why: the box's modem driver must be exercised against something it cannot tell from a
modem on a UART. The box opens `box_path` (a pty slave) with pyserial; the emulator holds
the master, speaks the V.250 subset of `modem_at`, and on ATD connects to a gateway that
is a loopback TCP port or a pty of its own. In data mode bytes are shaped by
`line_shaper` (baud/10 bytes/s per direction, one-way latency, impairments), and faults
are injected at run time through the Python API or a loopback TCP control socket.

One background thread runs a `selectors` loop; it sleeps until the next fd event or the
next deadline (a byte due on the line, the escape guard time, a dial outcome). Calls from
other threads are queued to it and woken through a pipe, so all state has one owner.

A pty has no DCD/DTR/RTS/CTS: carrier loss is signalled in band (NO CARRIER), and dropping
DTR or closing the port does not hang up; the box hangs up with `+++` then ATH.
"""
import argparse
import errno
import json
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
import tty

from . import modem_at as at
from .line_shaper import Impairments, LineShaper
from .loopthread import LoopCalls
from .modem_control import CONTROL_USAGE, ControlClient, ctl_main, parse_addr, parse_command
from .modem_targets import Call, Dial, lookup, parse_gateway_spec

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
COMMAND, DIALING, DATA = "command", "dialing", "data"
TOWARD = ("box", "gw", "both")
READ_SIZE = 4096


class ModemEmulator(LoopCalls):
    """A Hayes-compatible modem on a pty (see module docstring).

    baud: line rate for CONNECT and throttling (8N1, baud/10 bytes/s per direction).
    gateways: {dial target: spec}, spec as in parse_gateway_spec().
    latency_ms: one-way delay added after a byte's line time.
    connect_delay_ms: dial to CONNECT (also to NO CARRIER for dead/refused gateways).
    fail_delay_ms: dial to NO ANSWER / BUSY / NO DIALTONE.
    control: 'HOST:PORT' or (host, port) for the control socket (port 0 picks one), or None.
    seed: for the random numbers of noise, BER and frame loss.
    tick_ms: bytes due within this of each other are released together.
    buffer_bytes: per-direction modem buffer; past it the emulator stops reading that side
        (the pty or TCP socket then fills and the writer blocks, like CTS flow control).
    on_event: callable(dict) for JSON-able events {t_ms, node, event, ...}; called on the
        emulator thread.
    """

    LOOP_NAME = "modem emulator"

    def __init__(self, baud=9600, gateways=None, latency_ms=0.0, connect_delay_ms=200,
                 fail_delay_ms=300, control=None, seed=None, tick_ms=4, buffer_bytes=2048,
                 on_event=None, node="modem"):
        if int(baud) <= 0:
            raise ValueError("baud must be positive")
        self.baud = int(baud)
        self.latency = float(latency_ms) / 1000.0
        self.connect_delay = float(connect_delay_ms) / 1000.0
        self.fail_delay = float(fail_delay_ms) / 1000.0
        self.tick = float(tick_ms) / 1000.0
        self.buffer_bytes = int(buffer_bytes)
        self.on_event = on_event
        self.node = node
        self._control_bind = parse_addr(control) if control is not None else None
        self._rng = random.Random(seed)
        self._gateways = {}
        for name, spec in (gateways or {}).items():
            gw = parse_gateway_spec(str(name), spec)
            if gw.name.lower() in self._gateways:
                raise ValueError("duplicate gateway name %r" % gw.name)
            self._gateways[gw.name.lower()] = gw
        self._impair = {"box": Impairments(self._rng), "gw": Impairments(self._rng)}
        self._no_dialtone = False
        self._settings = at.ModemSettings()
        self._editor = at.LineEditor()
        self._last_line = None
        self._mode = COMMAND
        self._dial = None
        self._call = None
        self._box_out = bytearray()
        self._counters = dict.fromkeys((
            "bytes_from_box", "bytes_to_gw", "bytes_from_gw", "bytes_to_box",
            "calls_dialed", "calls_connected", "hangups", "carrier_losses", "escapes"), 0)
        self._fault_counts = dict.fromkeys((
            "noise_bytes", "drops", "freezes", "thaws", "reboots", "frozen_discarded_bytes"), 0)
        self.box_path = None
        self.control_address = None
        self._box_master = self._box_slave = None
        self._listen = None
        self._clients = {}
        self._init_calls()
        self._sel = None
        self._masks = {}
        self._closed = False

    # ----------------------------------------------------------------- life cycle

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Create the ptys and the control socket, start the loop thread; returns self."""
        if self._thread is not None:
            return self
        if self._closed:
            raise RuntimeError("emulator already closed")
        try:
            self._box_master, self._box_slave, self.box_path = self._open_pty()
            for gw in self._gateways.values():
                if gw.kind == "pty":
                    gw.master, gw.slave, gw.path = self._open_pty()
                    gw.handler = (lambda mask, g=gw: self._on_pty_gw(g, mask))
            self._open_wake()
            self._sel = selectors.DefaultSelector()
            self._want(self._wake_r, R, self._on_wake)
            if self._control_bind is not None:
                self._listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._listen.bind(self._control_bind)
                self._listen.listen(8)
                self._listen.setblocking(False)
                self.control_address = self._listen.getsockname()[:2]
                self._want(self._listen.fileno(), R, self._on_accept)
        except BaseException:
            self._close_fds()
            raise
        self._start_loop()
        return self

    def close(self):
        """Stop the thread, hang up, close every fd. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_loop()
        self._close_fds()

    @staticmethod
    def _open_pty():
        master, slave = os.openpty()
        try:
            tty.setraw(slave)           # no echo, no line discipline before the user opens it
            tty.setraw(master)
            os.set_blocking(master, False)
            return master, slave, os.ttyname(slave)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise

    def _close_fds(self):
        call, self._call = self._call, None
        if call is not None and call.sock is not None:
            call.sock.close()
        dial, self._dial = self._dial, None
        if dial is not None and dial.sock is not None:
            dial.sock.close()
        for c in list(self._clients.values()):
            c.sock.close()
        self._clients.clear()
        if self._listen is not None:
            self._listen.close()
            self._listen = None
        fds = [self._box_master, self._box_slave, self._wake_r, self._wake_w]
        self._box_master = self._box_slave = self._wake_r = self._wake_w = None
        for gw in self._gateways.values():
            fds += [gw.master, gw.slave]
            gw.master = gw.slave = None
        for fd in fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        self._masks.clear()

    # ------------------------------------------------------------ cross-thread calls

    # ------------------------------------------------------------------- event loop

    def _run(self):
        try:
            while not self._stopping:
                now = time.monotonic()
                self._service(now)
                timeout = self._next_timeout(now)
                self._update_interest()
                for key, mask in self._sel.select(timeout):
                    if self._stopping:
                        break
                    if key.fd in self._masks:
                        key.data(mask)
        except BaseException as e:
            self._crash = e
            import traceback
            traceback.print_exc()
        finally:
            self._stopping = True
            self._run_queued()      # nobody waits forever on a dead loop

    def _want(self, fd, mask, handler):
        cur = self._masks.get(fd)
        if not mask:
            if cur is not None:
                self._sel.unregister(fd)
                del self._masks[fd]
            return
        if cur is None:
            self._sel.register(fd, mask, handler)
        elif cur != (mask, handler):
            self._sel.modify(fd, mask, handler)
        self._masks[fd] = (mask, handler)

    def _forget(self, fd):
        if fd in self._masks:
            self._sel.unregister(fd)
            del self._masks[fd]

    def _update_interest(self):
        call = self._call
        full = self.buffer_bytes
        m = W if self._box_out else 0
        if self._mode != DATA or call is None or call.up.backlog < full:
            m |= R
        self._want(self._box_master, m, self._on_box)
        for gw in self._gateways.values():
            if gw.kind != "pty":
                continue
            mine = call is not None and call.gw is gw
            m = 0 if (mine and call.down.backlog >= full) else R
            if mine and call.out:
                m |= W
            self._want(gw.master, m, gw.handler)
        d = self._dial
        if d is not None and d.sock is not None:
            self._want(d.sock.fileno(), W if d.outcome is None else 0, self._on_connected)
        if call is not None and call.sock is not None:
            m = W if call.out else 0
            if not call.remote_closed and call.down.backlog < full:
                m |= R
            self._want(call.sock.fileno(), m, self._on_tcp_gw)
        for fd, c in self._clients.items():
            self._want(fd, R | (W if c.out else 0), c.handler)

    def _next_timeout(self, now):
        ts = []
        d = self._dial
        if d is not None:
            ts.append(d.t_report if d.outcome is not None else min(d.give_up, 1e18))
        call = self._call
        if call is not None:
            if self._mode == DATA:
                ts.append(call.escape.deadline())
                if len(self._box_out) < self.buffer_bytes:
                    ts.append(call.down.next_deadline())
            if len(call.out) < self.buffer_bytes:
                ts.append(call.up.next_deadline())
        ts = [t for t in ts if t is not None]
        if not ts:
            return None
        return max(0.0, min(ts) - now)

    def _service(self, now):
        if self._dial is not None:
            self._service_dial(now)
        call = self._call
        if call is not None:
            if self._mode == DATA:
                data, escaped = call.escape.poll(now)
                if data:
                    self._box_to_line(call, data, now)
                if escaped:
                    self._escape(now)
            if len(call.out) < self.buffer_bytes:
                data = self._impair["gw"].apply(call.up.pop(now))
                if data:
                    if call.gw.frozen:
                        self._fault_counts["frozen_discarded_bytes"] += len(data)
                    else:
                        call.out += data
            cut = False
            if self._mode == DATA and len(self._box_out) < self.buffer_bytes:
                data = self._impair["box"].apply(call.down.pop(now))
                if data and call.drop_behind:
                    end = self._frame_end(call, data)
                    if end is not None:
                        data, cut = data[:end], True
                if data:
                    self._counters["bytes_to_box"] += len(data)
                    self._box_out += data
                    call.last_down = data[-1]
            if call.out:
                self._flush_gw(call)
            if cut:
                self._carrier_lost("drop", now)  # NO CARRIER behind that frame, in the same write
            elif self._call is call and call.remote_closed and (
                    call.down.backlog == 0 or self._mode != DATA):
                self._carrier_lost("gateway hung up", now)
        if self._box_out:
            self._flush_box()

    def _event(self, name, **fields):
        if self.on_event is None:
            return
        d = {"t_ms": int(time.monotonic() * 1000), "node": self.node, "event": name}
        d.update(fields)
        try:
            self.on_event(d)
        except Exception:
            pass

    # ------------------------------------------------------------------ box side

    def _on_box(self, mask):
        if mask & W:
            self._flush_box()
        if mask & R:
            try:
                data = os.read(self._box_master, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:         # EIO: cannot happen while we hold the slave open
                return
            if data:
                self._box_input(data, time.monotonic())

    def _flush_box(self):
        while self._box_out:
            try:
                n = os.write(self._box_master, self._box_out[:READ_SIZE])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._box_out.clear()
                return
            del self._box_out[:n]

    def _box_input(self, data, now):
        if self._mode == DATA:
            call = self._call
            data, escaped, rest = call.escape.feed(data, now)
            if data:
                self._box_to_line(call, data, now)
            if escaped:
                self._escape(now)
                if rest:
                    self._box_input(rest, now)
        elif self._mode == DIALING:
            lf = self._settings.lf
            if any(b != lf for b in data):   # any key aborts a dial (V.250 6.3.1)
                self._dial_done("NO CARRIER", now, aborted=True)
        else:
            for i, b in enumerate(data):
                echo, line = self._editor.feed(b, self._settings)
                if echo:
                    self._box_out += echo
                if line is None:
                    continue
                self._execute(line, now)
                if self._mode != COMMAND:
                    rest = data[i + 1:]
                    if rest:
                        self._box_input(rest, now)
                    return

    def _box_to_line(self, call, data, now):
        self._counters["bytes_from_box"] += len(data)
        call.up.push(data, now)

    def _result(self, name, baud=None):
        self._box_out += at.result(self._settings, name, baud)

    def _execute(self, line, now):
        """Run one command line (the text up to CR) in command mode."""
        if line is at.REPEAT:
            body = self._last_line
            if body is None:
                return
        else:
            # ASCII only, as a modem matches A and T: str.upper() would turn a 0xDF of line
            # noise into "SS" and shift every index after it.
            i = line.encode("latin-1").upper().find(b"AT")
            if i < 0:
                return                  # not addressed to us: ignored, as V.250 says
            body = line[i + 2:]
            self._last_line = body
        s = self._settings
        infos = []
        try:
            for name, arg in at.parse(body):
                if name == "D":
                    if self._call is not None:
                        raise at.ATError("already on line")
                    self._emit_infos(infos)
                    self._start_dial(arg, now)
                    return
                if name == "O":
                    at.check_arg(arg, (0, 1))
                    self._emit_infos(infos)
                    if self._call is None:
                        self._result("NO CARRIER")
                    else:
                        self._online(now)
                    return
                if name == "H":
                    at.check_arg(arg, (0, 1))
                    if self._call is not None:
                        self._hangup(now)
                elif name == "Z":
                    at.check_arg(arg, (0, 1))
                    if self._call is not None:
                        self._hangup(now)
                    s.reset()
                    break               # the rest of the line is ignored after Z
                else:
                    infos += at.apply(s, name, arg)
        except at.ATError:
            self._emit_infos(infos)
            self._result("ERROR")
            return
        self._emit_infos(infos)
        self._result("OK")

    def _emit_infos(self, infos):
        for text in infos:
            self._box_out += at.info(self._settings, text)
        del infos[:]

    # ------------------------------------------------------------------- calls

    def _start_dial(self, target, now):
        gw = lookup(self._gateways, target)
        d = Dial(target, gw, now)
        self._dial = d
        self._mode = DIALING
        self._counters["calls_dialed"] += 1
        self._event("dial", target=target, gateway=gw.name if gw else None)
        if self._no_dialtone:
            self._dial_outcome(d, "NO DIALTONE", now + self.fail_delay)
        elif gw is None:
            self._dial_outcome(d, "NO ANSWER", now + self.fail_delay)
        elif gw.busy:
            self._dial_outcome(d, "BUSY", now + self.fail_delay)
        elif gw.dead or now < gw.down_until:
            self._dial_outcome(d, "NO CARRIER", now + self.connect_delay)
        elif gw.kind == "pty":
            self._dial_outcome(d, "CONNECT", now + self.connect_delay)
        else:
            d.t_report = now + self.connect_delay
            d.give_up = now + max(self._settings.carrier_wait_s, self.connect_delay)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((gw.host, gw.port))
            if err in (0, errno.EINPROGRESS):
                d.sock = sock
            else:
                sock.close()
                d.outcome = "NO CARRIER"

    @staticmethod
    def _dial_outcome(d, outcome, t_report):
        d.outcome = outcome
        d.t_report = t_report

    def _on_connected(self, mask):
        d = self._dial
        if d is None or d.sock is None or d.outcome is not None:
            return
        err = d.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            d.outcome = "CONNECT"
        else:
            self._forget(d.sock.fileno())
            d.sock.close()
            d.sock = None
            d.outcome = "NO CARRIER"

    def _service_dial(self, now):
        d = self._dial
        if d.outcome is None and now >= d.give_up:
            d.outcome = "NO CARRIER"
            d.t_report = now
        if d.outcome is not None and now >= d.t_report:
            self._dial_done(d.outcome, now)

    def _dial_done(self, outcome, now, aborted=False):
        d, self._dial = self._dial, None
        if outcome == "CONNECT" and not aborted:
            self._connect(d, now)
            return
        if d.sock is not None:
            self._forget(d.sock.fileno())
            d.sock.close()
        self._mode = COMMAND
        self._event("dial_failed", target=d.target, result=outcome, aborted=aborted)
        self._result(outcome)

    def _connect(self, d, now):
        if d.sock is not None:
            self._forget(d.sock.fileno())
        up = LineShaper(self.baud / 10.0, self.latency, self.tick)
        down = LineShaper(self.baud / 10.0, self.latency, self.tick)
        self._call = Call(d.gw, d.sock, up, down, now)
        for imp in self._impair.values():
            imp.new_call()
        self._counters["calls_connected"] += 1
        self._event("connect", gateway=d.gw.name, baud=self.baud)
        self._online(now)

    def _online(self, now):
        """Enter data mode on the current call (after CONNECT or ATO)."""
        s = self._settings
        self._mode = DATA
        self._editor.clear()
        self._call.escape.reset(now, s.guard_s, s.escape_char)
        self._result("CONNECT", self.baud)

    def _escape(self, now):
        self._mode = COMMAND
        self._counters["escapes"] += 1
        self._event("escape", gateway=self._call.gw.name)
        self._result("OK")

    def _end_call(self):
        call, self._call = self._call, None
        if call is not None and call.sock is not None:
            self._forget(call.sock.fileno())
            try:
                call.sock.close()
            except OSError:
                pass
        return call

    def _hangup(self, now):
        call = self._end_call()
        self._mode = COMMAND
        self._counters["hangups"] += 1
        self._event("hangup", gateway=call.gw.name)

    @staticmethod
    def _frame_end(call, data):
        """Length of the prefix of `data` that ends with a frame's closing flag (a 0x7E after
        a byte that is not one), or None."""
        prev = call.last_down
        for j, b in enumerate(data):
            if b == 0x7E and prev is not None and prev != 0x7E:
                return j + 1
            prev = b
        return None

    def _carrier_lost(self, reason, now, silent=False):
        """The line is gone under the box: NO CARRIER (unless `silent`), back to command mode."""
        call = self._end_call()
        self._mode = COMMAND
        self._editor.clear()
        self._counters["carrier_losses"] += 1
        self._event("carrier_lost", gateway=call.gw.name, reason=reason, silent=silent)
        if not silent:
            self._result("NO CARRIER")

    # ----------------------------------------------------------------- gateway side

    def _from_gw(self, call, data, now):
        self._counters["bytes_from_gw"] += len(data)
        if call.gw.frozen:
            self._fault_counts["frozen_discarded_bytes"] += len(data)
            return
        call.down.push(data, now)

    def _flush_gw(self, call):
        while call.out:
            try:
                if call.sock is not None:
                    n = call.sock.send(call.out[:READ_SIZE])
                else:
                    n = os.write(call.gw.master, call.out[:READ_SIZE])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                call.out.clear()
                if call.sock is not None:
                    call.remote_closed = True
                return
            self._counters["bytes_to_gw"] += n
            del call.out[:n]

    def _on_tcp_gw(self, mask):
        call = self._call
        if call is None or call.sock is None:
            return
        if mask & W:
            self._flush_gw(call)
        if mask & R and not call.remote_closed:
            try:
                data = call.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if data:
                self._from_gw(call, data, time.monotonic())
            else:
                call.remote_closed = True

    def _on_pty_gw(self, gw, mask):
        call = self._call
        mine = call is not None and call.gw is gw
        if mask & W and mine:
            self._flush_gw(call)
        if mask & R:
            try:
                data = os.read(gw.master, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if data and mine:
                self._from_gw(call, data, time.monotonic())
            # no call on this gateway: what it writes goes nowhere, like an idle line

    # ---------------------------------------------------------------- control socket

    def _on_accept(self, mask):
        try:
            sock, _ = self._listen.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        c = ControlClient(sock)
        fd = sock.fileno()
        c.handler = lambda mask: self._serve_client(fd, c)
        self._clients[fd] = c

    def _serve_client(self, fd, c):
        try:
            data = c.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""
        if data == b"":
            c.closing = True
        elif data:
            c.take_lines(data, self.command)
        if c.out:
            try:
                n = c.sock.send(c.out)
                del c.out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                c.out.clear()
                c.closing = True
        if c.closing and not c.out:
            self._forget(fd)
            c.sock.close()
            del self._clients[fd]

    # --------------------------------------------------------------------- faults

    def _gw_by_name(self, name):
        if name is None:
            if self._call is None:
                raise ValueError("no call in progress: name a gateway")
            return self._call.gw
        gw = self._gateways.get(str(name).lower())
        if gw is None:
            raise ValueError("unknown gateway %r" % name)
        return gw

    @staticmethod
    def _toward(toward):
        if toward not in TOWARD:
            raise ValueError("direction must be one of %s" % "/".join(TOWARD))
        return ("box", "gw") if toward == "both" else (toward,)

    def _op_noise(self, n, toward):
        n = int(n)
        if not 0 <= n <= 65536:
            raise ValueError("noise length must be within 0..65536")
        dirs = self._toward(toward)
        call = self._call
        if call is None:
            return {"ok": False, "cmd": "noise", "error": "no call: noise needs a line"}
        now = time.monotonic()
        for d in dirs:
            (call.down if d == "box" else call.up).push(self._rng.randbytes(n), now)
            self._fault_counts["noise_bytes"] += n
        self._event("fault", kind="noise", bytes=n, toward=toward)
        return {"ok": True, "cmd": "noise", "bytes": n, "toward": toward}

    def _op_impair(self, kind, p, toward):
        dirs = self._toward(toward)
        for d in dirs:
            getattr(self._impair[d], "set_" + kind)(p)
        self._event("fault", kind=kind, p=float(p), toward=toward)
        return {"ok": True, "cmd": kind, kind: float(p), "toward": toward}

    def _op_latency(self, ms):
        ms = float(ms)
        if ms < 0:
            raise ValueError("latency must be >= 0")
        self.latency = ms / 1000.0
        if self._call is not None:
            self._call.up.latency = self._call.down.latency = self.latency
        return {"ok": True, "cmd": "latency", "latency_ms": ms}

    def _op_baud(self, baud):
        baud = int(baud)
        if baud <= 0:
            raise ValueError("baud must be positive")
        self.baud = baud
        if self._call is not None:
            self._call.up.rate = self._call.down.rate = baud / 10.0
        return {"ok": True, "cmd": "baud", "baud": baud}

    def _op_drop(self, how=None):
        if how not in (None, "silent", "frame"):
            raise ValueError("usage: %s" % CONTROL_USAGE["drop"])
        now = time.monotonic()
        if self._call is not None:
            name = self._call.gw.name
            self._fault_counts["drops"] += 1
            if how == "frame":
                self._call.drop_behind = True
            else:
                self._carrier_lost("drop", now, silent=how == "silent")
            return {"ok": True, "cmd": "drop", "gateway": name, "how": how or "now"}
        if self._dial is not None:
            self._fault_counts["drops"] += 1
            self._dial_done("NO CARRIER", now, aborted=True)
            return {"ok": True, "cmd": "drop", "gateway": None}
        return {"ok": False, "cmd": "drop", "error": "no call in progress"}

    def _op_freeze(self, name, frozen):
        gw = self._gw_by_name(name)
        gw.frozen = frozen
        self._fault_counts["freezes" if frozen else "thaws"] += 1
        self._event("fault", kind="freeze" if frozen else "thaw", gateway=gw.name)
        return {"ok": True, "cmd": "freeze" if frozen else "thaw", "gateway": gw.name}

    def _op_reboot(self, name, down_ms):
        gw = self._gw_by_name(name)
        down_ms = float(down_ms)
        if down_ms < 0:
            raise ValueError("down time must be >= 0")
        now = time.monotonic()
        self._fault_counts["reboots"] += 1
        gw.frozen = False
        gw.down_until = now + down_ms / 1000.0
        in_call = self._call is not None and self._call.gw is gw
        if in_call:
            self._carrier_lost("reboot", now)
        self._event("fault", kind="reboot", gateway=gw.name, down_ms=down_ms)
        return {"ok": True, "cmd": "reboot", "gateway": gw.name, "call_dropped": in_call,
                "down_ms": down_ms}

    def _op_flag(self, cmd, name, on):
        gw = self._gw_by_name(name)
        setattr(gw, cmd, bool(on))
        self._event("fault", kind=cmd, gateway=gw.name, on=bool(on))
        return {"ok": True, "cmd": cmd, "gateway": gw.name, cmd: bool(on)}

    def _op_nodialtone(self, on):
        self._no_dialtone = bool(on)
        return {"ok": True, "cmd": "nodialtone", "nodialtone": self._no_dialtone}

    def _op_clear(self):
        for imp in self._impair.values():
            imp.set_ber(0.0)
            imp.set_loss(0.0)
        for gw in self._gateways.values():
            gw.frozen = gw.dead = gw.busy = False
            gw.down_until = 0.0
        self._no_dialtone = False
        return {"ok": True, "cmd": "clear"}

    def _op_status(self):
        now = time.monotonic()
        call = self._call
        mode = self._mode
        if mode == COMMAND and call is not None:
            mode = "online_command"
        fc = dict(self._fault_counts)
        for k in ("bits_flipped", "frames_dropped", "bytes_dropped"):
            fc[k] = sum(getattr(i, k) for i in self._impair.values())
        return {
            "ok": True, "cmd": "status", "mode": mode,
            "call": None if call is None else {
                "gateway": call.gw.name, "up_s": round(now - call.t_connect, 3),
                "backlog_to_gw": call.up.backlog, "backlog_to_box": call.down.backlog},
            "baud": self.baud, "latency_ms": self.latency * 1000.0,
            "box_path": self.box_path,
            "control": None if self.control_address is None else "%s:%d" % self.control_address,
            "gateways": {gw.name: {
                "kind": gw.kind, "target": gw.describe(), "dead": gw.dead, "busy": gw.busy,
                "frozen": gw.frozen,
                "down_ms_left": max(0, int((gw.down_until - now) * 1000))}
                for gw in self._gateways.values()},
            "faults": {
                "ber": {d: i.ber for d, i in self._impair.items()},
                "loss": {d: i.loss for d, i in self._impair.items()},
                "nodialtone": self._no_dialtone},
            "counters": dict(self._counters),
            "faults_injected": fc,
        }

    # ------------------------------------------------------------------ public API

    @property
    def gateway_paths(self):
        """{name: pty path} for the pty gateways (the gateway process opens these)."""
        return {gw.name: gw.path for gw in self._gateways.values() if gw.kind == "pty"}

    @property
    def mode(self):
        """'command', 'dialing', 'data' or 'online_command'."""
        return self.status()["mode"]

    def status(self):
        return self._in_loop(self._op_status)

    def noise(self, n, toward="box"):
        """Inject n random bytes onto the line toward 'box', 'gw' or 'both'."""
        return self._in_loop(self._op_noise, n, toward)

    def set_ber(self, p, toward="both"):
        """Flip each bit with probability p in the given direction(s)."""
        return self._in_loop(self._op_impair, "ber", p, toward)

    def set_loss(self, p, toward="both"):
        """Drop each 0x7E-delimited frame with probability p in the given direction(s)."""
        return self._in_loop(self._op_impair, "loss", p, toward)

    def set_latency(self, ms):
        return self._in_loop(self._op_latency, ms)

    def set_baud(self, baud):
        """Line rate from now on (also the current call's, for bytes not yet queued)."""
        return self._in_loop(self._op_baud, baud)

    def drop(self, how=None):
        """Carrier drop: NO CARRIER to the box, gateway connection closed. `how`: "silent"
        sends no NO CARRIER (a result code lost on the way); "frame" drops the call right
        behind the next frame for the box, NO CARRIER in the same write (a modem hands over
        what it had, then says NO CARRIER: a box often reads both at once)."""
        return self._in_loop(self._op_drop, how)

    def freeze(self, name=None):
        """Gateway (default: the one in call) goes silent; the carrier stays up."""
        return self._in_loop(self._op_freeze, name, True)

    def thaw(self, name=None):
        return self._in_loop(self._op_freeze, name, False)

    def reboot(self, name=None, down_ms=0):
        """Gateway loses all state: its call (if any) drops, dials fail for down_ms."""
        return self._in_loop(self._op_reboot, name, down_ms)

    def set_dead(self, name, dead=True):
        """Dials to this gateway get NO CARRIER (connection refused) while dead."""
        return self._in_loop(self._op_flag, "dead", name, dead)

    def set_busy(self, name, busy=True):
        return self._in_loop(self._op_flag, "busy", name, busy)

    def set_no_dialtone(self, on=True):
        return self._in_loop(self._op_nodialtone, on)

    def clear_faults(self):
        """BER, loss, freeze, dead, busy, reboot down time, no-dialtone: all off."""
        return self._in_loop(self._op_clear)

    def command(self, line):
        """One control command (the control socket's language); returns the reply dict."""
        try:
            return self._in_loop(self._command, line)
        except ValueError as e:
            return {"ok": False, "error": str(e)}

    def _command(self, line):
        words = line.split()
        if not words:
            return {"ok": False, "error": "empty command"}
        cmd, args = words[0].lower(), words[1:]
        try:
            op, op_args = parse_command(cmd, args, self._gateways)
            return getattr(self, "_op_" + op)(*op_args)
        except (ValueError, IndexError) as e:
            return {"ok": False, "cmd": cmd, "error": str(e) or "bad arguments"}

    @staticmethod
    def _op_help():
        return {"ok": True, "cmd": "help", "commands": CONTROL_USAGE}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["ctl"]:
        return ctl_main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m gwbox_tools.modem_emu",
        description="Hayes-compatible modem emulator on a pty. Prints one JSON line "
                    "{box, gateways, control}, runs until SIGINT/SIGTERM. "
                    "Subcommand: ctl HOST:PORT COMMAND...")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--connect-delay-ms", type=float, default=200.0)
    p.add_argument("--fail-delay-ms", type=float, default=300.0)
    p.add_argument("--gateway", action="append", default=[], metavar="NAME=SPEC",
                   help="dial target: NAME=tcp:HOST:PORT | NAME=tcp:PORT | NAME=pty, "
                        "optionally ,busy or ,dead; repeatable")
    p.add_argument("--control", default="127.0.0.1:0",
                   help="HOST:PORT of the control socket (port 0: any), or 'none'")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--events", action="store_true", help="JSON event lines on stderr")
    a = p.parse_args(argv)
    gateways = {}
    for g in a.gateway:
        name, sep, spec = g.partition("=")
        if not sep or not name:
            p.error("--gateway wants NAME=SPEC, got %r" % g)
        gateways[name] = spec
    def log_event(ev):
        sys.stderr.write(json.dumps(ev) + "\n")
        sys.stderr.flush()

    on_event = log_event if a.events else None
    control = None if a.control.lower() == "none" else a.control
    try:
        emu = ModemEmulator(baud=a.baud, gateways=gateways, latency_ms=a.latency_ms,
                            connect_delay_ms=a.connect_delay_ms,
                            fail_delay_ms=a.fail_delay_ms, control=control, seed=a.seed,
                            on_event=on_event)
    except ValueError as e:
        p.error(str(e))
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with emu:
        ca = emu.control_address
        print(json.dumps({
            "box": emu.box_path, "gateways": emu.gateway_paths,
            "control": None if ca is None else "%s:%d" % ca, "baud": emu.baud}), flush=True)
        while not stop.wait(3600):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
