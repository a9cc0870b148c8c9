"""gwbox.tunnel: message formats, compact messages through bound contexts, the outer address."""
from gwbox import tunnel, wire
from gwbox.errors import ProtocolError
from gwbox.sa import ReplayWindow

DST = 0x0A000005


def raises(fn, *args):
    try:
        fn(*args)
    except ProtocolError:
        return True
    return False


def test_full_message_layout_with_its_context_byte():
    pt = tunnel.encode_msg(1, 0x01020304, DST, 5000, b"pay", 3)
    assert pt == bytes([wire.NH_MSG, 1, 1, 2, 3, 4, 10, 0, 0, 5, 0x13, 0x88, 3]) + b"pay"
    assert len(pt) - 3 == tunnel.MSG_HEAD_LEN == 13
    assert tunnel.decode_msg(pt) == (1, 0x01020304, DST, 5000, b"pay", 3)
    assert tunnel.decode_msg(tunnel.encode_msg(1, 9, DST, 5000, b""))[5] == 0  # binds nothing
    assert raises(tunnel.decode_msg, pt[:12])
    assert raises(tunnel.decode_msg, tunnel.encode_msg(1, 0, DST, 5000, b""))
    assert raises(tunnel.decode_msg, tunnel.encode_msg(1, 9, DST, 5000, b"", tunnel.CONTEXTS + 1))


def test_compact_message_is_two_bytes_and_its_number_the_nearest_to_the_top():
    pt = tunnel.encode_compact(3, 0x1234, b"pay")
    assert pt == bytes([0x83, 0x34]) + b"pay"
    ctx = {3: (1, DST, 5000)}
    for top, num in ((0x1200, 0x1234), (0x1250, 0x1234), (0x12B0, 0x1234), (0x11C0, 0x1234), (0x1233, 0x1234)):
        got = tunnel.expand_compact(pt, ctx, lambda space, top=top: top)
        assert got == (1, num, DST, 5000, b"pay"), (hex(top), got)
    assert tunnel.expand_compact(tunnel.encode_compact(3, 0x1300, b""), ctx, lambda s: 0x12F0)[1] == 0x1300
    assert tunnel.expand_compact(tunnel.encode_compact(3, 5, b""), ctx, lambda s: 1)[1] == 5
    assert raises(tunnel.expand_compact, tunnel.encode_compact(4, 5, b""), ctx, lambda s: 1)  # unbound
    assert raises(tunnel.expand_compact, pt, None, lambda s: 1)  # nothing bound in this session
    assert raises(tunnel.expand_compact, tunnel.encode_compact(3, 0xF0, b""), ctx, lambda s: 3)  # below 1
    assert raises(tunnel.expand_compact, b"\x83", ctx, lambda s: 1)


def test_the_box_goes_compact_once_the_gateway_confirmed_the_binding():
    cp = tunnel.Compactor()
    first = cp.encode(1, 1, DST, 5000, b"a", True)
    assert tunnel.decode_msg(first)[5] == 1  # full, binds context 1
    assert tunnel.decode_msg(cp.encode(1, 2, DST, 5000, b"b", True))[5] == 1  # still full: not confirmed yet
    other = cp.encode(1, 3, DST + 1, 5000, b"c", True)
    assert tunnel.decode_msg(other)[5] == 2  # another destination, another context
    cp.confirmed(1, 2, 0)  # names 2 only: message 1, which bound the context, is not named
    assert cp.encode(1, 4, DST, 5000, b"d", True)[0] == wire.NH_MSG
    cp.confirmed(1, 4, 0b111)  # 4, 3, 2, 1
    assert cp.encode(1, 5, DST, 5000, b"e", True) == bytes([0x81, 5]) + b"e"
    assert cp.encode(1, 6, DST + 1, 5000, b"f", True) == bytes([0x82, 6]) + b"f"
    assert cp.encode(1, 5, DST, 5000, b"e", False)[0] == wire.NH_MSG  # sent again: in full
    assert cp.encode(2, 1, DST, 5000, b"g", True)[0] == wire.NH_MSG  # another space: its own context
    assert cp.encode(1, 4 + 96, DST, 5000, b"h", True)[0] == wire.NH_MSG  # too far above the top seen


def test_contexts_are_bounded_then_messages_go_in_full_without_one():
    cp = tunnel.Compactor()
    for i in range(tunnel.CONTEXTS):
        assert tunnel.decode_msg(cp.encode(1, i + 1, DST, 5000 + i, b"", True))[5] == i + 1
    assert tunnel.decode_msg(cp.encode(1, 99, DST, 6000, b"", True))[5] == 0


def test_compact_numbers_round_trip_through_a_gateway_window():
    # The box keeps a number within 32 below and 96 above the top it saw confirmed; the
    # gateway's own top lies between that and 32 above the oldest number still in flight.
    win = ReplayWindow()
    ctx = {1: (1, DST, 5000)}
    cp = tunnel.Compactor()
    cp.encode(1, 1, DST, 5000, b"", True)
    win.accept(1)
    cp.confirmed(1, 1, 0)
    for num in range(2, 1000):
        pt = cp.encode(1, num, DST, 5000, b"", True)
        assert len(pt) == 2
        got = tunnel.expand_compact(pt, ctx, lambda s: win.top)
        assert got[1] == num
        win.accept(num)
        if num % 7 == 0:
            cp.confirmed(1, win.top, 0)


def test_outer_address_forms():
    assert tunnel.encode_outer(5) == b"\x05"
    assert tunnel.encode_outer(5, 0x8F010040) == b"\x85\x8f\x01\x00\x40"
    assert tunnel.decode_outer(b"\x85\x8f\x01\x00\x40xyz") == (5, 0x8F010040, 5)
    assert tunnel.decode_outer(b"\x05xyz") == (5, None, 1)
    assert raises(tunnel.decode_outer, b"\x80") and raises(tunnel.decode_outer, b"") and raises(
        tunnel.decode_outer, b"\x85\x01")
