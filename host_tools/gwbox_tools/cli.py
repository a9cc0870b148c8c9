"""`gwbox`: the one host command for gwbox boxes (docs/tools.md).

    gwbox flash --board esp32 --port /dev/ttyUSB0 ESP32_GENERIC.bin
    gwbox deploy --port /dev/ttyUSB0
    gwbox config check|push|pull ...      gwbox console-password
    gwbox console --port P                gwbox monitor --port P
    gwbox gateway ...   gwbox emulate   gwbox demo   gwbox loadtest --boxes N --gateways G
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
import sys
import textwrap

from gwbox_tools.toolbase import ROOT, UserError


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
    p.add_argument("--romfs", action="store_true",
                   help="put the firmware's modules into the board's ROMFS partition (an image built with "
                        "ROMFS, MicroPython 1.25+): they run in place from flash and need about 37 KB less "
                        "heap; their copies on the file system are removed")
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


def _port_args(p, what="the box's console"):
    p.add_argument("--port", help="%s: the board's USB serial port, e.g. /dev/ttyUSB0 (gwbox emulate prints the "
                                  "emulated box's)" % what)
    p.add_argument("--baud", type=int, default=115200, help="baud rate of the console (default 115200)")


@subcommand
def add_config(sub):
    def run(args):
        from gwbox_tools import boxcmd
        return {"check": boxcmd.run_config_check, "push": boxcmd.run_config_push,
                "pull": boxcmd.run_config_pull}[args.config_command](args)
    p = sub.add_parser("config", formatter_class=_formatter, help="check a policy file, push it to a box, pull it back",
                       description=_wrap("The box's policy file (docs/policy.md): check it here, push it to a box "
                                         "through its console, pull the box's back with secrets masked "
                                         "(docs/console.md)."))
    cs = p.add_subparsers(dest="config_command", metavar="COMMAND")
    cs.required = True
    c = cs.add_parser("check", formatter_class=_formatter, help="validate a policy file here (line-numbered errors)",
                      description=_wrap("Validate a policy file with the firmware's own parser: every error with "
                                        "its line. Nothing is sent anywhere."),
                      epilog="Example: gwbox config check branch-7.policy")
    c.add_argument("file", metavar="FILE", help="the policy file")
    c.set_defaults(run=run)
    c = cs.add_parser("push", formatter_class=_formatter, help="validate, load on the box, save",
                      description=_wrap("Validate FILE here first (nothing is sent if it has errors), then log in on "
                                        "the box's console, load FILE there (the box checks it again and says "
                                        "what it finds), and save it. The box uses it after its next reboot."),
                      epilog="The console password: --password-file, or $GWBOX_CONSOLE_PASSWORD, or asked for.\n"
                             "Example: gwbox config push --port /dev/ttyUSB0 branch-7.policy --reboot")
    _port_args(c)
    c.add_argument("--password-file", metavar="F", help="read the console password from the first line of F")
    c.add_argument("--reboot", action="store_true", help="reboot the box after saving, so it uses the policy now")
    c.add_argument("file", metavar="FILE", help="the policy file")
    c.set_defaults(run=run)
    c = cs.add_parser("pull", formatter_class=_formatter, help="the box's stored policy, secrets masked",
                      description=_wrap("Print the policy stored on the box, in full policy-file form with every "
                                        "default, keys and the console password shown as <secret>. Needs no "
                                        "login."),
                      epilog="Example: gwbox config pull --port /dev/ttyUSB0 -o branch-7.masked.policy")
    _port_args(c)
    c.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of standard output")
    c.set_defaults(run=run)


@subcommand
def add_console_password(sub):
    def run(args):
        from gwbox_tools import boxcmd
        return boxcmd.run_console_password(args)
    from gwbox.policyvalue import KDF_ITERATIONS
    from gwbox_tools.devconsole import ITERATIONS
    p = sub.add_parser("console-password", formatter_class=_formatter,
                       help="make the ConsolePassword line of a policy",
                       description=_wrap("Ask for a new console password (twice) and print the policy line that "
                                         "stores it as a salted PBKDF2-HMAC-SHA256 hash. Paste it into [GENERAL]."),
                       epilog="Example: gwbox console-password >> branch-7.policy   (then move it into [GENERAL])")
    p.add_argument("--stdin", action="store_true", help="read the password from the first line of standard input")
    p.add_argument("--iterations", type=int, default=ITERATIONS,
                   help="PBKDF2 iterations, %d-%d (default %d: about 0.1-0.5 s on a board)"
                        % (KDF_ITERATIONS + (ITERATIONS,)))
    p.set_defaults(run=run)


@subcommand
def add_console(sub):
    def run(args):
        from gwbox_tools import boxcmd
        return boxcmd.run_console(args)
    p = sub.add_parser("console", formatter_class=_formatter, help="an interactive terminal on a box's console",
                       description=_wrap("Type the box's console commands (help, status, show policy, login, set, "
                                         "load, save, test link, reboot ...); its replies and events are shown as "
                                         "text. `login` alone asks for the password without echo; `load FILE` "
                                         "sends a local policy file. Ctrl-D leaves."),
                       epilog="Example: gwbox console --port /dev/ttyUSB0")
    _port_args(p)
    p.add_argument("--quiet", action="store_true", help="show only the console's replies, not the box's events")
    p.add_argument("--raw", action="store_true", help="pyserial's miniterm instead: the raw lines (and the REPL)")
    p.set_defaults(run=run)


@subcommand
def add_monitor(sub):
    def run(args):
        from gwbox_tools import boxcmd
        return boxcmd.run_monitor(args)
    p = sub.add_parser("monitor", formatter_class=_formatter, help="a box's live status",
                       description=_wrap("Show the box's status in place: gateway in use, SA states, last "
                                         "heartbeat proof, outbox depth, counters, uptime; plain lines when "
                                         "standard output is not a terminal. Asks the console for `status` every "
                                         "--interval seconds and shows the box's own status lines too."),
                       epilog="Example: gwbox monitor --port /dev/ttyUSB0")
    _port_args(p)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between status requests (default 2)")
    p.add_argument("--count", type=int, default=None, help="stop after this many status updates")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.set_defaults(run=run)


@subcommand
def add_gateway(sub):
    def run(args):
        from gwbox_tools import hostcmd
        return hostcmd.run_gateway(args)
    p = sub.add_parser("gateway", formatter_class=_formatter, help="a head-office gateway on serial ports or TCP",
                       description=_wrap("Run a head-office gateway: the firmware's protocol code on CPython, "
                                         "answering boxes on a serial line (a modem, or a null-modem cable) or "
                                         "on TCP (calls from the modem emulator); JSON event lines on standard "
                                         "output. Ctrl-C stops it."),
                       epilog="The PSK file: one '<box identity> <key>' per line (keys as `gwbox psk new` prints).\n"
                              "Example: gwbox gateway --psk-file boxes.psk --address 143.1.0.64 --serial /dev/ttyUSB1")
    p.add_argument("--psk-file", required=True, metavar="F", help="the boxes' keys: '<identity> <key>' per line")
    p.add_argument("--address", default="143.1.0.64",
                   help="this gateway's address: its identity in the boxes' policies (default 143.1.0.64)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--serial", metavar="DEV", help="a serial device that is a line from a box")
    g.add_argument("--tcp", metavar="PORT", help="listen for calls on [HOST:]PORT")
    p.add_argument("--baud", type=int, default=9600, help="baud rate for --serial (default 9600)")
    p.add_argument("--lan-map", metavar="FILE", help="the head-office LAN map (JSON, gwbox_tools.lan); default: "
                                                     "none (messages for target hosts are logged as undeliverable)")
    p.add_argument("--heartbeat", choices=("NONE", "DEFERRED", "INSTANT"), help="heartbeats towards the boxes")
    p.add_argument("--events", metavar="FILE", help="append the event lines to FILE instead of standard output")
    p.set_defaults(run=run)


@subcommand
def add_emulate(sub):
    from gwbox_tools.mpy_build import DEVICE_HEAP

    def run(args):
        from gwbox_tools import hostcmd
        return hostcmd.run_emulate(args)
    p = sub.add_parser("emulate", formatter_class=_formatter, help="the host emulation: head office and a box",
                       description=_wrap("Start the host emulation: an access server and three gateways on "
                                         "loopback, the modem emulator, and a box running the whole firmware "
                                         "under MicroPython with its console on a pty. Prints where everything "
                                         "is (the console for gwbox console/monitor/config, the LAN port, the "
                                         "console password) and runs until Ctrl-C."),
                       epilog="Example: gwbox emulate   (then, in another terminal: gwbox monitor --port /dev/pts/N)")
    p.add_argument("--heap", default=DEVICE_HEAP, help="the box's heap, as on a 32-bit board (default %s, an "
                                                       "ESP32's; 1.4 times it on a 64-bit interpreter)" % DEVICE_HEAP)
    p.add_argument("--baud", type=int, default=9600, help="the emulated modem line's speed (default 9600)")
    p.add_argument("--micropython", metavar="EXE", help="the MicroPython interpreter, given --heap as it is (default: "
                                                        "the 32-bit one where present, else the pinned 64-bit one)")
    p.add_argument("--safe-wait", type=int, default=0, metavar="MS",
                   help="the box's boot window for a safe-mode key, ms (default 0: none)")
    p.set_defaults(run=run)


@subcommand
def add_loadtest(sub):
    def run(args):
        from gwbox_tools import loadtest
        argv = ["--boxes", str(args.boxes), "--gateways", str(args.gateways), "--interval-s", str(args.interval_s),
                "--latency-ms", str(args.latency_ms)]
        if args.start_s is not None:
            argv += ["--start-s", str(args.start_s)]
        argv += [f for f, on in (("--kill", args.kill), ("--cached", args.cached), ("--failback", args.failback))
                 if on]
        if args.json:
            argv += ["--json", args.json]
        return loadtest.main(argv)
    p = sub.add_parser("loadtest", formatter_class=_formatter, help="many real boxes against a head office; the storm",
                       description=_wrap("N boxes (the firmware's Box, each with its own identity, key, policy and "
                                         "9,600-baud modem line) log in through access servers to a cluster of "
                                         "gateway processes on loopback and send steady traffic; optionally the "
                                         "first gateway is killed (the re-authentication storm) and restarted "
                                         "(the failback wave). Progress on stderr; one JSON result. Exit 0 only "
                                         "if no accepted message was lost (docs/headoffice.md)."),
                       epilog="Example: gwbox loadtest --boxes 10000 --gateways 3 --cached --kill --failback")
    p.add_argument("--boxes", type=int, default=200, help="how many boxes (default 200)")
    p.add_argument("--gateways", type=int, default=3, help="gateways in the cluster, 2 to 6 (default 3)")
    p.add_argument("--interval-s", type=float, default=10.0, help="each box sends a message this often (default 10)")
    p.add_argument("--start-s", type=float, default=None, help="box starts spread over this many s (default boxes/150)")
    p.add_argument("--latency-ms", type=int, default=20, help="one-way modem line latency (default 20)")
    p.add_argument("--kill", action="store_true", help="kill the first gateway once all carry (the storm)")
    p.add_argument("--cached", action="store_true", help="before that, every box keys the next gateway too")
    p.add_argument("--failback", action="store_true", help="after the storm, restart the killed gateway")
    p.add_argument("--json", metavar="FILE", help="write the result here (default: stdout)")
    p.set_defaults(run=run)


@subcommand
def add_demo(sub):
    from gwbox_tools.mpy_build import DEVICE_HEAP

    def run(args):
        from gwbox_tools import demo
        argv = ["--out", args.out, "--heap", args.heap] + (["--plain"] if args.plain else []) + (
            ["--micropython", args.micropython] if args.micropython else [])
        return demo.main(argv)
    p = sub.add_parser("demo", formatter_class=_formatter, help="the failover demo (make demo)",
                       description=_wrap("A box and a three-gateway cluster over an emulated 9,600-baud modem: "
                                         "the gateway in use fails, the box fails over and back; a summary and a "
                                         "timeline picture at the end. Exit 0 only if no message was lost."),
                       epilog="Example: gwbox demo --out build/demo")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "demo"), help="where events.jsonl and "
                                                                               "timeline.png go")
    p.add_argument("--heap", default=DEVICE_HEAP, help="the box's heap, as on a 32-bit board (default %s, an "
                                                       "ESP32's; 1.4 times it on a 64-bit interpreter)" % DEVICE_HEAP)
    p.add_argument("--micropython", metavar="EXE", help="the MicroPython interpreter, given --heap as it is (default: "
                                                        "the 32-bit one where present, else the pinned 64-bit one)")
    p.add_argument("--plain", action="store_true", help="a plain log even on a terminal")
    p.set_defaults(run=run)


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
