"""gwbox.wire: messages round-trip, and every malformed input raises ProtocolError only."""
from gwbox import message, wire
from gwbox.errors import ProtocolError
from gwbox.message import Message


def sample_init():
    return Message(wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0,
                   [(wire.PL_SA, message.encode_sa(0x81000001, 0x82000002, [message.DEFAULT_PROPOSAL])),
                    (wire.PL_KE, message.tagged(wire.DH_X25519, b"\x05" * 32)), (wire.PL_NONCE, b"\x07" * 16)],
                   0x81000001, 0)


def test_cleartext_round_trip_and_header_layout():
    raw = message.encode(sample_init(), True)
    assert raw[0] == wire.MARKER
    assert len(raw) == wire.HEADER_LEN + (2 + 8 + 8) + (2 + 33) + (2 + 16)
    m = message.decode(raw, True)
    assert (m.spi_i, m.spi_r, m.exch, m.flags, m.msg_id) == (0x81000001, 0, wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0)
    assert [t for t, _ in m.payloads] == [wire.PL_SA, wire.PL_KE, wire.PL_NONCE]
    ctl, data, props = message.decode_sa(m.require(wire.PL_SA))
    assert (ctl, data) == (0x81000001, 0x82000002)
    assert props == [message.DEFAULT_PROPOSAL]
    assert message.transforms(b"\x02\x02\x03\x01\x01\x01") == [b"\x01\x01", b"\x03\x01"]
    assert message.untag(m.require(wire.PL_KE), wire.DH_X25519, 32) == b"\x05" * 32


def test_inner_round_trip_empty_chain_is_seven_bytes():
    raw = message.encode(Message(wire.EXCH_INFO, wire.FLAG_RESPONSE, 77, []), False)
    assert len(raw) == wire.INNER_LEN == 7
    m = message.decode(raw, False)
    assert m.exch == wire.EXCH_INFO and m.is_response() and m.msg_id == 77 and m.payloads == []


def test_payload_helpers_round_trip():
    assert message.decode_delete(message.encode_delete(wire.PROTO_CONTROL, [0x81000001, 0x92000002])) == (
        wire.PROTO_CONTROL, [0x81000001, 0x92000002])
    assert message.decode_notify(message.encode_notify(wire.N_NO_PROPOSAL_CHOSEN, b"x")) == (14, b"x")
    assert message.untag(message.tagged(wire.ID_KEY_ID, b"branch-17"), wire.ID_KEY_ID) == b"branch-17"
    assert message.untag(message.tagged(wire.AUTH_PSK_MAC, b"\x01" * 32), wire.AUTH_PSK_MAC, 32) == b"\x01" * 32


def malformed_corpus():
    good = message.encode(sample_init(), True)
    corpus = [b"", b"\x00", good[:18], good[:-1], good + b"\x00", good[:wire.HEADER_LEN]]
    bad_len = bytearray(good)
    bad_len[17] ^= 1
    corpus.append(bytes(bad_len))
    bad_ver = bytearray(good)
    bad_ver[10] = 0x20
    corpus.append(bytes(bad_ver))
    bad_exch = bytearray(good)
    bad_exch[11] = 99
    corpus.append(bytes(bad_exch))
    bad_flags = bytearray(good)
    bad_flags[12] = 0xFF
    corpus.append(bytes(bad_flags))
    bad_payload = bytearray(good)
    bad_payload[9] = 200  # unknown first payload type
    corpus.append(bytes(bad_payload))
    long_body = bytearray(good)
    long_body[wire.HEADER_LEN + 1] = 250  # SA body length past the end
    corpus.append(bytes(long_body))
    zero_spi = bytearray(good)
    zero_spi[1:5] = b"\x00\x00\x00\x00"
    corpus.append(bytes(zero_spi))
    for cut in range(len(good)):
        corpus.append(good[:cut])
    return corpus


def test_malformed_cleartext_corpus_raises_protocol_error_only():
    n = 0
    for raw in malformed_corpus():
        try:
            message.decode(raw, True)
        except ProtocolError:
            n += 1
            continue
        raise AssertionError("accepted malformed %r" % raw)
    assert n > 60


def test_malformed_inner_and_bodies_raise_protocol_error():
    def inner(b):
        return message.decode(b, False)

    def ke(b):
        return message.untag(b, wire.DH_X25519, wire.KE_LEN)

    def auth(b):
        return message.untag(b, wire.AUTH_PSK_MAC, 32)

    def ident(b):
        return message.untag(b, wire.ID_KEY_ID)

    cases = [
        (inner, b"\x00\x25"),
        (inner, b"\x00\x63\x00\x00\x00\x00\x01"),
        (inner, b"\x0b\x25\x00\x00\x00\x00\x01\x00\x05ab"),
        (message.decode_sa, b"\x81\x00\x00\x01"),
        (message.decode_sa, b"\x81\x00\x00\x01\x82\x00\x00\x02"),
        (message.decode_sa, b"\x81\x00\x00\x01\x82\x00\x00\x02\x01\x03\x01"),
        (ke, b"\x1f" + b"\x00" * 31),
        (ke, b"\x13" + b"\x00" * 32),
        (ident, b"\x0b"),
        (auth, b"\x02" + b"\x00" * 31),
        (message.decode_notify, b"\x00"),
        (message.decode_delete, b"\x01\x00\x00"),
        (message.decode_delete, b"\x09\x81\x00\x00\x01"),
        (message.check_spi, 0x00FFFFFF),
    ]
    for fn, arg in cases:
        try:
            fn(arg)
        except ProtocolError:
            continue
        raise AssertionError("%s accepted %r" % (fn, arg))


def test_oversize_payload_refused_on_encode():
    try:
        message.encode_chain([(wire.PL_ID, b"x" * 256)])
    except ProtocolError:
        return
    raise AssertionError("256-byte payload encoded")
