"""gwbox.crypto.aes: NIST SP 800-38A ECB/CBC/CTR vectors through the cryptolib API."""
from gwbox.crypto import aes

h = bytes.fromhex

PT = h("6bc1bee22e409f96e93d7e117393172a" "ae2d8a571e03ac9c9eb76fac45af8e51"
       "30c81c46a35ce411e5fbc1191a0a52ef" "f69f2445df4f9b17ad2b417be66c3710")
K128 = h("2b7e151628aed2a6abf7158809cf4f3c")
K256 = h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
IV = h("000102030405060708090a0b0c0d0e0f")
ECB128 = h("3ad77bb40d7a3660a89ecaf32466ef97" "f5d3d58503b9699de785895a96fdbaaf"
           "43b1cd7f598ece23881b00e3ed030688" "7b0c785e27e8ad3f8223207104725dd4")
CBC128 = h("7649abac8119b246cee98e9b12e9197d" "5086cb9b507219ee95db113a917678b2"
           "73bed6b8e3c1743b7116e69e22229516" "3ff1caa1681fac09120eca307586e1a7")
CBC256 = h("f58c4c04d6e5f1ba779eabfb5f7bfbd6" "9cfc4e967edb808d679f777bc6702c7d"
           "39f23369a9d9bacfa530e26304231461" "b2eb05e2c39be9fcda6c19078c6a9d1b")
CTR128 = h("874d6191b620e3261bef6864990db6ce" "9806f66b7970fdff8617187bb9fffdff"
           "5ae4df3edbd5d35e5b4f09020db03eab" "1e031dda2fbe03d1792170a0f3009cee")
# F.5.1 initial counter block f0f1...feff = nonce f0..fb || counter 0xfcfdfeff
CTR_NONCE = h("f0f1f2f3f4f5f6f7f8f9fafb")
CTR_START = 0xFCFDFEFF


def _raises(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


def test_modes_match_cryptolib_numbers():
    assert aes.MODE_ECB == 1 and aes.MODE_CBC == 2


def test_f_1_1_ecb_aes128():
    assert aes.new(K128, aes.MODE_ECB).encrypt(PT) == ECB128
    assert aes.new(K128, aes.MODE_ECB).decrypt(ECB128) == PT


def test_f_2_1_and_f_2_2_cbc_aes128():
    assert aes.new(K128, aes.MODE_CBC, IV).encrypt(PT) == CBC128
    assert aes.new(K128, aes.MODE_CBC, IV).decrypt(CBC128) == PT


def test_f_2_5_and_f_2_6_cbc_aes256():
    assert aes.new(K256, aes.MODE_CBC, IV).encrypt(PT) == CBC256
    assert aes.new(K256, aes.MODE_CBC, IV).decrypt(CBC256) == PT


def test_cbc_chains_across_calls():
    enc = aes.new(K128, aes.MODE_CBC, IV)
    assert enc.encrypt(PT[:16]) + enc.encrypt(PT[16:48]) + enc.encrypt(PT[48:]) == CBC128
    dec = aes.new(K128, aes.MODE_CBC, IV)
    assert dec.decrypt(CBC128[:32]) + dec.decrypt(CBC128[32:]) == PT


def test_cryptolib_errors():
    assert _raises(aes.new(K128, aes.MODE_ECB).encrypt, PT[:15])
    assert _raises(aes.new, K128[:15], aes.MODE_ECB)
    assert _raises(aes.new, K128, aes.MODE_CBC, IV[:15])
    one = aes.new(K128, aes.MODE_ECB)
    one.encrypt(PT[:16])
    assert _raises(one.decrypt, ECB128[:16])  # an object encrypts or decrypts, not both


def test_f_5_1_ctr_aes128_from_ecb():
    ecb = aes.new(K128, aes.MODE_ECB)
    assert aes.ctr_crypt(ecb, CTR_NONCE, PT, CTR_START) == CTR128
    assert aes.ctr_crypt(ecb, CTR_NONCE, CTR128, CTR_START) == PT  # same object decrypts


def test_ctr_partial_blocks_and_offsets():
    ecb = aes.new(K128, aes.MODE_ECB)
    assert aes.ctr_crypt(ecb, CTR_NONCE, b"", CTR_START) == b""
    for n in (1, 15, 17, 31, 63):
        assert aes.ctr_crypt(ecb, CTR_NONCE, PT[:n], CTR_START) == CTR128[:n]
    # starting at block 2 equals the tail of the whole stream
    assert aes.ctr_crypt(ecb, CTR_NONCE, PT[32:], CTR_START + 2) == CTR128[32:]
    assert aes.ctr_crypt(ecb, CTR_NONCE, bytearray(PT[:20]), CTR_START) == CTR128[:20]
    assert aes.ctr_crypt(ecb, memoryview(CTR_NONCE), memoryview(PT)[16:40], CTR_START + 1) == \
        CTR128[16:40]


def test_ctr_leading_zero_bytes_kept():
    ecb = aes.new(K128, aes.MODE_ECB)
    ks = aes.ctr_crypt(ecb, CTR_NONCE, bytes(40), 7)
    data = ks[:5] + b"\x01" * 35  # xor makes the first five output bytes zero
    out = aes.ctr_crypt(ecb, CTR_NONCE, data, 7)
    assert len(out) == 40 and out[:5] == bytes(5)


def test_ctr_long_message_crosses_chunks():
    ecb = aes.new(K128, aes.MODE_ECB)
    data = bytes(range(256)) * 3 + b"tail"
    ct = aes.ctr_crypt(ecb, CTR_NONCE, data)
    assert len(ct) == len(data) and ct != data
    assert aes.ctr_crypt(ecb, CTR_NONCE, ct) == data
    assert aes.ctr_crypt(ecb, CTR_NONCE, data[256:], 16) == ct[256:]
    ks0 = ecb.encrypt(CTR_NONCE + bytes(4))  # counter 0 block
    assert bytes(x ^ y for x, y in zip(ct[:16], data[:16])) == ks0


def test_ctr_rejects_bad_nonce_and_counter_wrap():
    ecb = aes.new(K128, aes.MODE_ECB)
    assert _raises(aes.ctr_crypt, ecb, CTR_NONCE[:11], PT)
    assert _raises(aes.ctr_crypt, ecb, CTR_NONCE, PT, 0xFFFFFFFE)  # 4 blocks would wrap
    assert aes.ctr_crypt(ecb, CTR_NONCE, PT[:32], 0xFFFFFFFE)  # exactly to the last counter
    assert _raises(aes.ctr_crypt, ecb, CTR_NONCE, PT, -1)
