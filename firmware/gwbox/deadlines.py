"""The next deadline of many objects at once, in a heap: a gateway's sessions (sans-I/O).

A box has a handful of sessions and simply asks each for its deadline. A head-office
gateway holds one session per box, thousands of them: asking every one on every pass of
its loop would make each packet cost O(boxes). Here each object's deadline is pushed
once when it changes; `next()` and `due(now)` cost O(log n) per deadline that fires.

Tick values wrap (gwbox.ticks), and a heap needs keys that do not: every key is
"milliseconds since the first call", advanced by `ticks.diff` at each call, so the order
stays right across the wrap (a deadline is at most 2**29 - 1 ms ahead). An object's
entries are lazily invalidated: only the key in `_key[obj]` counts; an older entry is
skipped when it reaches the top, and the heap is rebuilt once stale entries outnumber
live ones. Only a gateway's endpoint loads this module (a box never does).
"""
import heapq

from gwbox import const, ticks

_SLACK = const(64)  # stale heap entries tolerated beyond the live ones before a rebuild


class Deadlines:
    def __init__(self):
        self._heap = []  # (key, seq, object, deadline tick)
        self._key = {}  # object -> its valid key
        self._seq = 0
        self._last = None
        self._ms = 0  # unwrapped milliseconds of _last

    def __len__(self):
        return len(self._key)

    def _clock(self, now):
        if self._last is not None:
            self._ms += ticks.diff(now, self._last)
        self._last = now
        return self._ms

    def set(self, obj, deadline, now):
        """`obj`'s next deadline is now `deadline` (None: it has none)."""
        if deadline is None:
            self._key.pop(obj, None)
            return
        k = self._clock(now) + ticks.diff(deadline, now)
        if self._key.get(obj) == k:
            return
        self._key[obj] = k
        self._seq += 1
        heapq.heappush(self._heap, (k, self._seq, obj, deadline))
        if len(self._heap) > 2 * len(self._key) + _SLACK:
            self._heap = [e for e in self._heap if self._key.get(e[2]) == e[0]]
            heapq.heapify(self._heap)

    def drop(self, obj):
        self._key.pop(obj, None)

    def next(self):
        """The earliest deadline (a tick value), or None."""
        h = self._heap
        while h:
            e = h[0]
            if self._key.get(e[2]) == e[0]:
                return e[3]
            heapq.heappop(h)
        return None

    def due(self, now):
        """The objects whose deadline is reached at `now`, earliest first; each is removed
        (the caller sets its next deadline once it has run)."""
        ms = self._clock(now)
        h = self._heap
        out = []
        while h and h[0][0] <= ms:
            e = heapq.heappop(h)
            if self._key.get(e[2]) == e[0]:
                del self._key[e[2]]
                out.append(e[2])
        return out
