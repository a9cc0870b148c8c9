"""gwbox.session: protected keepalive, dead-peer teardown, make-before-break rekey."""
# mp-heap: 128K  (hosts both parties: two devices, two 64K device heaps, in one interpreter)
import hashlib

import netsim
from gwbox import ticks
from gwbox.config import LinkConfig

CFG = dict(keepalive_idle_ms=3000, response_ms=500, retries=2)


def connected(**kw):
    d = dict(CFG)
    d.update(kw)
    n = netsim.pair(LinkConfig(**d))
    n.connect(settle_ms=200)
    return n


def test_idle_link_exchanges_protected_keepalives_of_31_bytes():
    n = connected()
    start = n.tapped
    n.run_for(10000)
    ka = n.since(start)
    assert [src for src, _ in ka] == ["a", "b"] * 3  # only the initiator probes on a quiet link
    assert all(len(p) == 31 for _, p in ka)  # SPI 4 + seq 4 + inner 7 + ICV 16
    assert n.names(n.a).count("keepalive_ack") == 3
    assert "keepalive_sent" not in n.names(n.b)


def test_traffic_defers_keepalive():
    n = connected()
    for _ in range(20):
        n.b.send(b"x", n.now)
        n.run_for(1000)
    assert "keepalive_sent" not in n.names(n.a)


def test_silent_peer_declared_dead_then_sas_deleted_with_a_protected_delete():
    n = connected()
    n.run_for(100)
    n.cut = True
    mark = n.tapped
    n.run_for(20000)
    names = n.names(n.a)
    assert names[-2:] == ["peer_dead", "sa_deleted"]  # in that order, last
    assert names.count("keepalive_sent") == 3  # the request and its 2 retries
    dead = [e for e in n.events[id(n.a)] if e.name == "peer_dead"][0]
    assert dead.get("waited_ms") == 3 * 500  # from the first request to the verdict
    deleted = n.events[id(n.a)][-1]
    assert deleted.get("reason") == "peer_dead"
    assert n.a.session() is None and n.a.next_deadline() is None
    # what box a put on the (cut) wire: 3 keepalive requests of 31 bytes, then a protected
    # DELETE naming its two inbound SPIs (31 + 2 + 1 + 8 bytes)
    sent = [p for src, p in n.since(mark) if src == "a"]
    assert [len(p) for p in sent] == [31, 31, 31, 42]


def detect_time(n, ep):
    """Virtual ms from now until `ep` reports peer_dead (stepping 10 ms)."""
    t0 = n.now
    for _ in range(3000):
        n.run_for(10)
        if "peer_dead" in n.names(ep):
            return ticks.diff(n.now, t0)
    return None


def test_detection_time_is_exactly_the_bound_for_either_side():
    n = connected()
    n.b.send(b"last words", n.now)
    n.run_for(20)  # delivered to the box exactly now: the box last heard the gateway now
    n.cut = True
    assert detect_time(n, n.a) == 3000 + 3 * 500
    n = connected()
    n.a.send(b"last words", n.now)
    n.run_for(20)
    n.drop = lambda src, p: src == "a"  # the box goes silent: the gateway is the local box now
    t = detect_time(n, n.b)
    assert t == 3000 + 500 + 3 * 500, t  # the responder probes one response time later


def test_forged_replayed_and_stale_acks_never_count():
    n = connected()
    held = []

    def hold_first_ack(src, p):
        if src == "b" and not held:
            held.append(p)
            return True
        return False

    n.drop = hold_first_ack
    n.run_for(3000 + 600)  # round 1: first ack held back, the retry's ack passes
    assert n.names(n.a).count("keepalive_ack") == 1
    delivered_ack = [p for s, p in n.tap if s == "b"][-1]
    n.drop = None
    n.cut = True  # from now on the gateway is gone
    n.run_for(3000 + 100)  # round 2 has started
    assert n.names(n.a)[-1] == "keepalive_sent"
    spi = delivered_ack[:4]
    n.inject(n.a, spi + b"\x00\x00\x00\x63" + b"\x00" * 7 + b"\x5a" * 16)  # forged
    n.inject(n.a, delivered_ack)  # replayed
    n.inject(n.a, held[0])  # stale: genuine, never seen, but answers round 1
    assert n.names(n.a)[-3:] == ["dropped", "dropped", "dropped"]
    assert "replayed" in n.events[id(n.a)][-2].get("reason")
    assert "stale" in n.events[id(n.a)][-1].get("reason")
    n.run_for(3 * 500)
    assert "peer_dead" in n.names(n.a)


def test_probe_form_quick_mode_answered_by_no_proposal_chosen():
    n = connected(keepalive_form="probe")
    start = n.tapped
    n.run_for(7000)
    assert n.names(n.a).count("keepalive_ack") == 2
    probes = n.since(start)
    assert len(probes) == 4
    assert all(len(p) == (8 + 7 + 2 + 8 + 4 + 16 if s == "a" else 8 + 7 + 4 + 16) for s, p in probes)
    n.cut = True
    n.run_for(6000)
    assert "peer_dead" in n.names(n.a)


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
        if src == "b" and "rekey_started" in n.names(n.a) and not state["dropped"]:
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


def test_keepalive_timing_independent_of_rekey():
    n = connected(rekey_ms=2900)
    n.run_for(3000 + 50)
    # the rekey exchange (traffic) happened at 2.9 s, yet it resets only the idle timer
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
