"""Events: the one vocabulary for logs, the monitor, tests and benchmarks.

An event is a name plus a few fields. State machines return lists of them; the
host turns them into JSON lines {"t_ms", "node", "event", ...fields} itself.
"""


class Event:

    def __init__(self, name, **fields):
        self.name = name
        self.fields = fields

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __repr__(self):
        return "Event(%s %r)" % (self.name, self.fields)

