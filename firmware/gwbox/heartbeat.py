"""Heartbeat: the one liveness timer of a session (EP 0 999 673 keepalive, GB 2 363 548 modes).

Pure timer logic; the session turns its verdicts into packets. What counts is *proof of
life*: an answer bound to something we sent (a heartbeat ack, a confirmation of our
payload, a response to our control request), dated by when we sent what it answers. A
genuine packet that an attacker held back and released late therefore proves only that
the peer was alive back then, and cannot keep a dead peer looking alive (anything else
the peer sends, its own data or requests, proves nothing about *now*).

    no proof for defer_ms (and, in DEFERRED mode, payload waiting) -> SEND heartbeat
    or: payload sent response_ms ago and still unanswered       -> SEND heartbeat
    no proof within response_ms of each heartbeat -> SEND another, `retries` times
    response_ms after the last one                -> DEAD
so a dead peer is declared dead at most defer + (retries + 1) * response after the last
proof, and (retries + 2) * response after the first payload it left unanswered. Modes: INSTANT probes whenever proof is due; DEFERRED only while payload waits for
this peer (seed: "deferred until the client has to send IP packets"); NONE never (a cached
gateway, or a gateway towards its boxes).

Each heartbeat carries its own id, so an answer names exactly which one it answers.
"""
from gwbox import const, ticks
from gwbox.config import DEFERRED, INSTANT

SEND = "send"
DEAD = "dead"
_STALE_MS = const(1 << 28)
_RECENT = const(24)  # heartbeats whose late answers are still recognised (about 4 full rounds)  # about 3 days, half of the 2**29 ms a tick difference can hold


class Heartbeat:

    def __init__(self, mode, defer_ms, response_ms, retries, now):
        self.mode = mode
        self.defer_ms = defer_ms
        self.response_ms = response_ms
        self.retries = retries
        self.proven = now  # the latest time the peer is proven to have been alive
        self.payload = False  # DEFERRED: payload for this peer waits for confirmation
        self.awaiting = None  # (sent, left the box) of the oldest payload still unanswered, or None
        self.forced = False  # one round asked for whatever the mode (`force`)
        self.attempt = 0  # heartbeats sent in the round in progress (0: no round)
        self.sent_ids = []  # [(id, tick sent)] of this round
        self.recent = []  # ids of the last few rounds: their late answers are no news
        self._next_id = 0
        self.rtt = None  # ms from the answered heartbeat to its answer

    def _age(self, now):
        """ms since the last proof; a proof older than days is re-dated to `defer` ago, so it
        never ages past half the tick period (where it would look like the future)."""
        a = ticks.diff(now, self.proven)
        if a > _STALE_MS or a < 0:
            self.proven = ticks.add(now, -self.defer_ms)
            a = self.defer_ms
        return a

    def _active(self):
        return self.forced or self.mode == INSTANT or (self.mode == DEFERRED and self.payload)

    def set_mode(self, mode, now):
        self._age(now)
        self.mode = mode
        if not self._active():
            self._end_round()

    def set_payload(self, waiting, now):
        self._age(now)
        self.payload = waiting

    def expect(self, sent):
        """(tick sent, tick it left the box) of payload that awaits its answer, or None.

        No proof since it was sent, within response_ms of its leaving the box (a busy line
        may hold it a while), starts the round at once instead of after defer_ms: a gateway
        that stops answering live traffic is noticed as soon as one that stops answering
        heartbeats."""
        self.awaiting = sent

    def _overdue(self, now):
        a = self.awaiting
        return a is not None and ticks.diff(a[0], self.proven) > 0 and \
            ticks.reached(now, ticks.add(a[1], self.response_ms))

    def force(self, now):
        """One round now, whatever the mode (an operator's link test)."""
        self.forced = True
        self.check_now(now)

    def check_now(self, now):
        """Demand proof at once (a cached key taken into use, a line that came back)."""
        self.proven = ticks.add(now, -self.defer_ms)

    def new_id(self):
        """The next 1-byte heartbeat id (1..255) for the protected form."""
        self._next_id = self._next_id % 255 + 1
        return self._next_id

    def proof(self, t, now):
        """The peer was alive at tick `t` (when we sent what it answered)."""
        if ticks.diff(t, now) > 0:
            t = now
        if ticks.diff(t, self.proven) > 0:
            self.proven = t
        if self.attempt and self._age(now) < self.defer_ms:
            self._end_round()

    def acked(self, hb_id, now):
        """True (and proof) for an answer to a heartbeat of this round; False for a late
        answer to one of the last rounds; None for anything else (stale or forged id)."""
        for i, t in self.sent_ids:
            if i == hb_id:
                self.rtt = ticks.diff(now, t)
                self.proof(t, now)
                return True
        return False if hb_id in self.recent else None

    def _end_round(self):
        self.attempt = 0
        self.sent_ids = []
        self.forced = False

    def poll(self, now):
        """SEND (the caller then calls `sent`), DEAD, or None."""
        if not self._active():
            return None
        if self.attempt == 0:
            return SEND if self._age(now) >= self.defer_ms or self._overdue(now) else None
        if not ticks.reached(now, ticks.add(self.sent_ids[-1][1], self.response_ms)):
            return None
        if self.attempt > self.retries:
            self._end_round()
            self.proven = now  # the caller ends the session; never report twice
            return DEAD
        return SEND

    def sent(self, hb_id, now):
        """Record the heartbeat just sent (a new round's first, or the next of this round)."""
        self.attempt += 1
        self.sent_ids.append((hb_id, now))
        self.recent.append(hb_id)
        if len(self.recent) > _RECENT:
            self.recent.pop(0)

    def next_deadline(self):
        if not self._active():
            return None
        if self.attempt == 0:
            a = self.awaiting
            if a is not None and ticks.diff(a[0], self.proven) > 0:
                return ticks.earliest(ticks.add(self.proven, self.defer_ms), ticks.add(a[1], self.response_ms))
            return ticks.add(self.proven, self.defer_ms)
        return ticks.add(self.sent_ids[-1][1], self.response_ms)
