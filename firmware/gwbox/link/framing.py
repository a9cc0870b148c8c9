"""HDLC-like framing over the modem's byte stream (RFC 1662, asynchronous).

A frame on the wire is ``7E  escaped(payload + FCS-16, LSB first)  7E``. The
receiver finds frames again after line noise by hunting for the next flag, so
one bad byte costs one frame, never the link. FCS-16 (not FCS-32) because every
payload is already authenticated by an HMAC upstream: the FCS only has to throw
away line noise cheaply, and two bytes per frame matter at 9,600 baud. See
docs/framing.md for that choice, the ACCM default and the counter definitions.

Sans-I/O: ``encode`` returns bytes to write, ``feed`` takes bytes that were read.
"""
from array import array

from gwbox import const

FLAG = 0x7E        # frame boundary
ESC = 0x7D         # control escape: the next byte was XORed with ESC_XOR
ESC_XOR = 0x20
_FCS16_INIT = const(0xFFFF)
GOOD_FCS16 = 0xF0B8  # FCS-16 residue of a frame that includes its own FCS
FCS_LEN = 2
DEFAULT_MAX_PAYLOAD = 1600

# Receiver states.
_DATA = const(0)  # inside a frame
_ESCAPED = const(1)  # inside a frame, the last byte was ESC
_HUNT = const(2)  # out of sync: discard until a flag


def _fcs16_table():
    # Reflected CRC-CCITT (x^16 + x^12 + x^5 + 1, 0x8408): 256 x 2 bytes, built once.
    t = array("H", range(256))
    for b in range(256):
        v = b
        for _ in range(8):
            v = (v >> 1) ^ 0x8408 if v & 1 else v >> 1
        t[b] = v
    return t


_FCS16_TABLE = _fcs16_table()


def fcs16(data, fcs=_FCS16_INIT):
    """RFC 1662 pppfcs16: fold ``data`` into ``fcs``; chain calls by passing it back."""
    t = _FCS16_TABLE
    for b in data:
        fcs = (fcs >> 8) ^ t[(fcs ^ b) & 0xFF]
    return fcs


def fcs16_ok(frame):
    """True if ``frame`` (payload followed by its FCS) is intact."""
    return fcs16(frame) == GOOD_FCS16


class Framer:
    """Encoder and incremental decoder for one serial link, with exact counters.

    ``accm`` is the async control character map (bit n set = escape byte n on send,
    and drop a raw byte n on receive, where the DCE may have inserted it, e.g.
    XON/XOFF). Default 0: the modem line is 8-bit clean after CONNECT and escaping
    the 32 control chars would cost ~12.5% on encrypted (random-looking) payloads.
    """

    COUNTERS = ("frames_in", "frames_out", "bad_fcs", "runts", "oversize", "aborts",
                "resyncs", "bytes_discarded")

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD, accm=0):
        if max_payload < 0:
            raise ValueError("max_payload")
        self.max_payload = max_payload
        self.accm = accm & 0xFFFFFFFF
        # 1 = this byte value must be escaped on send (flag, escape, ACCM chars).
        esc = bytearray(256)
        esc[FLAG] = esc[ESC] = 1
        for c in range(32):
            if self.accm >> c & 1:
                esc[c] = 1
        self._esc = esc
        # One buffer for the frame being received: payload + FCS, written in place.
        self._buf = bytearray(max_payload + FCS_LEN)
        self._mv = memoryview(self._buf)
        self._n = 0        # decoded bytes in _buf
        self._raw = 0      # wire bytes (flags excluded) of the current run
        self._state = _HUNT  # start out of sync: no flag seen yet (modem chatter, noise)
        self.frames_in = 0        # payloads delivered by feed()
        self.frames_out = 0       # frames made by encode()
        self.bad_fcs = 0          # runs ended by a flag that failed the FCS
        self.runts = 0            # runs too short to hold an FCS (RFC 1662 4.3: not FCS errors)
        self.oversize = 0         # runs that overran max_payload (counted at the overrun)
        self.aborts = 0           # runs ended by ESC FLAG (RFC 1662 abort sequence)
        self.resyncs = 0          # flags that ended a discarded, non-empty run
        self.bytes_discarded = 0  # wire bytes (not flags) that did not end in a delivered frame

    def counters(self):
        """Snapshot of the counters, for status views and events."""
        return {k: getattr(self, k) for k in self.COUNTERS}

    def encode(self, payload):
        """One complete frame: FLAG, escaped payload + FCS, FLAG.

        Both flags, always: a frame never depends on the one before it, and a bit
        error on a flag then costs only that frame, not its neighbour too.
        """
        n = len(payload)
        if n > self.max_payload:
            raise ValueError("payload of %d bytes > max_payload %d" % (n, self.max_payload))
        fcs = fcs16(payload) ^ 0xFFFF
        tail = bytes((fcs & 0xFF, fcs >> 8))
        esc = self._esc
        extra = esc[tail[0]] + esc[tail[1]]
        for b in payload:
            extra += esc[b]
        # Exact size up front: one allocation, no growing while escaping.
        out = bytearray(n + FCS_LEN + 2 + extra)
        out[0] = FLAG
        i = 1
        for part in (payload, tail):
            for b in part:
                if esc[b]:
                    out[i] = ESC
                    out[i + 1] = b ^ ESC_XOR
                    i += 2
                else:
                    out[i] = b
                    i += 1
        out[i] = FLAG
        self.frames_out += 1
        return bytes(out)

    def feed(self, chunk):
        """Take wire bytes (any split); return the complete, FCS-valid payloads in order."""
        out = []
        buf = self._buf
        cap = len(buf)
        n = self._n
        raw = self._raw
        state = self._state
        rx_drop = self.accm
        for b in chunk:
            if b == FLAG:
                if raw:
                    self._end_run(state, n, raw, out)
                n = raw = 0
                state = _DATA
                continue
            if b < 32 and rx_drop >> b & 1:
                self.bytes_discarded += 1  # inserted by the DCE, never part of a frame
                continue
            raw += 1
            if state == _HUNT:
                continue
            if state == _ESCAPED:
                b ^= ESC_XOR
                state = _DATA
            elif b == ESC:
                state = _ESCAPED
                continue
            if n == cap:
                self.oversize += 1
                state = _HUNT  # overrun: drop everything up to the next flag
                continue
            buf[n] = b
            n += 1
        self._n = n
        self._raw = raw
        self._state = state
        return out

    def _end_run(self, state, n, raw, out):
        # A flag closed a non-empty run of wire bytes: deliver it or count why not.
        if state == _DATA and n >= FCS_LEN and fcs16(self._mv[:n]) == GOOD_FCS16:
            out.append(bytes(self._mv[:n - FCS_LEN]))
            self.frames_in += 1
            return
        if state == _ESCAPED:
            self.aborts += 1
        elif state == _DATA and n < FCS_LEN:
            self.runts += 1
        elif state == _DATA:
            self.bad_fcs += 1
        # _HUNT: oversize was counted at the overrun; leading noise has no counter of its own.
        self.resyncs += 1
        self.bytes_discarded += raw
