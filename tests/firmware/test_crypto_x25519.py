"""gwbox.crypto.x25519 against RFC 7748 sections 5.2 and 6.1, and low-order rejection."""
import sys

from gwbox.crypto import x25519
from gwbox.errors import ProtocolError

h = bytes.fromhex
ON_CPYTHON = sys.implementation.name != "micropython"

ALICE_PRIV = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIV = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUB = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# u-coordinates of small-order points (and non-canonical encodings of them)
LOW_ORDER = (
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",  # p - 1
    "ed" + "ff" * 30 + "7f",  # p
    "ee" + "ff" * 30 + "7f",  # p + 1
    "00" * 31 + "80",  # 0 with the masked top bit set
)


def test_rfc7748_5_2_vector_1():
    k = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert x25519.x25519(k, u) == h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")


def test_rfc7748_5_2_vector_2_top_bit_of_u_masked():
    k = h("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d")
    u = h("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493")
    assert x25519.x25519(k, u) == h("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")


def _iterate(n):
    k = u = x25519.BASE_POINT
    for _ in range(n):
        k, u = x25519.x25519(k, u), k
    return k


def test_rfc7748_5_2_iterated_once():
    assert _iterate(1) == h("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")


def test_rfc7748_5_2_iterated_1000_times():
    # About 7 s under the unix micropython (x86-64), ~1.5 s on CPython.
    assert _iterate(1000) == h("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")


def test_rfc7748_6_1_diffie_hellman():
    assert x25519.BASE_POINT == b"\x09" + bytes(31)
    assert x25519.public_key(ALICE_PRIV) == ALICE_PUB
    assert x25519.public_key(BOB_PRIV) == BOB_PUB
    assert x25519.shared_secret(ALICE_PRIV, BOB_PUB) == SHARED
    assert x25519.shared_secret(BOB_PRIV, ALICE_PUB) == SHARED


def test_all_zero_shared_secret_rejected():
    for u in LOW_ORDER:
        assert x25519.x25519(ALICE_PRIV, h(u)) == bytes(32)
        try:
            x25519.shared_secret(ALICE_PRIV, h(u))
        except ProtocolError:
            pass
        else:
            assert False, "low-order point accepted: " + u


def test_malformed_peer_key_is_protocol_error():
    for bad in (b"", bytes(31), bytes(33)):
        try:
            x25519.shared_secret(ALICE_PRIV, bad)
        except ProtocolError:
            pass
        else:
            assert False, "wrong-length peer key accepted"


def test_generated_keypairs_agree_and_differ():
    a_priv, a_pub = x25519.generate_keypair()
    b_priv, b_pub = x25519.generate_keypair()
    assert len(a_priv) == len(a_pub) == 32
    assert a_priv != b_priv and a_pub != b_pub
    assert x25519.public_key(a_priv) == a_pub
    assert x25519.shared_secret(a_priv, b_pub) == x25519.shared_secret(b_priv, a_pub)


# Project Wycheproof (C2SP/wycheproof testvectors_v1/x25519_test.json), a selection:
# (tcId, private, public, shared) of a normal case, points on the twist and public keys
# of special form (edge cases of the field arithmetic). All "valid"/"acceptable".
WYCHEPROOF = (
    (1, "c8a9d5a91091ad851c668b0736c1c9a02936c0d3ad62670858088047ba057475",
     "504a36999f489cd2fdbc08baff3d88fa00569ba986cba22548ffde80f9806829",
     "436a2c040cf45fea9b29a0cb81b1f41458f863d0d61b453d0a982720d6d61320"),
    (2, "d85d8c061a50804ac488ad774ac716c3f5ba714b2712e048491379a500211958",
     "63aa40c6e38346c5caf23a6df0a5e6c80889a08647e551b3563449befcfc9733",
     "279df67a7c4611db4708a0e8282b195e5ac0ed6f4b2f292c6fbd0acac30d1332"),
    (7, "d03edde9f3e7b799045f9ac3793d4a9277dadeadc41bec0290f81f744f73775f",
     "0200000000000000000000000000000000000000000000000000000000000000",
     "b87a1722cc6c1e2feecb54e97abd5a22acc27616f78f6e315fd2b73d9f221e57"),
    (9, "e0ed78e6ee02f08bec1c15d66fbbe5b83ffc37ea14e1512cc1bd4b2ea6d8066f",
     "ff00000000000000000000000000000000000000000000000000000000000000",
     "e703bc8aa94b7d87ba34e2678353d12cdaaa1a97b5ca3e1b8c060c4636087f07"),
    (19, "105d621e1ef339c3d99245cfb77cd3a5bd0c4427a0e4d8752c3b51f045889b4f",
     "ffffff030000f8ffff1f0000c0ffffff000000feffff070000f0ffff3f000000",
     "61eace52da5f5ecefafa4f199b077ff64f2e3d2a6ece6f8ec0497826b212ef5f"),
    (22, "68e134092e94e622c8a0cd18aff55be23dabd994ebdee982d90601f6f0f4b369",
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff1f",
     "74bfc15e5597e9f5193f941e10a5c008fc89f051392723886a4a8fe5093a7354"),
    (24, "18bffb16f92680a9e267473e43c464476d5372ddd1f664f3d0678efe7c98bc79",
     "000000fcffff070000e0ffff3f000000ffffff010000f8ffff0f0000c0ffff7f",
     "5894e0963583ae14a0b80420894167f4b759c8d2eb9b69cb675543f66510f646"),
    (26, "80da9f02842247d4ade5ddbac51dbce55ea7dca2844e7f97ab8987ce7fd8bc71",
     "00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffff7f",
     "bfe183ba3d4157a7b53ef178613db619e27800f85359c0b39a9fd6e32152c208"),
)


def test_wycheproof_vectors():
    for tc, priv, pub, shared in WYCHEPROOF:
        assert x25519.x25519(h(priv), h(pub)) == h(shared), "Wycheproof tcId %d" % tc
        assert x25519.pure_x25519(h(priv), h(pub)) == h(shared), "Wycheproof tcId %d" % tc


def test_a_backend_handed_in_is_what_every_function_uses():
    calls = []

    def backend(k, u):
        calls.append(u)
        return x25519.pure_x25519(k, u)

    x25519.use(backend)
    try:
        assert x25519.shared_secret(ALICE_PRIV, BOB_PUB) == SHARED
        assert x25519.public_key(BOB_PRIV) == BOB_PUB
    finally:
        x25519.use(None)
    assert calls == [BOB_PUB, x25519.BASE_POINT]
    assert x25519.shared_secret(BOB_PRIV, ALICE_PUB) == SHARED  # the ladder again
