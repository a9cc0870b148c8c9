"""The whole box firmware under the real MicroPython interpreter, on a pty, seen from CPython.

Runs `firmware/main.py` exactly as a board does, with the unix "board" (boards/unix: the
UART is a pty, the LAN side a loopback UDP port, `machine` a stand-in) and the firmware
loaded as .mpy at a device-sized heap. The box's log lines (gwbox.events.json_line) are
read from its stdout into `events`; `send` puts a LAN datagram into the box, `replies`
holds what comes back. Always use it as a context manager or call `stop`: the process
and the sockets end with it.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

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
    main_src = os.path.join(ROOT, "firmware", "main.py")
    main_dst = os.path.join(DEVICE_DIR, "main.py")
    if not os.path.exists(main_dst) or os.path.getmtime(main_dst) < os.path.getmtime(main_src):
        shutil.copyfile(main_src, main_dst)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class MpBox:
    def __init__(self, uart_path, policy_path, heap="256K", name="box", micropython=None, on_event=None,
                 lan_port=None, baud=9600, keep_events=200000):
        build_device()
        self.name = name
        self.heap = heap
        self.on_event = on_event
        self.keep_events = keep_events
        self.events = []
        self.replies = []  # (t, target address int, port, payload) from the LAN side
        self.stderr = []  # lines that were not events (tracebacks, say)
        self._lock = threading.Condition()
        self.lan_port = lan_port or free_udp_port()
        self.lan = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.lan.bind(("127.0.0.1", 0))
        self.lan.settimeout(0.2)
        env = dict(os.environ, GWBOX_UART=uart_path, GWBOX_POLICY=os.path.abspath(policy_path),
                   GWBOX_LAN_PORT=str(self.lan_port), GWBOX_NAME=name, GWBOX_BAUD=str(baud),
                   MICROPYPATH="unix:lib")  # relative, as on a board: heap use must not depend on paths
        exe = micropython or mpy_build.micropython_binary()
        self.proc = subprocess.Popen([exe, "-X", "heapsize=" + heap, "main.py"], cwd=DEVICE_DIR, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._stopping = False
        self._reader = threading.Thread(target=self._read, name="mpbox-" + name, daemon=True)
        self._reader.start()
        self._lan_reader = threading.Thread(target=self._read_lan, name="mpbox-lan-" + name, daemon=True)
        self._lan_reader.start()

    # --- the box's output ------------------------------------------------------------

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            try:
                d = json.loads(line)
            except ValueError:
                d = None
            with self._lock:
                if isinstance(d, dict) and "event" in d:
                    d["mono"] = time.monotonic()  # when the host saw it: one clock for every process
                    self.events.append(d)
                    if len(self.events) > self.keep_events:
                        del self.events[:len(self.events) - self.keep_events]
                else:
                    self.stderr.append(line)
                self._lock.notify_all()
            if d is not None and self.on_event is not None:
                self.on_event(d)
        with self._lock:
            self._lock.notify_all()

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
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._lock.wait(min(left, 0.2))

    def find(self, name, start=0, **fields):
        with self._lock:
            return [e for e in self.events[start:] if e["event"] == name and
                    all(e.get(k) == v for k, v in fields.items())]

    def count(self):
        with self._lock:
            return len(self.events)

    def alive(self):
        return self.proc.poll() is None

    # --- lifecycle -------------------------------------------------------------------

    def stop(self):
        self._stopping = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.lan.close()
        self._lan_reader.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
