"""gwbox.session: protected heartbeat, dead-peer teardown, tunnel messages, make-before-break rekey."""
# mp-heap: 128K  (hosts both parties: two devices, two 64K device heaps, in one interpreter)
import hashlib

import netsim
from gwbox import ticks, tunnel, wire
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint

CFG = dict(defer_ms=3000, response_ms=500, retries=2)


def connected(**kw):
    d = dict(CFG)
    d.update(kw)
    n = netsim.pair(LinkConfig(**d))
    n.connect(settle_ms=200)
    return n


def test_idle_link_exchanges_protected_heartbeats_of_26_bytes():
    n = connected()
    start = n.tapped
    n.run_for(10000)
    hb = n.since(start)
    assert [src for src, _ in hb] == ["a", "b"] * 3  # only the box probes: gateways default to NONE
    assert all(len(p) == 26 for _, p in hb)  # SPI 4 + seq 4 + next header 1 + id 1 + ICV 16
    assert n.names(n.a).count("heartbeat_ack") == 3
    assert "heartbeat_sent" not in n.names(n.b)


def test_the_gateways_own_traffic_is_no_proof_of_life():
    # Only an answer to something the box sent proves the gateway alive *now*: its data
    # could have been held back by an attacker, so it does not postpone the heartbeat.
    n = connected()
    for _ in range(7):
        n.b.send(b"x", n.now)
        n.run_for(1000)
    assert n.names(n.a).count("heartbeat_sent") == 2 and n.names(n.a).count("heartbeat_ack") == 2


def test_silent_peer_declared_dead_then_sas_deleted_with_a_protected_delete():
    n = connected()
    n.run_for(100)
    n.cut = True
    mark = n.tapped
    n.run_for(20000)
    names = n.names(n.a)
    assert names[-2:] == ["peer_dead", "sa_deleted"]  # in that order, last
    assert names.count("heartbeat_sent") == 3  # the request and its 2 retries
    dead = [e for e in n.events[id(n.a)] if e.name == "peer_dead"][0]
    assert dead.get("waited_ms") == 3 * 500  # from the first heartbeat to the verdict
    deleted = n.events[id(n.a)][-1]
    assert deleted.get("reason") == "peer_dead"
    assert n.a.session() is None and n.a.next_deadline() is None
    # what the box put on the (cut) wire: 3 heartbeats of 26 bytes, then a protected
    # DELETE naming its two inbound SPIs (8 + 7 + 2 + 1 + 8 + 16 bytes)
    sent = [p for src, p in n.since(mark) if src == "a"]
    assert [len(p) for p in sent] == [26, 26, 26, 42]


def detect_time(n, ep):
    """Virtual ms from now until `ep` reports peer_dead (stepping 10 ms)."""
    t0 = n.now
    for _ in range(3000):
        n.run_for(10)
        if "peer_dead" in n.names(ep):
            return ticks.diff(n.now, t0)
    return None


def test_detection_time_is_exactly_the_bound_after_the_last_proof():
    n = connected()
    n.run_for(3000 + 20)  # first heartbeat sent at +3000, its ack arrives at +3040
    while "heartbeat_ack" not in n.names(n.a):
        n.run_for(10)
    proof = n.a.session().heartbeat.proven  # the tick the answered heartbeat was sent
    n.cut = True
    t = detect_time(n, n.a)
    assert ticks.diff(ticks.add(n.now, 0), proof) - 10 < LinkConfig(**CFG).detect_bound_ms() <= \
        ticks.diff(n.now, proof), t


def test_gateway_probes_only_when_configured():
    n = connected(gateway_heartbeat="INSTANT")
    n.drop = lambda src, p: src == "a"  # the box goes silent: only the gateway can tell
    t = detect_time(n, n.b)
    assert t is not None and t <= LinkConfig(**CFG).detect_bound_ms()
    assert "heartbeat_sent" in n.names(n.b)


def test_forged_replayed_and_stale_answers_never_count():
    n = connected()
    held = []

    def hold_first_ack(src, p):
        if src == "b" and not held:
            held.append(p)
            return True
        return False

    n.drop = hold_first_ack
    n.run_for(3000 + 600)  # round 1: first ack held back, the retry's ack passes
    assert n.names(n.a).count("heartbeat_ack") == 1
    delivered_ack = [p for s, p in n.tap if s == "b"][-1]
    n.drop = None
    n.run_for(10)
    n.cut = True  # from now on the gateway is gone
    n.run_for(3000 + 100)  # round 2 has started
    assert n.names(n.a)[-1] == "heartbeat_sent"
    spi = delivered_ack[:4]
    n.inject(n.a, spi + b"\x00\x00\x00\x63" + b"\x00\x02" + b"\x5a" * 16)  # forged
    n.inject(n.a, delivered_ack)  # replayed
    assert n.names(n.a)[-2:] == ["dropped", "dropped"]
    assert "replayed" in n.events[id(n.a)][-1].get("reason")
    before = len(n.names(n.a))
    n.inject(n.a, held[0])  # genuine, never seen: answers round 1, which a later ack ended
    assert len(n.names(n.a)) == before  # no news, no event, no liveness
    n.run_for(3 * 500)
    assert "peer_dead" in n.names(n.a)


def test_a_held_back_answer_proves_only_when_its_heartbeat_was_sent():
    # An attacker who holds the gateway's genuine answers and releases them late cannot
    # keep a dead gateway alive beyond the detection bound counted from that heartbeat.
    n = connected()
    held = []
    n.drop = lambda src, p: src == "b" and (held.append(p) or True)
    n.run_for(3000 + 10)  # the first heartbeat of a round went out; its answer is held
    sent_at = n.a.session().heartbeat.sent_ids[0][1]
    n.run_for(400)
    n.cut = True  # the gateway dies; the attacker still has its genuine answer
    n.inject(n.a, held[0])
    assert n.names(n.a)[-1] == "heartbeat_ack"
    assert n.a.session().heartbeat.proven == sent_at
    t0 = n.now
    t = detect_time(n, n.a)
    assert ticks.diff(ticks.add(t0, t), sent_at) <= LinkConfig(**CFG).detect_bound_ms()


def test_probe_form_quick_mode_answered_by_no_proposal_chosen():
    n = connected(heartbeat_form="PROBE")
    start = n.tapped
    n.run_for(7000)
    assert n.names(n.a).count("heartbeat_ack") == 2
    probes = n.since(start)
    assert len(probes) == 4
    assert all(len(p) == (8 + 7 + 2 + 8 + 4 + 16 if s == "a" else 8 + 7 + 4 + 16) for s, p in probes)
    n.cut = True
    n.run_for(6000)
    assert "peer_dead" in n.names(n.a)


def test_spi_echo_form_is_off_unless_both_ends_enable_it():
    n = connected(heartbeat_form="SPI-ECHO")
    start = n.tapped
    n.run_for(3100)
    echo = n.since(start)
    assert [(s, len(p)) for s, p in echo] == [("a", 8), ("b", 8)] and echo[0][1] == echo[1][1]
    assert echo[0][1][:4] == b"\xff\xff\xff\xff" and n.names(n.a).count("heartbeat_ack") == 1
    n = connected()  # default form: an SPI-echo packet is dropped, never echoed
    n.inject(n.b, b"\xff\xff\xff\xff\x01\x02\x03\x04")
    assert n.names(n.b)[-1] == "dropped" and n.b.take_output() == []


def hand_on(n):
    """The gateway's LAN side: hand every new message on, and say so."""
    got = n.b.take_messages()
    for peer, nh, body in got:
        n.b.handed_on(peer, body[0], body[1], n.now)
    n.run_for(100)
    return got


def test_tunnel_messages_are_confirmed_only_once_handed_on_and_handed_on_once():
    n = connected()
    msg = tunnel.encode_msg(3, 7, 0x0A000001, 5000, b"reading 42")
    n.a.send_plain(msg, n.now)
    n.run_for(100)
    assert [m[1] for m in n.a.take_messages()] == []  # not handed on yet: no confirmation
    got = hand_on(n)
    assert got == [(b"box1", wire.NH_MSG, (3, 7, 0x0A000001, 5000, b"reading 42"))]
    n.a.send_plain(msg, n.now)  # a retransmission: its confirmation was lost, say
    n.run_for(100)
    assert hand_on(n) == []  # handed on once
    confirms = [tunnel.decode_confirm(m[2]) for m in n.a.take_messages() if m[1] == wire.NH_CONFIRM]
    assert confirms == [(3, 7, 0), (3, 7, 0)]  # confirmed every time
    n.a.send_plain(tunnel.encode_msg(3, 9, 0x0A000001, 5000, b"later"), n.now)
    n.run_for(100)
    hand_on(n)
    assert [tunnel.decode_confirm(m[2]) for m in n.a.take_messages()] == [(3, 9, 1 << 1)]  # 9, and 7 (two below)


def test_a_message_that_cannot_be_handed_on_is_not_confirmed():
    n = connected()
    n.a.send_plain(tunnel.encode_msg(1, 1, 1, 1, b"nowhere"), n.now)
    n.run_for(100)
    assert len(n.b.take_messages()) == 1  # the gateway could not deliver it: says nothing
    n.run_for(1000)
    assert n.a.take_messages() == []


def test_handed_on_numbers_survive_a_new_sa_with_the_same_box():
    n = connected()
    n.a.send_plain(tunnel.encode_msg(1, 5, 1, 1, b"m5"), n.now)
    n.run_for(100)
    assert len(hand_on(n)) == 1
    n.a.close(n.now)
    n.run_for(100)
    n.a.connect(n.now)
    n.run_for(200)
    n.a.send_plain(tunnel.encode_msg(1, 5, 1, 1, b"m5"), n.now)  # resent after the re-key
    n.run_for(100)
    assert n.b.take_messages() == []
    assert [tunnel.decode_confirm(m[2]) for m in n.a.take_messages() if m[1] == wire.NH_CONFIRM][-1] == (1, 5, 0)


def test_compact_messages_go_through_a_context_this_session_bound():
    n = connected()
    n.a.send_plain(tunnel.encode_msg(1, 1, 0x0A000001, 5000, b"full", 2), n.now)  # binds context 2
    n.run_for(100)
    assert [body for _p, _nh, body in hand_on(n)] == [(1, 1, 0x0A000001, 5000, b"full")]
    n.a.send_plain(tunnel.encode_compact(2, 2, b"compact"), n.now)
    n.run_for(100)
    assert [body for _p, _nh, body in hand_on(n)] == [(1, 2, 0x0A000001, 5000, b"compact")]
    assert [tunnel.decode_confirm(m[2]) for m in n.a.take_messages()][-1] == (1, 2, 1)
    n.a.send_plain(tunnel.encode_compact(2, 2, b"compact"), n.now)  # a copy: confirmed, not handed on
    n.run_for(100)
    assert hand_on(n) == [] and [tunnel.decode_confirm(m[2]) for m in n.a.take_messages()] == [(1, 2, 1)]
    n.a.close(n.now)
    n.run_for(100)
    n.a.connect(n.now)
    n.run_for(200)
    mark = len(n.names(n.b))
    n.a.send_plain(tunnel.encode_compact(2, 3, b"new session"), n.now)  # bindings end with the session
    n.run_for(100)
    assert n.b.take_messages() == [] and n.names(n.b)[mark:] == ["dropped"]
    n.a.send_plain(tunnel.encode_msg(1, 3, 0x0A000001, 5000, b"new session", 2), n.now)  # sent again in full
    n.run_for(100)
    assert [body[1] for _p, _nh, body in hand_on(n)] == [3]


def rebooted(n, psk=netsim.PSK):
    """The same box after a reboot: a new endpoint (a new boot epoch), logged in again."""
    box = Endpoint(n.a.cfg, n.a.identity, psk=psk, expect_peer=n.a.expect_peer)
    m = netsim.Net(box, n.b)
    m.now = n.now
    box.connect(m.now)
    m.run_for(300)
    return m


def test_a_rebooted_box_numbers_from_1_again_and_each_new_message_is_handed_on():
    n = connected()
    for num in range(1, 41):
        n.a.send_plain(tunnel.encode_msg(1, num, 1, 1, b"old"), n.now)
    n.run_for(100)
    assert len(hand_on(n)) == 40
    m = rebooted(n)  # its epoch differs (2**-32 that it does not): the gateway starts afresh
    assert m.a.epoch != n.a.epoch and m.b.session().peer_id == b"box1"
    assert [e.get("peer") for e in m.events[id(m.b)] if e.name == "windows_reset"] == [b"box1"]
    for num in (1, 2, 3):
        m.a.send_plain(tunnel.encode_msg(1, num, 1, 1, b"new"), m.now)
    m.run_for(100)
    got = m.b.take_messages()
    assert [body[1:] for _p, _nh, body in got] == [(1, 1, 1, b"new"), (2, 1, 1, b"new"), (3, 1, 1, b"new")]


def test_only_an_authenticated_login_tells_the_epoch():
    # A login with the wrong key carries an epoch too, under keys the gateway does not
    # accept: it ends in authentication_failed and the box's windows stay as they were.
    n = connected()
    n.a.send_plain(tunnel.encode_msg(1, 7, 1, 1, b"m7"), n.now)
    n.run_for(100)
    hand_on(n)
    m = rebooted(n, psk=b"\x33" * 32)
    assert m.a.session() is None and "windows_reset" not in m.names(m.b)
    n.run_for(100)
    n.a.send_plain(tunnel.encode_msg(1, 7, 1, 1, b"m7"), n.now)  # the real box, same boot
    n.run_for(100)
    assert n.b.take_messages() == []  # still handed on once


def test_rekey_by_time_loses_nothing_and_uses_new_spis():
    n = connected(rekey_ms=5000)
    n.keep_payloads = False
    first = n.a.session().current
    sent_a, sent_b = hashlib.sha256(), hashlib.sha256()
    for i in range(120):
        a, b = b"a%d" % i, b"b%d" % i
        n.a.send(a, n.now)
        n.b.send(b, n.now)
        sent_a.update(a)
        sent_b.update(b)
        n.run_for(97)
    n.run_for(1000)
    assert n.count[id(n.b)] == 120 and n.count[id(n.a)] == 120
    assert n.stream[id(n.b)].digest() == sent_a.digest() and n.stream[id(n.a)].digest() == sent_b.digest()
    assert n.names(n.a).count("rekeyed") == 2 and n.names(n.b).count("rekeyed") == 2
    assert n.first(n.a, "rekey_started").get("reason") == "time"
    assert n.a.session().current.ctl_in.spi != first.ctl_in.spi
    assert n.a.session().previous is None and n.b.session().previous is None
    assert "dropped" not in n.names(n.a) + n.names(n.b)
    for ep in (n.a, n.b):
        assert_maps_follow_the_sessions(ep)


def assert_maps_follow_the_sessions(ep):
    """The endpoint's O(1) maps (inbound SPI -> owner, peer -> session) hold exactly its
    live sessions' SPIs after rekeys, whatever SPIs came and went."""
    want = {}
    for s in ep.sessions:
        for spi in s.taken_spis():
            want[spi] = s
    assert ep._spis == want
    assert ep._peers == dict((s.peer_id, s) for s in ep.sessions)


def test_rekey_by_bytes_with_messages_in_flight():
    n = connected(rekey_bytes=2000)
    n.keep_payloads = False
    sent = hashlib.sha256()
    for i in range(300):
        m = b"m%03d" % i + b"." * 20
        n.a.send(m, n.now)
        sent.update(m)
        if i % 3 == 0:
            n.run_for(40)  # several messages in flight across each switch
    n.run_for(2000)
    assert n.count[id(n.b)] == 300 and n.stream[id(n.b)].digest() == sent.digest()
    assert n.first(n.a, "rekey_started").get("reason") == "bytes"
    assert n.names(n.a).count("rekeyed") >= 3
    assert "dropped" not in n.names(n.b)


def test_lost_rekey_response_is_answered_again_from_cache():
    n = connected(rekey_ms=4000)
    state = {"dropped": 0}

    def drop_first_rekey_response(src, p):
        # the first control packet the gateway sends after the rekey starts
        if src == "b" and "rekey_started" in n.names(n.a) and not state["dropped"] and len(p) > 26:
            state["dropped"] = 1
            return True
        return False

    n.drop = drop_first_rekey_response
    n.run_for(4000 + 2000)
    assert state["dropped"] == 1
    assert n.names(n.a).count("rekeyed") == 1 and n.names(n.b).count("rekeyed") == 1
    n.a.send(b"after", n.now)
    n.run_for(100)
    assert n.got[id(n.b)] == [b"after"]


def test_heartbeat_timing_independent_of_rekey():
    n = connected(rekey_ms=2900)
    n.run_for(3000 + 50)
    # the rekey answer (at 2.9 s) proves the gateway alive as of 2.9 s, nothing more
    assert "rekeyed" in n.names(n.a)
    n.cut = True
    t = detect_time(n, n.a)
    assert t is not None and t <= LinkConfig(**CFG).detect_bound_ms()


def test_close_sends_protected_delete_and_peer_tears_down():
    n = connected()
    n.a.close(n.now, reason="operator")
    n.run_for(100)
    assert n.names(n.a)[-1] == "sa_deleted" and n.events[id(n.a)][-1].get("reason") == "operator"
    assert n.names(n.b)[-1] == "sa_deleted" and n.events[id(n.b)][-1].get("reason") == "peer_deleted"
    assert n.a.session() is None and n.b.session() is None


def test_a_lost_delete_after_a_rekey_is_sent_again_and_loses_nothing():
    n = connected(rekey_ms=4000)
    state = {"dropped": 0}

    def drop_first_delete(src, p):
        # the box's first control packet on the NEW SAs after rekeyed: its DELETE(old)
        if src == "a" and "rekeyed" in n.names(n.a) and not state["dropped"] and len(p) > 26:
            state["dropped"] = 1
            return True
        return False

    n.drop = drop_first_delete
    n.keep_payloads = False
    sent = hashlib.sha256()
    for i in range(100):  # the gateway keeps talking through the rekey, on whatever it uses
        m = b"gw %03d" % i
        n.b.send(m, n.now)
        sent.update(m)
        n.run_for(80)
    n.run_for(3000)
    assert state["dropped"] == 1
    assert n.count[id(n.a)] == 100 and n.stream[id(n.a)].digest() == sent.digest()
    assert n.a.session().delete_pending is None and n.a.session().previous is None
    assert "dropped" not in n.names(n.a)


def test_suppressed_rekeys_end_in_a_hard_expiry_never_a_spinning_timer():
    n = connected(rekey_ms=3000, lifetime_ms=8000, rekey_retry_ms=1000)
    n.drop = lambda src, p: len(p) > 60  # an attacker drops only the REKEY frames (the big ones)
    for _ in range(12):
        n.run_for(1000)
        for ep in (n.a, n.b):
            dl = ep.next_deadline()
            assert dl is None or ticks.diff(dl, n.now) >= 0  # no deadline ever in the past
    assert "rekey_failed" in n.names(n.a)
    # the gateway, keyed last, reaches the hard limit first: it deletes and says so
    assert [e.get("reason") for e in n.events[id(n.b)] if e.name == "sa_deleted"] == ["expired"]
    assert [e.get("reason") for e in n.events[id(n.a)] if e.name == "sa_deleted"] in (["expired"], ["peer_deleted"])
    assert n.a.session() is None and n.b.session() is None


def test_rekey_by_packet_count_long_before_sequence_numbers_run_out():
    from gwbox.session import SOFT_PACKETS
    n = connected()
    n.a.session().current.data_out.seq = SOFT_PACKETS
    n.a.send(b"x", n.now)
    n.run_for(500)
    assert n.first(n.a, "rekey_started").get("reason") == "packets"
    assert n.a.session().current.data_out.seq < 10


def test_lifetime_settings_are_checked():
    for bad in (dict(lifetime_ms=1 << 29), dict(rekey_ms=5000, lifetime_ms=5000), dict(rekey_retry_ms=0)):
        try:
            LinkConfig(**bad)
            assert False, bad
        except ValueError:
            pass
    assert LinkConfig(rekey_ms=8000).lifetime_ms > 8000  # derived when not given


def test_key_exchange_code_is_dropped_after_a_rekey_and_loaded_again():
    import sys
    n = connected(rekey_ms=3000)
    assert "gwbox.handshake" not in sys.modules and "gwbox.rekey" not in sys.modules
    n.run_for(3500)
    assert n.names(n.a).count("rekeyed") == 1
    for m in ("gwbox.handshake", "gwbox.rekey", "gwbox.crypto.x25519", "gwbox.message", "gwbox.control"):
        assert m not in sys.modules, m
    n.run_for(3000)
    assert n.names(n.a).count("rekeyed") == 2


def test_a_rekey_computes_its_x25519s_one_slice_per_call():
    """The box's rekey computes its public key and the shared secret a Ladder step per
    endpoint call, as its first handshake does: no pass of a device's loop runs a whole
    multiplication (140 ms on an RP2040; docs/crypto.md). The gateway answers at once."""
    n = connected(rekey_ms=3000)
    from gwbox.crypto import x25519  # loaded again now (the handshake's end dropped it): the rekey takes it
    a = n.a
    steps = [0]
    step = x25519.Ladder.step

    def counted(ladder, bits=0):
        steps[0] += 1
        return step(ladder, bits)

    per_call = []

    def measured(fn):
        def call(*args):
            before = steps[0]
            r = fn(*args)
            per_call.append(steps[0] - before)
            return r
        return call

    tick, receive = a.tick, a.receive
    a.tick, a.receive = measured(tick), measured(receive)
    x25519.Ladder.step = counted
    try:
        n.run_for(3500)
    finally:
        x25519.Ladder.step = step
        a.tick, a.receive = tick, receive
    assert n.names(a).count("rekeyed") == 1 and n.names(n.b).count("rekeyed") == 1
    assert max(per_call) == 1
    bits = x25519.SLICE if x25519._native is None else x25519.NATIVE_SLICE  # the ladder this interpreter runs
    assert sum(per_call) == 2 * (256 // bits + 1)  # two multiplications, each every slice and the last step
