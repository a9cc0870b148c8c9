"""A cluster's race (gwbox.cluster, docs/cluster.md "Recovery"): what happens once
several gateways are being keyed at once. Apart from gwbox.cluster, which every box holds,
because it runs only on a race's few events (a handshake ended, a head start or a grace
over): the cluster imports it for each and drops it again, so its code is not in the heap
of a box that is not racing, nor of one whose race waits for a call.
"""
from gwbox import const, ticks

GRACE_MS = const(2000)  # a gateway keyed first waits this long for one earlier in order


def tick(c, now):
    """The head start or the grace is over (the first of the race has started)."""
    if c.fan_at is not None and ticks.reached(now, c.fan_at):
        if c.drv.answering(c.racing[0]):
            # it answered its SA_INIT, or our key is still being made: probably alive (a
            # slow gateway, a loaded box), so look again a head start later instead of
            # spending key pairs and line bytes on the others. A forged answer holds the
            # others back only until this handshake fails by its own timers.
            c.fan_at = ticks.add(now, c.drv.hs_rto())
        else:
            fan_out(c, now)
    if c.grace_at is not None and ticks.reached(now, c.grace_at) and c.ready:
        win(c, [g for g in c.racing if g in c.ready][0], now)  # the earliest keyed


def fan_out(c, now):
    waiting = c.waiting
    c.waiting = []
    c.fan_at = None
    for gw in waiting:
        if gw in c.racing:
            c.trying_event(gw)
            c.drv.connect(gw, now)


def out_of_race(c, gw, now):
    """`gw` refused (or its new key died at once): the race goes on without it; when none
    is left, the next gateways in order, or the round is over."""
    c.racing.remove(gw)
    if gw in c.ready:
        c.ready.remove(gw)
    c.tried += 1
    if c.waiting and len(c.waiting) == len(c.racing):
        fan_out(c, now)  # every started one refused: the others at once
    if c.racing:
        decide(c, now)
    else:
        c.grace_at = None
        c._select(now)


def decide(c, now):
    """Use the earliest gateway of the race once it is keyed; while an earlier one may still
    finish (it answered its SA_INIT), a keyed later one waits up to GRACE_MS for it."""
    for g in c.racing:
        if g in c.ready:
            win(c, g, now)
            return
        if c.drv.answering(g):
            break
    if not c.ready:
        c.grace_at = None
    elif c.grace_at is None:
        c.grace_at = ticks.add(now, GRACE_MS)


def win(c, gw, now):
    """The race is over: `gw` is used; those still keying stop (those keyed stay cached)."""
    others = [g for g in c.racing if g not in c.ready and g not in c.waiting]
    c.racing = []
    c.ready = []
    c.waiting = []
    c.grace_at = c.fan_at = None
    c.tried = 0
    c.backoff = min(c.retry_ms, c.probe_max_ms)
    if others:
        c.drv.abandon(others, now)
    c._use(gw, now, False, "authenticated")
