"""CPython backend for gwbox.crypto.x25519, backed by `cryptography` (OpenSSL's X25519).

A head-office gateway computes an X25519 key pair and a shared secret for every SA_INIT
it answers: the firmware's pure ladder takes milliseconds of CPython time for each,
OpenSSL tens of microseconds. The contract is the module's own: RFC 7748 X25519(k, u),
the scalar clamped and the top bit of u masked, an all-zero result (not an exception)
for a low-order u, so `shared_secret` refuses it exactly as before. `cryptography` is
imported inside the functions, so importing this module never fails on a board.
"""


def x25519(scalar, u):
    """RFC 7748 X25519(scalar, u) -> 32 bytes (all zero for a low-order u)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    key = X25519PrivateKey.from_private_bytes(bytes(scalar))
    try:
        return key.exchange(X25519PublicKey.from_public_bytes(bytes(u)))
    except ValueError:  # OpenSSL refuses the all-zero result of a low-order point
        return bytes(32)


def install(backend=x25519):
    """Hand this backend to gwbox.crypto.x25519 (the gateway and the load generator do);
    `install(None)` goes back to the firmware's ladder."""
    import gwbox.crypto
    gwbox.crypto.x25519_backend = backend
