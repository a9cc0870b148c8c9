"""Keepalive timer (EP 0 999 673): decides when to probe the peer and when it is dead.

Pure timer logic; the session turns its verdicts into protected messages. "Idle" is
measured from the last *authenticated packet received*: packets we send prove nothing
about reachability, so a box streaming into a dead line still probes (the seed counts
traffic in either direction; see docs/protocol.md for why we do not).

    idle_ms after last heard -> SEND request (msg id m)
    each response_ms without a valid ack -> SEND again (same m), `retries` times
    response_ms after the last retry     -> DEAD
so the peer is declared dead at most idle + (retries + 1) * response_ms after it was
last heard.
"""
from gwbox import ticks

SEND = "send"
DEAD = "dead"


class Keepalive:

    def __init__(self, idle_ms, response_ms, retries, now):
        self.idle_ms = idle_ms
        self.response_ms = response_ms
        self.retries = retries
        self.pending = None
        self.ended = None
        self.heard(now)

    def heard(self, now):
        """A fresh authenticated packet arrived: the peer is alive, any probe round ends."""
        if self.pending is not None:
            self.ended = self.pending  # its late ack is expected: ignore it quietly
        self.pending = None
        self.attempt = 0
        self.sent_at = None
        self.deadline = ticks.add(now, self.idle_ms)

    def poll(self, now):
        """SEND (the caller then calls `sent`), DEAD, or None."""
        if not ticks.reached(now, self.deadline):
            return None
        if self.attempt > self.retries:
            self.deadline = None
            return DEAD
        return SEND

    def sent(self, msg_id, now):
        """Record the request just sent: a new round's id, or a retry of the same one."""
        if self.pending is None:
            self.pending = msg_id
            self.sent_at = now
        self.attempt += 1
        self.deadline = ticks.add(now, self.response_ms)

    def acked(self, msg_id, now):
        """True, and the round ends, only for the ack of the outstanding request."""
        if self.pending is None or msg_id != self.pending:
            return False
        self.pending = None  # answered: any further ack for it is stale, not "late"
        self.heard(now)
        return True

    def next_deadline(self):
        return self.deadline
