"""Events: the one vocabulary for logs, the monitor, tests and benchmarks.

An event is a name plus a few fields. State machines return lists of them; every
port writes them in one line format, `json_line`: a JSON object
{"t_ms", "node", "event", ...fields}, bytes as text. Secrets are never fields.
"""
import json


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


def json_line(t_ms, node, name, fields):
    """One event as one JSON line (no newline), the same on a board, in a pipe and on the host."""
    d = _plain(fields)
    d["t_ms"] = t_ms
    d["node"] = node
    d["event"] = name
    return json.dumps(d)
