"""gwbox.sa: encrypt-then-MAC, strictly increasing sequence numbers, anti-replay window."""
from gwbox.errors import ProtocolError
from gwbox.sa import REPLAY_WINDOW, InboundSA, OutboundSA, ReplayWindow

EK = b"\x01" * 16
MK = b"\x02" * 32
SPI = 0x8A000001


def pair():
    return OutboundSA(SPI, EK, MK), InboundSA(SPI, EK, MK)


def rejects(fn, *args):
    try:
        fn(*args)
    except ProtocolError:
        return True
    return False


def test_round_trip_and_overhead():
    o, i = pair()
    for n in (0, 1, 15, 16, 17, 100):
        msg = bytes(range(n))
        pkt = o.protect(msg)
        assert len(pkt) == 8 + n + 16  # SPI, seq, ciphertext, ICV: no IV, no padding
        if n >= 4:
            assert pkt[8:-16] != msg  # the body is encrypted
        assert i.unprotect(pkt) == msg
    assert o.seq == 6


def test_sequence_numbers_strictly_increase():
    o, _ = pair()
    seqs = [int.from_bytes(o.protect(b"x")[4:8], "big") for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]


def test_any_bit_flip_is_rejected_without_touching_the_window():
    o, i = pair()
    pkt = o.protect(b"keepalive body")
    for pos in range(len(pkt)):
        bad = bytearray(pkt)
        bad[pos] ^= 0x10
        assert rejects(i.unprotect, bytes(bad)), pos
    assert i.unprotect(pkt) == b"keepalive body"


def test_wrong_key_rejected():
    o = OutboundSA(SPI, EK, MK)
    i = InboundSA(SPI, EK, b"\x03" * 32)
    assert rejects(i.unprotect, o.protect(b"x"))


def test_replay_rejected_and_reorder_within_window_accepted():
    o, i = pair()
    pkts = [o.protect(b"%d" % n) for n in range(100)]
    assert i.unprotect(pkts[50]) == b"50"
    assert rejects(i.unprotect, pkts[50])
    assert i.unprotect(pkts[10]) == b"10"  # 40 behind: inside the window
    assert rejects(i.unprotect, pkts[10])
    assert i.unprotect(pkts[99]) == b"99"
    assert rejects(i.unprotect, pkts[10])  # now 89 behind: left the window
    assert i.unprotect(pkts[99 - REPLAY_WINDOW + 1]) == b"%d" % (99 - REPLAY_WINDOW + 1)


def test_window_edges():
    w = ReplayWindow()
    assert rejects(w.check, 0)
    w.check(1)
    w.accept(1)
    w.accept(1000)
    assert rejects(w.check, 1000)
    assert rejects(w.check, 1000 - REPLAY_WINDOW)
    w.check(1000 - REPLAY_WINDOW + 1)
    assert REPLAY_WINDOW >= 64


def test_truncated_packet_rejected():
    _, i = pair()
    assert rejects(i.unprotect, b"\x8a\x00\x00\x01\x00")
