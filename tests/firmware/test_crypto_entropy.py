"""gwbox.crypto.entropy: right lengths, fresh output every call, add_entropy accepted."""
from gwbox.crypto import entropy


def test_lengths():
    for n in (0, 1, 12, 16, 31, 32, 33, 64, 100):
        b = entropy.random_bytes(n)
        assert isinstance(b, bytes)
        assert len(b) == n


def test_differs_between_calls():
    seen = set()
    for _ in range(20):
        seen.add(entropy.random_bytes(16))
    assert len(seen) == 20
    a = entropy.random_bytes(64)
    assert a[:32] != a[32:]  # blocks within one draw differ too


def test_add_entropy_then_still_fresh():
    before = entropy.random_bytes(32)
    entropy.add_entropy(b"adc noise \x01\x02\x03")
    entropy.add_entropy(bytearray(7))
    after = entropy.random_bytes(32)
    assert len(after) == 32 and after != before


def test_output_not_degenerate():
    b = entropy.random_bytes(256)
    assert len(set(b)) > 100  # a uniform 256-byte draw has ~162 distinct values
    ones = 0
    for x in b:
        while x:
            ones += x & 1
            x >>= 1
    assert 800 < ones < 1248  # 2048 bits, mean 1024, sd ~23


def test_negative_length_rejected():
    try:
        entropy.random_bytes(-1)
    except ValueError:
        pass
    else:
        assert False, "negative length accepted"
