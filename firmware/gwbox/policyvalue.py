"""One policy value: its text -> the value stored, with the reason when it cannot be, and back.

The [GENERAL] keys' table and the checks of every value kind (durations, numbers, words,
addresses, dial numbers, keys, tunnels) for gwbox.policy, which reads the document around
them. Messages quote a value only if it cannot be key material (`safe`), and a key's text
is never quoted at all. Loaded and dropped with gwbox.policy (docs/memory.md).
"""
import binascii

from gwbox import const
from gwbox.ipv4 import int_to_ip, ip_to_int

_TIMER_MS = const(536870912)  # 2**29 ms: every timer must stay below the ticks half-period
# ConsolePassword's PBKDF2 iterations, least and most: the one range (`gwbox console-password` refuses
# to make a line outside it).
KDF_ITERATIONS = (1000, 1000000)
_MASKED = const("<secret>")  # a key or password as `show policy` and `gwbox config pull` print it

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
GENERAL = (
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
def text(g, v):
    """[GENERAL] entry `g`'s stored value `v` as policy-file text, a secret as <secret>."""
    k = g[2]
    if k == _DUR:
        return secs(v)
    if k == _KB:
        return v // 1024
    if k == _BOOL:
        return "ON" if v else "OFF"
    if k == _IDENT:
        return v.decode()
    if k == _MODEM:
        return " ".join(v)
    if k == _PASSWD:
        return _MASKED
    if k == _TARGET:
        return "%s:%d" % v
    return v


def target_text(kind, target):
    """A tunnel's target as policy text."""
    return "Cluster %d" % target if kind == "cluster" else "AUTO" if kind == "auto" else target


def span(start, end):
    """An address range as policy text: `a` or `a - b`."""
    r = int_to_ip(start)
    return r if end == start else r + " - " + int_to_ip(end)


def secs(ms):
    """Milliseconds as policy text: seconds, no trailing zeros."""
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


def safe(s):
    """`s` may be shown in a message: it cannot be key material. A key is at least 22
    characters (16 bytes as base64), and a run of 8 hex digits may be part of one."""
    run = 0
    for c in s.encode():
        run = run + 1 if 48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102 else 0
        if run > 7:
            return False
    return len(s) < 22


def _quote(s, fmt="'%s'"):
    """`s` quoted for a message if it is safe()."""
    return fmt % s if safe(s) else "(value not shown)"


def _number(s):
    """A number's text for a message: as it is if safe(), else only its length. (Too long to
    quote; and int() of more than 4,300 digits fails on CPython, so it is never taken as one.)"""
    return s if safe(s) else "a number of %d digits" % len(s)


def addr(tok):
    try:
        return int_to_ip(ip_to_int(tok))
    except ValueError:
        raise ValueError("%s is not an IPv4 address" % _quote(tok))


def numbered(canon, prefix):
    """The <nr> of `canon` = prefix + <nr>: None without the prefix, 0 if not a positive int."""
    if not canon.startswith(prefix):
        return None
    d = canon[len(prefix):]
    return int(d) if _digits(d) and len(d) < 10 else 0


def value(g, v):
    """The stored value of [GENERAL] entry `g` for text `v`; ValueError with the reason."""
    k, a, b = g[2], g[4], g[5]
    if k == _DUR:
        w = v[1:] if v[:1] == "-" else v
        i = w.find(".")
        f = w[i + 1:] if i >= 0 else "0"
        w = w[:i] if i >= 0 else w
        if not _digits(w) or len(f) > 3 or not _digits(f):
            raise ValueError("%s is not a number of seconds (at most 3 decimals)" % _quote(v))
        if len(w) > 9:
            raise ValueError("%s does not fit the 2^29 ms (149 h) timer range" % _number(w))
        ms = int(w) * 1000 + int((f + "00")[:3])
        if v[0] == "-" or ms < a:
            raise ValueError("must be %s %s s, not %s" % ("more than" if a == 1 else "at least", secs(a - (a == 1)),
                                                           _quote(v, "%s")))
        if ms >= _TIMER_MS:
            raise ValueError("%s s does not fit the 2^29 ms (149 h) timer range" % _quote(v, "%s"))
        return ms
    if k == _INT or k == _KB:
        if not _digits(v[1:] if v[:1] == "-" else v):
            raise ValueError("%s is not a whole number" % _quote(v))
        if len(v) > 10 or not a <= int(v) <= b:
            raise ValueError("must be from %d to %d, not %s" % (a, b, _number(v)))
        return int(v) * (1024 if k == _KB else 1)
    u = v.upper()
    if k == _CHOICE:
        if u not in a:
            raise ValueError("must be %s or %s, not %s" % (", ".join(a[:-1]), a[-1], _quote(v)))
        return u
    if k == _BOOL:
        if u in ("ON", "YES", "TRUE", "1", "OFF", "NO", "FALSE", "0"):
            return u in ("ON", "YES", "TRUE", "1")
        raise ValueError("must be ON or OFF, not %s" % _quote(v))
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
                raise ValueError("%s is not an AT command" % _quote(c))
        if not cmds:
            raise ValueError("needs at least one AT command")
        return cmds
    if k == _PASSWD:
        return _passwd(v)
    if k == _TARGET:
        i = v.rfind(":")
        if i < 0 or not _digits(v[i + 1:]) or len(v) - i > 6 or not 0 < int(v[i + 1:]) < 65536:
            raise ValueError("%s is not <address>:<port>" % _quote(v))
        return addr(v[:i]), int(v[i + 1:])
    if k == _DIALNR:
        if not (0 < len(v) <= 40 and _chars(v, b"*#,+-_.:")):
            raise ValueError("dial number %s is not 1 to 40 of 0-9 A-Z a-z * # , + - _ . :" % _quote(v))
        return v
    return addr(v)


def _passwd(v):
    """(iterations, salt, hash) of a `gwbox console-password` value; never quoted (a password's hash)."""
    if v == _MASKED:
        raise ValueError("%s is the masked value (from gwbox config pull): put the ConsolePassword line back, "
                         "or make a new one with gwbox console-password" % _MASKED)
    f = v.split("$")
    try:
        n, salt, h = int(f[1][:8]), binascii.unhexlify(f[2]), binascii.unhexlify(f[3])
        if len(f) == 4 and f[0] == "pbkdf2" and len(f[1]) < 8 and KDF_ITERATIONS[0] <= n <= KDF_ITERATIONS[1] \
                and 7 < len(salt) < 65 and len(h) == 32:
            return n, salt, h
    except Exception:
        pass
    raise ValueError("(value not shown) is not what gwbox console-password makes")


def psk(v):
    """Key bytes from `hex:...`, `base64:...` or bare hex. Messages never quote the key."""
    if v == _MASKED:
        raise ValueError("%s is a masked key (from gwbox config pull or show policy): put the key back" % _MASKED)
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


def tunnel(v, redirect):
    """(start, end, kind, target) of a Tunnel or Redirect value."""
    t = v.replace("-", " - ").split() + [""]  # "" ends the tokens
    if not t[0]:
        raise ValueError("needs %s and a target" % ("a server address" if redirect else "a range"))
    start = end = ip_to_int(addr(t[0]))
    i = 1
    if t[1] == "-":
        if redirect:
            raise ValueError("a redirect names one server address, not a range")
        end = ip_to_int(addr(t[2]))
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
        if not _digits(d) or len(d) > 9 or not int(d):
            raise ValueError("Cluster needs a positive number, not %s" % (_quote(d) if safe(d) else _number(d)))
        kind, target = "cluster", int(d)
    else:
        kind, target = "addr", addr(t[i - 1])
    if t[i]:
        raise ValueError("unexpected %s after the target" % _quote(" ".join(t[i:-1])))
    return start, end, kind, target
