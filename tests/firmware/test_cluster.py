"""gwbox.cluster: gateway order, round-robin keying, failover, back-off forever, failback (GB 2 363 548)."""
from gwbox import ticks
from gwbox.cluster import Cluster, gateway_order

T0 = ticks.PERIOD - 2000
G1, G2, G3 = b"143.1.0.64", b"143.1.1.157", b"143.1.0.63"


class Driver:
    """Stands in for the box: records what the cluster asks for."""

    def __init__(self, keys=()):
        self.keys = set(keys)
        self.log = []
        self.events = []

    def has_key(self, gw):
        return gw in self.keys

    def connect(self, gw, now):
        self.log.append(("connect", gw))

    def use(self, gw, now, verify):
        self.log.append(("use", gw, verify))

    def drop(self, gw, now):
        self.keys.discard(gw)
        self.log.append(("drop", gw))

    def event(self, name, **fields):
        self.events.append((name, fields))

    def names(self):
        return [n for n, _ in self.events]


def make(keys=(), preferred=None, order=(G1, G2, G3)):
    d = Driver(keys)
    c = Cluster("Cluster1", 1, list(order), preferred, d, 1000, 8000, 5000)
    return c, d


def at(ms):
    return ticks.add(T0, ms)


def test_order_is_randomized_from_the_injected_source_unless_turned_off():
    gws = [G1, G2, G3]
    assert gateway_order(gws, None, False, None) == gws  # policy order: main, then backup
    a = gateway_order(gws, None, True, lambda n: bytes([7, 1, 2])[:n])
    b = gateway_order(gws, None, True, lambda n: bytes([7, 1, 2])[:n])
    assert a == b and sorted(a) == sorted(gws)  # reproducible with the same source
    seen = set()
    for k in range(12):
        seen.add(tuple(gateway_order(gws, None, True, lambda n, k=k: bytes([k * 7 % 256, k * 5 + 1, k * 11 + 2])[:n])))
    assert len(seen) > 2  # and really shuffled
    assert gateway_order(gws, G3, True, lambda n: bytes([1, 1])[:n])[0] == G3  # preferred goes first


def test_round_robin_authentication_then_rejection_and_back_off_forever():
    c, d = make()
    c.begin(T0)
    assert d.log == [("connect", G1)]
    c.failed(G1, at(100))
    c.failed(G2, at(200))
    assert d.log[-1] == ("connect", G3)
    c.failed(G3, at(300))
    assert d.names()[-1] == "key_request_rejected" and d.events[-1][1]["retry_ms"] == 1000
    assert c.next_deadline() == at(1300) and c.wants() is None
    delays = []
    t = at(300)
    for _ in range(6):  # many rounds: the box never gives up, the back-off stops at the cap
        t = c.next_deadline()
        c.tick(t)
        assert d.log[-1] == ("connect", G1)
        for g in (G1, G2, G3):
            c.failed(g, t)
        delays.append(d.events[-1][1]["retry_ms"])
    assert delays == [2000, 4000, 8000, 8000, 8000, 8000]
    t = c.next_deadline()
    c.tick(t)
    c.established(G1, t)
    assert c.in_use == G1 and d.log[-1] == ("use", G1, False)
    assert c.backoff == 1000  # success resets the back-off


def test_dead_gateway_key_dropped_and_a_cached_key_taken_into_use_with_verification():
    c, d = make()
    c.begin(T0)
    c.established(G1, at(50))
    d.keys.update((G1, G3))  # G3 keyed meanwhile (a failback try, say)
    c.dead(G1, at(1000), "peer_dead")
    assert ("drop", G1) in d.log and G1 not in d.keys
    assert d.log[-1] == ("use", G3, True) and c.in_use == G3 and c.verifying
    ev = d.events[-2]
    assert ev[0] == "gateway_dead" and ev[1]["gateway"] == G1
    c.verified(G3, at(1100))
    assert not c.verifying and d.names()[-1] == "gateway_verified"


def test_without_a_cached_key_the_next_gateway_in_order_is_authenticated():
    c, d = make()
    c.begin(T0)
    c.established(G1, at(50))
    c.dead(G1, at(1000), "peer_dead")
    assert d.log[-1] == ("connect", G2) and c.trying == G2
    c.failed(G2, at(1500))
    assert d.log[-1] == ("connect", G3)
    c.failed(G3, at(2000))
    assert d.names()[-1] == "key_request_rejected"  # G1 counted as tried: it just died


def test_a_cached_key_that_does_not_answer_is_given_up_too():
    c, d = make()
    c.begin(T0)
    c.established(G1, at(50))
    d.keys.add(G2)
    c.dead(G1, at(1000), "peer_dead")
    assert c.in_use == G2 and c.verifying
    c.dead(G2, at(3000), "peer_dead")
    assert d.log[-1] == ("connect", G3)
    assert d.events[-2][1]["unverified"] is True  # it never answered after it was taken into use


def test_a_reactivated_gateway_is_used_again_when_it_is_next_in_order():
    c, d = make()
    c.begin(T0)
    c.established(G1, at(10))
    c.dead(G1, at(100), "peer_dead")
    c.established(G2, at(200))
    c.dead(G2, at(300), "peer_dead")
    c.established(G3, at(400))
    c.dead(G3, at(500), "peer_dead")
    assert d.log[-1] == ("connect", G1)  # G1 is back in turn


def test_failback_to_the_preferred_gateway_with_back_off_while_it_stays_away():
    c, d = make(preferred=G1)
    c.begin(T0)
    c.failed(G1, at(10))
    c.established(G2, at(20))
    assert c.in_use == G2 and c.next_deadline() == at(5020)
    c.tick(at(5020))
    assert d.log[-1] == ("connect", G1) and c.wants() == G1  # the call goes to the preferred one
    c.failed(G1, at(5100))
    assert c.in_use == G2 and c.next_deadline() == at(10100)  # tried again after 5 s ...
    c.tick(at(10100))
    c.failed(G1, at(10200))
    assert c.next_deadline() == at(20200)  # ... then 10 s: it stays away
    c.tick(at(20200))
    c.established(G1, at(20300))
    assert c.in_use == G1 and d.names()[-1] == "failback"
    assert d.events[-1][1]["previous"] == G2


def test_a_preferred_gateway_that_dies_again_soon_is_not_chased_in_a_loop():
    c, d = make(preferred=G1)
    c.begin(T0)
    c.established(G1, at(10))
    d.keys.update((G1, G2))
    c.dead(G1, at(1000), "peer_dead")  # a first death: no penalty
    assert c.in_use == G2 and c.fb_backoff == 5000 and c.next_deadline() == at(6000)
    c.tick(at(6000))
    c.established(G1, at(6100))  # back on the preferred gateway ...
    assert d.names()[-1] == "failback"
    d.keys.add(G1)
    c.dead(G1, at(7000), "peer_dead")  # ... which dies again within 4 x failback: it flaps
    assert c.fb_backoff == 10000 and c.next_deadline() == at(17000)
    c.tick(at(17000))
    c.established(G1, at(17100))
    d.keys.add(G1)
    c.dead(G1, at(18000), "peer_dead")  # and again
    assert c.fb_backoff == 20000 and c.next_deadline() == at(38000)
    c.tick(at(38000))
    c.established(G1, at(38100))
    c.tick(at(38100 + 20000))  # stable for 4 x failback: forgiven
    assert c.fb_backoff == 5000


def test_failback_tries_of_boxes_that_failed_over_together_are_spread():
    """With a random source the first failback try comes between failback_ms and 1.5 x it,
    differently per box: 16 boxes that lost their preferred gateway at the same moment do
    not all return to it at once (the storm's failback wave, docs/headoffice.md)."""
    tries = []
    for k in range(16):
        d = Driver({G2})
        c = Cluster("Cluster1", 1, [G1, G2, G3], G1, d, 1000, 8000, 5000, lambda n, k=k: bytes([k * 16 + 3])[:n])
        c.begin(T0)
        c.established(G1, T0)
        c.dead(G1, T0, "peer_dead")  # the cached key of G2 is taken into use at once
        assert c.in_use == G2
        tries.append(ticks.diff(c.fb_at, T0))
    assert all(5000 <= t < 7500 for t in tries) and len(set(tries)) == 16
