"""The head-office access server (the seed's RAS) as a process: modem calls in, LAN out.

    python -m gwbox_tools.access_server --listen 127.0.0.1:0 --lan-map FILE [--lan-host HOST]
        [--events FILE] [--ready-file FILE] [--t0 MONOTONIC] [--lifeline-fd N] [--quiet]

Each accepted TCP connection is one modem call (the modem emulator connects when the box
dials the access server's name; closing the connection is carrier loss). Per call:

* an RFC 1662 Framer (gwbox.link.framing) for the byte stream;
* the context bindings of this call: a frame from the box starts with an outer address
  header (tunnel.decode_outer): context 1..127, and in the long form the IPv4 address of
  the gateway, where that frame goes and which the context is bound to from then on (the
  latest long form of a context wins: the access server cannot tell the box's frames from
  one injected on the line, so the box sends the long form again whenever a gateway does
  not answer in time, docs/protocol.md "Rebinding");
* one UDP socket of its own on `--lan-host` (ephemeral port; the gateways take datagrams
  from any port of that host: it is in the LAN map with port 0), from which each box packet
  goes as one datagram to the bound gateway's LanMap address; the gateways answer to the
  datagram's source, so whatever arrives on that socket from a LanMap host is framed and
  written to this call (no header towards the box).

Dropped and counted, never forwarded: a frame whose outer header does not decode
(`bad_outer`), a short-form frame whose context is not bound on this call (`unbound`), a
bound address that is not in the LanMap (`unknown_address`), a datagram from a source that
is not in the LanMap (`stray`), a packet too big to frame (`oversize`), bytes for a call
that does not drain (`overflow`). The call ends on EOF (or a socket error): its UDP socket
is closed and `call_down` gives its counters.

Events (JSON lines, gwbox.events.json_line, node "ras"): ras_ready(port, lan_map),
call_up(call, peer), bound(call, ctx, gateway[, previous]), unroutable(call, reason, ctx,
gateway, count), stray(call, src, count), dropped(call, reason, count) for oversize and
overflow, call_down(call, reason, counters...),
ras_stopped(reason, calls). `--ready-file` receives the listening port (decimal, newline)
once listening. SIGTERM/SIGINT: close every socket and exit 0.
"""
import argparse
import errno
import selectors
import socket
import sys

from gwbox import tunnel
from gwbox.errors import ProtocolError
from gwbox.link.framing import Framer

from .lan import EventLog, LanMap, Stopper, int_to_ip, parse_hostport, write_ready

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
READ_SIZE = 4096
DGRAM_MAX = 65535
TO_BOX_MAX = 256 * 1024  # bytes queued for a call that does not drain; past it: overflow
LOG_FIRST = 10  # per call and reason, the first drops are logged one by one ...
LOG_EVERY = 100  # ... then every 100th (the counters count them all)
COUNTERS = ("frames_in", "frames_out", "forwarded", "returned", "bad_outer", "unbound",
            "unknown_address", "stray", "oversize", "overflow", "send_errors")


_DROP_EVENT = {"bad_outer": "unroutable", "unbound": "unroutable", "unknown_address": "unroutable",
               "stray": "stray"}  # oversize, overflow: "dropped"


class Call:
    """One modem call: its TCP connection, framer, bindings and LAN socket."""

    def __init__(self, n, conn, peer, udp):
        self.n = n
        self.conn = conn
        self.peer = peer
        self.udp = udp
        self.framer = Framer()
        self.bound = {}  # context -> gateway address int
        self.to_box = bytearray()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.closed = False


class AccessServer:
    def __init__(self, listen, lan_map, log, ready_file=None, lifeline_fd=None, lan_host="127.0.0.1", quiet=False):
        self.lan = lan_map
        self.log = log
        self.lan_host = lan_host
        self.quiet = quiet  # no call_up / bound / call_down per call (a load test's thousands of calls)
        self.ready_file = ready_file
        self.sel = selectors.DefaultSelector()
        self.calls = {}
        self.n_calls = 0
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.srv.bind(listen)
            self.srv.listen(1024)  # thousands of boxes may dial at once (a load test)
            self.srv.setblocking(False)
        except BaseException:
            self.srv.close()
            self.sel.close()
            raise
        self.port = self.srv.getsockname()[1]
        self.sel.register(self.srv, R, self._on_accept)
        self.stopper = Stopper(self.sel, lifeline_fd)

    # --- loop ------------------------------------------------------------------------

    def run(self):
        self.log.emit("ras_ready", port=self.port, lan_map=len(self.lan))
        if self.ready_file:
            write_ready(self.ready_file, "%d\n" % self.port)
        while not self.stopper.stop:
            for key, mask in self.sel.select(None):
                key.data(mask)
                if self.stopper.stop:
                    break
        self.close(self.stopper.reason or "stopped")

    def close(self, reason="closed"):
        if self.srv is None:
            return
        for c in list(self.calls.values()):
            self._end_call(c, "shutdown")
        self.sel.unregister(self.srv)
        self.srv.close()
        self.srv = None
        self.log.emit("ras_stopped", reason=reason, calls=self.n_calls)
        self.stopper.close()
        self.sel.close()

    # --- calls -----------------------------------------------------------------------

    def _on_accept(self, mask):
        try:
            conn, peer = self.srv.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        udp = None
        try:
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.lan_host, 0))
            udp.setblocking(False)
        except OSError as e:
            conn.close()
            if udp is not None:
                udp.close()
            self.log.emit("call_refused", error=str(e))
            return
        self.n_calls += 1
        c = Call(self.n_calls, conn, "%s:%d" % peer[:2], udp)
        self.calls[c.n] = c
        self.sel.register(conn, R, lambda m, c=c: self._on_conn(c, m))
        self.sel.register(udp, R, lambda m, c=c: self._on_udp(c))
        if not self.quiet:
            self.log.emit("call_up", call=c.n, peer=c.peer, lan="%s:%d" % udp.getsockname()[:2])

    def _on_conn(self, c, mask):
        if mask & W and not c.closed:
            self._flush(c)
        if mask & R and not c.closed:
            try:
                data = c.conn.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._end_call(c, "error: %s" % errno.errorcode.get(e.errno, e))
                return
            if not data:
                self._end_call(c, "eof")
                return
            for frame in c.framer.feed(data):
                c.counters["frames_in"] += 1
                self._from_box(c, frame)

    def _drop(self, c, reason, **fields):
        c.counters[reason] += 1
        n = c.counters[reason]
        if n <= LOG_FIRST or n % LOG_EVERY == 0:
            fields["count"] = n
            name = _DROP_EVENT.get(reason, "dropped")
            self.log.emit(name, call=c.n, reason=reason, **fields)

    def _from_box(self, c, frame):
        try:
            ctx, addr, off = tunnel.decode_outer(frame)
        except ProtocolError as e:
            self._drop(c, "bad_outer", error=str(e), bytes=len(frame))
            return
        if addr is not None:
            old = c.bound.get(ctx)
            if old != addr:
                c.bound[ctx] = addr
                f = {"call": c.n, "ctx": ctx, "gateway": int_to_ip(addr)}
                if old is not None:
                    f["previous"] = int_to_ip(old)
                if not self.quiet:
                    self.log.emit("bound", f)
        else:
            addr = c.bound.get(ctx)
            if addr is None:
                self._drop(c, "unbound", ctx=ctx, gateway=None, bytes=len(frame))
                return
        dest = self.lan.lookup(addr)
        if dest is None:
            self._drop(c, "unknown_address", ctx=ctx, gateway=int_to_ip(addr), bytes=len(frame))
            return
        try:
            c.udp.sendto(frame[off:], dest)
            c.counters["forwarded"] += 1
        except OSError:
            c.counters["send_errors"] += 1  # a gateway that is down: the LAN loses it

    def _on_udp(self, c):
        for _ in range(64):
            if c.closed:
                return  # a burst, then let the others run
            try:
                data, src = c.udp.recvfrom(DGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                c.counters["send_errors"] += 1  # e.g. an ICMP error for an earlier send
                continue
            if self.lan.reverse(src) is None:
                self._drop(c, "stray", src="%s:%d" % src[:2], bytes=len(data))
                continue
            try:
                framed = c.framer.encode(data)
            except ValueError:
                self._drop(c, "oversize", src=self.lan.reverse(src), bytes=len(data))
                continue
            if len(c.to_box) + len(framed) > TO_BOX_MAX:
                self._drop(c, "overflow", src=self.lan.reverse(src), bytes=len(data))
                continue
            c.counters["frames_out"] += 1
            c.counters["returned"] += 1
            c.to_box += framed
            self._flush(c)

    def _flush(self, c):
        if c.to_box:
            try:
                n = c.conn.send(c.to_box)
                del c.to_box[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._end_call(c, "error: %s" % errno.errorcode.get(e.errno, e))
                return
        self.sel.modify(c.conn, R | W if c.to_box else R, lambda m, c=c: self._on_conn(c, m))

    def _end_call(self, c, reason):
        if c.closed:
            return
        c.closed = True
        for s in (c.conn, c.udp):
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        self.calls.pop(c.n, None)
        f = {"call": c.n, "reason": reason}
        f.update(c.counters)
        f["bad_fcs"] = c.framer.bad_fcs
        f["unsent"] = len(c.to_box)
        if not self.quiet:
            self.log.emit("call_down", f)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gwbox_tools.access_server", description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0", help="TCP HOST:PORT for modem calls (port 0: any)")
    p.add_argument("--lan-map", required=True, help="the LanMap JSON file")
    p.add_argument("--events", default=None, help="JSON-lines event file (appended); default stdout")
    p.add_argument("--ready-file", default=None, help="write the listening port here once listening")
    p.add_argument("--t0", type=float, default=None, help="time.monotonic() value that t_ms counts from")
    p.add_argument("--lifeline-fd", type=int, default=None, help="exit when this inherited fd reads EOF")
    p.add_argument("--name", default="ras", help="node name in events")
    p.add_argument("--lan-host", default="127.0.0.1", help="the host address of its per-call LAN sockets")
    p.add_argument("--quiet", action="store_true", help="no per-call events")
    a = p.parse_args(argv)
    try:
        listen = parse_hostport(a.listen)
        lan = LanMap.load(a.lan_map)
    except (OSError, ValueError) as e:
        print("access_server: %s" % e, file=sys.stderr)
        return 2
    log = EventLog(a.name, a.events, a.t0)
    try:
        ras = AccessServer(listen, lan, log, a.ready_file, a.lifeline_fd, a.lan_host, a.quiet)
    except OSError as e:
        print("access_server: cannot listen on %s:%d: %s" % (listen + (e,)), file=sys.stderr)
        log.close()
        return 2
    try:
        ras.run()
    finally:
        ras.close("exception")  # no-op after a normal stop
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
