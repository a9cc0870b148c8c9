"""IPv4 addresses: policy text <-> the 4-byte ints on the wire. Tiny and import-free: the
policy parser and the tunnel formats share it without loading each other."""


def ip_to_int(s):
    """'143.1.0.64' -> 0x8F010040. Four decimal octets 0..255 (ASCII digits); ValueError otherwise."""
    parts = s.split(".")
    n = 0
    for p in parts:
        if len(parts) != 4 or not 0 < len(p) <= 3 or not _ascii_digits(p) or int(p) > 255:
            raise ValueError("not an IPv4 address")
        n = n << 8 | int(p)
    return n


def _ascii_digits(p):
    for c in p:
        if c < "0" or c > "9":
            return False
    return True


def int_to_ip(n):
    """0x8F010040 -> '143.1.0.64'; ValueError outside 0 .. 2**32-1."""
    if not isinstance(n, int) or n < 0 or n >> 32:
        raise ValueError("not a 32-bit address")
    return "%d.%d.%d.%d" % (n >> 24, n >> 16 & 255, n >> 8 & 255, n & 255)
