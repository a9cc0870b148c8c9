"""The modem emulator's control language: fault injection at run time, and its client.

Why a module of its own: the language (what a line like `freeze G1` or `reboot 500` asks
for, and the usage a wrong one is told) is the emulator's public contract with tests, rigs
and `gwbox_tools.modem_emu ctl`; it is parsed here without the emulator, whose loop thread
only carries the parsed operation out (modem_emu, the `_op_*` methods).
"""
import argparse
import json
import socket

CONTROL_LINE_MAX = 1024
READ_SIZE = 4096

CONTROL_USAGE = {
    "status": "status",
    "help": "help",
    "noise": "noise N [box|gw|both]",
    "ber": "ber P [box|gw|both]",
    "loss": "loss P [box|gw|both]",
    "latency": "latency MS",
    "baud": "baud N",
    "drop": "drop [silent|frame]",
    "freeze": "freeze [GATEWAY]",
    "thaw": "thaw [GATEWAY]",
    "reboot": "reboot [GATEWAY] [DOWN_MS]",
    "dead": "dead GATEWAY [on|off]",
    "revive": "revive GATEWAY",
    "busy": "busy GATEWAY [on|off]",
    "nodialtone": "nodialtone [on|off]",
    "clear": "clear",
}


def parse_addr(addr):
    """'HOST:PORT', ':PORT' or (host, port) -> (host, port); no host means 127.0.0.1."""
    if isinstance(addr, (tuple, list)):
        return str(addr[0]), int(addr[1])
    host, _, port = str(addr).rpartition(":")
    return host or "127.0.0.1", int(port)


def on_off(word):
    w = word.lower()
    if w in ("on", "1", "true", "yes"):
        return True
    if w in ("off", "0", "false", "no"):
        return False
    raise ValueError("expected on/off, got %r" % word)


def parse_command(cmd, args, gateway_names):
    """One command's words -> (operation, its arguments): the emulator runs `_op_<operation>`
    with them. `gateway_names` (lower case) tells `reboot GATEWAY` from `reboot DOWN_MS`.
    Raises ValueError with the usage for a wrong number of words or an unknown command;
    the operations check their values themselves."""
    def nargs(lo, hi):
        if not lo <= len(args) <= hi:
            raise ValueError("usage: %s" % CONTROL_USAGE[cmd])
    if cmd == "status":
        nargs(0, 0)
        return "status", ()
    if cmd == "help":
        return "help", ()
    if cmd == "noise":
        nargs(1, 2)
        return "noise", (args[0], args[1] if len(args) > 1 else "box")
    if cmd in ("ber", "loss"):
        nargs(1, 2)
        return "impair", (cmd, args[0], args[1] if len(args) > 1 else "both")
    if cmd in ("latency", "baud"):
        nargs(1, 1)
        return cmd, (args[0],)
    if cmd == "drop":
        nargs(0, 1)
        return "drop", (args[0].lower() if args else None,)
    if cmd in ("freeze", "thaw"):
        nargs(0, 1)
        return "freeze", (args[0] if args else None, cmd == "freeze")
    if cmd == "reboot":
        nargs(0, 2)
        rest = list(args)
        name = rest.pop(0) if rest and rest[0].lower() in gateway_names else None
        down = rest.pop(0) if rest else 0
        if rest:
            raise ValueError("usage: %s" % CONTROL_USAGE[cmd])
        try:
            float(down)
        except ValueError:
            raise ValueError("%r is neither a gateway nor a down time; usage: %s"
                             % (down, CONTROL_USAGE[cmd])) from None
        return "reboot", (name, down)
    if cmd in ("dead", "busy"):
        nargs(1, 2)
        return "flag", (cmd, args[0], on_off(args[1]) if len(args) > 1 else True)
    if cmd == "revive":
        nargs(1, 1)
        return "flag", ("dead", args[0], False)
    if cmd == "nodialtone":
        nargs(0, 1)
        return "nodialtone", (on_off(args[0]) if args else True,)
    if cmd == "clear":
        nargs(0, 0)
        return "clear", ()
    raise ValueError("unknown command; try help")


class ControlClient:
    """One connection to the control socket: the bytes read and not yet a whole line, the
    replies not yet written."""

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = bytearray()
        self.out = bytearray()
        self.closing = False
        self.handler = None

    def take_lines(self, data, answer):
        """Add what was read; answer(line) -> reply dict for each whole line. A line longer
        than CONTROL_LINE_MAX is refused and the connection closed."""
        self.inbuf += data
        while b"\n" in self.inbuf:
            line, _, rest = bytes(self.inbuf).partition(b"\n")
            self.inbuf = bytearray(rest)
            self.out += json.dumps(answer(line.decode("utf-8", "replace"))).encode() + b"\n"
        if len(self.inbuf) > CONTROL_LINE_MAX:
            self.out += json.dumps({"ok": False, "error": "line too long"}).encode() + b"\n"
            self.closing = True


def send_control(address, line, timeout=5.0):
    """Send one control command to a running emulator; return its JSON reply as a dict."""
    host, port = parse_addr(address)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(line.strip().encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(READ_SIZE)
            if not chunk:
                break
            buf += chunk
    if not buf.strip():
        raise ConnectionError("no reply from modem emulator at %s:%d" % (host, port))
    return json.loads(buf.split(b"\n", 1)[0])


def ctl_main(argv):
    """`python -m gwbox_tools.modem_emu ctl HOST:PORT COMMAND...`: exit 0 if the emulator
    did it, 1 if it refused, 2 if it cannot be reached."""
    p = argparse.ArgumentParser(prog="python -m gwbox_tools.modem_emu ctl",
                                description="Send one control command to a running emulator.")
    p.add_argument("address", help="HOST:PORT of the control socket")
    p.add_argument("command", nargs="+", help="e.g. drop | 'ber 1e-4' | 'freeze gw1'")
    a = p.parse_args(argv)
    try:
        reply = send_control(a.address, " ".join(a.command))
    except (OSError, ValueError) as e:
        print(json.dumps({"ok": False, "error": "cannot reach %s: %s" % (a.address, e)}))
        return 2
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1
