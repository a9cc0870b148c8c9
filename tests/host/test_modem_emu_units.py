"""Pure parts of the modem emulator, on a made-up clock: AT parsing and result codes,
the +++ guard-time rule, line throttling and latency, bit errors and frame loss."""
import random

import pytest

from gwbox_tools import modem_at as at
from gwbox_tools.line_shaper import FLAG, Impairments, LineShaper


# ------------------------------------------------------------------ AT language

def test_parse_combined_line():
    assert at.parse("E0V1Q0&C1&D2") == [
        ("E", 0), ("V", 1), ("Q", 0), ("&C", 1), ("&D", 2)]


def test_parse_s_registers_and_spaces():
    assert at.parse(" S7 = 30 S12? ") == [("S=", (7, 30)), ("S?", 12)]


def test_parse_dial_takes_the_rest_of_the_line():
    assert at.parse("E0DT gw1;") == [("E", 0), ("D", "T gw1;")]


@pytest.mark.parametrize("body", ["S", "S7", "&", "+CGMI", "#"])
def test_parse_rejects(body):
    with pytest.raises(at.ATError):
        at.parse(body)


def test_apply_ranges():
    s = at.ModemSettings()
    with pytest.raises(at.ATError):
        at.apply(s, "E", 2)
    with pytest.raises(at.ATError):
        at.apply(s, "S=", (12, 256))
    with pytest.raises(at.ATError):
        at.apply(s, "S?", 99)
    with pytest.raises(at.ATError):
        at.apply(s, "Y", None)
    at.apply(s, "S=", (12, 10))
    assert s.guard_s == pytest.approx(0.2)
    assert at.apply(s, "S?", 12) == ["010"]


def test_result_codes_verbose_numeric_quiet():
    s = at.ModemSettings()
    assert at.result(s, "OK") == b"\r\nOK\r\n"
    assert at.result(s, "CONNECT", 9600) == b"\r\nCONNECT 9600\r\n"
    s.verbose = False
    assert at.result(s, "OK") == b"0\r"
    assert at.result(s, "NO CARRIER") == b"3\r"
    assert at.result(s, "CONNECT", 9600) == b"12\r"
    assert at.result(s, "CONNECT", 2400) == b"10\r"
    assert at.result(s, "CONNECT", 31337) == b"1\r"
    assert at.info(s, "050") == b"050\r\n"
    s.quiet = True
    assert at.result(s, "OK") == b""


def test_low_x_levels_fold_codes():
    s = at.ModemSettings()
    s.x = 0
    assert at.result(s, "CONNECT", 9600) == b"\r\nCONNECT\r\n"
    assert at.result(s, "BUSY") == b"\r\nNO CARRIER\r\n"


def test_line_editor_backspace_and_repeat():
    s = at.ModemSettings()
    ed = at.LineEditor()
    lines = [ed.feed(b, s)[1] for b in b"ATX\x08E1\r"]
    assert lines[-1] == "ATE1"
    assert [ed.feed(b, s)[1] for b in b"A/"][-1] is at.REPEAT


def test_line_editor_drops_noise_before_at_however_long():
    # What a box wrote into a call that was gone sits in front of its next command: a modem
    # ignores it (V.250: nothing before "AT" is part of a command line), whatever its length.
    s = at.ModemSettings()
    for n in range(at.MAX_LINE - 10, at.MAX_LINE + 10):
        ed = at.LineEditor()
        got = [x for x in (ed.feed(b, s)[1] for b in b"~" * n + b"+++ATH\r") if x is not None]
        assert len(got) == 1 and got[0][got[0].find("AT"):] == "ATH", (n, got)
    ed = at.LineEditor()
    lines = [ed.feed(b, s)[1] for b in b"AT" + b"S" * at.MAX_LINE + b"\r"]
    assert [x for x in lines if x is not None and "AT" in x] == []  # a command body too long: thrown away


# ------------------------------------------------------------------ escape rule

def test_escape_needs_guard_before_between_and_after():
    det = at.EscapeDetector(now=0.0, guard_s=1.0, char=ord("+"))
    assert det.feed(b"+++", 1.5) == (b"", False, b"")      # held back
    assert det.poll(2.4) == (b"", False)
    assert det.poll(2.5) == (b"", True)


def test_escape_silences_forgive_a_little_jitter():
    det = at.EscapeDetector(now=0.0, guard_s=1.0, char=ord("+"))
    det.feed(b"+++", 0.97)                                 # 30 ms short of the guard
    assert det.poll(1.94) == (b"", True)
    det = at.EscapeDetector(now=0.0, guard_s=1.0, char=ord("+"))
    assert det.feed(b"+++", 0.9) == (b"+++", False, b"")   # 100 ms short: data


def test_escape_without_silence_before_is_data():
    det = at.EscapeDetector(now=0.0, guard_s=1.0, char=ord("+"))
    assert det.feed(b"abc+++", 2.0) == (b"abc+++", False, b"")
    assert det.poll(5.0) == (b"", False)


def test_escape_broken_by_data_after_releases_the_pluses():
    det = at.EscapeDetector(now=0.0, guard_s=1.0, char=ord("+"))
    det.feed(b"+++", 2.0)
    assert det.feed(b"x", 2.5) == (b"+++x", False, b"")


def test_escape_slow_pluses_are_data():
    det = at.EscapeDetector(now=0.0, guard_s=1.0, char=ord("+"))
    assert det.feed(b"+", 2.0)[0] == b""
    assert det.poll(3.0) == (b"+", False)                  # gap >= guard: released
    out, esc, _ = det.feed(b"++", 3.1)
    assert not esc


def test_escape_bytes_after_matured_escape_are_commands():
    det = at.EscapeDetector(now=0.0, guard_s=0.2, char=ord("+"))
    det.feed(b"+++", 1.0)
    assert det.feed(b"ATH\r", 1.3) == (b"", True, b"ATH\r")


# ------------------------------------------------------------------ line shaping

def test_shaper_rate_and_latency():
    sh = LineShaper(rate=960.0, latency=0.1, tick=0.0)
    sh.push(b"x" * 96, 0.0)
    assert sh.pop(0.099) == b""
    assert sh.next_deadline() == pytest.approx(0.1 + 1 / 960.0)
    assert len(sh.pop(0.1 + 48 / 960.0)) == 48
    assert len(sh.pop(0.1 + 0.1)) == 48
    assert sh.backlog == 0 and sh.next_deadline() is None


def test_shaper_queues_behind_busy_line():
    sh = LineShaper(rate=100.0, latency=0.0, tick=0.0)
    sh.push(b"a" * 100, 0.0)                               # busy until t=1.0
    sh.push(b"b", 0.5)
    assert sh.pop(1.0) == b"a" * 100
    assert sh.pop(1.005) == b""
    assert sh.pop(1.01) == b"b"


def test_shaper_batches_within_tick():
    sh = LineShaper(rate=1000.0, latency=0.0, tick=0.005)
    sh.push(b"z" * 50, 0.0)
    assert len(sh.pop(0.001)) == 1
    assert sh.next_deadline() == pytest.approx(0.006)


# ------------------------------------------------------------------ impairments

def popcount_diff(a, b):
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b))


def test_ber_flips_about_p_of_bits_and_counts_them():
    imp = Impairments(random.Random(7))
    imp.set_ber(1e-3)
    data = bytes(range(256)) * 400                         # 819,200 bits
    out = b"".join(imp.apply(data[i:i + 100]) for i in range(0, len(data), 100))
    assert len(out) == len(data)
    flipped = popcount_diff(data, out)
    assert flipped == imp.bits_flipped
    assert 600 < flipped < 1050                            # expectation 819


def test_frame_loss_drops_whole_frames_keeps_flags():
    imp = Impairments(random.Random(3))
    imp.set_loss(0.5)
    frames = [b"frame-%03d" % i for i in range(200)]
    stream = b"".join(bytes((FLAG,)) + f for f in frames) + bytes((FLAG,))
    out = b"".join(imp.apply(stream[i:i + 7]) for i in range(0, len(stream), 7))
    got = [f for f in out.split(bytes((FLAG,))) if f]
    assert out.count(bytes((FLAG,))) == len(frames) + 1
    assert set(got) <= set(frames)
    assert got == sorted(got)
    assert len(frames) - len(got) == imp.frames_dropped
    assert 60 < imp.frames_dropped < 140


def test_probability_bounds():
    imp = Impairments(random.Random(1))
    with pytest.raises(ValueError):
        imp.set_ber(1.5)
    with pytest.raises(ValueError):
        imp.set_loss(-0.1)
