"""The box's tunnel formats: data-SA message bodies and the outer address (docs/protocol.md).

Kept apart from wire.py: a box and a gateway load this when they carry LAN payload; the
protocol core (handshake, SAs, heartbeat) never needs it. Every decoder returns a value
or raises ProtocolError.
"""
import struct

from gwbox import const
from gwbox.errors import ProtocolError
from gwbox.wire import NH_CONFIRM, NH_MSG, NH_REPLY

MSG_HEAD_LEN = const(12)  # NH + space + number + destination + port
REPLY_HEAD_LEN = const(7)  # NH + source + port


def encode_msg(space, num, dst, port, payload):
    return struct.pack(">BBIIH", NH_MSG, space, num, dst, port) + payload


def decode_msg(pt):
    """(space, number, destination int, port, payload) of an NH_MSG plaintext."""
    if len(pt) < MSG_HEAD_LEN:
        raise ProtocolError("truncated message")
    _, space, num, dst, port = struct.unpack_from(">BBIIH", pt, 0)
    if num == 0:
        raise ProtocolError("message number 0")
    return space, num, dst, port, bytes(pt[MSG_HEAD_LEN:])


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
    if len(pt) < REPLY_HEAD_LEN:
        raise ProtocolError("truncated reply")
    _, src, port = struct.unpack_from(">BIH", pt, 0)
    return src, port, bytes(pt[REPLY_HEAD_LEN:])


# --- outer address: which gateway a box's frame is for (box -> access server) ------------
# One byte: bits 0-6 a context number 1..127 the box gives the gateway for this call; bit 7
# set = the gateway's IPv4 address follows (4 bytes) and binds the context. The access
# server forwards the packet to the bound address; frames towards the box carry no header.

OUTER_BIND = const(0x80)


def encode_outer(ctx, addr=None):
    """The outer header for context `ctx`, binding it to `addr` (int) when given."""
    if addr is None:
        return bytes([ctx])
    return struct.pack(">BI", OUTER_BIND | ctx, addr)


def decode_outer(frame):
    """(context, address int or None, offset of the packet) of a box frame."""
    if not frame:
        raise ProtocolError("empty frame")
    ctx = frame[0] & 0x7F
    if ctx == 0:
        raise ProtocolError("outer context 0")
    if frame[0] & OUTER_BIND:
        if len(frame) < 5:
            raise ProtocolError("truncated outer address")
        return ctx, struct.unpack_from(">I", frame, 1)[0], 5
    return ctx, None, 1
