"""Link settings with embedded defaults; the policy file (a later layer) fills these in.

All durations are milliseconds so the state machines never convert units.
"""

KEEPALIVE_ACK = "ack"  # protected INFO request answered by a protected INFO response
KEEPALIVE_PROBE = "probe"  # seed claim 14: quick mode with an invalid proposal, answered NO-PROPOSAL-CHOSEN


class LinkConfig:
    """One box's view of its protected link. Attribute names say the behaviour they bound."""

    keepalive_idle_ms = 10000  # no authenticated packet received for this long: probe the peer
    response_ms = 2000  # wait this long for a keepalive ack / rekey response before retrying
    # Retries after the first keepalive request before the peer is declared dead. 3, not 2:
    # at 5% packet loss, 2 gave 6 false teardowns a day and 3 gave none (bench/false_teardowns.py),
    # for 2 s more worst-case detection (18 s instead of 16 s).
    retries = 3
    keepalive_form = KEEPALIVE_ACK
    rekey_ms = 8 * 3600 * 1000  # rekey after Y hours ...
    rekey_bytes = 10 * 1024 * 1024  # ... or X kbytes of data-SA payload, whichever first
    handshake_retry_ms = 3000  # retransmit an unanswered handshake message after this long
    handshake_retries = 3
    half_open_max = 8  # responder: handshakes in progress at once (bounds memory under a flood)

    def __init__(self, **overrides):
        for k in overrides:
            if not hasattr(LinkConfig, k):
                raise ValueError("unknown link setting %r" % k)
            setattr(self, k, overrides[k])
        if self.keepalive_form not in (KEEPALIVE_ACK, KEEPALIVE_PROBE):
            raise ValueError("keepalive_form must be 'ack' or 'probe'")

    def detect_bound_ms(self):
        """Longest time from the last packet heard to peer_dead."""
        return self.keepalive_idle_ms + (self.retries + 1) * self.response_ms

    def rekey_grace_ms(self):
        """How long superseded SAs still accept inbound packets after a rekey."""
        return 2 * self.response_ms
