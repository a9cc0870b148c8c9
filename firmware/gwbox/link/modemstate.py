"""The modem driver's states, shared by its two halves (gwbox.link.modem, the data-mode
path and the state; gwbox.link.hayes, the command mode, loaded only while needed): both
import them from here, so the command-mode half never imports the driver that loads it.
"""

IDLE = "idle"          # not initialised (or gave up): modem state unknown
INIT = "init"          # sending the init string, one command at a time
READY = "ready"        # command mode, initialised, on hook
DIALING = "dialing"    # ATD sent, waiting for CONNECT or a failure code
DATA = "data"          # online: bytes are payload
ESCAPING = "escaping"  # guard, +++, guard, waiting for OK
HANGUP = "hangup"      # ATH sent, dial being aborted, or DTR held low
BACKOFF = "backoff"    # waiting before the next attempt


def printable(raw):
    """Bytes as safe ASCII text, for parsing and for error reasons."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in raw)
