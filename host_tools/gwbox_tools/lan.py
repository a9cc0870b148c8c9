"""The emulated head-office LAN's address plan: policy addresses -> loopback UDP addresses.

On the host the head-office LAN is UDP on 127.0.0.1. Every LAN host that the policy names
by an IPv4 address (a gateway "143.1.0.64", a target host "10.0.0.5") is one loopback UDP
socket; `LanMap` says which. It is a small JSON file shared by the access server, the
gateways and the target hosts:

    {"143.1.0.64": ["127.0.0.1", 40123], "10.0.0.5": ["127.0.0.1", 40124]}

Ports are allocated without a race by *keeping the bound socket*: `allocate(names)` binds
one UDP socket per name to 127.0.0.1:0 and returns them still bound together with the map.
Whoever starts the LAN host then hands that socket over: in-process (gwbox_tools.targets
takes it as is) or to a child process (`pass_fds`, and the gateway's `--lan-fd N`). Nobody
else can take the port between allocation and use. A restarted process binds its known
port again itself; the port was freed a moment before, so only a program binding exactly
that port in between could take it, and the bind then fails loudly (EADDRINUSE).
"""
import json
import os
import socket

from gwbox.ipv4 import int_to_ip, ip_to_int  # the firmware's own parsing of addresses

LOOPBACK = "127.0.0.1"


def _sockaddr(v):
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError("a socket address is [host, port], not %r" % (v,))
    host, port = v
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool) \
            or not 0 <= port < 65536:
        raise ValueError("a socket address is [host, port], not %r" % (v,))
    return (host, port)


class LanMap:
    """Policy IPv4 address (str, canonical dotted quad) <-> loopback (host, port).

    Port 0 marks an *access server*: its LAN side is one ephemeral socket per call, all
    on its own host address, so every port of that host is that access server
    (`source` accepts them; `lookup` still gives (host, 0): nobody sends to it first)."""

    def __init__(self, entries=None):
        self._fwd = {}
        self._rev = {}
        self._hosts = {}  # access server host -> its policy address
        for name, addr in dict(entries or {}).items():
            self.add(name, addr)

    # --- building ----------------------------------------------------------------------

    def add(self, name, sockaddr):
        """Map policy address `name` to `sockaddr` (host, port); both must be new."""
        name = int_to_ip(ip_to_int(name))  # canonical form: "010.0.0.5" -> "10.0.0.5"
        sockaddr = _sockaddr(sockaddr)
        if name in self._fwd:
            raise ValueError("address %s is mapped twice" % name)
        if sockaddr in self._rev:
            raise ValueError("%s:%d is mapped twice (%s and %s)" % (sockaddr + (self._rev[sockaddr], name)))
        if sockaddr[1] == 0:
            if sockaddr[0] in self._hosts:
                raise ValueError("host %s is mapped twice (%s and %s)" % (sockaddr[0], self._hosts[sockaddr[0]], name))
            self._hosts[sockaddr[0]] = name
        self._fwd[name] = sockaddr
        self._rev[sockaddr] = name

    # --- lookups -----------------------------------------------------------------------

    def lookup(self, name):
        """(host, port) of policy address `name` (str, or int as on the wire), else None."""
        try:
            key = int_to_ip(name) if isinstance(name, int) else int_to_ip(ip_to_int(name))
        except ValueError:
            return None
        return self._fwd.get(key)

    def reverse(self, sockaddr):
        """Policy address (str) of loopback `sockaddr`, else None."""
        try:
            return self._rev.get((sockaddr[0], int(sockaddr[1])))
        except (TypeError, ValueError, IndexError):
            return None

    def source(self, sockaddr):
        """Policy address of the LAN host a datagram from `sockaddr` came from: a mapped
        (host, port), or any port of an access server's host; else None (not in the map)."""
        name = self.reverse(sockaddr)
        if name is None:
            try:
                name = self._hosts.get(sockaddr[0])
            except (TypeError, IndexError):
                return None
        return name

    def access_servers(self):
        """{policy address: host} of the access servers in the map."""
        return dict((n, h) for h, n in self._hosts.items())

    def __getitem__(self, name):
        v = self.lookup(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        return self.lookup(name) is not None

    def __iter__(self):
        return iter(self._fwd)

    def __len__(self):
        return len(self._fwd)

    def items(self):
        return self._fwd.items()

    def names(self):
        return list(self._fwd)

    def __repr__(self):
        return "LanMap(%r)" % (self._fwd,)

    # --- files -------------------------------------------------------------------------

    def to_json(self):
        return json.dumps({k: [h, p] for k, (h, p) in self._fwd.items()}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text, where="lan map"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ValueError("%s: not JSON (%s)" % (where, e)) from None
        if not isinstance(data, dict):
            raise ValueError("%s: expected a JSON object {address: [host, port]}" % where)
        try:
            return cls(data)
        except ValueError as e:
            raise ValueError("%s: %s" % (where, e)) from None

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read(), str(path))

    def save(self, path):
        """Write atomically (temp file + rename): a reader never sees half a map."""
        tmp = "%s.tmp%d" % (path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_json() + "\n")
        os.replace(tmp, path)


class Allocation:
    """`allocate`'s result: the map and the still-bound UDP sockets, by policy address.

    `take(name)` hands a socket over (the caller owns it from then on); `close()` closes
    the ones not taken. Also a context manager."""

    def __init__(self, lan_map, sockets):
        self.map = lan_map
        self.sockets = sockets

    def take(self, name):
        return self.sockets.pop(int_to_ip(ip_to_int(name)))

    def close(self):
        socks, self.sockets = self.sockets, {}
        for s in socks.values():
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bind_udp(sockaddr):
    """A UDP socket bound to `sockaddr` (host, port), non-blocking."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(tuple(sockaddr))
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def allocate(names, host=LOOPBACK, lan_map=None, hosts=None):
    """Bind a free loopback UDP port for every policy address in `names` and keep it bound
    (on `host`, or `hosts[name]` where given: a LAN host of its own, 127.x.y.z).

    Returns an Allocation: `.map` (a new LanMap, or `lan_map` extended) and `.sockets`
    {canonical name: bound socket}. No race: the ports stay ours until handed over."""
    new = LanMap()
    socks = {}
    hosts = dict((int_to_ip(ip_to_int(n)), h) for n, h in (hosts or {}).items())
    try:
        for name in names:
            canon = int_to_ip(ip_to_int(name))
            if canon in new or (lan_map is not None and canon in lan_map):
                raise ValueError("address %s is mapped twice" % canon)
            s = bind_udp((hosts.get(canon, host), 0))
            socks[canon] = s
            new.add(canon, s.getsockname()[:2])
        if lan_map is None:
            return Allocation(new, socks)
        for name, addr in new.items():
            lan_map.add(name, addr)
    except BaseException:
        for s in socks.values():
            s.close()
        raise
    return Allocation(lan_map, socks)


# --- process plumbing shared by the LAN's processes (access server, gateway, targets) -------

class EventLog:
    """JSON-lines events, `gwbox.events.json_line`, one flushed line each.

    `t_ms` counts from `t0` (a time.monotonic() value; default: when the log was made,
    i.e. process start). On Linux time.monotonic() is CLOCK_MONOTONIC, the same in every
    process, so a parent that passes its own `--t0` gets one time base for all logs.
    `path` None writes to stdout; a path is opened for appending (a restarted process
    continues its predecessor's log)."""

    def __init__(self, node, path=None, t0=None):
        import sys
        import time
        from gwbox.events import json_line
        self._json_line = json_line
        self._clock = time.monotonic
        self.node = node
        self.t0 = self._clock() if t0 is None else float(t0)
        self._own = path is not None and path != "-"
        self._f = open(path, "a", encoding="utf-8") if self._own else sys.stdout

    def t_ms(self):
        return int((self._clock() - self.t0) * 1000)

    def emit(self, name, fields=None, **kw):
        if fields:
            kw = dict(fields, **kw)
        try:
            self._f.write(self._json_line(self.t_ms(), self.node, name, kw) + "\n")
            self._f.flush()
        except (OSError, ValueError):
            pass  # a closed stdout must not take the process down

    def close(self):
        if self._own and not self._f.closed:
            self._f.close()


def write_ready(path, text):
    """Write a ready file atomically: a waiting parent sees all of it or nothing."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class Stopper:
    """SIGTERM/SIGINT (and EOF on an optional lifeline fd) wake a selector loop to stop.

    Signals are turned into a byte on a pipe (signal.set_wakeup_fd), so a process blocked
    in select() wakes at once and stops between two steps, never in the middle of one.
    The lifeline is the read end of a pipe whose write end only the parent holds: when the
    parent dies in any way (even SIGKILL), it reads EOF and this process stops too."""

    def __init__(self, sel, lifeline_fd=None):
        import signal
        self.stop = False
        self.reason = None
        self._sel = sel
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        sel.register(self._r, 1, self._on_wake)  # selectors.EVENT_READ
        self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._on_signal)
        self._life = lifeline_fd
        if lifeline_fd is not None:
            os.set_blocking(lifeline_fd, False)
            sel.register(lifeline_fd, 1, self._on_lifeline)

    def _on_signal(self, signum, frame):
        self.stop = True
        if self.reason is None:
            import signal
            self.reason = signal.Signals(signum).name

    def _on_wake(self, mask):
        try:
            while os.read(self._r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _on_lifeline(self, mask):
        try:
            data = os.read(self._life, 512)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.stop = True
            if self.reason is None:
                self.reason = "parent gone"

    def close(self):
        import signal
        for sig, h in self._old.items():
            signal.signal(sig, h)
        signal.set_wakeup_fd(self._old_fd)
        for fd in (self._r, self._w, self._life):
            if fd is not None:
                try:
                    self._sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
                os.close(fd)
        self._r = self._w = self._life = None


def parse_hostport(text, default_host=LOOPBACK):
    """'127.0.0.1:0' | ':0' | '0' -> (host, port)."""
    host, sep, port = str(text).rpartition(":")
    if not sep:
        host = ""
    try:
        p = int(port)
    except ValueError:
        raise ValueError("expected HOST:PORT, got %r" % (text,)) from None
    if not 0 <= p < 65536:
        raise ValueError("port out of range in %r" % (text,))
    return (host or default_host, p)
