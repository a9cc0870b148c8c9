"""Wrapping millisecond tick arithmetic, the one place time maths happens.

Board ports deliver `time.ticks_ms()` values that wrap at 2**30; the unix port and
CPython do not, so every clock is reduced into the same 2**30 period and every
comparison goes through `diff`/`add`, mirroring MicroPython's ticks_diff/ticks_add.
A deadline may lie at most PERIOD/2 - 1 ms (~6.2 days) ahead.
"""

from gwbox import const

PERIOD = 1 << 30
MASK = PERIOD - 1
_HALF = const(1 << 29)  # PERIOD / 2 (a small int on 32-bit boards too)


def add(t, delta_ms):
    """Tick value `delta_ms` after (or before, if negative) tick `t`."""
    return (t + delta_ms) & MASK


def diff(a, b):
    """Signed ms from b to a (a - b), correct across the wrap."""
    return ((a - b + _HALF) & MASK) - _HALF


def reached(now, deadline):
    """True once `now` is at or past `deadline` (None means never)."""
    return deadline is not None and diff(now, deadline) >= 0


def earliest(*deadlines):
    """The soonest of several deadlines, ignoring None; None if all are None."""
    best = None
    for d in deadlines:
        if d is not None and (best is None or diff(d, best) < 0):
            best = d
    return best
