"""Key schedule: from one X25519 shared secret to the keys of a control and a data SA.

HKDF-SHA256 (RFC 5869). The salt carries both nonces (and, on rekey, the old SA's
derivation key SK_d, so a rekey is bound to the authenticated SA it replaces);
the info string binds all four SPIs. Each SA direction gets its own AES and MAC key.
"""
from gwbox import const
from gwbox.crypto.mac import HkdfStream, hkdf_expand, hkdf_extract

_ENC_LEN = const(16)
_MAC_LEN = const(32)
_SKD_LEN = const(32)
_LABEL = const(b"gwbox1 keys")
_AUTH_LABEL = const(b"gwbox1 psk auth")


class Keys:
    """Derived material. `i2r`/`r2i` name the direction relative to the exchange initiator."""



def derive(shared, nonce_i, nonce_r, spis, sk_d_old=b""):
    """spis = (ctl_spi_i, ctl_spi_r, data_spi_i, data_spi_r) as 4-byte big-endian values.

    Output order: SK_d, then (enc, mac) for ctl i->r, ctl r->i, data i->r, data r->i.
    """
    prk = hkdf_extract(sk_d_old + nonce_i + nonce_r, shared)
    info = _LABEL
    for s in spis:
        info += s.to_bytes(4, "big")
    okm = HkdfStream(prk, info)
    k = Keys()
    k.sk_d = okm.read(_SKD_LEN)
    k.ctl_i2r, k.ctl_r2i, k.data_i2r, k.data_r2i = [(okm.read(_ENC_LEN), okm.read(_MAC_LEN)) for _ in range(4)]
    return k


def psk_auth_key(psk):
    """The MAC key used for AUTH payloads, never the raw PSK itself."""
    return hkdf_expand(hkdf_extract(b"", psk), _AUTH_LABEL, 32)
