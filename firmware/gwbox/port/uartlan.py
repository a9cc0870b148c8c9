"""The LAN side on a second UART: a serial device (a till, an alarm panel, a PLC) carried
transparently through the tunnel to one target address (policy: LanUart; the board file names
the UART and its speed: LAN_UART = (id, tx, rx, baud)).

Bytes from the UART become datagrams for the target: a datagram goes once the line has
been quiet for GAP_MS or MAX bytes have gathered, so a burst is one message, not one per
poll. What the target sends back (tunnel replies from that address) is written to the
UART as it is (what the UART's buffers do not take at once waits for the next pass). The box routes the datagrams by its [TUNNEL] ranges like any other LAN
payload. `Lans` puts this beside the UDP side (gwbox.port.udplan) on boards with Wi-Fi.
"""
import time

from gwbox import const, ticks
from gwbox.port.device import take, write_all  # the device port's UART reading and writing

GAP_MS = const(30)
MAX = const(200)
HOLD = const(2048)  # reply bytes held for a slow UART (9,600 baud: 2 s of line); beyond, dropped and counted


class UartLan:
    def __init__(self, uart, target, port, clock=None):
        self.uart = uart
        self.target = target  # IPv4 int
        self.port = port
        self.clock = clock or time.ticks_ms
        self.buf = bytearray()
        self.at = 0  # when the last byte came
        self.held = None  # reply bytes the UART did not take yet (device.write_all)
        self.dropped = 0

    def recv(self):
        """(target, port, payload) once a datagram is complete, else None."""
        now = self.clock() & ticks.MASK
        if self.held:
            self._write(None)
        data = take(self.uart)
        if data:
            self.buf.extend(data)
            self.at = now
        b = self.buf
        if b and (len(b) >= MAX or ticks.diff(now, self.at) >= GAP_MS):
            out = bytes(b[:MAX])
            self.buf = b[MAX:]
            return self.target, self.port, out
        return None

    def send(self, src, port, payload):
        if src == self.target:
            self._write(payload)
            return True
        return False

    def _write(self, data):
        self.held, lost = write_all(self.uart, self.held, data, HOLD)
        self.dropped += lost


class Lans:
    """Several LAN sides as one: datagrams in from each; a reply goes to the first that takes it."""

    def __init__(self, *lans):
        self.lans = lans

    def recv(self):
        for lan in self.lans:
            d = lan.recv()
            if d is not None:
                return d
        return None

    def send(self, src, port, payload):
        for lan in self.lans:
            if lan.send(src, port, payload) is not False:
                return
