"""The LAN side over UDP (boards with Wi-Fi or Ethernet, and the unix port's host stand-in).

Applications send the box datagrams for a target inside a [TUNNEL] range: each datagram
is the target's IPv4 address (4 bytes), its port (2 bytes, big-endian), then the payload;
a reply from a target comes back the same way, to the application that last sent to that
target. Non-blocking: `recv` returns None when nothing waits.
"""
import select
import socket
import struct

from gwbox import const

_HEAD = const(6)
_MAX = 1600


class UdpLan:
    def __init__(self, port, host="0.0.0.0"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(socket.getaddrinfo(host, port)[0][-1])
        self.sock.setblocking(False)
        self._poll = select.poll()  # recvfrom() allocates its whole buffer even when nothing waits
        self._poll.register(self.sock, select.POLLIN)
        self._apps = {}  # (target, port) -> the application's address
        self._last = None
        self.bad = 0  # datagrams too short to name a target

    def recv(self):
        """(target IPv4 int, port, payload), or None."""
        while self._poll.poll(0):
            try:
                data, addr = self.sock.recvfrom(_MAX)
            except OSError:
                return None
            if len(data) < _HEAD:
                self.bad += 1
                continue
            dst, port = struct.unpack_from(">IH", data, 0)
            if len(self._apps) > 64:
                self._apps = {}  # bounded: an application that talks again is learnt again
            self._apps[(dst, port)] = addr
            self._last = addr
            return dst, port, data[_HEAD:]
        return None

    def send(self, src, port, payload):
        addr = self._apps.get((src, port), self._last)
        if addr is None:
            return
        try:
            self.sock.sendto(struct.pack(">IH", src, port) + payload, addr)
        except OSError:
            pass  # the application went away: a datagram is best effort
