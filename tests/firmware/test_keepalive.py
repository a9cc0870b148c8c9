"""gwbox.keepalive: idle, retry and dead verdicts, in virtual time across the tick wrap."""
from gwbox import ticks
from gwbox.keepalive import DEAD, SEND, Keepalive

T0 = ticks.PERIOD - 1500


def test_probe_after_idle_then_dead_after_retries():
    ka = Keepalive(1000, 300, 2, T0)
    assert ka.poll(ticks.add(T0, 999)) is None
    t = ticks.add(T0, 1000)
    assert ka.poll(t) == SEND
    ka.sent(7, t)
    for k in range(2):
        assert ka.poll(ticks.add(t, 299)) is None
        t = ticks.add(t, 300)
        assert ka.poll(t) == SEND
        ka.sent(99, t)  # a retry keeps the round's id
        assert ka.pending == 7
    assert ka.attempt == 3
    assert ka.poll(ticks.add(t, 299)) is None
    assert ka.poll(ticks.add(t, 300)) == DEAD
    assert ticks.diff(ticks.add(t, 300), T0) == 1000 + 3 * 300  # idle + (retries+1) * response


def test_only_the_outstanding_id_is_an_ack():
    ka = Keepalive(1000, 300, 1, T0)
    t = ticks.add(T0, 1000)
    ka.poll(t)
    ka.sent(5, t)
    assert not ka.acked(4, t)
    assert not ka.acked(6, t)
    assert ka.acked(5, ticks.add(t, 40))
    assert ka.pending is None
    assert not ka.acked(5, ticks.add(t, 50))  # a second (replayed) ack is no news
    assert ka.next_deadline() == ticks.add(t, 1040)


def test_traffic_resets_idle_and_ends_round():
    ka = Keepalive(1000, 300, 1, T0)
    ka.heard(ticks.add(T0, 900))
    assert ka.poll(ticks.add(T0, 1000)) is None
    t = ticks.add(T0, 1900)
    assert ka.poll(t) == SEND
    ka.sent(3, t)
    ka.heard(ticks.add(t, 10))
    assert ka.pending is None and ka.ended == 3
