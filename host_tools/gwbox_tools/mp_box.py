"""The whole box firmware under the real MicroPython interpreter, on a pty, seen from CPython.

Runs `firmware/main.py` exactly as a board does, with the unix "board" (boards/unix: the
UART is a pty, the LAN side a loopback UDP port, `machine` a stand-in) and the firmware
loaded as .mpy at a device-sized heap. The box's log lines (gwbox.events.json_line) are
read from its stdout into `events`; `send` puts a LAN datagram into the box, `replies`
holds what comes back. Always use it as a context manager or call `stop`: the process
and the sockets end with it.

With `console=True` the box's REPL stream (the interpreter's stdin/stdout) is also a pty,
`console_path`, which host tools open with pyserial as they would a board's USB serial
port (gwbox console, gwbox config push): everything the box prints goes there as well
as into `events`, and what is written there reaches the box's console. The pty outlives
the interpreter: `machine.reset()` (boards/unix: exit status RESET_EXIT) starts it again
on the same files and the same pty, as a board with a USB-serial bridge resets. Output
nobody reads is dropped, as a board's UART drops it, never blocking the box.

`power_cycle()` is a power cut and the power back: the interpreter is killed (SIGKILL:
nothing flushed, its RAM gone) and started again on the same files, UART and LAN port.
Every event carries `boot` (1, 2, ...: which start of the interpreter printed it).
"""
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
import tty

from gwbox_tools import mpy_build

ROOT = mpy_build.ROOT
DEVICE_DIR = os.path.join(mpy_build.BUILD)  # main.py, lib/ (firmware) and unix/ (board) live here


def build_device():
    """build/mpy as the box's filesystem: lib/ firmware .mpy, unix/ board .mpy, main.py as source."""
    mpy_build.build_mpy()
    unix_src = os.path.join(ROOT, "boards", "unix")
    unix_dst = os.path.join(DEVICE_DIR, "unix")
    for f in sorted(os.listdir(unix_src)):
        if f.endswith(".py"):
            src = os.path.join(unix_src, f)
            dst = os.path.join(unix_dst, f[:-3] + ".mpy")
            if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
                mpy_build.compile_module(src, dst, f)
            stale = os.path.join(unix_dst, f)
            if os.path.exists(stale):
                os.unlink(stale)  # a source beside its .mpy would be imported instead of it
    main_src = os.path.join(ROOT, "firmware", "main.py")
    main_dst = os.path.join(DEVICE_DIR, "main.py")
    if not os.path.exists(main_dst) or os.path.getmtime(main_dst) < os.path.getmtime(main_src):
        shutil.copyfile(main_src, main_dst)


ROMFS_IMAGE = os.path.join(DEVICE_DIR, "gwbox.romfs")


def build_romfs():
    """build/mpy/gwbox.romfs: the package modules `gwbox deploy --romfs` puts in an image (host-only
    ones left out), as build/mpy/lib holds them, for GWBOX_ROMFS (boards/unix/romfs.py).
    Returns its path; the file is rewritten only when its contents change."""
    from gwbox_tools import romfs_image
    from gwbox_tools.deploy import firmware_sources
    build_device()
    lib = os.path.join(DEVICE_DIR, "lib")
    modules = [rel[:-3] + ".mpy" for rel in firmware_sources(mpy_build.FIRMWARE) if "/" in rel]
    romfs_image.write_image({m: os.path.join(lib, m) for m in modules}, ROMFS_IMAGE)
    return ROMFS_IMAGE


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


RESET_EXIT = 86  # boards/unix/machine.py: machine.reset()


class MpBox:
    def __init__(self, uart_path, policy_path, heap="256K", name="box", micropython=None, on_event=None,
                 lan_port=None, baud=9600, keep_events=200000, console=False, restart=None, safe_wait_ms=0,
                 safe_button=False, lan_uart=None, env=None):
        build_device()
        self.name = name
        self.heap = heap
        self.on_event = on_event
        self.keep_events = keep_events
        self.events = []
        self.replies = []  # (t, target address int, port, payload) from the LAN side
        self.stderr = []  # lines that were not events (tracebacks, say)
        self.boots = 0  # interpreter starts (1 + resets)
        self.exit_code = None  # once the interpreter ended for good
        self._lock = threading.Condition()
        self.lan_port = lan_port or free_udp_port()
        self.lan = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.lan.bind(("127.0.0.1", 0))
        self.lan.settimeout(0.2)
        self._env = dict(os.environ, GWBOX_UART=uart_path, GWBOX_POLICY=os.path.abspath(policy_path),
                         GWBOX_LAN_PORT=str(self.lan_port), GWBOX_NAME=name, GWBOX_BAUD=str(baud),
                         GWBOX_SAFE_WAIT_MS=str(safe_wait_ms), GWBOX_SAFE_BUTTON="1" if safe_button else "0",
                         MICROPYPATH="unix:lib")  # relative, as on a board: heap use must not depend on paths
        if lan_uart:
            self._env["GWBOX_LAN_UART"] = lan_uart
        self._env.update(env or {})
        self._exe = micropython or mpy_build.micropython_binary()
        self._restart = console if restart is None else restart
        self._stopping = False
        self._cycling = False  # power_cycle() between its kill and the next start
        self.console_path = None
        self._master = self._slave = None
        self.proc = None
        self._readers = []
        try:
            if console:
                self._master, self._slave = os.openpty()
                tty.setraw(self._slave)  # no echo, no newline translation (pyserial sets raw mode too)
                os.set_blocking(self._master, False)
                self.console_path = os.ttyname(self._slave)
            self._spawn()
            if console:
                self._relay = threading.Thread(target=self._from_console, name="mpbox-console-" + name, daemon=True)
                self._relay.start()
            self._lan_reader = threading.Thread(target=self._read_lan, name="mpbox-lan-" + name, daemon=True)
            self._lan_reader.start()
        except BaseException:
            self.stop()
            raise

    def _spawn(self):
        self.boots += 1
        console = self._master is not None
        self.proc = subprocess.Popen([self._exe, "-X", "heapsize=" + self.heap, "main.py"], cwd=DEVICE_DIR,
                                     env=self._env, stdin=subprocess.PIPE if console else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        t = threading.Thread(target=self._read, args=(self.proc,), name="mpbox-" + self.name, daemon=True)
        self._readers.append(t)
        t.start()

    # --- the box's output ------------------------------------------------------------

    def _read(self, proc):
        for raw in proc.stdout:
            if self._master is not None:
                try:
                    os.write(self._master, raw.replace(b"\n", b"\r\n"))  # a board's REPL ends lines so
                except OSError:
                    pass  # nobody reads the console: dropped, as a board's UART drops it
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            try:
                d = json.loads(line)
            except ValueError:
                d = None
            with self._lock:
                if isinstance(d, dict) and "event" in d:
                    d["mono"] = time.monotonic()  # when the host saw it: one clock for every process
                    d["boot"] = self.boots
                    self.events.append(d)
                    if len(self.events) > self.keep_events:
                        del self.events[:len(self.events) - self.keep_events]
                else:
                    self.stderr.append(line)
                self._lock.notify_all()
            if d is not None and self.on_event is not None:
                self.on_event(d)
        code = proc.wait()
        with self._lock:
            if proc is not self.proc or self._cycling:
                return  # power_cycle() killed it and starts (or started) the next one
            if code == RESET_EXIT and self._restart and not self._stopping:
                self._spawn()  # the board restarts: same files, same console pty
                return
            self.exit_code = code
            self._lock.notify_all()

    def _from_console(self):
        """What a host tool writes on the console pty -> the interpreter's stdin."""
        while not self._stopping:
            try:
                r, _, _ = select.select([self._master], [], [], 0.2)
                if not r:
                    continue
                data = os.read(self._master, 4096)
            except (OSError, ValueError):
                if self._stopping:
                    return
                time.sleep(0.05)
                continue
            proc = self.proc
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (OSError, ValueError, AttributeError):
                pass  # between a reset and the next start: lost, as on a board

    def _read_lan(self):
        while not self._stopping:
            try:
                data, _ = self.lan.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) >= 6:
                dst, port = struct.unpack_from(">IH", data, 0)
                with self._lock:
                    self.replies.append((time.monotonic(), dst, port, data[6:]))
                    self._lock.notify_all()

    # --- the LAN side --------------------------------------------------------------

    def send(self, dst, port, payload):
        """A LAN datagram for target `dst` (IPv4 int) through the box."""
        self.lan.sendto(struct.pack(">IH", dst, port) + payload, ("127.0.0.1", self.lan_port))

    # --- waiting ---------------------------------------------------------------------

    def wait_event(self, pred, timeout, start=0):
        """First event (index >= start) with pred(event) true, waiting up to timeout s; or None."""
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
                if left <= 0 or self.exit_code is not None:
                    return None
                self._lock.wait(min(left, 0.2))

    def find(self, name, start=0, **fields):
        with self._lock:
            return [e for e in self.events[start:] if e["event"] == name and
                    all(e.get(k) == v for k, v in fields.items())]

    def count(self):
        with self._lock:
            return len(self.events)

    def running(self, timeout):
        """Wait until the current start of the interpreter runs the box (an event of this boot
        besides `boot`: its LAN port is bound by then); the event, or None after `timeout` s."""
        boot = self.boots
        return self.wait_event(lambda e: e.get("boot") == boot and e["event"] != "boot", timeout)

    def alive(self):
        return self.exit_code is None and self.proc is not None and self.proc.poll() is None

    # --- lifecycle -------------------------------------------------------------------

    def power_cycle(self):
        """Cut the power and give it back: kill the interpreter (SIGKILL, so nothing it holds
        is flushed or saved) and start it again on the same files, UART and LAN port. Returns
        the new boot number."""
        with self._lock:
            if self._stopping or self.proc is None:
                raise RuntimeError("the box is stopped")
            self._cycling = True
            proc = self.proc
        proc.kill()
        proc.wait()
        reader = self._readers[-1]
        reader.join(5)  # it reads the killed interpreter's last lines, then leaves it to us
        for f in (proc.stdout, proc.stdin):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        with self._lock:
            self._cycling = False
            if self._stopping:
                raise RuntimeError("the box is stopped")
            self._spawn()
            return self.boots

    def stop(self):
        with self._lock:
            self._stopping = True  # no restart after this
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for t in self._readers:
            t.join(5)
        if proc is not None:
            for f in (proc.stdout, proc.stdin):
                if f:
                    try:
                        f.close()
                    except OSError:
                        pass
        self.lan.close()
        if getattr(self, "_lan_reader", None) is not None:
            self._lan_reader.join(2)
        if getattr(self, "_relay", None) is not None:
            self._relay.join(2)
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
