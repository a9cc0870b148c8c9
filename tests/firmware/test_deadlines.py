"""gwbox.deadlines: a gateway's heap of deadlines, in order across the tick wrap."""
from gwbox import ticks
from gwbox.deadlines import Deadlines

START = ticks.PERIOD - 1000  # just before the wrap


def test_earliest_first_across_the_wrap():
    d = Deadlines()
    a, b, c = object(), object(), object()
    d.set(a, ticks.add(START, 3000), START)  # after the wrap: a small tick value
    d.set(b, ticks.add(START, 500), START)  # before it: a large one
    d.set(c, ticks.add(START, 1500), START)
    assert d.next() == ticks.add(START, 500)
    assert d.due(ticks.add(START, 499)) == []
    assert d.due(ticks.add(START, 1600)) == [b, c]
    assert d.next() == ticks.add(START, 3000) and len(d) == 1
    assert d.due(ticks.add(START, 3000)) == [a] and d.next() is None


def test_a_moved_deadline_counts_and_a_dropped_one_never_fires():
    d = Deadlines()
    a, b = object(), object()
    d.set(a, START + 100, START)
    d.set(b, START + 200, START)
    d.set(a, START + 300, START + 50)  # moved later: its old entry is stale
    d.drop(b)
    assert d.next() == START + 300
    assert d.due(START + 250) == [] and d.due(START + 300) == [a]
    d.set(a, None, START + 300)
    assert d.next() is None and len(d) == 0


def test_stale_entries_do_not_pile_up():
    d = Deadlines()
    objs = [object() for _ in range(10)]
    now = START
    for i in range(500):
        now = ticks.add(now, 7)
        for o in objs:
            d.set(o, ticks.add(now, 1000 + i % 13), now)
    assert len(d) == 10 and len(d._heap) <= 2 * 10 + 64 + 1
    assert sorted(id(o) for o in d.due(ticks.add(now, 2000))) == sorted(id(o) for o in objs)
