"""`gwbox`: the one host command for gwbox boxes (docs/tools.md).

    gwbox flash --board esp32 --port /dev/ttyUSB0 ESP32_GENERIC.bin
    gwbox deploy --port /dev/ttyUSB0
    gwbox psk new

Adding a subcommand is one function here, decorated with @subcommand: it receives the
argparse sub-parsers object, adds its parser and sets `run` to a function of the parsed
arguments that returns an exit status (or None for 0). Import the module doing the work
inside `run` (flash.py, stdlib only, is imported early for its board list), so `gwbox
--help` stays fast and one tool's imports never break another.

A user error (a wrong argument, a missing file, a device that does not answer) is a
UserError: `gwbox` prints `gwbox <command>: <message>` on stderr and exits with its
status, never with a traceback.
"""
import argparse
import os
import shlex
import sys
import textwrap

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


SUBCOMMANDS = []


def subcommand(add):
    """Register a function that adds one subcommand's parser (see the module docstring)."""
    SUBCOMMANDS.append(add)
    return add


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _wrap(text):
    """A description, wrapped as argparse would (the epilogs keep their own lines)."""
    return textwrap.fill(text, 79)


@subcommand
def add_flash(sub):
    from gwbox_tools import flash
    p = sub.add_parser(
        "flash", formatter_class=_formatter, help="write a MicroPython firmware image to a board",
        description=_wrap("Write a MicroPython firmware image to a board. The image's header is checked "
                          "first: an image for another chip or board is refused."),
        epilog="ESP32: esptool write-flash at %s (the classic ESP32 .bin that MicroPython\n"
               "publishes: bootloader, partition table and application, written from 0x1000).\n"
               "Pico W: the .uf2 is copied to the RPI-RP2 drive (hold BOOTSEL while plugging the\n"
               "board in), or loaded with `picotool load -x` when no drive is mounted.\n"
               "Example: gwbox flash --board esp32 --port /dev/ttyUSB0 ESP32_GENERIC-v1.28.0.bin"
               % flash.ESP32_OFFSET)
    p.add_argument("--board", required=True, metavar="|".join(flash.BOARDS),
                   help="the board: " + ", ".join(flash.BOARDS))
    p.add_argument("--port", help="serial port (esp32: required, e.g. /dev/ttyUSB0; pico_w: optional, "
                                  "the board's MicroPython port, used to reboot it into its bootloader)")
    p.add_argument("--drive", metavar="PATH", help="pico_w: the mounted RPI-RP2 drive (default: found automatically)")
    p.add_argument("--erase", action="store_true",
                   help="esp32: erase the whole flash first (needed once when the board held other firmware; "
                        "wipes the file system with the deployed code and the box's settings)")
    p.add_argument("--dry-run", action="store_true", help="print the command(s) that would run, run nothing")
    p.add_argument("firmware", metavar="FIRMWARE", help="the image: .bin for esp32, .uf2 for pico_w")
    p.set_defaults(run=flash.run)


@subcommand
def add_deploy(sub):
    def run(args):
        from gwbox_tools import deploy
        return deploy.run(args)
    p = sub.add_parser(
        "deploy", formatter_class=_formatter, help="copy the firmware, compiled, to a board running MicroPython",
        description=_wrap("Compile every firmware module with mpy-cross for the device's .mpy version (read "
                          "from the device), copy what differs from the device with mpremote, remove stale "
                          "modules of the firmware's packages, soft-reset. main.py and boot.py stay source; "
                          "host-only modules are never copied."),
        epilog="Example: gwbox deploy --port /dev/ttyUSB0 --board esp32\n"
               "Connecting interrupts the program running on the board (as any mpremote command does).")
    p.add_argument("--port", help="the board's MicroPython serial port, e.g. /dev/ttyUSB0 or /dev/ttyACM0")
    p.add_argument("--dry-run", action="store_true",
                   help="read the device and print the plan and the mpremote command; change nothing")
    p.add_argument("--board", metavar="NAME",
                   help="also deploy the board's modules from boards/NAME/ (board.py: pins, UART, LED), "
                        "which main.py imports; not needed when they are frozen into the image")
    p.add_argument("--firmware", metavar="DIR", default=os.path.join(ROOT, "firmware"),
                   help="firmware tree to deploy (default: this checkout's firmware/); boards are "
                        "read from DIR/../boards, modules compiled into DIR/../build/deploy")
    p.set_defaults(run=run)


@subcommand
def add_psk(sub):
    def run_new(args):
        import base64
        key = os.urandom(32)
        print("base64:" + base64.b64encode(key).decode() if args.base64 else "hex:" + key.hex())
    p = sub.add_parser("psk", formatter_class=_formatter, help="pre-shared keys",
                       description=_wrap("Pre-shared keys for the policy file."))
    psk = p.add_subparsers(dest="psk_command", metavar="COMMAND")
    psk.required = True
    n = psk.add_parser("new", formatter_class=_formatter, help="print a fresh 32-byte key",
                       description=_wrap("Print a fresh 32-byte key from the OS's random source (os.urandom) "
                                         "in the policy file's key format, and nothing else on stdout."),
                       epilog="Example: gwbox psk new > box1.psk")
    n.add_argument("--base64", action="store_true", help="print base64:<44 chars> instead of hex:<64 hex digits>")
    n.set_defaults(run=run_new)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gwbox", formatter_class=_formatter,
        description=_wrap("gwbox host tools: put the firmware on a box and manage it (docs/tools.md)."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _checkout_on_path():
    """The firmware (gwbox package) and host tools of this checkout are importable."""
    for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")):
        if p not in sys.path:
            sys.path.append(p)


def main(argv=None):
    _checkout_on_path()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
    except UserError as e:
        print("gwbox %s: %s" % (args.command, e), file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print("gwbox %s: interrupted" % args.command, file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
