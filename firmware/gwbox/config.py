"""Link settings with embedded defaults; the policy file fills them in (gwbox.policy).

All durations are milliseconds so the state machines never convert units. Every
setting is checked when the config is built: a timer that is not a positive int below
the 2**29 ms half-period of MicroPython ticks would compute deadlines in the past.
"""
from gwbox import const

# Heartbeat modes (GB 2 363 548): when the gateway in use is probed.
INSTANT = "INSTANT"  # after defer_ms without proof of life, payload or not
DEFERRED = "DEFERRED"  # only while payload for that gateway waits for confirmation
NONE = "NONE"  # never (a cached gateway, and gateways towards their boxes by default)

# Heartbeat forms: what travels.
PROTECTED = "PROTECTED"  # data-SA heartbeat request, answered by a protected ack (26 + 26 bytes)
PROBE = "PROBE"  # EP 0 999 673 claim 14: control-SA quick mode with an invalid proposal
SPI_ECHO = "SPI-ECHO"  # GB 2 363 548's unprotected SPI 0xFFFFFFFF echo: compatibility only, spoofable

_TIMER_MAX_MS = const((1 << 29) - 1)  # a deadline may lie at most this far ahead (gwbox.ticks)

# One row per setting: (name, default, least, most) for integers, (name, default, choices)
# for words. The defaults are the attributes' values; the bounds are checked on overrides.
_SETTINGS = (
    ("defer_ms", 5000, 1, _TIMER_MAX_MS),  # HeartbeatDeferTime: no proof of life this long -> heartbeat
    ("response_ms", 1000, 1, _TIMER_MAX_MS),  # HeartbeatResponseTime: wait for an answer before the next
    # Heartbeats after the first before the gateway is declared dead (the seed's "second
    # heartbeat" is 1). 5: at 5% loss each way a round fails with p = 0.0975, and six
    # failed rounds in a row are rare enough that 24 h of idle 5-second rounds see none
    # (bench/false_teardowns.py), while the worst case stays at defer + 6 x response = 11 s.
    ("retries", 5, 0, 20),
    ("rekey_ms", 8 * 3600 * 1000, 1000, _TIMER_MAX_MS),  # soft lifetime: rekey after Y hours ...
    ("rekey_bytes", 10 * 1024 * 1024, 1024, 1 << 40),  # ... or X kbytes of data-SA payload
    ("lifetime_ms", 9 * 3600 * 1000, 2000, _TIMER_MAX_MS),  # hard lifetime: no rekey by then, SA deleted
    ("rekey_retry_ms", 10000, 100, _TIMER_MAX_MS),  # a failed rekey is tried again after this
    ("handshake_retry_ms", 3000, 100, _TIMER_MAX_MS),  # retransmit an unanswered handshake message
    ("handshake_retries", 3, 0, 10),
    # Responder admission (docs/protocol.md): handshakes in progress at once, and the count
    # from which every SA_INIT must return a cookie first (IKEv2's global threshold).
    ("half_open_max", 1024, 1, 1 << 16),
    ("cookie_threshold", 64, 0, 1 << 16),
    ("heartbeat", INSTANT, (INSTANT, DEFERRED, NONE)),  # this side's mode towards the peer it uses
    ("gateway_heartbeat", NONE, (INSTANT, DEFERRED, NONE)),  # a responder's mode towards its boxes
    ("heartbeat_form", PROTECTED, (PROTECTED, PROBE, SPI_ECHO)),
)


class LinkConfig:
    """One node's view of its protected links. Attribute names say the behaviour they bound."""

    def __init__(self, **overrides):
        given = "lifetime_ms" in overrides
        for row in _SETTINGS:
            k = row[0]
            v = overrides.pop(k, row[1])
            if len(row) == 3:
                if v not in row[2]:
                    raise ValueError("link setting %s must be one of %s, not %r" % (k, "/".join(row[2]), v))
            elif not isinstance(v, int) or isinstance(v, bool) or not row[2] <= v <= row[3]:
                raise ValueError("link setting %s must be an integer from %d to %d, not %r" % (k, row[2], row[3], v))
            setattr(self, k, v)
        for k in overrides:
            raise ValueError("unknown link setting %r" % k)
        if self.lifetime_ms <= self.rekey_ms:
            if given:
                raise ValueError("link setting lifetime_ms must be longer than rekey_ms")
            self.lifetime_ms = min(_TIMER_MAX_MS, self.rekey_ms + self.rekey_ms // 8 + 1000)

    def detect_bound_ms(self):
        """Longest time from the last proof of life to the verdict `peer_dead`."""
        return self.defer_ms + (self.retries + 1) * self.response_ms

    def rekey_grace_ms(self):
        """How long superseded SAs still accept inbound packets after a rekey."""
        return 2 * self.response_ms
