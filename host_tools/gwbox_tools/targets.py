"""Target hosts behind the gateways: one loopback UDP endpoint per policy address.

In process (a test, the demo):

    with Targets(lan_map, ["10.0.0.5", "10.0.0.6"], echo=True) as t:
        ...
        t.wait_for("10.0.0.5", 3, timeout=5)     # three datagrams arrived
        t.received["10.0.0.5"]                    # [(t, payload), ...]

As a process:

    python -m gwbox_tools.targets --lan-map F --names 10.0.0.5,10.0.0.6 [--echo]
        [--log FILE] [--t0 MONOTONIC] [--ready-file FILE] [--lifeline-fd N]

Each target binds its LanMap port (or takes a socket already bound there: `sockets=`, see
gwbox_tools.lan.allocate) and records every datagram: `received[name]` is a list of
(t, payload), t = time.monotonic() seconds; `log` is a list of (t, name, (host, port) of the
sender, payload) in arrival order. With `echo`, each datagram is sent back to its sender
prefixed with b"re:" (a gateway tunnels it to the box as NH_REPLY). The process writes one
JSON line per datagram (event "datagram": target, src, bytes, payload, hex).
"""
import argparse
import os
import selectors
import sys
import threading
import time

from .lan import EventLog, LanMap, Stopper, bind_udp, int_to_ip, ip_to_int, write_ready

DGRAM_MAX = 65535
ECHO_PREFIX = b"re:"


class Targets:
    def __init__(self, lan_map, names, echo=False, sockets=None, on_datagram=None, record=True):
        """`sockets` {name: UDP socket already bound to its LanMap address} are taken over
        (closed by close()); the other names are bound here. `on_datagram(t, name, src,
        payload)` is called on the receiving thread. `record` False keeps nothing in
        `received`/`log` (a long-running process that only logs)."""
        self.lan = lan_map
        self.names = [int_to_ip(ip_to_int(n)) for n in names]
        self.echo = echo
        self.on_datagram = on_datagram
        self.record = record
        self.count = 0
        self.received = {n: [] for n in self.names}
        self.log = []
        self.echoed = 0
        self._cv = threading.Condition()
        self._socks = {}
        self._thread = None
        self._stop = False
        self._closed = False
        given = dict(sockets or {})
        try:
            for n in self.names:
                addr = lan_map.lookup(n)
                if addr is None:
                    raise ValueError("target %s is not in the LAN map" % n)
                s = given.pop(n, None)
                if s is None:
                    s = bind_udp(addr)
                else:
                    s.setblocking(False)
                self._socks[n] = s
                if tuple(s.getsockname()[:2]) != tuple(addr):
                    raise ValueError("socket for %s is bound to %s:%d, not %s:%d"
                                     % ((n,) + tuple(s.getsockname()[:2]) + tuple(addr)))
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            for s in list(self._socks.values()) + list(given.values()):
                s.close()
            self._socks = {}
            raise
        for s in given.values():
            s.close()  # handed to us but not one of our names

    # --- life cycle ------------------------------------------------------------------

    def start(self):
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="targets", daemon=True)
            self._thread.start()
        return self

    def close(self):
        """Stop the thread and close every socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop = True
        if self._thread is not None:
            os.write(self._wake_w, b"!")
            self._thread.join(5.0)
        for s in self._socks.values():
            s.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def address(self, name):
        """(host, port) where target `name` listens."""
        return self._socks[int_to_ip(ip_to_int(name))].getsockname()[:2]

    # --- looking at what arrived -------------------------------------------------------

    def payloads(self, name):
        with self._cv:
            return [p for _, p in self.received[int_to_ip(ip_to_int(name))]]

    def wait_for(self, name, count=1, timeout=5.0):
        """Wait until target `name` has received at least `count` datagrams; their payloads.
        Raises AssertionError on timeout."""
        name = int_to_ip(ip_to_int(name))
        with self._cv:
            ok = self._cv.wait_for(lambda: len(self.received[name]) >= count, timeout)
            got = [p for _, p in self.received[name]]
        assert ok, "target %s: %d datagram(s) after %.1f s, wanted %d: %r" % (name, len(got), timeout, count, got)
        return got

    # --- the thread --------------------------------------------------------------------

    def _run(self):
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            for n, s in self._socks.items():
                sel.register(s, selectors.EVENT_READ, n)
            while not self._stop:
                for key, _ in sel.select(1.0):
                    if key.data is not None:
                        self.serve(key.data)
        finally:
            sel.close()

    def serve(self, name):
        """Read what waits on target `name`'s socket (also used by the process main loop)."""
        s = self._socks[name]
        for _ in range(64):
            try:
                data, src = s.recvfrom(DGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            t = time.monotonic()
            src = tuple(src[:2])
            with self._cv:
                self.count += 1
                if self.record:
                    self.received[name].append((t, data))
                    self.log.append((t, name, src, data))
                self._cv.notify_all()
            if self.echo:
                try:
                    s.sendto(ECHO_PREFIX + data, src)
                    self.echoed += 1
                except OSError:
                    pass
            if self.on_datagram is not None:
                self.on_datagram(t, name, src, data)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gwbox_tools.targets", description=__doc__.split("\n")[0])
    p.add_argument("--lan-map", required=True)
    p.add_argument("--names", required=True, help="comma-separated policy addresses")
    p.add_argument("--echo", action="store_true", help="send each datagram back with the prefix re:")
    p.add_argument("--log", default=None, help="JSON-lines file (appended); default stdout")
    p.add_argument("--t0", type=float, default=None)
    p.add_argument("--ready-file", default=None, help="JSON {name: port} once bound")
    p.add_argument("--lifeline-fd", type=int, default=None)
    a = p.parse_args(argv)
    try:
        lan = LanMap.load(a.lan_map)
        names = [n.strip() for n in a.names.split(",") if n.strip()]
        log = EventLog("targets", a.log, a.t0)
        t0 = log.t0

        def on_datagram(t, name, src, data):
            log.emit("datagram", target=name, src="%s:%d" % src, bytes=len(data), payload=data, hex=data.hex(),
                     at_ms=int((t - t0) * 1000))

        targets = Targets(lan, names, a.echo, on_datagram=on_datagram, record=False)
    except (OSError, ValueError) as e:
        print("targets: %s" % e, file=sys.stderr)
        return 2
    sel = selectors.DefaultSelector()
    for n, s in targets._socks.items():
        sel.register(s, selectors.EVENT_READ, n)
    stopper = Stopper(sel, a.lifeline_fd)
    log.emit("targets_ready", names=targets.names, echo=a.echo)
    if a.ready_file:
        import json
        write_ready(a.ready_file, json.dumps({n: targets.address(n)[1] for n in targets.names}) + "\n")
    try:
        while not stopper.stop:
            for key, _ in sel.select(None):
                if isinstance(key.data, str):
                    targets.serve(key.data)
                else:
                    key.data(selectors.EVENT_READ)
    finally:
        log.emit("targets_stopped", reason=stopper.reason, datagrams=targets.count)
        stopper.close()
        sel.close()
        targets.close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
