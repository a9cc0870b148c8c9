"""Property tests for gwbox.link.framing (CPython only: hypothesis).

The decoder is checked against a reference model written the obvious, non-incremental
way (split the whole stream at flags, bit-by-bit CRC), so payloads *and* every counter
must agree for any input and any chunking.
"""
import pytest
from hypothesis import event, given, settings, strategies as st

from gwbox.link.framing import Framer

pytestmark = pytest.mark.xdist_group("cpu")  # CPU-bound: one such test at a time in `make test` (Makefile)

FLAG, ESC = 0x7E, 0x7D
ACCMS = st.sampled_from([0, 0x000A0000, 0xFFFFFFFF])
# Bytes with flags and escapes over-represented, so framing paths are hit often.
WIRE_BYTES = st.lists(st.one_of(st.sampled_from([FLAG, ESC]), st.integers(0, 255)),
                      max_size=3000).map(bytes)


def ref_fcs16(data):
    """RFC 1662 FCS-16 bit by bit, independent of the module's table."""
    fcs = 0xFFFF
    for b in data:
        fcs ^= b
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs


def model(stream, max_payload, accm):
    """Reference receiver: (payloads, counters) for one whole stream."""
    c = dict.fromkeys(Framer.COUNTERS, 0)
    out = []
    runs = stream.split(bytes([FLAG]))
    for i, run in enumerate(runs):
        closed = i < len(runs) - 1
        kept = bytes(b for b in run if not (b < 32 and accm >> b & 1))
        c["bytes_discarded"] += len(run) - len(kept)  # DCE-inserted, dropped at once
        if i == 0:  # before the first flag: hunting, never a frame
            if closed and kept:
                c["resyncs"] += 1
                c["bytes_discarded"] += len(kept)
            continue
        data, esc, over = bytearray(), False, False
        for b in kept:
            if esc:
                data.append(b ^ 0x20)
                esc = False
            elif b == ESC:
                esc = True
            else:
                data.append(b)
            if len(data) > max_payload + 2:
                over = True
                break
        c["oversize"] += over
        if not closed or not kept:
            continue
        if not over and esc:
            c["aborts"] += 1
        elif not over and len(data) < 2:
            c["runts"] += 1
        elif not over and ref_fcs16(data) == 0xF0B8:
            out.append(bytes(data[:-2]))
            c["frames_in"] += 1
            continue
        elif not over:
            c["bad_fcs"] += 1
        c["resyncs"] += 1
        c["bytes_discarded"] += len(kept)
    return out, c


def feed_in_chunks(rx, stream, sizes):
    out, i, k = [], 0, 0
    while i < len(stream):
        n = sizes[k % len(sizes)]
        out.extend(rx.feed(stream[i:i + n]))
        i, k = i + n, k + 1
    return out


CHUNKS = st.lists(st.integers(1, 256), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=20), CHUNKS, ACCMS)
def test_payload_lists_round_trip_under_any_chunking(payloads, sizes, accm):
    tx, rx = Framer(accm=accm), Framer(accm=accm)
    stream = b"".join(tx.encode(p) for p in payloads)
    assert feed_in_chunks(rx, stream, sizes) == payloads
    assert rx.counters() == dict(dict.fromkeys(Framer.COUNTERS, 0), frames_in=len(payloads))
    assert tx.frames_out == len(payloads)


@settings(max_examples=400, deadline=None)
@given(WIRE_BYTES, CHUNKS, st.sampled_from([0, 3, 16, 1600]), ACCMS)
def test_garbage_never_raises_and_matches_reference_model(garbage, sizes, max_payload, accm):
    rx = Framer(max_payload=max_payload, accm=accm)
    got = feed_in_chunks(rx, garbage, sizes)
    want, counters = model(garbage, max_payload, accm)
    assert got == want  # so every payload delivered passed an independent FCS check
    assert rx.counters() == counters
    for k in ("frames_in", "bad_fcs", "runts", "oversize", "aborts"):
        if counters[k]:
            event("saw " + k)  # --hypothesis-show-statistics: which paths were hit


_ENC = Framer()
# Good frames (0..40 byte payloads) and short bursts of noise, in any order.
MIXED = st.lists(st.one_of(st.binary(max_size=40).map(_ENC.encode),
                           st.lists(st.one_of(st.sampled_from([FLAG, ESC]), st.integers(0, 255)),
                                    max_size=60).map(bytes)),
                 max_size=25).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(MIXED, CHUNKS, st.sampled_from([0, 16, 1600]), ACCMS)
def test_mixed_frames_and_noise_match_reference_model(stream, sizes, max_payload, accm):
    rx = Framer(max_payload=max_payload, accm=accm)
    got = feed_in_chunks(rx, stream, sizes)
    want, counters = model(stream, max_payload, accm)
    assert got == want
    assert rx.counters() == counters
    for k in ("frames_in", "bad_fcs", "runts", "oversize", "aborts", "resyncs"):
        if counters[k]:
            event("saw " + k)


@settings(max_examples=300, deadline=None)
@given(WIRE_BYTES, st.binary(max_size=16), CHUNKS, st.sampled_from([16, 1600]))
def test_garbage_then_good_frame_delivers_the_good_frame(garbage, payload, sizes, max_payload):
    tx, rx = Framer(max_payload=max_payload), Framer(max_payload=max_payload)
    frame = tx.encode(payload)
    got = feed_in_chunks(rx, garbage + frame, sizes)
    assert got and got[-1] == payload
    want, counters = model(garbage + frame, max_payload, 0)
    assert got == want
    assert rx.counters() == counters


def test_model_agrees_with_hand_counted_case():
    stream = b"xx\x7e\x01\x7e\x02\x7d\x7e" + Framer().encode(b"ok")
    out, c = model(stream, 1600, 0)
    assert out == [b"ok"]
    assert (c["resyncs"], c["runts"], c["bad_fcs"], c["aborts"], c["bytes_discarded"]) == (3, 1, 0, 1, 5)
