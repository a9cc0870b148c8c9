"""Policy file -> one checked Policy (reference: docs/policy.md).

The seed's syntax (GB 2 363 548): [GENERAL] heartbeat keys, [CLUSTER] `Cluster<nr> = addr
...`, [TUNNEL] `Tunnel<nr> = start[-end] (address | Cluster <nr> | AUTO)` and `Redirect
Tunnel<nr> = server (address | Cluster <nr>)`; plus gwbox's own [GENERAL] keys, [KEYS]
(pre-shared keys) and [DIAL] (dial numbers). Sections and keywords are case-insensitive,
`#` starts a comment anywhere on a line.

parse(text) is pure (no I/O, clock or randomness): it returns a complete Policy or raises
one PolicyError that lists every problem found, in line order. Nothing is half-applied.
No message, repr() or masked() text ever holds key material: a key is named by its field.

The values of single keys are checked in gwbox.policyvalue (the [GENERAL] table and each
value's checks; this module is the document). The box imports both at boot, parses, and drops them again (sys.modules), so the tables are small tuples and the
Policy is plain attributes.
"""
import binascii
import hashlib

from gwbox import const
from gwbox.ipv4 import int_to_ip, ip_to_int  # noqa: F401  (part of this module's API too)
from gwbox.policyvalue import GENERAL, addr, numbered, psk, safe, secs, span, target_text, text, tunnel, value

_G_DIAL = const(9)  # GENERAL index of Dial: [DIAL] numbers are checked the same way
_G_ACCESS = const(10)  # of AccessServer
_G_RETRY_MAX = const(16)  # of RetryMaxTime (RetryTime just before it)
_G_LAN_UART = const(21)  # of LanUart: its target must be inside a [TUNNEL] range
_SECTIONS = const(("GENERAL", "CLUSTER", "TUNNEL", "KEYS", "DIAL"))
# Numbered keys of [CLUSTER] and [TUNNEL]: (name without spaces, lower case; as printed).
_NUMBERED = const((("cluster", "Cluster"), ("preferred", "Preferred"), ("tunnel", "Tunnel"),
                   ("redirecttunnel", "Redirect Tunnel")))
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
        for g in GENERAL:
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
        for g in GENERAL:
            v = getattr(self, g[1])
            if v is not None:
                out.append("%s = %s" % (g[0], text(g, v)))
        out.append("[CLUSTER]")
        for nr in sorted(self.clusters):
            out.append("Cluster%d = %s" % (nr, " ".join(self.clusters[nr])))
        for nr in sorted(self.preferred):
            out.append("Preferred%d = %s" % (nr, self.preferred[nr]))
        out.append("[TUNNEL]")
        for t in self.tunnels:
            out.append("Tunnel%d = %s %s" % (t[0], span(t[1], t[2]), target_text(t[3], t[4])))
        for t in self.redirects:
            out.append("Redirect Tunnel%d = %s %s" % (t[0], t[1], target_text(t[2], t[3])))
        out.append("[KEYS]")
        for g in self.gateways:
            out.append(g + " = <secret>")
        out.append("[DIAL]")
        for g in self.gateways:
            out.append("%s = %s" % (g, self.dial_numbers[g]))
        out.append("")
        return "\n".join(out)


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


class _Parse:
    """Working state of one parse(): dropped when the Policy is returned."""

    def __init__(self):
        self.p = Policy()
        self.errors = []
        self.seen = {}  # field ("[CLUSTER] Cluster1") or section ("[TUNNEL]") -> line first set
        self.glines = [0] * len(GENERAL)  # line each [GENERAL] key is set on (no dict to grow)
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
        f = hdr + " " + name if safe(name) else hdr  # the field as written, unless it may be a key
        if sec == _S_GENERAL:
            for gi in range(len(GENERAL)):
                g = GENERAL[gi]
                if len(g[0]) == len(canon) and g[0].lower() == canon:
                    break
            else:
                return self.err(n, f, "unknown key")
            f = hdr + " " + g[0]
        elif sec == _S_CLUSTER or sec == _S_TUNNEL:
            kw = _NUMBERED[sec * 2 - 2 + (canon[0] in "pr")]  # Preferred<nr>, Redirect Tunnel<nr>
            nr = numbered(canon, kw[0])
            if nr is None:
                return self.err(n, f, "unknown key (expected %s<nr> or %s<nr>)" % (
                    _NUMBERED[sec * 2 - 2][1], _NUMBERED[sec * 2 - 1][1]))
            if kw[0] == "tunnel":
                self.ntunnel += 1
            if not nr:
                return self.err(n, f, "needs a positive decimal number after the keyword (at most 9 digits)")
            f = "%s %s%d" % (hdr, kw[1], nr)
        elif sec == _S_KEYS:
            nr = numbered(canon, "cluster")
            if canon == "default":
                name = ""
            elif nr:
                name = nr
            else:
                try:
                    name = addr(canon)
                except ValueError:
                    # The name is not quoted: a key pasted in the wrong place stays unprinted.
                    return self.err(n, hdr,
                                    "unknown key name (expected Default, Cluster<nr> or a gateway address)")
            f = hdr + " " + ("Default" if name == "" else "Cluster%d" % nr if nr else name)
        else:
            try:
                name = addr(name)
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
                setattr(p, g[1], value(g, v))
            elif sec == _S_CLUSTER and kw[0] == "preferred":
                self.prefs.append((n, f, nr, addr(v)))
            elif sec == _S_CLUSTER:
                members = p.clusters[nr] = []  # defined even when bad: no follow-on errors
                self.clusters.append(nr)
                if not v:
                    raise ValueError("needs at least one gateway address")
                for tok in v.split():
                    a = addr(tok)
                    if a in members:
                        raise ValueError("gateway %s is listed twice" % a)
                    members.append(a)
                    self.first[a] = self.first.get(a) or (n, f)
            elif sec == _S_TUNNEL:
                redirect = kw[0] != "tunnel"
                self.tunnels.append((n, f, nr, redirect) + tunnel(v, redirect))
            else:
                k = psk(v) if sec == _S_KEYS else value(GENERAL[_G_DIAL], v)
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
                    err(n, f, "range %s overlaps %s on line %d (%s)" % (span(start, end), o[1][9:], o[0],
                                                                          span(o[4], o[5])))
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
            err(gl[i], "[GENERAL] " + GENERAL[i][0],
                "RetryMaxTime %s s is less than RetryTime %s s" % (secs(p.retry_max_ms), secs(p.retry_ms)))
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
                ps.err(n, line if safe(line) else "[?]", "a section header is [NAME]")
            elif name in _SECTIONS:
                sec = _SECTIONS.index(name)
                hdr = "[" + name + "]"
                ps.seen[hdr] = ps.seen.get(hdr) or n
            else:
                ps.err(n, "[%s]" % (name if safe(name) else "?"),
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
