"""gwbox_tools.pskfile: every problem of a PSK file named by line, never by key; the
forms of a key. The gateway process refusing a bad file: test_headoffice.py."""
import pytest

from gwbox_tools.pskfile import PskFileError, format_psks, load_psks, parse_psks

KEY = bytes(range(1, 33))

BAD_PSK_FILE = """# boxes of the north region
box1 hex:00112233445566778899aabbccddeeff
box2 hex:0011223344556677
box3 00000000000000000000000000000000
box4 base64:not*base64*at*all=
box5
box1 hex:ffeeddccbbaa99887766554433221100
box6 hex:abcdefabcdefabcdefabcdefabcdefabcdef0
"""


def test_psk_file_errors_name_the_line_and_never_the_key():
    with pytest.raises(PskFileError) as ei:
        parse_psks(BAD_PSK_FILE, "psk.txt")
    msg = str(ei.value)
    assert msg.splitlines() == [
        "psk.txt line 3: key is shorter than 16 bytes",
        "psk.txt line 4: key is all zero bytes",
        "psk.txt line 5: key is not valid base64",
        "psk.txt line 6: expected '<box identity> <key>', found 1 field",
        "psk.txt line 7: this box identity has a key already (line 2)",
        "psk.txt line 8: key is not valid hex (an even number of 0-9 a-f)",
    ]
    for secret in ("0011223344", "00000000", "ffeeddcc", "abcdefabcdef", "base64*"):
        assert secret not in msg
    good = parse_psks("box1 hex:%s  # main office\nbox2 base64:%s\nbox3 %s\n"
                      % (KEY.hex(), "ESIzRFVmd4iZqrvM3e7/AA==", "AB" * 20))
    assert good == {b"box1": KEY, b"box2": bytes.fromhex("112233445566778899aabbccddeeff00"),
                    b"box3": b"\xab" * 20}
    with pytest.raises(PskFileError) as ei:
        parse_psks("hex:%s box1\n" % KEY.hex())  # fields swapped: the "identity" is the key
    assert str(ei.value) == "psk file line 1: key is not valid hex (an even number of 0-9 a-f)"


def test_the_file_headoffice_writes_reads_back_the_same_keys(tmp_path):
    psks = {b"box1": KEY, "box2": b"\x5a" * 16}
    path = tmp_path / "psk.txt"
    path.write_text(format_psks(psks))
    assert load_psks(str(path)) == {b"box1": KEY, b"box2": b"\x5a" * 16}


def test_a_file_that_is_not_utf8_or_holds_no_key_is_refused(tmp_path):
    path = tmp_path / "psk.txt"
    path.write_bytes(b"box1 hex:" + KEY.hex().encode() + b"\n\xff\xfe\n")
    with pytest.raises(PskFileError, match="not UTF-8 text"):
        load_psks(str(path))
    path.write_text("# nothing but a comment\n\n")
    with pytest.raises(PskFileError) as ei:
        load_psks(str(path))
    assert str(ei.value) == "%s: no box keys" % path
