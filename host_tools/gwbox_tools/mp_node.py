"""A node running in its own real MicroPython interpreter, seen from CPython as an Endpoint.

Starts `micropython -X heapsize=64K` on firmware/gwbox/port/pipe.py with the firmware
loaded as .mpy (as a device loads it) and forwards every call over the pipe. Because it
offers the Endpoint interface, the same virtual-time harness drives it as drives an
in-process Endpoint. Always use it as a context manager: the process ends with it.
"""
import json
import os
import subprocess

from gwbox.events import Event
from gwbox_tools import mpy_build

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class MpNode:
    def __init__(self, identity, psk=None, expect_peer=None, psks=None, heap="64K", settings=None, micropython=None):
        mpy_build.build_mpy()  # the .mpy tree the interpreter loads, as a device does
        exe = micropython or mpy_build.micropython_binary()
        # Relative search path, as on a board ("/lib"): each module's __file__ is interned
        # in the heap, so its length must not depend on where the checkout lives.
        env = dict(os.environ, MICROPYPATH="lib")
        self.proc = subprocess.Popen([exe, "-X", "heapsize=" + heap, "-m", "gwbox.port.pipe"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, env=env, cwd=mpy_build.BUILD)
        self.identity = identity
        self._out, self._events, self._received = [], [], []
        self._has_session = False
        self._deadline = None
        self.errors = []
        args = [identity.decode(), psk.hex() if psk else "-", expect_peer.decode() if expect_peer else "-"]
        for peer, key in (psks or {}).items():
            args.append("peer:%s=%s" % (peer.decode(), key.hex()))
        for k, v in (settings or {}).items():
            args.append("%s=%s" % (k, v))
        self._call("init " + " ".join(args))

    def _call(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        replies = []
        while True:
            r = self.proc.stdout.readline()
            if not r:
                raise RuntimeError("micropython node %s died: %s" % (self.identity, "".join(replies)))
            r = r.rstrip("\n")
            if r == ".":
                break
            replies.append(r)
        for r in replies:
            kind, _, rest = r.partition(" ")
            if kind == "out":
                self._out.append((None, bytes.fromhex(rest)))
            elif kind == "got":
                self._received.append((None, bytes.fromhex(rest)))
            elif kind == "ev":
                d = json.loads(rest)
                name = d.pop("event")
                d.pop("t_ms", None)
                d.pop("node", None)
                self._events.append(Event(name, **d))
            elif kind == "st":
                has, dl = rest.split()
                self._has_session = has == "1"
                self._deadline = None if dl == "-" else int(dl)
            elif kind == "err":
                self.errors.append(rest)
        return replies

    # --- the Endpoint interface ---------------------------------------------------------
    def connect(self, now, link=None):
        self._call("connect %d" % now)

    def receive(self, packet, now, link=None):
        self._call("rx %d %s" % (now, packet.hex()))

    def send(self, payload, now, peer=None):
        self._call("tx %d %s" % (now, payload.hex()))

    def tick(self, now):
        self._call("tick %d" % now)

    def close(self, now, reason="closed", peer=None):
        self._call("close %d" % now)

    def next_deadline(self):
        return self._deadline

    def session(self, peer=None):
        return self if self._has_session else None

    def take_output(self):
        o, self._out = self._out, []
        return o

    def take_events(self):
        e, self._events = self._events, []
        return e

    def take_received(self):
        r, self._received = self._received, []
        return r

    def heap(self):
        """(allocated, free) bytes of the node's GC heap after a collection."""
        for r in self._call("mem"):
            if r.startswith("mem "):
                _, alloc, free = r.split()
                return int(alloc), int(free)
        raise RuntimeError("no heap report")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
