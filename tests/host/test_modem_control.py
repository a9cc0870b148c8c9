"""gwbox_tools.modem_control: the control language parsed without the emulator, and the
control connection's line handling. The language run against a live emulator is in
test_modem_emu.py."""
import json

import pytest

from gwbox_tools.modem_control import (CONTROL_LINE_MAX, CONTROL_USAGE, ControlClient, on_off,
                                       parse_addr, parse_command)

GATEWAYS = {"g1": None, "g2": None}


@pytest.mark.parametrize("line, parsed", [
    ("status", ("status", ())),
    ("noise 40", ("noise", ("40", "box"))),
    ("ber 1e-4 gw", ("impair", ("ber", "1e-4", "gw"))),
    ("loss 0.5", ("impair", ("loss", "0.5", "both"))),
    ("drop FRAME", ("drop", ("frame",))),
    ("thaw", ("freeze", (None, False))),
    ("freeze G2", ("freeze", ("G2", True))),
    ("reboot", ("reboot", (None, 0))),
    ("reboot 500", ("reboot", (None, "500"))),           # a number, not a gateway's name
    ("reboot G1 500", ("reboot", ("G1", "500"))),
    ("dead G1 off", ("flag", ("dead", "G1", False))),
    ("revive G1", ("flag", ("dead", "G1", False))),
    ("busy G2", ("flag", ("busy", "G2", True))),
    ("nodialtone", ("nodialtone", (True,))),
])
def test_each_command_becomes_one_operation_with_its_arguments(line, parsed):
    words = line.split()
    assert parse_command(words[0].lower(), words[1:], GATEWAYS) == parsed


@pytest.mark.parametrize("line, said", [
    ("status now", "usage: status"),
    ("noise", "usage: noise N [box|gw|both]"),
    ("reboot G1 500 again", "usage: reboot [GATEWAY] [DOWN_MS]"),
    ("reboot nowhere",
     "'nowhere' is neither a gateway nor a down time; usage: reboot [GATEWAY] [DOWN_MS]"),
    ("dead G1 maybe", "expected on/off, got 'maybe'"),
    ("explode", "unknown command; try help"),
])
def test_a_wrong_command_is_refused_with_its_usage(line, said):
    words = line.split()
    with pytest.raises(ValueError) as e:
        parse_command(words[0].lower(), words[1:], GATEWAYS)
    assert str(e.value) == said


def test_every_command_has_a_usage_line_and_is_parsed():
    for cmd in CONTROL_USAGE:
        try:
            parse_command(cmd, [], GATEWAYS)
        except ValueError as e:
            assert str(e).startswith("usage: ") or "expected on/off" in str(e), (cmd, e)


def test_addresses_and_switch_words():
    assert parse_addr("10.1.2.3:9000") == ("10.1.2.3", 9000)
    assert parse_addr(":9000") == ("127.0.0.1", 9000)
    assert parse_addr(("::1", "9001")) == ("::1", 9001)
    assert [on_off(w) for w in ("on", "YES", "1", "off", "False", "0")] == [True] * 3 + [False] * 3


class _NoSocket:
    pass


def test_the_connection_answers_whole_lines_only_and_closes_on_an_overlong_one():
    c = ControlClient(_NoSocket())
    asked = []

    def answer(line):
        asked.append(line)
        return {"ok": True, "cmd": line}

    c.take_lines(b"stat", answer)
    assert asked == [] and c.out == b""
    c.take_lines(b"us\nfreeze G1\nthaw", answer)
    assert asked == ["status", "freeze G1"] and bytes(c.inbuf) == b"thaw"
    assert [json.loads(x) for x in bytes(c.out).splitlines()] == [
        {"ok": True, "cmd": "status"}, {"ok": True, "cmd": "freeze G1"}]
    assert not c.closing
    c.out.clear()
    c.take_lines(b"x" * (CONTROL_LINE_MAX + 1), answer)
    assert json.loads(bytes(c.out)) == {"ok": False, "error": "line too long"} and c.closing
    assert asked == ["status", "freeze G1"]
