"""gwbox.handshake via two endpoints: success, every failure is a clean event with no SA."""
# mp-heap: 128K  (hosts both parties: two devices, two 64K device heaps, in one interpreter)
import netsim
from gwbox import ticks, wire
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint


def no_sessions(n):
    return n.a.session() is None and n.b.session() is None


def test_handshake_establishes_both_sas_and_data_flows():
    n = netsim.pair()
    n.connect()
    assert n.names(n.a) == ["handshake_started", "sa_established"]
    assert n.names(n.b) == ["handshake_started", "sa_established"]
    assert n.first(n.a, "sa_established").get("peer") == b"gw1"
    assert n.first(n.b, "sa_established").get("peer") == b"box1"
    assert len(n.tap) == 4  # msg1..msg4, nothing else
    sa, sb = n.a.session(), n.b.session()
    assert sa.current.ctl_in.spi == sb.current.ctl_out.spi and sa.current.data_out.spi == sb.current.data_in.spi
    assert sa.current.ctl_in.spi != sa.current.data_in.spi
    n.a.send(b"ping", n.now)
    n.b.send(b"pong", n.now)
    n.run_for(100)
    assert n.got[id(n.b)] == [b"ping"] and n.got[id(n.a)] == [b"pong"]


def test_handshake_bytes_are_bounded():
    n = netsim.pair()
    n.connect()
    sizes = [len(p) for _, p in n.tap]
    assert sizes[0] == sizes[1] == 19 + 18 + 35 + 18  # header + SA + KE + NONCE
    assert sum(sizes) < 400


# A refusal reaches the box before anything authenticates (a notify under keys a man in
# the middle may hold too): the box notes it and gives up only at its own timer, the next
# retransmission time (handshake_retry_ms, 3 s), having listened for a better answer.

def test_wrong_psk_fails_cleanly_on_both_sides():
    n = netsim.pair(gw_psk=b"\x22" * 32)
    n.a.connect(n.now)
    n.run_for(1000)
    assert no_sessions(n)
    assert n.first(n.b, "handshake_failed").get("reason") == "authentication_failed"
    assert n.first(n.a, "handshake_failed") is None  # still listening
    n.run_for(2500)
    assert n.first(n.a, "handshake_failed").get("reason") == "authentication_failed"
    assert "sa_established" not in n.names(n.a) + n.names(n.b)


def test_unknown_identity_fails_like_a_wrong_psk():
    n = netsim.pair(box_id=b"intruder")
    n.b._psks = {b"box1": netsim.PSK}
    n.a.connect(n.now)
    n.run_for(3500)
    assert no_sessions(n)
    assert n.first(n.b, "handshake_failed").get("reason") == "unknown_identity"
    assert n.first(n.a, "handshake_failed").get("reason") == "authentication_failed"


def test_wrong_gateway_identity_is_refused_by_the_box():
    n = netsim.pair(expect=b"gw-other")  # the box keys with gw-other; gw1 answers
    n.a.connect(n.now)
    n.run_for(1000)
    assert n.a.session() is None
    assert n.first(n.a, "handshake_failed").get("reason") == "wrong_peer_identity"


def test_unsupported_proposal_gets_no_proposal_chosen():
    # The key-exchange code is loaded now (the suite it speaks is the real one), and the
    # codec patched is the very module it uses (it is dropped and reloaded between exchanges).
    from gwbox.handshake import SUITE, message as codec
    assert SUITE
    saved = codec.DEFAULT_PROPOSAL
    codec.DEFAULT_PROPOSAL = bytes([1, 3, wire.TF_ENCR, 99, wire.TF_INTEG, 1, wire.TF_DH, 31])
    try:
        n = netsim.pair()
        n.a.connect(n.now)
    finally:
        codec.DEFAULT_PROPOSAL = saved
    n.run_for(3500)
    assert no_sessions(n)
    assert n.b.refused == 1 and len(n.b.half_open) == 0 and n.names(n.b) == []  # answered statelessly
    assert n.first(n.a, "handshake_failed").get("reason") == "no_proposal_chosen"


def test_truncated_handshake_messages_are_dropped_then_time_out():
    cfg = LinkConfig(handshake_retry_ms=500, handshake_retries=1)
    n = netsim.pair(cfg)
    n.drop = lambda src, p: True  # capture only
    n.a.connect(n.now)
    n.run_for(10)
    msg1 = n.tap[0][1]
    for cut in (0, 1, 5, 19, len(msg1) - 1):
        n.inject(n.b, msg1[:cut])
    assert n.names(n.b).count("dropped") == 5 and n.b.session() is None
    n.drop = None
    n.inject(n.b, msg1)  # the genuine one: the gateway answers
    msg2 = n.tap[-1][1]
    n.drop = lambda src, p: True
    n.inject(n.a, msg2[:-3])
    assert n.names(n.a)[-1] == "dropped"
    n.run_for(5000)
    assert no_sessions(n)
    assert n.first(n.a, "handshake_failed").get("reason") == "timeout"
    assert n.first(n.b, "handshake_failed").get("reason") == "timeout"


def test_replayed_handshake_messages_change_nothing():
    n = netsim.pair()
    n.connect()
    msgs = [p for _, p in n.tap[:4]]
    sa, sb = n.a.session(), n.b.session()
    before_a, before_b = len(n.names(n.a)), len(n.names(n.b))
    n.inject(n.b, msgs[0])
    n.inject(n.a, msgs[1])
    n.inject(n.b, msgs[2])
    n.inject(n.a, msgs[3])
    n.run_for(100)
    assert n.a.session() is sa and n.b.session() is sb
    assert n.names(n.a)[before_a:] == ["dropped", "dropped"]
    assert n.names(n.b)[before_b:] == ["dropped", "dropped"]
    assert len(n.a.sessions) == 1 and len(n.b.sessions) == 1


def test_lost_msg2_and_lost_msg4_are_retransmitted():
    for lost in (1, 3):
        cfg = LinkConfig(handshake_retry_ms=400)
        n = netsim.pair(cfg)
        state = {"count": 0}

        def drop(src, p, state=state, lost=lost):
            state["count"] += 1
            return state["count"] == lost + 1

        n.drop = drop
        n.a.connect(n.now)
        n.run_for(2000)
        assert n.a.session() is not None and n.b.session() is not None, lost
        assert n.names(n.b).count("sa_established") == 1


def test_handshake_gives_up_when_nobody_answers():
    cfg = LinkConfig(handshake_retry_ms=500, handshake_retries=2)
    n = netsim.pair(cfg)
    n.cut = True
    n.a.connect(n.now)
    n.run_for(1400)
    assert n.first(n.a, "handshake_failed") is None
    n.run_for(200)
    assert n.first(n.a, "handshake_failed").get("reason") == "timeout"
    assert sum(1 for src, _ in n.tap if src == "a") == 3


def test_relogin_replaces_the_stale_sa():
    n = netsim.pair()
    n.connect()
    old = n.b.session()
    rebooted = Endpoint(LinkConfig(), b"box1", psk=netsim.PSK, expect_peer=b"gw1")
    n2 = netsim.Net(rebooted, n.b)
    n2.now = n.now
    n2.connect()
    assert n.b.sessions == [n2.b.session()] and n2.b.session() is not old
    deleted = [e for e in n2.events[id(n.b)] if e.name == "sa_deleted"]
    assert len(deleted) == 1 and deleted[0].get("reason") == "replaced"
    assert ticks.diff(n2.now, netsim.START) > 0


def test_first_handshake_code_is_dropped_after_use_and_loaded_again():
    import sys
    n = netsim.pair()
    n.connect()
    # no handshake in progress: initiator.py and responder.py are not held (docs/memory.md)
    assert "gwbox.initiator" not in sys.modules and "gwbox.responder" not in sys.modules
    n.a.close(n.now)
    n.run_for(100)
    assert no_sessions(n)
    n.a.connect(n.now)  # imports the initiator again; the SA_INIT brings the responder back
    n.run_for(1000)
    assert n.a.session() is not None and n.b.session() is not None
    assert n.names(n.a).count("sa_established") == 2
    assert "gwbox.initiator" not in sys.modules and "gwbox.responder" not in sys.modules


# --- an active attacker on the line (issue 8) ---------------------------------------------

def forged_msg1(seed):
    """A well-formed SA_INIT from someone who has no key (each with its own SPI and X25519 key)."""
    atk = Endpoint(LinkConfig(), b"atk%d" % seed, psk=b"\x01" * 32, expect_peer=b"gw1")
    atk.connect(netsim.START)
    return netsim.output(atk, netsim.START)[0][1]


def test_a_flood_of_sa_inits_cannot_lock_the_box_out():
    n = netsim.pair()
    flood = [forged_msg1(i) for i in range(12)]
    for p in flood:
        n.inject(n.b, p)  # on the box's own line
    assert len(n.b.half_open) <= 2 and n.b.cookies_sent >= 10  # cookies, not state
    n.a.connect(n.now)
    for p in flood[:4]:
        n.inject(n.b, p)  # the flood goes on while the box logs in
    n.run_for(500)
    assert n.a.session() is not None and n.b.session() is not None  # within one round trip of a cookie
    assert n.first(n.a, "handshake_failed") is None


def test_half_open_state_goes_with_its_link():
    n = netsim.pair()
    n.b.receive(forged_msg1(1), n.now, "call-1")
    n.b.receive(forged_msg1(2), n.now, "call-2")
    assert len(n.b.half_open) == 2
    n.b.release("call-1", n.now)
    assert [r.link for r in n.b.half_open] == ["call-2"]


def test_a_low_order_key_costs_no_state_and_no_x25519():
    from gwbox import message
    msg = message.decode(forged_msg1(3), True)
    msg.payloads = [(t, b if t != wire.PL_KE else bytes([wire.DH_X25519]) + bytes(32)) for t, b in msg.payloads]
    n = netsim.pair()
    n.inject(n.b, message.encode(msg, True))
    assert len(n.b.half_open) == 0 and "low-order" in n.events[id(n.b)][-1].get("reason")


def test_unsupported_transforms_are_refused_without_loading_the_responder():
    import sys
    from gwbox import message
    msg = message.decode(forged_msg1(4), True)
    msg.payloads = [(t, b if t != wire.PL_SA else b[:8] + bytes([1, 1, wire.TF_ENCR, 99])) for t, b in msg.payloads]
    n = netsim.pair()
    sys.modules.pop("gwbox.responder", None)  # whatever an earlier test left loaded
    n.inject(n.b, message.encode(msg, True))
    assert n.b.refused == 1 and "gwbox.responder" not in sys.modules and len(n.b.half_open) == 0


def test_a_forged_refusal_does_not_end_the_box_s_handshake():
    from gwbox import message
    n = netsim.pair()
    n.a.connect(n.now)
    n.run_for(0)
    spi_i = n.a.initiators[0].spi_i
    forged = message.encode(message.Message(wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
                                            [(wire.PL_NOTIFY, message.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))],
                                            spi_i, 0), True)
    n.inject(n.a, forged)  # 23 bytes, ahead of the genuine answer
    assert n.first(n.a, "handshake_failed") is None
    n.run_for(500)
    assert n.a.session() is not None and n.b.session() is not None


def test_a_forged_response_with_the_attacker_s_own_key_does_not_end_it_either():
    n = netsim.pair()
    mitm = Endpoint(LinkConfig(), b"gw1", psks={b"box1": b"\x02" * 32})  # wrong key: can't sign AUTH
    n.a.connect(n.now)
    msg1 = netsim.output(n.a, n.now)[0][1]
    n.b.receive(msg1, n.now)  # the genuine gateway gets it too
    n.run_for(0)
    mitm.receive(msg1, n.now)
    n.inject(n.a, mitm.take_output()[0][1])  # the forged msg2 arrives first
    n.run_for(500)
    assert n.a.session() is not None and n.a.session().peer_id == b"gw1"
    assert n.b.session() is not None


def test_an_unauthenticated_packet_never_re_points_a_session_s_link():
    n = netsim.pair()
    n.a.connect(n.now)
    n.run_for(200)
    s = n.b.session()
    s.link = "call-1"
    good = s.out_sas.data_out.protect(b"\x01x")  # any genuine-looking header, bad ICV for the gateway
    forged = good[:8] + bytes(len(good) - 8)
    spi = s.current.data_in.spi.to_bytes(4, "big")
    n.b.receive(spi + forged[4:], n.now, "attacker-link")
    assert s.link == "call-1" and [e.name for e in n.b.take_events()] == ["dropped"]


# --- admission at scale (issue 20): a global cookie threshold, eviction per source -----------

def gw_only(**kw):
    return netsim.pair(gw_cfg=LinkConfig(**kw))


def test_cookies_are_demanded_once_the_total_half_open_count_reaches_the_threshold():
    """IKEv2's rule (RFC 7296 2.6): per link a first SA_INIT gets state, but once the
    gateway holds cookie_threshold half-open handshakes in all, a new link must return a
    cookie first; the cookie costs no state."""
    n = gw_only(cookie_threshold=3)
    for i in range(3):
        n.b.receive(forged_msg1(10 + i), n.now, "call-%d" % i)
    assert len(n.b.half_open) == 3 and n.b.cookies_sent == 0
    n.b.receive(forged_msg1(20), n.now, "call-9")
    assert len(n.b.half_open) == 3 and n.b.cookies_sent == 1
    assert [link for link, _ in n.b.take_output()][-1] == "call-9"
    n.run_for(2000)
    n.a.connect(n.now)  # a real box now also has to return a cookie, and then logs in
    n.run_for(500)
    assert n.a.session() is not None and n.b.cookies_sent == 2


def test_a_flood_from_changing_sources_cannot_push_out_a_real_box_s_handshake():
    """Half-open state is evicted per source: SA_INITs from 40 other links (cookies off,
    so each would take state) find the table full and are turned away; the box's own
    half-open handshake stays and completes."""
    n = gw_only(half_open_max=4, cookie_threshold=1000)
    n.a.connect(n.now)
    n.run_for(25)  # the box's msg1 reached the gateway: its half-open entry exists
    assert len(n.b.half_open) == 1
    for i in range(40):
        n.b.receive(forged_msg1(100 + i), n.now, "atk-%d" % i)
    assert len(n.b.half_open) == 4 and n.b.turned_away == 37 and n.b.evicted == 0
    n.run_for(500)
    assert n.a.session() is not None and n.b.session() is not None
    assert n.first(n.a, "handshake_failed") is None


def test_a_link_at_its_bound_makes_room_from_its_own_handshakes_only():
    n = gw_only(cookie_threshold=1000)
    n.b.receive(forged_msg1(200), n.now, "other")
    first = forged_msg1(201)
    n.b.receive(first, n.now, "call")
    assert len(n.b.half_open) == 2
    # the same link again: a cookie first (a handshake is in progress there), then state
    n.b.take_output()
    n.b.receive(forged_msg1(202), n.now, "call")
    cookie = n.b.take_output()
    assert n.b.cookies_sent == 1 and len(cookie) == 1
    links = sorted(n.b.half_open.values())
    assert links == ["call", "other"]
