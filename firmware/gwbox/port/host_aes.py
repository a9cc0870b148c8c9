"""CPython stand-in for MicroPython's `cryptolib.aes`, backed by `cryptography`.

Same behaviour as cryptolib: modes 1 (ECB) and 2 (CBC), data in multiples of 16,
CBC chaining kept across calls, an object either encrypts or decrypts. `cryptography`
is imported inside the constructor so importing this module never fails on a board.
"""

_ECB = 1
_CBC = 2


class aes:
    """cryptolib.aes(key, mode[, iv]) on CPython; AES-128/192/256. The OpenSSL context is
    made on first use: an SA makes an ECB object per packet and, through `ctr_crypt` below,
    never uses its ECB context at all (a gateway's per-packet cost, bench/gateway_scale.py)."""

    def __init__(self, key, mode, iv=None):
        if len(key) not in (16, 24, 32):
            raise ValueError("key")
        if mode == _CBC:
            if iv is None or len(iv) != 16:
                raise ValueError("IV")
        elif mode != _ECB:
            raise ValueError("mode")
        self._key = bytes(key)
        self._mode = mode
        self._iv = None if iv is None else bytes(iv)
        self._ctx = None
        self._enc = None

    def _run(self, encrypt, data, out):
        if len(data) % 16:
            raise ValueError("blksize % 16")
        if self._ctx is None:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            m = modes.ECB() if self._mode == _ECB else modes.CBC(self._iv)
            cipher = Cipher(algorithms.AES(self._key), m)
            self._enc = encrypt
            self._ctx = cipher.encryptor() if encrypt else cipher.decryptor()
        elif self._enc != encrypt:
            raise ValueError("can't encrypt & decrypt")
        res = self._ctx.update(bytes(data))
        if out is None:
            return res
        out[:len(res)] = res
        return out

    def encrypt(self, data, out=None):
        """Encrypt whole blocks; with `out`, write into that buffer like cryptolib."""
        return self._run(True, data, out)

    def decrypt(self, data, out=None):
        """Decrypt whole blocks; with `out`, write into that buffer like cryptolib."""
        return self._run(False, data, out)


def ctr_crypt(ecb, nonce, data, counter=0):
    """gwbox.crypto.aes.ctr_crypt through OpenSSL's CTR: the same checks, the same counter
    blocks (12-byte nonce || 32-bit counter, which the check keeps from wrapping into the
    nonce), one call instead of a Python loop over blocks: a gateway's per-packet cost."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    if len(nonce) != 12:
        raise ValueError("CTR nonce must be 12 bytes")
    if counter < 0 or counter + (len(data) + 15) // 16 > 0x100000000:
        raise ValueError("CTR counter would wrap")
    block = bytes(nonce) + counter.to_bytes(4, "big")
    return Cipher(algorithms.AES(ecb._key), modes.CTR(block)).encryptor().update(bytes(data))


pure_ctr_crypt = None  # the firmware's own ctr_crypt, once install() replaced it


def install():
    """Hand this backend to gwbox.crypto.aes (CPython ports: host tools, tests, benchmarks),
    with its CTR (a board's is the Python loop over cryptolib's ECB in gwbox.crypto.aes)."""
    global pure_ctr_crypt
    from gwbox.crypto import aes as _mod
    _mod.use(aes)
    if _mod.ctr_crypt is not ctr_crypt:
        pure_ctr_crypt = _mod.ctr_crypt
        _mod.ctr_crypt = ctr_crypt
