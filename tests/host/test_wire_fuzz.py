"""Fuzz the wire decoders and the endpoint: any bytes give a value or ProtocolError, never a crash."""
import netsim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwbox import message, wire
from gwbox.errors import ProtocolError
from gwbox.sa import InboundSA

pytestmark = pytest.mark.xdist_group("cpu")  # CPU-bound: one such test at a time in `make test` (Makefile)

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_protocol_error(fn, data):
    try:
        return fn(data)
    except ProtocolError:
        return None


@FAST
@given(st.binary(max_size=300))
def test_cleartext_decoder_total(data):
    m = decodes_or_protocol_error(lambda b: message.decode(b, True), data)
    if m is not None:  # whatever decodes re-encodes to the same bytes
        assert message.encode(m, True) == data


@FAST
@given(st.binary(max_size=300))
def test_inner_decoder_total(data):
    m = decodes_or_protocol_error(lambda b: message.decode(b, False), data)
    if m is not None:
        assert message.encode(m, False) == data


@FAST
@given(st.binary(max_size=80))
def test_body_decoders_total(data):
    for fn in (message.decode_sa, message.decode_notify, message.decode_delete,
               lambda b: message.untag(b, wire.DH_X25519, wire.KE_LEN), lambda b: message.untag(b, wire.ID_KEY_ID)):
        decodes_or_protocol_error(fn, data)


def valid_message():
    payload = st.tuples(st.sampled_from(wire.PAYLOAD_TYPES), st.binary(max_size=40))
    return st.builds(message.Message, st.sampled_from(wire.EXCHANGES),
                     st.sampled_from([0, wire.FLAG_INITIATOR, wire.FLAG_RESPONSE, wire.FLAG_INITIATOR | wire.FLAG_RESPONSE]),
                     st.integers(0, 2 ** 32 - 1), st.lists(payload, max_size=6),
                     st.integers(1, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1))


@FAST
@given(valid_message(), st.data())
def test_round_trip_and_every_mutation_is_handled(msg, data):
    raw = message.encode(msg, True)
    back = message.decode(raw, True)
    assert (back.spi_i, back.spi_r, back.exch, back.flags, back.msg_id, back.payloads) == (
        msg.spi_i, msg.spi_r, msg.exch, msg.flags, msg.msg_id, msg.payloads)
    pos = data.draw(st.integers(0, len(raw) - 1))
    bad = bytearray(raw)
    bad[pos] ^= data.draw(st.integers(1, 255))
    decodes_or_protocol_error(lambda b: message.decode(b, True), bytes(bad))
    decodes_or_protocol_error(lambda b: message.decode(b, True), raw[:pos])


@FAST
@given(st.binary(max_size=120))
def test_inbound_sa_rejects_garbage(data):
    sa = InboundSA(0x81000001, b"\x01" * 16, b"\x02" * 32)
    assert decodes_or_protocol_error(sa.unprotect, b"\x81\x00\x00\x01" + data) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=120), max_size=8), st.data())
def test_endpoints_survive_garbage_and_mutated_packets(garbage, data):
    """Random bytes and bit-flipped real packets, to both sides, mid-session: only
    `dropped` events; the SA and the data path survive."""
    n = netsim.pair()
    n.connect()
    seen = [p for _, p in n.tap]
    for g in garbage:
        n.inject(n.b, g)
        n.inject(n.a, g)
    for p in seen:
        bad = bytearray(p)
        bad[data.draw(st.integers(0, len(p) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        n.inject(n.b, bytes(bad))
        n.inject(n.a, bytes(bad))
    assert_session_survives(n)


# An altered SA_INIT with a fresh-looking SPI is indistinguishable from a new login
# attempt: the gateway may start (and fail) a half-open handshake, nothing more.
GATEWAY_MAY = {"dropped", "handshake_started", "handshake_failed"}


def assert_session_survives(n):
    assert set(n.names(n.a)[2:]) <= {"dropped"}, n.names(n.a)
    assert set(n.names(n.b)[2:]) <= GATEWAY_MAY, n.names(n.b)
    assert len(n.a.sessions) == 1 and len(n.b.sessions) == 1
    n.a.send(b"still here", n.now)
    n.b.send(b"and here", n.now)
    n.run_for(100)
    assert n.got[id(n.b)][-1] == b"still here" and n.got[id(n.a)][-1] == b"and here"


def test_every_single_bit_flip_of_every_handshake_message_is_harmless():
    n = netsim.pair()
    n.connect()
    seen = [p for _, p in n.tap]
    assert len(seen) == 4
    for p in seen:
        for pos in range(len(p)):
            for bit in (0, 7):
                bad = bytearray(p)
                bad[pos] ^= 1 << bit
                n.inject(n.b, bytes(bad))
                n.inject(n.a, bytes(bad))
    assert "handshake_started" in n.names(n.b)  # flips in msg1's SPI did look like new logins
    assert_session_survives(n)
    n.run_for(20000)  # the bogus half-open handshakes time out; the session stays
    assert len(n.b.half_open) == 0 and len(n.b.sessions) == 1
