"""gwbox.cluster: gateway order, round-robin keying, failover, back-off forever, failback (GB 2 363 548)."""
from gwbox import ticks
from gwbox.cluster import Cluster, gateway_order
from gwbox.race import GRACE_MS

T0 = ticks.PERIOD - 2000
G1, G2, G3 = b"143.1.0.64", b"143.1.1.157", b"143.1.0.63"
HEDGE = 600  # the first of a race runs alone this long


class Driver:
    """Stands in for the box: records what the cluster asks for."""

    def __init__(self, keys=(), together=False):
        self.keys = set(keys)
        self.one_call = together  # one call reaches every gateway (an access server): races
        self.answered = set()  # gateways whose handshake got an SA_INIT answer
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

    def abandon(self, gws, now):
        for gw in gws:
            self.log.append(("abandon", gw))

    def together(self, gw, other):
        return self.one_call

    def answering(self, gw):
        return gw in self.answered

    def hs_rto(self):
        return HEDGE

    def event(self, name, **fields):
        self.events.append((name, fields))

    def names(self):
        return [n for n, _ in self.events]


def make(keys=(), preferred=None, order=(G1, G2, G3), together=False, probe_max_ms=None):
    """`together=False`: every gateway on its own number, keyed one at a time (the seed's
    round robin); True: one call reaches them all, keyed in parallel (a race)."""
    d = Driver(keys, together)
    c = Cluster("Cluster1", 1, list(order), preferred, d, 1000, 8000, 5000, probe_max_ms=probe_max_ms)
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
    assert d.log[-1] == ("connect", G2) and c.racing == [G2]
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


# --- races: one call reaches every gateway, so several are keyed at once (issue 19) ----------

def test_a_race_starts_with_the_first_in_order_alone_then_the_rest_after_the_hedge_time():
    c, d = make(together=True)
    c.begin(T0)
    assert d.log == [("connect", G1)] and c.racing == [G1, G2, G3]
    assert c.next_deadline() == at(HEDGE)
    c.tick(at(HEDGE))
    assert d.log == [("connect", G1), ("connect", G2), ("connect", G3)]
    assert [f["attempt"] for n, f in d.events if n == "gateway_trying"] == [1, 2, 3]
    c.established(G1, at(HEDGE + 100))
    assert c.in_use == G1 and ("abandon", G2) in d.log and ("abandon", G3) in d.log


def test_the_first_of_a_race_has_its_head_start_from_when_its_handshake_started():
    # the box starts a handshake some ticks after the cluster asked for it (its code is
    # imported a module per tick first): the first runs alone a whole hedge time all the same
    c, d = make(together=True)
    c.begin(T0)
    c.started(G1, at(300))
    assert c.next_deadline() == at(300 + HEDGE)
    c.tick(at(HEDGE))
    assert d.log == [("connect", G1)]
    c.started(G2, at(HEDGE + 10))  # (not the first: changes nothing)
    c.tick(at(300 + HEDGE))
    assert d.log == [("connect", G1), ("connect", G2), ("connect", G3)]


def test_a_live_first_gateway_is_used_before_the_others_are_even_tried():
    c, d = make(together=True)
    c.begin(T0)
    c.established(G1, at(200))
    assert c.in_use == G1 and d.log == [("connect", G1), ("use", G1, False)]
    assert c.next_deadline() is None  # no fan-out left behind


def test_a_dead_gateway_in_use_is_followed_by_a_race_of_the_others():
    c, d = make(keys=[G1], together=True)
    c.begin(T0)
    assert c.in_use == G1
    c.dead(G1, at(1000), "peer_dead")
    assert c.racing == [G2, G3] and d.log[-1] == ("connect", G2)  # the dead one is not in it
    c.tick(at(1000 + HEDGE))
    assert d.log[-1] == ("connect", G3)
    c.established(G3, at(1900))  # G2 never answered SA_INIT: no reason to wait for it
    assert c.in_use == G3 and d.log[-2:] == [("abandon", G2), ("use", G3, False)]


def test_the_order_decides_an_earlier_gateway_keyed_within_the_grace_wins():
    c, d = make(together=True)
    c.begin(T0)
    c.tick(at(HEDGE))
    d.answered.add(G1)  # G1 answered SA_INIT (alive, or a forged answer): worth the grace
    c.established(G2, at(HEDGE + 100))
    assert c.in_use is None and c.next_deadline() == at(HEDGE + 100 + GRACE_MS)
    c.established(G1, at(HEDGE + 300))
    assert c.in_use == G1
    assert ("abandon", G3) in d.log and ("abandon", G2) not in d.log  # G2's key stays cached


def test_after_the_grace_the_first_keyed_is_used_whatever_an_earlier_answer_said():
    c, d = make(together=True)
    c.begin(T0)
    c.tick(at(HEDGE))
    d.answered.add(G1)  # a forged SA_INIT answer for G1: it can only cost the grace
    c.established(G3, at(HEDGE + 100))
    c.tick(at(HEDGE + 100 + GRACE_MS))
    assert c.in_use == G3 and ("abandon", G1) in d.log and ("abandon", G2) in d.log


def test_when_the_first_refuses_the_others_start_at_once_and_all_refusing_ends_the_round():
    c, d = make(together=True, probe_max_ms=3000)
    c.begin(T0)
    c.failed(G1, at(100))  # e.g. wrong identity: no need to wait for the hedge time
    assert d.log[-2:] == [("connect", G2), ("connect", G3)]
    c.failed(G3, at(200))
    c.failed(G2, at(300))
    assert d.names()[-1] == "key_request_rejected"
    waits = [d.events[-1][1]["retry_ms"]]
    for _ in range(4):  # all down: rounds go on, the wait between them never above probe_max_ms
        t = c.next_deadline()
        c.tick(t)
        for g in (G1, G2, G3):
            if g in c.racing:
                c.failed(g, t)
        waits.append(d.events[-1][1]["retry_ms"])
    assert waits == [1000, 2000, 3000, 3000, 3000]


def test_a_raced_key_that_dies_before_it_was_used_leaves_the_race():
    c, d = make(together=True)
    c.begin(T0)
    c.tick(at(HEDGE))
    d.answered.add(G1)
    c.established(G2, at(HEDGE + 50))
    c.dead(G2, at(HEDGE + 60), "peer_dead")  # its session ended (a DELETE, say)
    assert c.ready == [] and c.racing == [G1, G3] and c.next_deadline() is None
    c.established(G3, at(HEDGE + 500))  # G1 answering: G3 waits the grace for it
    c.tick(at(HEDGE + 500 + GRACE_MS))
    assert c.in_use == G3


def test_a_failback_try_taken_over_by_a_race_ends_with_it_and_failback_goes_on():
    c, d = make(keys=[G2], preferred=G1, together=True)
    c.begin(T0)  # G2's cached key in use; G1 (preferred) tried every failback_ms
    assert c.in_use == G2
    c.tick(c.next_deadline())
    assert c.fb_trying and d.log[-1] == ("connect", G1)
    c.dead(G2, at(6000), "peer_dead")  # the race now holds G1's handshake too
    assert G1 in c.racing
    c.tick(at(6000 + HEDGE))
    c.failed(G1, at(7000))
    assert not c.fb_trying
    c.established(G3, at(7100))
    assert c.in_use == G3 and c.fb_at is not None  # the preferred one is tried again later


def test_a_first_gateway_that_answered_its_sa_init_runs_alone_until_its_handshake_ends():
    c, d = make(together=True)
    c.begin(T0)
    d.answered.add(G1)  # its SA_INIT was answered (perhaps forged): probably alive
    c.tick(at(HEDGE))
    c.tick(at(2 * HEDGE))
    assert d.log == [("connect", G1)] and c.next_deadline() == at(3 * HEDGE)
    c.failed(G1, at(2 * HEDGE + 100))  # a forged answer: the handshake fails by its timers
    assert d.log == [("connect", G1), ("connect", G2), ("connect", G3)]  # then the others at once
