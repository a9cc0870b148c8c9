"""Policy file -> one checked Policy (reference: docs/policy.md).

The seed's syntax (GB 2 363 548): [GENERAL] heartbeat keys, [CLUSTER] `Cluster<nr> = addr
...`, [TUNNEL] `Tunnel<nr> = start[-end] (address | Cluster <nr> | AUTO)` and `Redirect
Tunnel<nr> = server (address | Cluster <nr>)`; plus gwbox's own [GENERAL] keys, [KEYS]
(pre-shared keys) and [DIAL] (dial numbers). Sections and keywords are case-insensitive,
`#` starts a comment anywhere on a line.

parse(text) is pure (no I/O, clock or randomness): it returns a complete Policy or raises
one PolicyError that lists every problem found, in line order. Nothing is half-applied.
No message, repr() or masked() text ever holds key material: a key is named by its field.

The box imports this at boot, parses, and drops the module again (sys.modules), so the
tables are small tuples and the Policy is plain attributes.
"""
import binascii
import hashlib

from gwbox import const
from gwbox.ipv4 import int_to_ip, ip_to_int  # noqa: F401  (part of this module's API too)

_TIMER_MS = const(536870912)  # 2**29 ms: every timer must stay below the ticks half-period

# Value kinds of [GENERAL] keys.
_DUR = const(0)  # seconds, up to 3 decimals -> int ms; a = least ms allowed
_INT = const(1)  # whole number a..b
_KB = const(2)  # kbytes a..b, stored as bytes
_CHOICE = const(3)  # one of the words in a
_BOOL = const(4)
_IDENT = const(5)
_MODEM = const(6)
_DIALNR = const(7)
_ADDR = const(8)
_PASSWD = const(9)  # pbkdf2$<iterations>$<salt hex>$<hash hex> -> (iterations, salt, hash); a secret
_TARGET = const(10)  # <address>:<port> -> (address, port)

# [GENERAL] (name, attribute, kind, default as stored, a, b): see docs/policy.md.
_GENERAL = (
    ("Heartbeat", "heartbeat", _CHOICE, "INSTANT", ("NONE", "DEFERRED", "INSTANT"), 0),
    ("HeartbeatResponseTime", "response_ms", _DUR, 1000, 1, 0),
    ("HeartbeatDeferTime", "defer_ms", _DUR, 5000, 1, 0),
    ("HeartbeatRetries", "retries", _INT, 5, 1, 20),
    ("HeartbeatForm", "form", _CHOICE, "PROTECTED", ("PROTECTED", "PROBE", "SPI-ECHO"), 0),
    ("Identity", "identity", _IDENT, b"gwbox", 0, 0),
    ("RandomizeOrder", "randomize", _BOOL, True, 0, 0),
    ("OutboxBytes", "outbox_bytes", _INT, 8192, 256, 65536),
    ("ModemInit", "modem_init", _MODEM, ("ATZ", "ATE0V1Q0&C1&D2"), 0, 0),
    ("Dial", "dial", _DIALNR, None, 0, 0),
    ("AccessServer", "access_server", _ADDR, None, 0, 0),
    ("RekeyTime", "rekey_ms", _DUR, 28800000, 1000, 0),  # LinkConfig's floor: 1 s
    ("RekeyKBytes", "rekey_bytes", _KB, 10485760, 1, (1 << 30) - 1),
    ("HandshakeRetryTime", "handshake_retry_ms", _DUR, 3000, 100, 0),  # LinkConfig's floor: 0.1 s
    ("HandshakeRetries", "handshake_retries", _INT, 3, 0, 10),
    ("RetryTime", "retry_ms", _DUR, 5000, 1, 0),
    ("RetryMaxTime", "retry_max_ms", _DUR, 300000, 1, 0),
    ("FailbackTime", "failback_ms", _DUR, 30000, 1, 0),
    ("IdleHangupTime", "idle_hangup_ms", _DUR, 60000, 0, 0),  # 0 = never
    ("StatusInterval", "status_ms", _DUR, 0, 0, 0),  # 0 = off
    ("ConsolePassword", "console_password", _PASSWD, None, 0, 0),  # None: the console changes nothing
    ("LanUart", "lan_uart", _TARGET, None, 0, 0),  # the LAN UART's bytes go to this target
)
_G_DIAL = const(9)  # _GENERAL index of Dial: [DIAL] numbers are checked the same way
_G_ACCESS = const(10)  # of AccessServer
_G_RETRY_MAX = const(16)  # of RetryMaxTime (RetryTime just before it)
_G_LAN_UART = const(21)  # of LanUart: its target must be inside a [TUNNEL] range
_SECTIONS = ("GENERAL", "CLUSTER", "TUNNEL", "KEYS", "DIAL")
# Numbered keys of [CLUSTER] and [TUNNEL]: (name without spaces, lower case; as printed).
_NUMBERED = (("cluster", "Cluster"), ("preferred", "Preferred"), ("tunnel", "Tunnel"),
             ("redirecttunnel", "Redirect Tunnel"))
_S_GENERAL = const(0)
_S_CLUSTER = const(1)
_S_TUNNEL = const(2)
_S_KEYS = const(3)
_S_NONE = const(-1)  # before the first section header
_S_UNKNOWN = const(-2)  # inside an unknown section (its header is the error)


class PolicyError(ValueError):
    """Every problem of a policy: .errors = [(line, field, message)] in line order."""

    def __init__(self, errors):
        super().__init__("%d policy error(s)" % len(errors))
        self.errors = errors

    def __str__(self):
        return "\n".join("line %d: %s: %s" % e for e in self.errors)


class Policy:
    """A checked policy: plain attributes, listed in docs/policy.md."""

    def __init__(self):
        for g in _GENERAL:
            setattr(self, g[1], g[3])
        self.clusters = {}  # nr -> [gateway address, ...] in policy order
        self.preferred = {}  # nr -> gateway address
        self.tunnels = []  # (nr, start, end, "addr"|"cluster"|"auto", address|cluster nr|None)
        self.redirects = []  # (nr, server address, "addr"|"cluster", address|cluster nr)
        self.gateways = []  # every gateway address: clusters first, then single gateways
        self.keys = {}  # gateway address -> psk bytes (never printed)
        self.dial_numbers = {}  # gateway address -> dial number
        self.checksum = ""

    def __repr__(self):
        return "<Policy %s: %d tunnels, %d gateways>" % (self.checksum, len(self.tunnels), len(self.gateways))

    def masked(self):
        """The policy as policy-file text, every key replaced by <secret> (`show policy`)."""
        out = ["[GENERAL]"]
        for g in _GENERAL:
            v = getattr(self, g[1])
            k = g[2]
            if v is None:
                continue
            if k == _DUR:
                v = _secs(v)
            elif k == _KB:
                v = v // 1024
            elif k == _BOOL:
                v = "ON" if v else "OFF"
            elif k == _IDENT:
                v = v.decode()
            elif k == _MODEM:
                v = " ".join(v)
            elif k == _PASSWD:
                v = "<secret>"
            elif k == _TARGET:
                v = "%s:%d" % v
            out.append("%s = %s" % (g[0], v))
        out.append("[CLUSTER]")
        for nr in sorted(self.clusters):
            out.append("Cluster%d = %s" % (nr, " ".join(self.clusters[nr])))
        for nr in sorted(self.preferred):
            out.append("Preferred%d = %s" % (nr, self.preferred[nr]))
        out.append("[TUNNEL]")
        for t in self.tunnels:
            out.append("Tunnel%d = %s %s" % (t[0], _range(t[1], t[2]), _target(t[3], t[4])))
        for t in self.redirects:
            out.append("Redirect Tunnel%d = %s %s" % (t[0], t[1], _target(t[2], t[3])))
        out.append("[KEYS]")
        for g in self.gateways:
            out.append(g + " = <secret>")
        out.append("[DIAL]")
        for g in self.gateways:
            out.append("%s = %s" % (g, self.dial_numbers[g]))
        out.append("")
        return "\n".join(out)


def _target(kind, target):
    return "Cluster %d" % target if kind == "cluster" else "AUTO" if kind == "auto" else target


def _range(start, end):
    r = int_to_ip(start)
    return r if end == start else r + " - " + int_to_ip(end)


def _secs(ms):
    return ("%d.%03d" % (ms // 1000, ms % 1000)).rstrip("0").rstrip(".")


# Character checks run over bytes: iterating a str makes a 1-character string per step, and
# MicroPython interns each one (heap that is never freed).

def _digits(s):
    """s is 1+ ASCII digits (str.isdigit() takes other scripts' digits too on CPython)."""
    return s.encode().isdigit()


def _chars(s, extra):
    """s is ASCII letters, digits and bytes of `extra` only."""
    for c in s.encode():
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in extra):
            return False
    return True


def _safe(s):
    """`s` may be shown in a message: it cannot be key material. A key is at least 22
    characters (16 bytes as base64), and a run of 8 hex digits may be part of one."""
    run = 0
    for c in s.encode():
        run = run + 1 if 48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102 else 0
        if run > 7:
            return False
    return len(s) < 22


def _q(s, fmt="'%s'"):
    """`s` quoted for a message if it is _safe()."""
    return fmt % s if _safe(s) else "(value not shown)"


def route(policy, a):
    """The tunnel (nr, start, end, kind, target) whose range holds address int `a`, or None.

    An AUTO tunnel comes back with the kind and target of the Redirect of the access server.
    """
    for t in policy.tunnels:
        if t[1] <= a <= t[2]:
            if t[3] != "auto":
                return t
            for r in policy.redirects:
                if r[1] == policy.access_server:
                    return (t[0], t[1], t[2], r[2], r[3])
    return None


def _addr(tok):
    try:
        return int_to_ip(ip_to_int(tok))
    except ValueError:
        raise ValueError("%s is not an IPv4 address" % _q(tok))


def _nr(canon, prefix):
    """The <nr> of `canon` = prefix + <nr>: None without the prefix, 0 if not a positive int."""
    if not canon.startswith(prefix):
        return None
    d = canon[len(prefix):]
    return int(d) if _digits(d) else 0


def _value(g, v):
    """The stored value of [GENERAL] entry `g` for text `v`; ValueError with the reason."""
    k, a, b = g[2], g[4], g[5]
    if k == _DUR:
        w = v[1:] if v[:1] == "-" else v
        i = w.find(".")
        f = w[i + 1:] if i >= 0 else "0"
        w = w[:i] if i >= 0 else w
        if not _digits(w) or len(f) > 3 or not _digits(f):
            raise ValueError("%s is not a number of seconds (at most 3 decimals)" % _q(v))
        ms = int(w) * 1000 + int((f + "00")[:3])
        if v[0] == "-" or ms < a:
            raise ValueError("must be %s %s s, not %s" % ("more than" if a == 1 else "at least", _secs(a - (a == 1)),
                                                           _q(v, "%s")))
        if ms >= _TIMER_MS:
            raise ValueError("%s s does not fit the 2^29 ms (149 h) timer range" % _q(v, "%s"))
        return ms
    if k == _INT or k == _KB:
        if not _digits(v[1:] if v[:1] == "-" else v):
            raise ValueError("%s is not a whole number" % _q(v))
        if not a <= int(v) <= b:
            raise ValueError("must be from %d to %d, not %s" % (a, b, _q(v, "%s")))
        return int(v) * (1024 if k == _KB else 1)
    u = v.upper()
    if k == _CHOICE:
        if u not in a:
            raise ValueError("must be %s or %s, not %s" % (", ".join(a[:-1]), a[-1], _q(v)))
        return u
    if k == _BOOL:
        if u in ("ON", "YES", "TRUE", "1", "OFF", "NO", "FALSE", "0"):
            return u in ("ON", "YES", "TRUE", "1")
        raise ValueError("must be ON or OFF, not %s" % _q(v))
    if k == _IDENT:
        for c in v.encode():
            if c <= 32 or c > 126:
                v = ""
        if not 0 < len(v) <= 32:
            raise ValueError("must be 1 to 32 printable ASCII characters, no spaces")
        return v.encode()
    if k == _MODEM:
        cmds = tuple(v.split())
        for c in cmds:
            if c[:2].upper() != "AT" or "\r" in c or "\n" in c:
                raise ValueError("%s is not an AT command" % _q(c))
        if not cmds:
            raise ValueError("needs at least one AT command")
        return cmds
    if k == _PASSWD:
        return _passwd(v)
    if k == _TARGET:
        i = v.rfind(":")
        if i < 0 or not _digits(v[i + 1:]) or not 0 < int(v[i + 1:]) < 65536:
            raise ValueError("%s is not <address>:<port>" % _q(v))
        return _addr(v[:i]), int(v[i + 1:])
    if k == _DIALNR:
        if not (0 < len(v) <= 40 and _chars(v, b"*#,+-_.:")):
            raise ValueError("dial number %s is not 1 to 40 of 0-9 A-Z a-z * # , + - _ . :" % _q(v))
        return v
    return _addr(v)


def _passwd(v):
    """(iterations, salt, hash) of a `gwbox console-password` value; never quoted (a password's hash)."""
    f = v.split("$")
    try:
        n, salt, h = int(f[1]), binascii.unhexlify(f[2]), binascii.unhexlify(f[3])
        if len(f) == 4 and f[0] == "pbkdf2" and 999 < n < 1000001 and 7 < len(salt) < 65 and len(h) == 32:
            return n, salt, h
    except Exception:
        pass
    raise ValueError("(value not shown) is not what gwbox console-password makes")


def _psk(v):
    """Key bytes from `hex:...`, `base64:...` or bare hex. Messages never quote the key."""
    b64 = v[:7].lower() == "base64:"
    if b64:
        v = v[7:].strip()
    elif v[:4].lower() == "hex:":
        v = v[4:].strip()
    if not v:
        raise ValueError("key is empty")
    try:
        if b64:
            # Checked first: CPython's a2b_base64 would skip characters outside the alphabet.
            i = v.find("=")
            if len(v) % 4 or not _chars(v if i < 0 else v[:i], b"+/") or i >= 0 and v[i:] not in ("=", "=="):
                raise ValueError
            k = binascii.a2b_base64(v)
        else:
            k = binascii.unhexlify(v) if _chars(v, b"") else b""  # odd length or non-hex: raises
            if not k:
                raise ValueError
    except Exception:
        raise ValueError("key is not valid " + ("base64" if b64 else "hex"))
    if len(k) < 16:
        raise ValueError("key is shorter than 16 bytes")
    if len(k) > 64:
        raise ValueError("key is longer than 64 bytes")
    for x in k:
        if x:
            return k
    raise ValueError("key is all zero bytes")


def _tunnel(v, redirect):
    """(start, end, kind, target) of a Tunnel or Redirect value."""
    t = v.replace("-", " - ").split() + [""]  # "" ends the tokens
    if not t[0]:
        raise ValueError("needs %s and a target" % ("a server address" if redirect else "a range"))
    start = end = ip_to_int(_addr(t[0]))
    i = 1
    if t[1] == "-":
        if redirect:
            raise ValueError("a redirect names one server address, not a range")
        end = ip_to_int(_addr(t[2]))
        i = 3
        if end < start:
            raise ValueError("range end %s is before start %s" % (int_to_ip(end), int_to_ip(start)))
    w = t[i].lower()
    i += 1
    if not w:
        raise ValueError("needs a target (gateway address, Cluster <nr> or AUTO)")
    if w == "auto":
        if redirect:
            raise ValueError("a redirect cannot go to AUTO")
        kind, target = "auto", None
    elif w.startswith("cluster"):
        d = w[7:] or t[i]
        i += w == "cluster"
        if not _digits(d) or not int(d):
            raise ValueError("Cluster needs a positive number, not %s" % _q(d))
        kind, target = "cluster", int(d)
    else:
        kind, target = "addr", _addr(t[i - 1])
    if t[i]:
        raise ValueError("unexpected %s after the target" % _q(" ".join(t[i:-1])))
    return start, end, kind, target


class _Parse:
    """Working state of one parse(): dropped when the Policy is returned."""

    def __init__(self):
        self.p = Policy()
        self.errors = []
        self.seen = {}  # field ("[CLUSTER] Cluster1") or section ("[TUNNEL]") -> line first set
        self.glines = [0] * len(_GENERAL)  # line each [GENERAL] key is set on (no dict to grow)
        self.clusters = []  # cluster nr in policy order
        self.prefs = []  # (line, field, nr, address)
        self.tunnels = []  # (line, field, nr, redirect, start, end, kind, target)
        self.ntunnel = 0  # Tunnel lines, valid or not
        self.keys = []  # (line, field, name, psk or None) name: "" Default, int cluster, str address
        self.dials = {}  # gateway address -> (line, field, number or None)
        self.first = {}  # gateway address -> (line, field) where it first appears

    def err(self, n, field, msg):
        self.errors.append((n, len(self.errors), field, msg))

    def entry(self, sec, n, hdr, name, v):
        """One `name = value` line of section `sec` (header text `hdr`)."""
        p = self.p
        canon = "".join(name.split()).lower()  # `Cluster 1` is `Cluster1`
        f = hdr + " " + name if _safe(name) else hdr  # the field as written, unless it may be a key
        if sec == _S_GENERAL:
            for gi in range(len(_GENERAL)):
                g = _GENERAL[gi]
                if len(g[0]) == len(canon) and g[0].lower() == canon:
                    break
            else:
                return self.err(n, f, "unknown key")
            f = hdr + " " + g[0]
        elif sec == _S_CLUSTER or sec == _S_TUNNEL:
            kw = _NUMBERED[sec * 2 - 2 + (canon[0] in "pr")]  # Preferred<nr>, Redirect Tunnel<nr>
            nr = _nr(canon, kw[0])
            if nr is None:
                return self.err(n, f, "unknown key (expected %s<nr> or %s<nr>)" % (
                    _NUMBERED[sec * 2 - 2][1], _NUMBERED[sec * 2 - 1][1]))
            if kw[0] == "tunnel":
                self.ntunnel += 1
            if not nr:
                return self.err(n, f, "needs a positive decimal number after the keyword")
            f = "%s %s%d" % (hdr, kw[1], nr)
        elif sec == _S_KEYS:
            nr = _nr(canon, "cluster")
            if canon == "default":
                name = ""
            elif nr:
                name = nr
            else:
                try:
                    name = _addr(canon)
                except ValueError:
                    # The name is not quoted: a key pasted in the wrong place stays unprinted.
                    return self.err(n, hdr,
                                    "unknown key name (expected Default, Cluster<nr> or a gateway address)")
            f = hdr + " " + ("Default" if name == "" else "Cluster%d" % nr if nr else name)
        else:
            try:
                name = _addr(name)
            except ValueError:
                return self.err(n, f, "unknown key (expected <gateway address> = <dial number>)")
            f = hdr + " " + name
        first = self.glines[gi] if sec == _S_GENERAL else self.seen.get(f)
        if first:
            return self.err(n, f, "duplicate key, first set on line %d" % first)
        if sec == _S_GENERAL:
            self.glines[gi] = n
        else:
            self.seen[f] = n
        k = None  # a bad key or dial number still counts as given: no follow-on "missing" errors
        try:
            if sec == _S_GENERAL:
                setattr(p, g[1], _value(g, v))
            elif sec == _S_CLUSTER and kw[0] == "preferred":
                self.prefs.append((n, f, nr, _addr(v)))
            elif sec == _S_CLUSTER:
                members = p.clusters[nr] = []  # defined even when bad: no follow-on errors
                self.clusters.append(nr)
                if not v:
                    raise ValueError("needs at least one gateway address")
                for tok in v.split():
                    a = _addr(tok)
                    if a in members:
                        raise ValueError("gateway %s is listed twice" % a)
                    members.append(a)
                    self.first[a] = self.first.get(a) or (n, f)
            elif sec == _S_TUNNEL:
                redirect = kw[0] != "tunnel"
                self.tunnels.append((n, f, nr, redirect) + _tunnel(v, redirect))
            else:
                k = _psk(v) if sec == _S_KEYS else _value(_GENERAL[_G_DIAL], v)
        except ValueError as e:
            self.err(n, f, e.args[0])
        if sec == _S_KEYS:
            self.keys.append((n, f, name, k))
        elif sec > _S_KEYS:
            self.dials[name] = (n, f, k)

    def check(self, last):
        """Cross-references, once every line is read; fills in the Policy."""
        p, err, first, seen, gl = self.p, self.err, self.first, self.seen, self.glines
        for n, f, nr, a in self.prefs:
            if nr not in p.clusters:
                err(n, f, "Cluster%d is not defined in [CLUSTER]" % nr)
            elif a not in p.clusters[nr]:
                err(n, f, "%s is not a member of Cluster%d" % (a, nr))
            else:
                p.preferred[nr] = a
        gws = p.gateways  # clusters first, then single gateways
        for nr in self.clusters:
            for a in p.clusters[nr]:
                if a not in gws:
                    gws.append(a)
        servers = {}
        for t in self.tunnels:  # f[9:] is the key without "[TUNNEL] "
            n, f, nr, redirect, start, end, kind, target = t
            if kind == "cluster" and target not in p.clusters:
                err(n, f, "Cluster%d is not defined in [CLUSTER]" % target)
            if kind == "addr" and target not in gws:
                gws.append(target)
                first[target] = first.get(target) or (n, f)
            if redirect:
                o = servers.get(start)
                if o:
                    err(n, f, "%s is already redirected by %s on line %d" % (int_to_ip(start), o[1][9:], o[0]))
                servers[start] = t
                p.redirects.append((nr, int_to_ip(start), kind, target))
                continue
            for o in self.tunnels:
                if o is t:
                    break
                if not o[3] and start <= o[5] and o[4] <= end:
                    err(n, f, "range %s overlaps %s on line %d (%s)" % (_range(start, end), o[1][9:], o[0],
                                                                          _range(o[4], o[5])))
            p.tunnels.append((nr, start, end, kind, target))
        for t in self.tunnels:  # a bad AccessServer was reported on its line
            a = p.access_server
            if t[6] == "auto" and (not gl[_G_ACCESS] or a and ip_to_int(a) not in servers):
                err(t[0], t[1], "AUTO tunnel needs AccessServer and a Redirect for it (%s)" % (
                    "no Redirect Tunnel<nr> = " + a if a else "[GENERAL] AccessServer is not set"))
        if not self.ntunnel:
            err(seen.get("[TUNNEL]") or last, "[TUNNEL]", "the policy defines no tunnel")
        if p.lan_uart and route(p, ip_to_int(p.lan_uart[0])) is None:
            err(gl[_G_LAN_UART], "[GENERAL] LanUart", "target %s is in no [TUNNEL] range" % p.lan_uart[0])
        if p.retry_max_ms < p.retry_ms:
            i = _G_RETRY_MAX if gl[_G_RETRY_MAX] else _G_RETRY_MAX - 1
            err(gl[i], "[GENERAL] " + _GENERAL[i][0],
                "RetryMaxTime %s s is less than RetryTime %s s" % (_secs(p.retry_max_ms), _secs(p.retry_ms)))
        # Keys: the gateway's own, else its cluster's, else Default; a bad one was reported already.
        own = {}
        for n, f, name, k in self.keys:
            if name == "" or name in p.clusters or name in gws:
                own[name] = k
            else:
                what = "Cluster%d" if isinstance(name, int) else "gateway %s"
                err(n, f, "key for %s, which is not defined" % (what % name))
        for a in gws:
            nrs = [nr for nr in sorted(p.clusters) if a in p.clusters[nr]]
            ks = [own[x] for x in [a] + nrs + [""] if x in own]
            if not ks:
                err(first[a][0], first[a][1], "no key for gateway %s (add [KEYS] %s%s or Default)" % (
                    a, a, "".join(", Cluster%d" % nr for nr in nrs)))
            elif a not in own and len(set(own[x] for x in nrs if x in own)) > 1:
                err(first[a][0], first[a][1],
                    "gateway %s is in clusters with different keys (add [KEYS] %s)" % (a, a))
            elif ks[0]:
                p.keys[a] = ks[0]
        # Dial numbers: the gateway's own, else [GENERAL] Dial; a bad one was reported already.
        for a in self.dials:
            if a not in gws:
                err(self.dials[a][0], self.dials[a][1], "%s is not a gateway of [CLUSTER] or [TUNNEL]" % a)
        for a in gws:
            d = self.dials[a][2] if a in self.dials else p.dial
            if d:
                p.dial_numbers[a] = d
            elif a not in self.dials and not gl[_G_DIAL]:
                err(first[a][0], first[a][1],
                    "missing dial number for gateway %s (add [DIAL] %s = number or [GENERAL] Dial)" % (a, a))


def parse(text):
    """Policy text -> Policy, or PolicyError listing every problem (line, field, message)."""
    if not isinstance(text, str):
        try:
            text = bytes(text).decode()
        except UnicodeError:
            raise PolicyError([(1, "policy", "the policy is not UTF-8 text")])
    ps = _Parse()
    h = hashlib.sha256()
    sec = _S_NONE
    n = last = start = 0
    while start <= len(text):  # line by line, without a list of every line at once
        n += 1
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        i = text.find("#", start, end)
        line = text[start:end if i < 0 else i].strip()
        start = end + 1
        if not line:
            continue
        last = n
        eq = line.find("=")
        # The checksum covers the text without comments, blank lines, key values and ConsolePassword's.
        secret = eq >= 0 and (sec == _S_KEYS or sec == _S_GENERAL and
                              "".join(line[:eq].split()).lower() == "consolepassword")
        h.update((line[:eq + 1] + "<secret>" if secret else line).encode() + b"\n")
        if line[0] == "[":
            name = line[1:-1].strip().upper()
            sec = _S_UNKNOWN
            if line[-1] != "]":
                ps.err(n, line if _safe(line) else "[?]", "a section header is [NAME]")
            elif name in _SECTIONS:
                sec = _SECTIONS.index(name)
                hdr = "[" + name + "]"
                ps.seen[hdr] = ps.seen.get(hdr) or n
            else:
                ps.err(n, "[%s]" % (name if _safe(name) else "?"),
                       "unknown section (expected GENERAL, CLUSTER, TUNNEL, KEYS or DIAL)")
        elif sec == _S_NONE:
            ps.err(n, "policy", "line is outside any section")
        elif sec != _S_UNKNOWN:
            if eq < 0:
                ps.err(n, hdr, "line has no '=' (expected key = value)")
            elif not line[:eq].strip():
                ps.err(n, hdr, "line has no key before '='")
            else:
                ps.entry(sec, n, hdr, line[:eq].strip(), line[eq + 1:].strip())
    ps.check(last or 1)
    if ps.errors:
        ps.errors.sort()
        raise PolicyError([(e[0], e[2], e[3]) for e in ps.errors])
    ps.p.checksum = binascii.hexlify(h.digest()[:8]).decode()
    return ps.p
