"""gwbox.crypto.mac: RFC 4231 HMAC-SHA256, RFC 5869 HKDF-SHA256, ct_equal."""
import sys

from gwbox.crypto import mac

h = bytes.fromhex

# RFC 4231 test cases 1, 2, 3, 4, 6, 7 (5 is a truncated output, not applicable)
RFC4231 = (
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131,
     b"This is a test using a larger than block-size key and a larger than block-size data."
     b" The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)

# RFC 5869 test cases 1, 2, 3 (SHA-256): ikm, salt, info, L, PRK, OKM
RFC5869 = (
    (b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42,
     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
     "34007208d5b887185865"),
    (bytes(range(0x50)), bytes(range(0x60, 0xB0)), bytes(range(0xB0, 0x100)), 82,
     "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    (b"\x0b" * 22, b"", b"", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
     "9d201395faa4b61a96c8"),
)


def test_rfc4231_hmac_sha256():
    for key, data, want in RFC4231:
        assert mac.hmac_sha256(key, data) == h(want)


def test_hmac_key_reused_and_parts_equal_concatenation():
    for key, data, want in RFC4231:
        k = mac.hmac_key(key)
        assert mac.hmac_digest(k, data) == h(want)
        assert mac.hmac_digest(k, data[:3], data[3:7], b"", data[7:]) == h(want)
        assert mac.hmac_digest(k, data) == h(want)  # precomputed pads are not consumed
    assert mac.hmac_digest(mac.hmac_key(b"k")) == mac.hmac_sha256(b"k", b"")
    assert mac.hmac_digest(mac.hmac_key(b"k"), bytearray(b"ab"), memoryview(b"cd")) == \
        mac.hmac_sha256(b"k", b"abcd")


def test_hmac_key_of_exactly_one_block():
    key = bytes(range(64))
    assert mac.hmac_sha256(key, b"x") != mac.hmac_sha256(key[:63], b"x")
    assert len(mac.hmac_sha256(key, b"x")) == 32


def test_rfc5869_hkdf_sha256():
    for ikm, salt, info, length, prk, okm in RFC5869:
        assert mac.hkdf_extract(salt, ikm) == h(prk)
        assert mac.hkdf_expand(h(prk), info, length) == h(okm)
        assert mac.hkdf(salt, ikm, info, length) == h(okm)


def test_hkdf_lengths():
    prk = mac.hkdf_extract(b"salt", b"ikm")
    assert mac.hkdf_expand(prk, b"i", 0) == b""
    full = mac.hkdf_expand(prk, b"i", 100)
    assert len(full) == 100
    assert mac.hkdf_expand(prk, b"i", 33) == full[:33]
    # the RFC 5869 maximum needs two 8 KB buffers: checked on CPython, 1 KB on the 64 KB heap
    big = 255 * 32 if sys.implementation.name != "micropython" else 1024
    assert len(mac.hkdf_expand(prk, b"", big)) == big
    try:
        mac.hkdf_expand(prk, b"", 255 * 32 + 1)
    except ValueError:
        pass
    else:
        assert False, "over-long HKDF output allowed"
    assert mac.hkdf_extract(None, b"ikm") == mac.hkdf_extract(bytes(32), b"ikm")


def test_ct_equal():
    a = bytes(range(16))
    assert mac.ct_equal(a, bytes(range(16)))
    assert mac.ct_equal(b"", b"")
    assert mac.ct_equal(a, bytearray(a))
    assert mac.ct_equal(memoryview(a), a)
    assert not mac.ct_equal(a, a[:15])
    assert not mac.ct_equal(a, a + b"\x00")
    assert not mac.ct_equal(b"", b"\x00")
    for i in range(16):
        for bit in (1, 0x80):
            b = bytearray(a)
            b[i] ^= bit
            assert not mac.ct_equal(a, b)
