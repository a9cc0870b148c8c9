"""One direction of the emulated phone line: byte rate, one-way delay, and impairments.

Why a module of its own: throttling and impairments are arithmetic on (bytes, now), with
no I/O. The emulator's event loop only asks "what is due now?" and "when is the next byte
due?", so it sleeps exactly until then (no busy-waiting), and the rules can be checked
with a made-up clock. Times are float seconds from any monotonic clock.
"""
import math
from collections import deque

FLAG = 0x7E  # RFC 1662 frame delimiter


class LineShaper:
    """Bytes leave one after another at `rate` bytes/s (8N1: baud / 10); each is delivered
    `latency` s after its last bit left. Bytes due within `tick` s of the previous release
    are released together, which bounds wake-ups at high rates.
    """

    def __init__(self, rate, latency=0.0, tick=0.004):
        self.rate = float(rate)
        self.latency = float(latency)
        self.tick = float(tick)
        self.backlog = 0            # bytes accepted but not yet delivered
        self._segs = deque()        # [start, rate, data, delivered]
        self._free = None           # when the line finishes sending what it has
        self._last_release = -math.inf

    def push(self, data, now):
        """Queue bytes that reach the line at `now`."""
        if not data:
            return
        start = now if self._free is None or self._free < now else self._free
        self._segs.append([start, self.rate, bytes(data), 0])
        self._free = start + len(data) / self.rate
        self.backlog += len(data)

    def pop(self, now):
        """The bytes delivered by `now` (b"" if none)."""
        out = []
        lat = self.latency
        segs = self._segs
        while segs:
            seg = segs[0]
            start, rate, data, sent = seg
            due = int((now - lat - start) * rate + 1e-6)
            if due > len(data):
                due = len(data)
            if due > sent:
                out.append(data[sent:due])
                seg[3] = due
            if due < len(data):
                break
            segs.popleft()
        if not out:
            return b""
        got = b"".join(out)
        self.backlog -= len(got)
        self._last_release = now
        return got

    def next_deadline(self):
        """When pop() will next return something, or None if nothing is queued."""
        if not self._segs:
            return None
        start, rate, data, sent = self._segs[0]
        due = start + (sent + 1) / rate + self.latency
        return max(due, self._last_release + self.tick)

    def clear(self):
        self._segs.clear()
        self.backlog = 0
        self._free = None


class Impairments:
    """Faults applied to one direction's bytes as they leave the line.

    loss: each RFC 1662 frame (the bytes between two 0x7E flags) is dropped whole with
    probability `loss`; the flags themselves are kept, so the far end sees an empty frame,
    which RFC 1662 receivers ignore. The decision is made at the frame's first byte, so
    nothing is buffered. Bytes before the first flag count as a frame.
    ber: every bit is flipped independently with probability `ber` (errors are placed by
    drawing geometric gaps, so a tiny BER costs almost nothing).
    """

    def __init__(self, rng):
        self.rng = rng
        self.ber = 0.0
        self.loss = 0.0
        self.bits_flipped = 0
        self.frames_dropped = 0
        self.bytes_dropped = 0
        self._gap = None            # error-free bits left before the next flipped bit
        self._in_frame = False
        self._dropping = False

    def set_ber(self, p):
        self.ber = _probability(p)
        self._gap = None

    def set_loss(self, p):
        self.loss = _probability(p)

    def new_call(self):
        """A new call starts outside any frame."""
        self._in_frame = False
        self._dropping = False

    def apply(self, data):
        if not data:
            return data
        if self.loss > 0 or self._dropping:
            data = self._drop_frames(data)
        else:
            self._in_frame = data[-1] != FLAG
        if self.ber > 0 and data:
            data = self._flip_bits(data)
        return data

    def _drop_frames(self, data):
        out = bytearray()
        for b in data:
            if b == FLAG:
                self._in_frame = False
                self._dropping = False
                out.append(b)
                continue
            if not self._in_frame:
                self._in_frame = True
                self._dropping = self.loss > 0 and self.rng.random() < self.loss
                if self._dropping:
                    self.frames_dropped += 1
            if self._dropping:
                self.bytes_dropped += 1
            else:
                out.append(b)
        return bytes(out)

    def _draw_gap(self):
        if self.ber >= 1.0:
            return 0
        return int(math.log(1.0 - self.rng.random()) / math.log(1.0 - self.ber))

    def _flip_bits(self, data):
        nbits = len(data) * 8
        pos = self._gap if self._gap is not None else self._draw_gap()
        buf = None
        while pos < nbits:
            if buf is None:
                buf = bytearray(data)
            buf[pos >> 3] ^= 1 << (pos & 7)     # UART order: bit 0 goes first
            self.bits_flipped += 1
            pos += 1 + self._draw_gap()
        self._gap = pos - nbits
        return bytes(buf) if buf is not None else data


def _probability(p):
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError("probability must be within 0..1, got %r" % p)
    return p
