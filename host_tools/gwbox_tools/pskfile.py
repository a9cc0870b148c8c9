"""The gateway's PSK file: one `<box identity> <key>` per line, keys as the policy file
writes them (`hex:`, `base64:` or bare hex, 16..64 bytes).

Why a module of its own: the gateway process and `headoffice` (which writes the file for
the gateways it starts) share it, and every message it raises names the file and line
but never quotes a key, the rule that matters most here.
"""
import binascii

KEY_MIN, KEY_MAX = 16, 64


class PskFileError(ValueError):
    """A problem in the PSK file: file, line and what is wrong; never any key material."""


def parse_key(text):
    """Key bytes from `hex:<hex>`, `base64:<b64>` or bare hex (the policy file's forms).
    ValueError with a message that never quotes the key."""
    low = text[:7].lower()
    if low == "base64:":
        v, b64 = text[7:], True
    elif low[:4] == "hex:":
        v, b64 = text[4:], False
    else:
        v, b64 = text, False
    if not v:
        raise ValueError("key is empty")
    try:
        if b64:
            if len(v) % 4:
                raise ValueError
            k = binascii.a2b_base64(v.encode("ascii"), strict_mode=True)
        else:
            if len(v) % 2 or any(c not in "0123456789abcdefABCDEF" for c in v):
                raise ValueError
            k = binascii.unhexlify(v)
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise ValueError("key is not valid base64" if b64 else
                         "key is not valid hex (an even number of 0-9 a-f)") from None
    if len(k) < KEY_MIN:
        raise ValueError("key is shorter than %d bytes" % KEY_MIN)
    if len(k) > KEY_MAX:
        raise ValueError("key is longer than %d bytes" % KEY_MAX)
    if not any(k):
        raise ValueError("key is all zero bytes")
    return k


def parse_psks(text, where="psk file"):
    """{box identity bytes: key bytes} from PSK file text. Every problem is reported at once
    (PskFileError, one `<where> line N: ...` per line); messages never quote a key."""
    psks = {}
    first = {}  # identity -> line it was keyed on
    errors = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            errors.append("%s line %d: expected '<box identity> <key>', found %d field%s"
                          % (where, n, len(parts), "" if len(parts) == 1 else "s"))
            continue
        ident, key = parts
        # Neither field is quoted: with the fields swapped by mistake, the "identity"
        # would be the key.
        try:
            k = parse_key(key)
        except ValueError as e:
            errors.append("%s line %d: %s" % (where, n, e))
            continue
        ib = ident.encode("utf-8")
        if ib in psks:
            errors.append("%s line %d: this box identity has a key already (line %d)" % (where, n, first[ib]))
            continue
        psks[ib] = k
        first[ib] = n
    if not errors and not psks:
        errors.append("%s: no box keys" % where)
    if errors:
        raise PskFileError("\n".join(errors))
    return psks


def load_psks(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise PskFileError("%s: not UTF-8 text" % path) from None
    return parse_psks(text, str(path))


def format_psks(psks):
    """PSK file text for {identity: key bytes} (what headoffice writes)."""
    lines = ["# box identity  key (hex:, base64: or bare hex; 16..64 bytes)"]
    for ident, key in psks.items():
        if isinstance(ident, bytes):
            ident = ident.decode("utf-8")
        lines.append("%s hex:%s" % (ident, bytes(key).hex()))
    return "\n".join(lines) + "\n"
