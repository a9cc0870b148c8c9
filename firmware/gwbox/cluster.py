"""Cluster: which gateway of a cluster the box uses, and what to do when it fails (sans-I/O).

GB 2 363 548, claims 1-15. The gateways are tried in an order that is randomized each time
the policy is read (unless turned off; the preferred gateway, if any, goes first).
Authentication goes round-robin through that order, up to PARALLEL gateways a call reaches
at once (a *race*): a dead gateway costs no time before a live one is tried. The order
still decides: the earliest gateway of the race that is keyed within GRACE_MS of the first
one is used (a forged SA_INIT answer never decides anything: only a completed, authenticated
handshake counts). When every gateway refused, the key request is rejected
(`key_request_rejected`) and the whole round is tried again after a back-off that doubles
up to `probe_max_ms` (a few seconds: a gateway that comes back is found at once): a box
never gives up on its tunnels.

When the gateway in use is declared dead by its heartbeat, its key is dropped and the box
uses the next gateway in order that already has a key (and must answer before it is
trusted: `verify`), else authenticates the next one. A box that is not on its preferred
gateway tries to key with it every `failback_ms` (back-off while it stays away; with a
random source, up to half again at random, so boxes that failed over together do not
all come back together: no second storm at a gateway that returns) and moves
back once that succeeds; if it dies again soon after, the next try waits twice as long, so
a flapping gateway is not chased in a loop.

The box (gwbox.box) is the driver: it says what happened (established, failed, dead,
verified, a call came up) and carries out what this decides through `drv`:
    drv.has_key(gw)  drv.connect(gw, now)  drv.use(gw, now, verify)  drv.drop(gw, now)
    drv.abandon(gws, now)  drv.together(gw, other)  drv.answering(gw)  drv.hs_rto()
    drv.event(name, **fields)
(`together`: one call reaches both, so they can be keyed at once; `abandon`: stop keying;
`answering`: None before its handshake started, else whether it looks alive (an SA_INIT
answer, unauthenticated: only a reason to wait for it); `hs_rto`: how long the first of a
race runs alone, a handshake's first retransmission time. The race's own rules are in
gwbox.race, loaded for a race's events only.)
"""
from gwbox import const, forget, ticks

PARALLEL = const(3)  # handshakes one cluster runs at once: each holds an X25519 key pair


def gateway_order(gateways, preferred, randomize, rand_bytes):
    """The order to try `gateways` in: preferred first, the rest shuffled if `randomize`
    (Fisher-Yates on `rand_bytes(n)`, injected so tests are reproducible)."""
    rest = [g for g in gateways if g != preferred]
    if randomize:
        r = rand_bytes(len(rest))
        for i in range(len(rest) - 1, 0, -1):
            j = r[i] % (i + 1)
            rest[i], rest[j] = rest[j], rest[i]
    return ([preferred] if preferred in gateways else []) + rest


class Cluster:
    def __init__(self, name, space, order, preferred, drv, retry_ms, retry_max_ms, failback_ms, rand_bytes=None,
                 probe_max_ms=None):
        self.name = name  # e.g. "Cluster1", or the gateway address of a single-gateway tunnel
        self.space = space  # the outbox number space of this cluster's messages
        self.order = order
        self.preferred = preferred if preferred in order else None
        self.drv = drv
        self.retry_ms = retry_ms
        self.retry_max_ms = retry_max_ms
        self.failback_ms = failback_ms
        self.in_use = None
        self.verifying = False  # in_use is a cached key that has not answered yet
        self.racing = []  # gateways being authenticated to be used, in order (at most PARALLEL)
        self.ready = []  # of those, the ones keyed, while an earlier one may still finish
        self.grace_at = None  # then the earliest keyed one is used
        self.waiting = []  # of those, the ones not started yet: they start at fan_at
        self.fan_at = None
        self.tried = 0  # gateways that failed in this round
        self.cursor = 0  # index in order of the next gateway to try
        self.probe_max_ms = retry_max_ms if probe_max_ms is None else min(probe_max_ms, retry_max_ms)
        self.backoff = min(retry_ms, self.probe_max_ms)
        self.retry_at = None  # next round after every gateway refused
        self.fb_backoff = failback_ms
        self.fb_at = None  # next attempt to return to the preferred gateway
        self.fb_trying = False
        self.since_failback = None  # when we last returned to the preferred gateway (flap detection)
        self.rand_bytes = rand_bytes  # jitter for failback tries (None: exactly on time)

    # --- what happened ---------------------------------------------------------------------

    def begin(self, now):
        """Boot: key with the first gateway in order."""
        if self.in_use is None and not self.racing and self.retry_at is None:
            self._select(now)

    def resume(self, now):
        """A call came (back): keys outlive calls, but the first answer must confirm them."""
        if self.in_use is not None:
            self.verifying = True
            self.drv.use(self.in_use, now, True)

    def established(self, gw, now):
        if gw in self.racing:
            if gw not in self.ready:
                self.ready.append(gw)
            if gw == self.preferred:
                self.fb_trying = False
            from gwbox import race
            race.decide(self, now)
            forget("gwbox.race")  # its code leaves the heap between events
        elif gw == self.preferred and self.fb_trying:
            self.fb_trying = False
            old = self.in_use
            self._use(gw, now, False, "failback")
            self.drv.event("failback", cluster=self.name, gateway=gw, previous=old)

    def failed(self, gw, now):
        if gw in self.racing:
            if gw == self.preferred:
                self.fb_trying = False  # a failback try the race took over ended with it
            from gwbox import race
            race.out_of_race(self, gw, now)
            forget("gwbox.race")  # its code leaves the heap between events
        elif gw == self.preferred and self.fb_trying:
            self.fb_trying = False
            self._schedule_failback(now, True)

    def dead(self, gw, now, reason):
        """A session of `gw` ended (heartbeat verdict, DELETE, lifetime)."""
        if gw in self.ready:  # keyed in the race, gone before it was used
            from gwbox import race
            race.out_of_race(self, gw, now)
            forget("gwbox.race")  # its code leaves the heap between events
            return
        if gw != self.in_use:
            return  # a cached key went away: it simply is not cached any more
        self.drv.drop(gw, now)
        was_verifying = self.verifying
        self.in_use = None
        self.verifying = False
        if gw == self.preferred and self.since_failback is not None and \
                ticks.diff(now, self.since_failback) < 4 * self.failback_ms:
            self.fb_backoff = min(self.fb_backoff * 2, 16 * self.failback_ms)  # came back, died again: wait longer
        self.since_failback = None
        self.drv.event("gateway_dead", cluster=self.name, gateway=gw, reason=reason, unverified=was_verifying)
        self.cursor = (self.order.index(gw) + 1) % len(self.order)
        self.tried = 1
        self._select(now)

    def started(self, gw, now):
        """Our handshake with `gw` started: the first of a race has its head start from now
        (the box starts a handshake some ticks after it was decided, docs/chip.md)."""
        if self.fan_at is not None and self.racing and gw == self.racing[0]:
            self.fan_at = ticks.add(now, self.drv.hs_rto())

    def verified(self, gw, now):
        if gw == self.in_use and self.verifying:
            self.verifying = False
            self.drv.event("gateway_verified", cluster=self.name, gateway=gw)

    # --- timers ------------------------------------------------------------------------

    def tick(self, now):
        if self.fan_at is not None and ticks.reached(now, self.fan_at) or \
                self.grace_at is not None and ticks.reached(now, self.grace_at):
            if self.drv.answering(self.racing[0]) is None:  # the first has not even started
                self.fan_at = ticks.add(now, self.drv.hs_rto())  # (no call yet): nothing to judge
            else:
                from gwbox import race
                race.tick(self, now)
                forget("gwbox.race")  # its code leaves the heap between events
        if self.retry_at is not None and ticks.reached(now, self.retry_at):
            self.retry_at = None
            self.tried = 0
            self.cursor = 0
            self._select(now)
        if self.fb_at is not None and ticks.reached(now, self.fb_at):
            self.fb_at = None
            self._try_failback(now)
        if self.since_failback is not None and ticks.diff(now, self.since_failback) >= 4 * self.failback_ms:
            self.fb_backoff = self.failback_ms  # stable again: forget the flapping
            self.since_failback = None

    def next_deadline(self):
        stable = None
        if self.since_failback is not None:
            stable = ticks.add(self.since_failback, 4 * self.failback_ms)
        return ticks.earliest(self.retry_at, self.fb_at, stable, self.grace_at, self.fan_at)

    def wants(self):
        """The gateway this cluster needs a call to now (being keyed, or in use), or None."""
        if self.racing:
            return self.racing[0]
        if self.fb_trying:
            return self.preferred
        return self.in_use

    # --- decisions ---------------------------------------------------------------------

    def _select(self, now):
        """Use the next gateway in order that has a key, else authenticate the next one."""
        n = len(self.order)
        if self.tried >= n:
            self.tried = 0
            self.cursor = 0
            wait = self.backoff
            if self.rand_bytes is not None:  # up to a quarter more: boxes of a cluster that went
                wait += self.rand_bytes(1)[0] * wait // 1024  # down together do not probe in step
            self.retry_at = ticks.add(now, wait)
            self.drv.event("key_request_rejected", cluster=self.name, retry_ms=wait)
            self.backoff = min(self.backoff * 2, self.probe_max_ms)
            return
        for k in range(n):
            gw = self.order[(self.cursor + k) % n]
            if self.drv.has_key(gw):
                self._use(gw, now, True, "cached_key")
                return
        # A race: the next gateways in order that one call reaches, all keyed at once.
        first = self.order[self.cursor]
        race = [first]
        for k in range(1, min(n - self.tried, PARALLEL)):
            gw = self.order[(self.cursor + k) % n]
            if not self.drv.together(first, gw):
                break
            race.append(gw)
        self.cursor = (self.cursor + len(race)) % n
        self.racing = race
        self.ready = []
        self.grace_at = None
        # The first in order alone for one first-retransmission time (a live gateway has
        # answered by then: no bytes, no key pairs spent on the others), then the rest.
        self.waiting = race[1:]
        self.fan_at = None
        if self.waiting:
            self.fan_at = ticks.add(now, self.drv.hs_rto())
        self.trying_event(first)
        self.drv.connect(first, now)

    def trying_event(self, gw):
        self.drv.event("gateway_trying", cluster=self.name, gateway=gw,
                       attempt=self.tried + self.racing.index(gw) + 1)

    def _use(self, gw, now, verify, how):
        self.in_use = gw
        self.verifying = verify
        if how == "failback":
            self.since_failback = now
        self.drv.event("gateway_in_use", cluster=self.name, gateway=gw, how=how)
        self.drv.use(gw, now, verify)
        if self.preferred is not None and gw != self.preferred:
            self._schedule_failback(now, False)
        else:
            self.fb_at = None

    def _schedule_failback(self, now, grow):
        # Up to half again, at random: the thousands of boxes that failed over together when
        # a gateway died must not all come back to it at the same moment (a second storm).
        wait = self.fb_backoff
        if self.rand_bytes is not None:
            wait += self.rand_bytes(1)[0] * wait // 512
        self.fb_at = ticks.add(now, wait)
        if grow:
            self.fb_backoff = min(self.fb_backoff * 2, 16 * self.failback_ms)

    def _try_failback(self, now):
        p = self.preferred
        if p is None or self.in_use == p or self.fb_trying:
            return
        if self.drv.has_key(p):
            old = self.in_use
            self._use(p, now, True, "failback")
            self.drv.event("failback", cluster=self.name, gateway=p, previous=old)
            return
        self.fb_trying = True
        self.drv.event("failback_trying", cluster=self.name, gateway=p)
        self.drv.connect(p, now)
