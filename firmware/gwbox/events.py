"""Events: the one vocabulary for logs, the monitor, tests and benchmarks.

An event is a name plus a few fields. State machines return lists of them; every
port writes them in one line format, `json_line`: a JSON object
{"t_ms", "node", "event", ...fields}, bytes as text. Secrets are never fields.
"""
import json

# The vocabulary: every event name the firmware emits, written out as a string where it is
# emitted (one constant per name here cost a device 41 interned names for good: the qstr
# pools, docs/memory.md). tests/host/test_event_names.py holds every emitter to this list.
# VOCABULARY:
#   backoff call_failed carrier_confirmed carrier_doubt dead_call dial_failed dialing dropped
#   dtr failback failback_trying gateway_dead gateway_in_use gateway_trying gateway_verified
#   handshake_failed handshake_started hangup_done heartbeat_ack heartbeat_sent idle_hangup
#   key_request_rejected lan_refused line_switch link_down link_up message_stuck modem_error
#   modem_failed modem_ready outbox_lost peer_dead redial rekey_failed rekey_started rekeyed
#   sa_deleted sa_established send_failed session_error windows_reset


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
