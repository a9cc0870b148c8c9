"""Events: the one vocabulary for logs, the monitor, tests and benchmarks.

An event is a name plus a few fields. State machines return lists of them; the
host turns them into JSON lines {"t_ms", "node", "event", ...fields}.
"""


class Event:
    __slots__ = ("name", "fields")

    def __init__(self, name, **fields):
        self.name = name
        self.fields = fields

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def as_dict(self, t_ms=None, node=None):
        d = {"event": self.name}
        if t_ms is not None:
            d["t_ms"] = t_ms
        if node is not None:
            d["node"] = node
        for k in self.fields:
            d[k] = self.fields[k]
        return d

    def __repr__(self):
        return "Event(%s %r)" % (self.name, self.fields)


def names(events):
    """Just the names, in order: handy for assertions."""
    return [e.name for e in events]
