"""CPython stand-in for MicroPython's `cryptolib.aes`, backed by `cryptography`.

Same behaviour as cryptolib: modes 1 (ECB) and 2 (CBC), data in multiples of 16,
CBC chaining kept across calls, an object either encrypts or decrypts. `cryptography`
is imported inside the constructor so importing this module never fails on a board.
"""

_ECB = 1
_CBC = 2


class aes:
    """cryptolib.aes(key, mode[, iv]) on CPython; AES-128/192/256. The OpenSSL context is
    made on first use: an SA makes an ECB object per packet and, through `ctr`, never uses
    its ECB context at all (a gateway's per-packet cost, bench/gateway_scale.py)."""

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

    def ctr(self, block, data):
        """AES-CTR from the 16-byte counter `block`, incremented per block (gwbox.crypto.aes
        checks first that its low 32 bits do not wrap: then this is its ctr_crypt exactly)."""
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        return Cipher(algorithms.AES(self._key), modes.CTR(bytes(block))).encryptor().update(bytes(data))

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


def install():
    """Hand this backend to gwbox.crypto.aes (CPython ports: host tools, tests, benchmarks)."""
    from gwbox.crypto import aes as _mod
    _mod.use(aes)
