"""The project's exceptions: protocol errors are values to report, never crashes."""


class ProtocolError(ValueError):
    """Bytes that are not a valid message, or a message that is not valid here."""


class PolicyError(ValueError):
    """A policy file or value that cannot be used; says file, line and field."""

    def __init__(self, msg, path=None, line=None, field=None):
        where = ""
        if path is not None:
            where = "%s:" % path
        if line is not None:
            where += "%d:" % line
        if field is not None:
            where += " %s:" % field
        ValueError.__init__(self, (where + " " + msg).strip() if where else msg)
        self.path = path
        self.line = line
        self.field = field
