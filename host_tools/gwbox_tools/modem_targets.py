"""The modem emulator's dial targets, and a call being placed or up.

Why a module of its own: what a gateway spec means and which gateway a dial string names
are rules of the emulated telephone network, testable without a pty or a thread; the
emulator (modem_emu) only keeps them.
"""
import re

from . import modem_at as at


class Gateway:
    """A dial target: where its far end is, and the faults set on it."""

    def __init__(self, name, kind, host=None, port=None, busy=False, dead=False):
        self.name = name
        self.kind = kind            # "tcp" or "pty"
        self.host = host
        self.port = port
        self.busy = busy
        self.dead = dead
        self.frozen = False
        self.down_until = 0.0       # monotonic time before which dials fail (reboot)
        self.master = None          # pty gateways: our end of the gateway's pty
        self.slave = None           # kept open so the master never sees EIO
        self.path = None
        self.handler = None

    def describe(self):
        return ("tcp:%s:%d" % (self.host, self.port)) if self.kind == "tcp" else self.path


class Dial:
    """A call being placed: its outcome is shown to the box no earlier than t_report."""

    def __init__(self, target, gw, now):
        self.target = target
        self.gw = gw
        self.t0 = now
        self.outcome = None         # result code name once known
        self.t_report = now
        self.give_up = None         # S7: no carrier by then -> NO CARRIER
        self.sock = None


class Call:
    """An established call: the two line directions and the gateway connection."""

    def __init__(self, gw, sock, up, down, now):
        self.gw = gw
        self.sock = sock            # tcp gateways; None for pty gateways
        self.up = up                # box -> gateway
        self.down = down            # gateway -> box
        self.out = bytearray()      # delivered by the line, not yet written to the gateway
        self.remote_closed = False
        self.escape = at.EscapeDetector(now)
        self.t_connect = now
        self.last_down = None       # the last byte handed to the box (where frames end)
        self.drop_behind = False    # `drop frame`: the carrier goes right behind the next frame


def parse_gateway_spec(name, spec):
    """'tcp:HOST:PORT' | 'tcp:PORT' | PORT (int) | 'pty' | dict(kind=..., host, port,
    busy, dead); ',busy' / ',dead' may follow a string spec."""
    if isinstance(spec, int):
        return Gateway(name, "tcp", "127.0.0.1", spec)
    if isinstance(spec, dict):
        kind = spec.get("kind", "tcp")
        if kind not in ("tcp", "pty"):
            raise ValueError("gateway %s: kind must be tcp or pty" % name)
        gw = Gateway(name, kind, spec.get("host", "127.0.0.1"), spec.get("port"),
                      bool(spec.get("busy")), bool(spec.get("dead")))
        if kind == "tcp" and not isinstance(gw.port, int):
            raise ValueError("gateway %s: tcp needs an int port" % name)
        return gw
    parts = [p.strip() for p in str(spec).split(",")]
    flags = set(p.lower() for p in parts[1:])
    bad = flags - {"busy", "dead"}
    if bad:
        raise ValueError("gateway %s: unknown option(s) %s" % (name, ",".join(sorted(bad))))
    main = parts[0]
    if main.lower() == "pty":
        gw = Gateway(name, "pty")
    elif main.lower().startswith("tcp:"):
        host, _, port = main[4:].rpartition(":")
        try:
            gw = Gateway(name, "tcp", host or "127.0.0.1", int(port))
        except ValueError:
            raise ValueError("gateway %s: bad port in %r" % (name, spec)) from None
    else:
        raise ValueError("gateway %s: spec must be tcp:HOST:PORT, tcp:PORT or pty, got %r"
                         % (name, spec))
    gw.busy = "busy" in flags
    gw.dead = "dead" in flags
    return gw


def lookup(gateways, target):
    """The gateway of `gateways` ({lower-case name: Gateway}) a dial string names: as
    written, else without a leading T/P (tone/pulse), else without spaces and -(). , else
    (a number) without , W T P ! @."""
    t = target.strip().rstrip(";").strip()
    cands = [t]
    if len(t) > 1 and t[0] in "TtPp":
        cands.append(t[1:].strip())
    for c in list(cands):
        squeezed = re.sub(r"[\s\-().]", "", c)
        cands.append(squeezed)
        if re.fullmatch(r"[0-9*#,WwTtPp!@]+", squeezed):
            cands.append(re.sub(r"[,WwTtPp!@]", "", squeezed))
    for c in cands:
        gw = gateways.get(c.lower())
        if gw is not None:
            return gw
    return None
