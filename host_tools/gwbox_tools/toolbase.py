"""What `gwbox` and every subcommand module share: the checkout's root, the exit statuses,
UserError and the checks of what the user named (a serial port, an installed tool).

It lives apart from cli.py so the subcommand modules (flash, deploy, boxcmd, hostcmd) import
it without importing the command line that imports them: no import circle.
"""
import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Exit statuses: 0 done; 1 a tool or the device failed; 2 refused (bad arguments or input).
EXIT_FAILED = 1
EXIT_REFUSED = 2


class UserError(Exception):
    """A problem the user can fix; the message says how. Printed without a traceback."""

    def __init__(self, message, status=EXIT_REFUSED):
        super().__init__(message)
        self.status = status


def shell_join(argv):
    """A command line as it would be typed in a POSIX shell."""
    return " ".join(shlex.quote(str(a)) for a in argv)


PORT_HINT = "list serial ports with `ls /dev/ttyUSB* /dev/ttyACM*` or `python -m serial.tools.list_ports`"


def check_serial_port(port, required=True):
    """Refuse a missing or nonexistent serial port before any tool is run."""
    if not port:
        if required:
            raise UserError("--port is required: the box's USB serial port (%s)" % PORT_HINT)
        return
    if "://" in port or os.name == "nt":
        return  # rfc2217://, socket:// or COM3: nothing on the file system to check
    if not os.path.exists(port):
        raise UserError("serial port %s does not exist: is the box plugged in? (%s)" % (port, PORT_HINT))


def require_module(name):
    """Refuse to go on when a tool the command runs is not installed in this interpreter."""
    import importlib.util
    if importlib.util.find_spec(name) is None:
        raise UserError("%s is not installed for %s: run `make venv` in the gwbox checkout (or pip install -r "
                        "requirements.txt)" % (name, sys.executable), EXIT_FAILED)
