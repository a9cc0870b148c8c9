"""The project's exceptions: protocol errors are values to report, never crashes."""


class ProtocolError(ValueError):
    """Bytes that are not a valid message, or a message that is not valid here."""
