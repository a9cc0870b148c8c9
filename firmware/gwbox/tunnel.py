"""The box's tunnel formats: data-SA message bodies and the outer address (docs/protocol.md).

Kept apart from wire.py: a box and a gateway load this when they carry LAN payload; the
protocol core (handshake, SAs, heartbeat) never needs it. Every decoder returns a value
or raises ProtocolError.

Compact messages: a full message (NH_MSG, 12 bytes of header) may bind a *context*
(1..CONTEXTS) to its space, destination and port for the rest of the session; once the
gateway confirmed one that carried the binding, the box sends the next ones through that
context as 2 bytes: next header 0x80 | context, then the number's low byte, which the
gateway completes to the number nearest the highest it has seen in that space. The
window (gwbox.outbox) keeps every number the box sends within 32 below and 96 above
what it last saw confirmed, so the low byte is never ambiguous. 10 of the 12 header
bytes are gone from every message (a 1,000-byte message costs 1,039 line bytes, not 1,049).
Only a first sending is compact: a message sent again goes in full, so a gateway that
somehow lacks a binding learns it from the next copy.
"""
import struct

from gwbox import const
from gwbox.errors import ProtocolError
from gwbox.wire import NH_CONFIRM, NH_MSG, NH_REPLY

MSG_HEAD_LEN = const(13)  # NH + space + number + destination + port + context
_REPLY_HEAD_LEN = const(7)  # NH + source + port
COMPACT = const(0x80)  # next header bit: a compact message through context NH & 0x7F
CONTEXTS = const(16)  # contexts a session binds at most (per-session state at the gateway)
_BEHIND = const(32)  # a compact number lies this far below the box's last confirmed top at most ...
_AHEAD = const(96)  # ... and less than this above (the gateway's low byte resolves +-128)


def encode_msg(space, num, dst, port, payload, ctx=0):
    """A full tunnel message; `ctx` (1..CONTEXTS; 0: none) binds that context to its space,
    destination and port for the rest of the session."""
    return struct.pack(">BBIIHB", NH_MSG, space, num, dst, port, ctx) + payload


def decode_msg(pt):
    """(space, number, destination int, port, payload, context) of an NH_MSG plaintext."""
    if len(pt) < MSG_HEAD_LEN:
        raise ProtocolError("truncated message")
    _, space, num, dst, port, ctx = struct.unpack_from(">BBIIHB", pt, 0)
    if num == 0:
        raise ProtocolError("message number 0")
    if ctx > CONTEXTS:
        raise ProtocolError("message context %d" % ctx)
    return space, num, dst, port, bytes(pt[MSG_HEAD_LEN:]), ctx


def encode_compact(ctx, num, payload):
    return bytes((COMPACT | ctx, num & 0xFF)) + payload


def expand_compact(pt, contexts, top_of):
    """(space, number, destination int, port, payload) of a compact message, from the
    session's `contexts` {ctx: (space, dst, port)} and `top_of(space)`, the highest number
    the gateway has seen there: the number nearest it with the message's low byte."""
    if len(pt) < 2:
        raise ProtocolError("truncated compact message")
    b = contexts.get(pt[0] & 0x7F) if contexts else None
    if b is None:
        raise ProtocolError("unbound message context %d" % (pt[0] & 0x7F))
    space, dst, port = b
    top = top_of(space)
    num = top + ((pt[1] - top) & 0xFF)
    if num - top >= 128:
        num -= 256
    if num < 1:
        raise ProtocolError("compact message number below 1")
    return space, num, dst, port, bytes(pt[2:])


def named(num, top, bits):
    """True if a confirmation (top, bits) names message number `num`."""
    if num == top:
        return True
    off = (top - num) & 0xFFFFFFFF
    return 1 <= off <= 32 and (bits >> (off - 1)) & 1


class Compactor:
    """The box's end of compact messages for one session with one gateway (kept on the
    session: a new session starts afresh on both ends)."""

    def __init__(self):
        self.ctx = {}  # (space, dst, port) -> context
        self.binding = {}  # context -> (space, number of the first full message that carried it)
        self.bound = 0  # bit c: the gateway confirmed a message that bound context c
        self.top = {}  # space -> the top of the gateway's last confirmation

    def encode(self, space, num, dst, port, payload, first):
        """The plaintext for message `num`; compact only on its `first` sending through this
        session, through a context the gateway bound, and near the top it confirmed."""
        key = (space, dst, port)
        c = self.ctx.get(key)
        if c is None and len(self.ctx) < CONTEXTS:
            c = self.ctx[key] = len(self.ctx) + 1
        if c is None:
            return encode_msg(space, num, dst, port, payload)
        t = self.top.get(space)
        if first and self.bound >> c & 1 and t is not None and -_BEHIND <= num - t < _AHEAD:
            return encode_compact(c, num, payload)
        if not self.bound >> c & 1 and c not in self.binding:
            self.binding[c] = (space, num)  # its confirmation will say the gateway bound c
        return encode_msg(space, num, dst, port, payload, c)

    def confirmed(self, space, top, bits):
        self.top[space] = top
        for c in list(self.binding):
            s, num = self.binding[c]
            if s == space and named(num, top, bits):
                self.bound |= 1 << c
                del self.binding[c]


def encode_confirm(space, top, bits):
    return struct.pack(">BBII", NH_CONFIRM, space, top, bits)


def decode_confirm(pt):
    """(space, top, bits): `top` and every top-1-i with bit i set were handed on."""
    if len(pt) != 10:
        raise ProtocolError("bad confirm length %d" % len(pt))
    _, space, top, bits = struct.unpack_from(">BBII", pt, 0)
    return space, top, bits


def encode_reply(src, port, payload):
    return struct.pack(">BIH", NH_REPLY, src, port) + payload


def decode_reply(pt):
    """(source int, port, payload) of an NH_REPLY plaintext."""
    if len(pt) < _REPLY_HEAD_LEN:
        raise ProtocolError("truncated reply")
    _, src, port = struct.unpack_from(">BIH", pt, 0)
    return src, port, bytes(pt[_REPLY_HEAD_LEN:])


# --- outer address: which gateway a box's frame is for (box -> access server) ------------
# One byte: bits 0-6 a context number 1..127 the box gives the gateway for this call; bit 7
# set = the gateway's IPv4 address follows (4 bytes) and binds the context. The access
# server forwards the packet to the bound address; frames towards the box carry no header.

_OUTER_BIND = const(0x80)


def encode_outer(ctx, addr=None):
    """The outer header for context `ctx`, binding it to `addr` (int) when given."""
    if addr is None:
        return bytes([ctx])
    return struct.pack(">BI", _OUTER_BIND | ctx, addr)


def decode_outer(frame):
    """(context, address int or None, offset of the packet) of a box frame."""
    if not frame:
        raise ProtocolError("empty frame")
    ctx = frame[0] & 0x7F
    if ctx == 0:
        raise ProtocolError("outer context 0")
    if frame[0] & _OUTER_BIND:
        if len(frame) < 5:
            raise ProtocolError("truncated outer address")
        return ctx, struct.unpack_from(">I", frame, 1)[0], 5
    return ctx, None, 1
