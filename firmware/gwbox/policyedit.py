"""The console's policy commands: show policy, show pending, set, load (its end), save.

Imported by gwbox.console for one of these commands and dropped right after it, with the
policy parser (docs/console.md). A policy is checked by the very parser the box boots
with, in full: nothing becomes pending unless the whole text parses, and errors come
back one line each, numbered as in the text. `save` goes through gwbox.store (atomic,
checksummed, the previous policy kept as the last good one).
"""
import gc

from gwbox import POLICY_MAX, const, forget

# Heap the parser needs besides the text (32-bit, .mpy: 14.6K of code, the Policy, garbage).
# Refused up front below that: a parser import that fails half way on a fragmented heap can
# leave the running box without room for its own next allocation.
_PARSER_HEAP = const(24576)


def room(con, now, cmd):
    """True if the policy parser fits now; else the refusal is the reply."""
    f = getattr(gc, "mem_free", None)
    if f is None:
        return True  # CPython
    gc.collect()
    free = f()
    if free >= _PARSER_HEAP:
        return True
    con.say(now, cmd, False, "out of memory for the policy parser while the box runs (%d bytes free, %d needed): "
            "`reboot safe`, then try again" % (free, _PARSER_HEAP))
    return False


def _parse(text):
    from gwbox.policy import parse
    try:
        return parse(text)
    finally:
        forget("gwbox.policy", "gwbox.policyvalue")


def _store(con):
    from gwbox.store import Store
    return Store(con.port.policy_path, con.port.fs)


def command(con, w, rest, now):
    """(`show policy` of the policy this boot runs is the console's own: rendered at boot.)"""
    if w != "save" and not (w == "show pending" and con.pending is None) and not room(con, now, w):
        return
    if w == "set":
        return _set(con, rest, now)
    if w == "load":
        con.loading = []
        con.load_size = 0
        con.load_at = now
        return con.line(now, "load", "paste the policy, then a line holding only '.'")
    if w == "save":
        return _save(con, now)
    if w == "show pending":
        if con.pending is None:
            return con.say(now, w, False, "nothing pending")
        return _show(con, now, w, con.pending, "pending, not saved")
    text, path, _notes = _store(con).load()
    if text is None:
        return con.say(now, w, False, "no policy is stored")
    _show(con, now, w, text, "stored in " + path)


def _show(con, now, cmd, text, where):
    try:
        p = _parse(text)
    except ValueError:
        return con.say(now, cmd, False, "the policy %s does not parse" % where)
    masked, checksum = p.masked(), p.checksum
    p = None
    con.text(now, cmd, masked, where, checksum)


def loaded(con, lines, digest, now):
    """The end of a `load`: `lines` as pasted, `digest` the SHA-256 (hex) the host sent, or b""."""
    if lines and lines[0] is None:
        return con.say(now, "load", False, "the policy is longer than %d bytes: nothing changed" % POLICY_MAX)
    body = b"\n".join(lines) + b"\n"
    lines = None
    if digest:
        import hashlib
        h = "".join("%02x" % b for b in hashlib.sha256(body).digest())
        if h != digest.decode().lower():
            return con.say(now, "load", False, "the text arrived damaged (its SHA-256 does not match): "
                           "nothing changed; send it again")
    try:
        text = body.decode()
    except UnicodeError:
        return con.say(now, "load", False, "the policy is not UTF-8 text: nothing changed")
    body = None
    if room(con, now, "load"):
        _validate(con, now, "load", text, "policy valid")


def _validate(con, now, cmd, text, what):
    """Parse `text`: its errors, line by line, and nothing changed; or it becomes pending."""
    try:
        p = _parse(text)
    except ValueError as e:
        errs = getattr(e, "errors", None) or [(0, "policy", str(e))]
        for err in errs:
            con.line(now, cmd, "line %d: %s: %s" % err)
        return con.say(now, cmd, False, "policy rejected (%d error%s): nothing changed" % (
            len(errs), "" if len(errs) == 1 else "s"), errors=len(errs))
    checksum = p.checksum
    nopass = p.console_password is None
    p = None
    con.pending = text
    msg = "%s (checksum %s): `save` stores it, `reboot` then uses it" % (what, checksum)
    if nopass:
        msg += "; note: it sets no ConsolePassword, so the console will change nothing outside safe mode"
    con.say(now, cmd, True, msg, checksum=checksum)


def set_general(text, key, value):
    """`text` with [GENERAL] `key` set to `value` (the line replaced, or added to the section)."""
    lines = text.split("\n")
    canon = key.lower()
    sec = general = hit = None
    for i in range(len(lines)):
        s = lines[i]
        c = s.find("#")
        s = (s if c < 0 else s[:c]).strip()
        if s[:1] == "[":
            sec = s[1:-1].strip().upper()
            if sec == "GENERAL" and general is None:
                general = i
        elif sec == "GENERAL" and hit is None:
            e = s.find("=")
            if e > 0 and "".join(s[:e].split()).lower() == canon:
                hit = i
    new = "%s = %s" % (key, value)
    if hit is not None:
        lines[hit] = new
    elif general is not None:
        lines.insert(general + 1, new)
    else:
        lines[0:0] = ["[GENERAL]", new]
    return "\n".join(lines)


def _set(con, rest, now):
    kv = rest.split(None, 1)
    if len(kv) != 2:
        return con.say(now, "set", False, "usage: set KEY VALUE (a [GENERAL] key)")
    key, value = kv[0], kv[1].strip()
    if "=" in key or "#" in key or "[" in key or "#" in value:
        return con.say(now, "set", False, "KEY is one [GENERAL] key name and VALUE cannot hold '#'")
    text = con.pending
    if text is None:
        text = _store(con).load()[0]
        if text is None:
            return con.say(now, "set", False, "no policy is stored: load one first")
    shown = "%s = %s" % (key, "(value not shown)" if key.lower() == "consolepassword" else value)
    _validate(con, now, "set", set_general(text, key, value), shown)


def _save(con, now):
    if con.pending is None:
        return con.say(now, "save", False, "nothing to save: load or set first")
    from gwbox.store import StoreError
    try:
        _store(con).save(con.pending)
    except (StoreError, OSError) as e:
        return con.say(now, "save", False, "not saved (%s): the stored policy is unchanged" % e)
    con.pending = None
    con.port.shown = None  # `show policy` shows the stored policy: this one now, parsed
    con.say(now, "save", True, "saved: `reboot` to use it")
