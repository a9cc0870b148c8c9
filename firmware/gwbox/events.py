"""Events: the one vocabulary for logs, the monitor, tests and benchmarks.

An event is a name plus a few fields. State machines return lists of them; every
port writes them in one line format, `json_line`: a JSON object
{"t_ms", "node", "event", ...fields}, bytes as text. Secrets are never fields.
"""
import json

# The vocabulary: every event name the firmware emits, one constant each (the value is
# what logs, tests and the monitor see).
BACKOFF = "backoff"
CALL_FAILED = "call_failed"
CARRIER_CONFIRMED = "carrier_confirmed"
CARRIER_DOUBT = "carrier_doubt"
DEAD_CALL = "dead_call"
DIAL_FAILED = "dial_failed"
DIALING = "dialing"
DROPPED = "dropped"
DTR = "dtr"
FAILBACK = "failback"
FAILBACK_TRYING = "failback_trying"
GATEWAY_DEAD = "gateway_dead"
GATEWAY_IN_USE = "gateway_in_use"
GATEWAY_TRYING = "gateway_trying"
GATEWAY_VERIFIED = "gateway_verified"
HANDSHAKE_FAILED = "handshake_failed"
HANDSHAKE_STARTED = "handshake_started"
HANGUP_DONE = "hangup_done"
HEARTBEAT_ACK = "heartbeat_ack"
HEARTBEAT_SENT = "heartbeat_sent"
IDLE_HANGUP = "idle_hangup"
KEY_REQUEST_REJECTED = "key_request_rejected"
LAN_REFUSED = "lan_refused"
LINE_SWITCH = "line_switch"
LINK_DOWN = "link_down"
LINK_UP = "link_up"
MESSAGE_STUCK = "message_stuck"
MODEM_ERROR = "modem_error"
MODEM_FAILED = "modem_failed"
MODEM_READY = "modem_ready"
OUTBOX_LOST = "outbox_lost"
PEER_DEAD = "peer_dead"
REDIAL = "redial"
REKEY_FAILED = "rekey_failed"
REKEY_STARTED = "rekey_started"
REKEYED = "rekeyed"
SA_DELETED = "sa_deleted"
SA_ESTABLISHED = "sa_established"
SEND_FAILED = "send_failed"
SESSION_ERROR = "session_error"
WINDOWS_RESET = "windows_reset"


class Event:

    def __init__(self, name, **fields):
        self.name = name
        self.fields = fields

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __repr__(self):
        return "Event(%s %r)" % (self.name, self.fields)


def _plain(v):
    """A JSON-ready copy: bytes (identities, reasons) as printable text, containers walked."""
    if isinstance(v, (bytes, bytearray)):
        return "".join(chr(b) if 32 <= b < 127 else "?" for b in v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(v[k]) for k in v}
    return v


def text_line(t_ms, name, fields):
    """One event as a line for people (`show log`): seconds since boot, its name, key=value."""
    s = "%d.%03d s %s" % (t_ms // 1000, t_ms % 1000, name)
    for k in fields:
        s += " %s=%s" % (k, _plain(fields[k]))
    return s


def json_line(t_ms, node, name, fields):
    """One event as one JSON line (no newline), the same on a board, in a pipe and on the host."""
    d = _plain(fields)
    d["t_ms"] = t_ms
    d["node"] = node
    d["event"] = name
    return json.dumps(d)
