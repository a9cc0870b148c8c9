"""A head-office gateway as a process: the firmware Endpoint (responder) on CPython.

    python -m gwbox_tools.gateway --address 143.1.0.64 --psk-file F --lan-map FILE
        [--tcp 127.0.0.1:PORT] [--serial DEV [--baud N]] [--events FILE] [--ready-file FILE]
        [--heartbeat NONE|DEFERRED|INSTANT] [--setting k=v ...] [--t0 MONOTONIC]
        [--lan-fd N] [--lifeline-fd N] [--target-sockets N] [--stats-ms MS] [--quiet]

Its identity is its address as bytes (b"143.1.0.64"); boxes authenticate with the keys of
the PSK file (`pskfile.load_psks`: one `<box identity> <key>` per line). It is reached three ways,
each a *link* of the endpoint (an output packet goes back on the link it belongs to):

* the head-office LAN: one UDP socket bound to its LanMap address (or handed over as
  `--lan-fd`, see gwbox_tools.lan). A datagram from X is one packet on link X (the access
  server's per-call socket); the answer goes to X. Only datagrams from LAN-map hosts are
  taken: a mapped (host, port), or any port of an access server's host (LanMap.source);
  anything else is `lan_refused` (counted, logged one by one for the first 10, then every
  100th) and costs no protocol work.
* a direct dial line (`--tcp`): each accepted TCP connection is a serial line from a box
  (the modem emulator connects when a box dials this gateway's own number). RFC 1662
  frames; the box's outer address header is stripped (tunnel.decode_outer) and ignored;
  frames towards the box carry no header. EOF = carrier loss.
* `--serial DEV`: the same over a serial device opened raw with pyserial (e.g. a pty of
  the modem emulator's "pty" gateways).

Tunnel messages (NH_MSG) the endpoint has de-duplicated are handed on to the target host,
and only then confirmed to the box (`Endpoint.handed_on`; an undeliverable one is not): the payload is one datagram to LanMap[destination] (the message's port is only
logged: a target host is one loopback UDP endpoint). Target traffic leaves from a UDP
socket of the box's own, as behind a NAT, so a target's answer arriving on that socket
goes back to that box as NH_REPLY (source = the target's policy address, port = the port
of the last message to it). The sockets are a bounded table (`--target-sockets`, 1,024
by default): beyond it the least recently used box's socket is closed, and a late answer
to it is lost, as behind a NAT whose table overflowed.

Events: every endpoint event, plus gateway_ready, line_up/line_down, handed_on, reply,
reply_dropped, undeliverable, received (NH_DATA), stray, lan_refused, internal_error,
gateway_stats (every --stats-ms), gateway_stopped; `--quiet` leaves out the per-box and
per-message ones (QUIET) for a gateway serving thousands of boxes;
JSON lines (gwbox.events.json_line, node = the address) to stdout or --events (appended).
No key ever appears in an event, an error or the ready file. SIGTERM/SIGINT: exit 0.
SIGSTOP/SIGCONT freeze and thaw it; SIGKILL and a restart lose all its state.
"""
import argparse
import errno
import json
import os
import selectors
import socket
import sys
import time
import traceback

from collections import OrderedDict

from gwbox import ticks, tunnel, wire
from gwbox.config import DEFERRED, INSTANT, NONE, LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.link.framing import Framer

from .lan import EventLog, LanMap, Stopper, bind_udp, int_to_ip, ip_to_int, parse_hostport, write_ready
from .pskfile import load_psks

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
READ_SIZE = 4096
DGRAM_MAX = 65535
TO_BOX_MAX = 256 * 1024
MAX_SLEEP_S = 5.0  # bound on one select() even without a deadline
TARGET_SOCKETS = 1024  # target-traffic sockets (one per box) kept open at most
LOG_FIRST, LOG_EVERY = 10, 100  # refused LAN datagrams: the first ones logged, then every 100th
# Per-box and per-message events, left out with --quiet (a load test's 10,000 boxes).
QUIET = frozenset(("handed_on", "reply", "received", "handshake_started", "sa_established", "sa_deleted",
                   "handshake_failed", "dropped", "heartbeat_sent", "heartbeat_ack", "rekeyed", "rekey_started",
                   "send_failed", "peer_dead"))


def clock_ms():
    """Real monotonic time as a MicroPython tick value."""
    return int(time.monotonic() * 1000) & ticks.MASK


# --- lines (direct dial, serial) ---------------------------------------------------------

class Line:
    """One byte-stream link to a box: a TCP connection (a call) or a serial device."""

    def __init__(self, name, fd, sock=None, ser=None):
        self.name = name
        self.fd = fd
        self.sock = sock
        self.ser = ser
        self.framer = Framer()
        self.to_box = bytearray()
        self.closed = False
        self.bad_outer = 0
        self.overflow = 0

    def __repr__(self):
        return "Line(%s)" % self.name

    def read(self):
        if self.sock is not None:
            return self.sock.recv(READ_SIZE)
        return os.read(self.fd, READ_SIZE)

    def write(self, data):
        if self.sock is not None:
            return self.sock.send(data)
        return os.write(self.fd, data)

    def close(self):
        self.closed = True
        if self.sock is not None:
            self.sock.close()
        elif self.ser is not None:
            self.ser.close()


# --- the gateway -------------------------------------------------------------------------

class Gateway:
    def __init__(self, address, psks, lan_map, cfg, log, lan_sock=None, tcp=None,
                 serial_dev=None, baud=9600, ready_file=None, lifeline_fd=None,
                 target_sockets=TARGET_SOCKETS, stats_ms=0, quiet=False):
        self.address = address
        self.addr_int = ip_to_int(address)
        self.lan = lan_map
        self.log = log
        self.quiet = quiet
        self.ready_file = ready_file
        self.ep = Endpoint(cfg, address.encode(), psks=psks)
        self.ep.keep_code = True  # an exchange is always near: reloading would cost more than the code
        self.n_boxes = len(psks)
        self.lan_sock = None
        self.sel = selectors.DefaultSelector()
        self.lines = []
        self.n_lines = 0
        self.tsocks = OrderedDict()  # box identity -> UDP socket for its target traffic, least recent first
        self.target_sockets = target_sockets
        self.last_port = {}  # (box identity, target address int) -> port of the last message
        self.stats_ms = stats_ms
        self._stats_at = None
        self.counters = dict.fromkeys(("lan_in", "lan_out", "handed_on", "undeliverable", "replies",
                                       "reply_dropped", "stray", "no_link", "send_errors", "lan_refused",
                                       "target_sockets_recycled"), 0)
        self.srv = None
        self.serial_line = None
        self.closed = False
        try:
            mine = lan_map.lookup(address)
            if mine is None:
                raise ValueError("address %s is not in the LAN map" % address)
            if lan_sock is None:
                lan_sock = bind_udp(mine)
            self.lan_sock = lan_sock  # ours to close from here on
            lan_sock.setblocking(False)
            if tuple(lan_sock.getsockname()[:2]) != tuple(mine):
                raise ValueError("--lan-fd is bound to %s:%d, the LAN map says %s:%d"
                                 % (lan_sock.getsockname()[:2] + tuple(mine)))
            self.sel.register(lan_sock, R, self._on_lan)
            if tcp is not None:
                self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.srv.bind(tcp)
                self.srv.listen(8)
                self.srv.setblocking(False)
                self.sel.register(self.srv, R, self._on_accept)
            if serial_dev is not None:
                import serial
                ser = serial.Serial(serial_dev, baudrate=baud, timeout=0)
                fd = ser.fileno()
                os.set_blocking(fd, False)
                self.serial_line = Line("serial:%s" % serial_dev, fd, ser=ser)
                self._add_line(self.serial_line)
            self.stopper = Stopper(self.sel, lifeline_fd)
        except BaseException:
            if self.lan_sock is None and lan_sock is not None:
                lan_sock.close()
            self._close_fds()
            raise

    # --- loop --------------------------------------------------------------------------

    def ready_info(self):
        return {"address": self.address, "pid": os.getpid(),
                "lan": list(self.lan_sock.getsockname()[:2]),
                "tcp_port": self.srv.getsockname()[1] if self.srv is not None else None,
                "serial": self.serial_line.name[7:] if self.serial_line is not None else None}

    def run(self):
        info = self.ready_info()
        self.log.emit("gateway_ready", address=self.address, lan="%s:%d" % tuple(info["lan"]),
                      tcp_port=info["tcp_port"], serial=info["serial"], boxes=self.n_boxes,
                      heartbeat=self.ep.cfg.gateway_heartbeat)
        if self.ready_file:
            write_ready(self.ready_file, json.dumps(info) + "\n")
        if self.stats_ms:
            self._stats_at = ticks.add(clock_ms(), self.stats_ms)
        while not self.stopper.stop:
            now = clock_ms()
            dl = ticks.earliest(self.ep.next_deadline(), self._stats_at)
            timeout = MAX_SLEEP_S if dl is None else min(MAX_SLEEP_S, max(0, ticks.diff(dl, now)) / 1000.0)
            for key, mask in self.sel.select(timeout):
                key.data(mask)
                if self.stopper.stop:
                    break
            now = clock_ms()
            dl = self.ep.next_deadline()
            if ticks.reached(now, dl):
                self._guard(self.ep.tick, now)
                self._after(now)
            if ticks.reached(now, self._stats_at):
                self._stats_at = ticks.add(now, self.stats_ms)
                self._stats()
        self.close(self.stopper.reason or "stopped")

    def _stats(self):
        """What a head office watches under load: boxes, admission, traffic (counters so far)."""
        ep = self.ep
        self.log.emit("gateway_stats", sessions=len(ep.sessions), half_open=len(ep.half_open),
                      cookies_sent=ep.cookies_sent, turned_away=ep.turned_away, evicted=ep.evicted,
                      refused=ep.refused, target_sockets=len(self.tsocks), **self.counters)

    def close(self, reason="closed"):
        if self.closed:
            return
        self.closed = True
        self.log.emit("gateway_stopped", reason=reason, **self.counters)
        self._close_fds()

    def _close_fds(self):
        for ln in list(self.lines):
            self._line_down(ln, "shutdown")
        socks = list(self.tsocks.values())
        self.tsocks = {}
        if self.lan_sock is not None:
            socks.append(self.lan_sock)
            self.lan_sock = None
        if self.srv is not None:
            socks.append(self.srv)
            self.srv = None
        for s in socks:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        st = getattr(self, "stopper", None)
        if st is not None:
            st.close()
            self.stopper = None
        self.sel.close()

    def _guard(self, fn, *args):
        """Run one endpoint call; a firmware bug is logged, not fatal to the gateway."""
        try:
            fn(*args)
            return True
        except Exception as e:
            self.log.emit("internal_error", where=getattr(fn, "__name__", "?"), error=type(e).__name__)
            traceback.print_exc()
            return False

    # --- the endpoint's results ----------------------------------------------------------

    def _after(self, now):
        """Drain the endpoint: hand messages on first (each is confirmed to the box only once
        it left for its target: `Endpoint.handed_on`), then the packets, the events, raw data."""
        ep = self.ep
        for peer, nh, body in ep.take_messages():
            if nh == wire.NH_MSG:
                self._hand_on(peer, body, now)
            else:
                self.log.emit("ignored", peer=peer, next_header=nh)
        for peer, payload in ep.take_received():
            self._emit("received", peer=peer, bytes=len(payload))
        for link, pkt in ep.take_output():
            self._send(link, pkt)
        for ev in ep.take_events():
            self._emit(ev.name, ev.fields)

    def _emit(self, name, fields=None, **kw):
        if not (self.quiet and name in QUIET):
            self.log.emit(name, fields, **kw)

    def _send(self, link, pkt):
        if isinstance(link, tuple):
            try:
                self.lan_sock.sendto(pkt, link)
                self.counters["lan_out"] += 1
            except OSError:
                self.counters["send_errors"] += 1
            return
        if isinstance(link, Line) and not link.closed:
            try:
                framed = link.framer.encode(pkt)
            except ValueError:
                self.counters["send_errors"] += 1
                return
            if len(link.to_box) + len(framed) > TO_BOX_MAX:
                link.overflow += 1
                return
            link.to_box += framed
            self._flush(link)
            return
        self.counters["no_link"] += 1  # the line it belonged to is gone

    def _hand_on(self, peer, body, now):
        space, num, dst, port, payload = body
        dst_name = int_to_ip(dst)
        dest = self.lan.lookup(dst)
        if dest is None:
            self.counters["undeliverable"] += 1
            self.log.emit("undeliverable", peer=peer, space=space, num=num, dst=dst_name, port=port,
                          bytes=len(payload), reason="not in the LAN map")
            return
        s = self._target_sock(peer)
        try:
            s.sendto(payload, dest)
        except OSError as e:
            self.counters["undeliverable"] += 1
            self.log.emit("undeliverable", peer=peer, space=space, num=num, dst=dst_name, port=port,
                          bytes=len(payload), reason=errno.errorcode.get(e.errno, str(e)))
            return
        self.last_port[(peer, dst)] = port
        self.ep.handed_on(peer, space, num, now)  # confirmed to the box only now
        self.counters["handed_on"] += 1
        self._emit("handed_on", peer=peer, space=space, num=num, dst=dst_name, port=port, bytes=len(payload))

    def _target_sock(self, peer):
        s = self.tsocks.get(peer)
        if s is not None:
            self.tsocks.move_to_end(peer)
            return s
        while len(self.tsocks) >= self.target_sockets:
            _old, gone = self.tsocks.popitem(last=False)  # least recently used: its late answers are lost
            self.sel.unregister(gone)
            gone.close()
            self.counters["target_sockets_recycled"] += 1
        s = bind_udp((self.lan.lookup(self.address)[0], 0))
        self.tsocks[peer] = s
        self.sel.register(s, R, lambda m, p=peer: self._on_target(p))
        return s

    def _on_target(self, peer):
        s = self.tsocks.get(peer)
        if s is None:
            return
        for _ in range(64):
            try:
                data, src = s.recvfrom(DGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            now = clock_ms()
            name = self.lan.reverse(src)
            if name is None:
                self.counters["stray"] += 1
                self.log.emit("stray", peer=peer, src="%s:%d" % src[:2], bytes=len(data))
                continue
            src_int = ip_to_int(name)
            port = self.last_port.get((peer, src_int), 0)
            try:
                self.ep.send_plain(tunnel.encode_reply(src_int, port, data), now, peer)
            except Exception as e:  # ProtocolError: no SA with that box (any more)
                self.counters["reply_dropped"] += 1
                self.log.emit("reply_dropped", peer=peer, src=name, bytes=len(data), reason=str(e))
                self._after(now)
                continue
            self.counters["replies"] += 1
            self._emit("reply", peer=peer, src=name, port=port, bytes=len(data))
            self._after(now)

    # --- the LAN ---------------------------------------------------------------------

    def _on_lan(self, mask):
        for _ in range(64):
            try:
                data, src = self.lan_sock.recvfrom(DGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self.counters["lan_in"] += 1
            src = tuple(src[:2])
            if self.lan.source(src) is None:
                n = self.counters["lan_refused"] = self.counters["lan_refused"] + 1
                if n <= LOG_FIRST or n % LOG_EVERY == 0:
                    self.log.emit("lan_refused", src="%s:%d" % src, bytes=len(data), count=n,
                                  reason="not an access server or a host of the LAN map")
                continue
            now = clock_ms()
            self._guard(self.ep.receive, data, now, src)
            self._after(now)

    # --- lines -------------------------------------------------------------------------

    def _on_accept(self, mask):
        try:
            conn, peer = self.srv.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.n_lines += 1
        self._add_line(Line("tcp#%d" % self.n_lines, conn.fileno(), sock=conn))

    def _add_line(self, ln):
        self.lines.append(ln)
        self.sel.register(ln.fd, R, lambda m, ln=ln: self._on_line(ln, m))
        self.log.emit("line_up", line=ln.name)

    def _on_line(self, ln, mask):
        if mask & W and not ln.closed:
            self._flush(ln)
        if not mask & R or ln.closed:
            return
        try:
            data = ln.read()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._line_down(ln, "error: %s" % errno.errorcode.get(e.errno, e))
            return
        if not data:
            self._line_down(ln, "eof")
            return
        now = clock_ms()
        for frame in ln.framer.feed(data):
            try:
                _ctx, _addr, off = tunnel.decode_outer(frame)
            except Exception:
                ln.bad_outer += 1
                continue
            self._guard(self.ep.receive, frame[off:], now, ln)
            self._after(now)

    def _flush(self, ln):
        if ln.to_box:
            try:
                n = ln.write(ln.to_box)
                del ln.to_box[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._line_down(ln, "error: %s" % errno.errorcode.get(e.errno, e))
                return
        self.sel.modify(ln.fd, R | W if ln.to_box else R, lambda m, ln=ln: self._on_line(ln, m))

    def _line_down(self, ln, reason):
        if ln in self.lines:
            self.lines.remove(ln)
        try:
            self.sel.unregister(ln.fd)
        except (KeyError, ValueError):
            pass
        f = ln.framer
        self.log.emit("line_down", line=ln.name, reason=reason, frames_in=f.frames_in, frames_out=f.frames_out,
                      bad_fcs=f.bad_fcs, bad_outer=ln.bad_outer, overflow=ln.overflow, unsent=len(ln.to_box))
        ln.close()
        self._guard(self.ep.release, ln, clock_ms())  # its half-open handshakes end with the call
        if ln is self.serial_line:
            self.serial_line = None


# --- command line ------------------------------------------------------------------------

def _settings(pairs, heartbeat):
    kw = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        k = k.strip()
        if not sep or not k:
            raise ValueError("--setting expects NAME=VALUE, got %r" % p)
        v = v.strip()
        try:
            kw[k] = int(v)
        except ValueError:
            kw[k] = v
    if heartbeat is not None:
        kw["gateway_heartbeat"] = heartbeat
    return LinkConfig(**kw)


def check_address(text):
    """The gateway's --address in canonical form; ValueError saying what it must be instead."""
    try:
        return int_to_ip(ip_to_int(text))
    except ValueError:
        pass
    what = "a host name" if any(c.isalpha() for c in text) else "not an IPv4 address"
    raise ValueError("--address %s is %s: give the gateway's IPv4 address (four numbers 0-255, e.g. 143.1.0.64), "
                     "the identity the boxes' policies name it by" % (text, what))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gwbox_tools.gateway", description=__doc__.split("\n")[0])
    p.add_argument("--address", required=True, help="this gateway's IPv4 address (its identity)")
    p.add_argument("--psk-file", required=True, help="one '<box identity> <key>' per line")
    p.add_argument("--lan-map", required=True, help="the LanMap JSON file")
    p.add_argument("--tcp", default=None, help="listen for direct-dial calls on HOST:PORT (port 0: any)")
    p.add_argument("--serial", default=None, help="a serial device (e.g. a pty) that is a line from a box")
    p.add_argument("--baud", type=int, default=9600, help="baud rate for --serial")
    p.add_argument("--events", default=None, help="JSON-lines event file (appended); default stdout")
    p.add_argument("--ready-file", default=None, help="JSON {address, pid, lan, tcp_port, serial} once ready")
    p.add_argument("--heartbeat", default=None, choices=(NONE, DEFERRED, INSTANT), help="gateway_heartbeat towards boxes")
    p.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                   help="a LinkConfig setting (repeatable), e.g. defer_ms=2000")
    p.add_argument("--t0", type=float, default=None, help="time.monotonic() value that t_ms counts from")
    p.add_argument("--lan-fd", type=int, default=None, help="inherited UDP socket already bound to the LanMap address")
    p.add_argument("--lifeline-fd", type=int, default=None, help="exit when this inherited fd reads EOF")
    p.add_argument("--target-sockets", type=int, default=TARGET_SOCKETS,
                   help="target-traffic sockets (one per box) kept open at most (default %d)" % TARGET_SOCKETS)
    p.add_argument("--stats-ms", type=int, default=0, help="log gateway_stats this often (0: never)")
    p.add_argument("--quiet", action="store_true", help="leave out per-box and per-message events")
    a = p.parse_args(argv)
    lan_sock = None
    if a.target_sockets < 1 or a.stats_ms < 0:
        print("gateway: --target-sockets must be at least 1 and --stats-ms not negative", file=sys.stderr)
        return 2
    from gwbox.port import host_x25519
    host_x25519.install()  # OpenSSL's X25519 behind the firmware's API: an SA_INIT costs microseconds
    try:
        address = check_address(a.address)
        cfg = _settings(a.setting, a.heartbeat)
        lan = LanMap.load(a.lan_map)
        psks = load_psks(a.psk_file)
        tcp = parse_hostport(a.tcp) if a.tcp is not None else None
        if a.lan_fd is not None:
            lan_sock = socket.socket(fileno=a.lan_fd)
    except (OSError, ValueError) as e:
        print("gateway: %s" % e, file=sys.stderr)
        return 2
    log = EventLog(address, a.events, a.t0)
    try:
        gw = Gateway(address, psks, lan, cfg, log, lan_sock, tcp, a.serial, a.baud, a.ready_file, a.lifeline_fd,
                     a.target_sockets, a.stats_ms, a.quiet)
    except (OSError, ValueError) as e:
        print("gateway %s: %s" % (address, e), file=sys.stderr)
        log.close()
        return 2
    try:
        gw.run()
    finally:
        gw.close("exception")  # no-op after a normal stop
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
