"""gwbox_tools.modem_targets: what a gateway spec means and which gateway a dial string
names, without a pty or the emulator's thread."""
import pytest

from gwbox_tools.modem_targets import lookup, parse_gateway_spec


def test_gateway_specs_in_every_form_and_their_flags():
    gw = parse_gateway_spec("G1", "tcp:10.0.0.5:7001,busy")
    assert (gw.kind, gw.host, gw.port, gw.busy, gw.dead) == ("tcp", "10.0.0.5", 7001, True, False)
    assert gw.describe() == "tcp:10.0.0.5:7001"
    gw = parse_gateway_spec("G2", "tcp:7002, Dead")
    assert (gw.host, gw.port, gw.dead) == ("127.0.0.1", 7002, True)
    assert parse_gateway_spec("G3", 7003).port == 7003
    assert parse_gateway_spec("G4", "pty").kind == "pty"
    gw = parse_gateway_spec("G5", {"kind": "tcp", "port": 7005, "busy": 1})
    assert (gw.port, gw.busy, gw.frozen, gw.down_until) == (7005, True, False, 0.0)


@pytest.mark.parametrize("spec, said", [
    ("tcp:host:port", "bad port"),
    ("udp:7001", "spec must be tcp:HOST:PORT, tcp:PORT or pty"),
    ("pty,loud", "unknown option(s) loud"),
    ({"kind": "serial"}, "kind must be tcp or pty"),
    ({"kind": "tcp", "port": "7001"}, "tcp needs an int port"),
])
def test_a_wrong_gateway_spec_is_refused_naming_the_gateway_and_what_is_wrong(spec, said):
    with pytest.raises(ValueError) as e:
        parse_gateway_spec("G9", spec)
    assert "gateway G9" in str(e.value) and said in str(e.value)


def test_a_dial_string_names_a_gateway_as_written_or_as_a_modem_would_read_the_number():
    gws = {name.lower(): parse_gateway_spec(name, "pty") for name in ("G1", "5551234", "0800")}
    assert lookup(gws, "g1").name == "G1"
    assert lookup(gws, "G1;").name == "G1"       # ; (stay in command mode) is not the number
    assert lookup(gws, "T555-1234").name == "5551234"    # tone, and the dashes of a written number
    assert lookup(gws, "P (555) 12 34").name == "5551234"
    assert lookup(gws, "0,W800").name == "0800"          # pauses and dial-tone waits are not digits
    assert lookup(gws, "5551235") is None
    assert lookup(gws, "") is None
