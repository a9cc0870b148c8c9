"""CPython only: the cryptolib-compatible AES backend (and the pure-Python primitives
built on it) agree with the `cryptography` library for arbitrary keys and data."""
import hashlib
import hmac

import pytest
from hypothesis import given, settings, strategies as st
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gwbox.crypto import aes, mac, x25519
from gwbox.port import host_aes, host_x25519
from test_crypto_x25519 import LOW_ORDER, wycheproof

keys = st.sampled_from((16, 24, 32)).flatmap(lambda n: st.binary(min_size=n, max_size=n))
blocks = st.integers(0, 20).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n))
ivs = st.binary(min_size=16, max_size=16)


def _ref(key, mode):
    return Cipher(algorithms.AES(key), mode)


def _split(data, cuts):
    """Split whole blocks of `data` at block boundaries chosen by `cuts`."""
    bounds = sorted({min(c, len(data) // 16) * 16 for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def test_crypto_aes_uses_host_backend_on_cpython():
    assert isinstance(aes.new(bytes(16), aes.MODE_ECB), host_aes.aes)


@given(keys, blocks)
def test_ecb_matches_cryptography(key, data):
    ct = _ref(key, modes.ECB()).encryptor().update(data)
    assert aes.new(key, aes.MODE_ECB).encrypt(data) == ct
    assert aes.new(key, aes.MODE_ECB).decrypt(ct) == data


@given(keys, ivs, blocks, st.lists(st.integers(0, 20), max_size=4))
def test_cbc_matches_cryptography_and_chains(key, iv, data, cuts):
    ct = _ref(key, modes.CBC(iv)).encryptor().update(data)
    enc = aes.new(key, aes.MODE_CBC, iv)
    assert b"".join(enc.encrypt(p) for p in _split(data, cuts)) == ct
    dec = aes.new(key, aes.MODE_CBC, iv)
    assert b"".join(dec.decrypt(p) for p in _split(ct, cuts)) == data


@given(keys, blocks)
def test_out_buffer_like_cryptolib(key, data):
    out = bytearray(len(data))
    assert host_aes.aes(key, 1).encrypt(data, out) is out
    assert bytes(out) == _ref(key, modes.ECB()).encryptor().update(data)


@given(keys, st.binary(min_size=12, max_size=12), st.binary(max_size=700),
       st.integers(0, 0xFFFFFFFF - 50))
def test_ctr_from_ecb_matches_cryptography(key, nonce, data, counter):
    """Both the firmware's CTR (a loop over ECB blocks, what a board runs) and the host's
    (one OpenSSL CTR call, what the installed backend makes aes.ctr_crypt)."""
    ref = _ref(key, modes.CTR(nonce + counter.to_bytes(4, "big"))).encryptor().update(data)
    assert aes.ctr_crypt is host_aes.ctr_crypt
    assert aes.ctr_crypt(aes.new(key, aes.MODE_ECB), nonce, data, counter) == ref
    assert host_aes.pure_ctr_crypt(aes.new(key, aes.MODE_ECB), nonce, data, counter) == ref


def test_host_ctr_refuses_what_the_firmware_s_refuses():
    ecb = aes.new(bytes(16), aes.MODE_ECB)
    for fn in (host_aes.ctr_crypt, host_aes.pure_ctr_crypt):
        with pytest.raises(ValueError):
            fn(ecb, bytes(11), b"x")
        with pytest.raises(ValueError):
            fn(ecb, bytes(12), bytes(33), 0xFFFFFFFE)  # three blocks from 2**32 - 2 would wrap
        assert fn(ecb, bytes(12), bytes(32), 0xFFFFFFFE) == host_aes.pure_ctr_crypt(ecb, bytes(12), bytes(32),
                                                                                 0xFFFFFFFE)


@pytest.mark.parametrize("bad", [
    lambda: host_aes.aes(bytes(15), 1),
    lambda: host_aes.aes(bytes(16), 3),
    lambda: host_aes.aes(bytes(16), 2),
    lambda: host_aes.aes(bytes(16), 2, bytes(8)),
    lambda: host_aes.aes(bytes(16), 1).encrypt(bytes(17)),
])
def test_backend_rejects_like_cryptolib(bad):
    with pytest.raises(ValueError):
        bad()


def test_backend_object_is_one_direction():
    c = host_aes.aes(bytes(16), 2, bytes(16))
    c.decrypt(bytes(16))
    with pytest.raises(ValueError):
        c.encrypt(bytes(16))


@given(st.binary(max_size=200), st.lists(st.binary(max_size=80), max_size=4))
def test_hmac_matches_stdlib(key, parts):
    want = hmac.new(key, b"".join(parts), hashlib.sha256).digest()
    assert mac.hmac_sha256(key, b"".join(parts)) == want
    assert mac.hmac_digest(mac.hmac_key(key), *parts) == want


@given(st.binary(max_size=80), st.binary(max_size=80), st.binary(max_size=80),
       st.integers(1, 255 * 32))
def test_hkdf_matches_cryptography(salt, ikm, info, length):
    want = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert mac.hkdf(salt, ikm, info, length) == want


@given(st.binary(), st.binary())
def test_ct_equal_matches_equality(a, b):
    assert mac.ct_equal(a, b) == (a == b)
    assert mac.ct_equal(a, a)


@settings(max_examples=30)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_x25519_matches_cryptography(priv, peer):
    ref = X25519PrivateKey.from_private_bytes(priv)
    assert x25519.public_key(priv) == ref.public_key().public_bytes_raw()
    assert x25519.x25519(priv, peer) == _ref_exchange(ref, peer)


def _ref_exchange(ref, peer):
    try:
        return ref.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError:  # cryptography refuses the all-zero result of low-order points
        return bytes(32)


# --- the gateway's X25519 backend (gwbox.port.host_x25519) ------------------------------

def pure_x25519(k, u):
    """The firmware's own ladder, whatever backend is installed."""
    import gwbox.crypto
    saved, gwbox.crypto.x25519_backend = gwbox.crypto.x25519_backend, None
    try:
        return x25519.x25519(k, u)
    finally:
        gwbox.crypto.x25519_backend = saved


def test_host_x25519_rfc7748_and_wycheproof_vectors_like_the_ladder():
    h = bytes.fromhex
    k = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    want = h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    assert host_x25519.x25519(k, u) == x25519.pure_x25519(k, u) == want
    n = 0
    for tc, priv, pub, shared in wycheproof():  # all 518 cases
        assert host_x25519.x25519(priv, pub) == shared, tc
        n += 1
    assert n == 518


def test_host_x25519_gives_all_zero_for_low_order_points_so_shared_secret_refuses_them():
    from gwbox.errors import ProtocolError
    priv = bytes(range(32))
    host_x25519.install()
    try:
        for u in LOW_ORDER:
            assert host_x25519.x25519(priv, bytes.fromhex(u)) == bytes(32)
            with pytest.raises(ProtocolError):
                x25519.shared_secret(priv, bytes.fromhex(u))
        a_priv, a_pub = x25519.generate_keypair()
        b_priv, b_pub = x25519.generate_keypair()
        assert x25519.shared_secret(a_priv, b_pub) == x25519.shared_secret(b_priv, a_pub)
        assert x25519.public_key(a_priv) == pure_x25519(a_priv, x25519.BASE_POINT) == a_pub
    finally:
        host_x25519.install(None)


@settings(max_examples=30)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_host_x25519_matches_the_ladder(priv, peer):
    assert host_x25519.x25519(priv, peer) == pure_x25519(priv, peer)
