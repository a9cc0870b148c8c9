"""gwbox.policy beyond the firmware suite: boards/cluster-example.policy parses, every other
error message has its case, and MicroPython gives the very same results as CPython.

The firmware suite (tests/firmware/test_policy.py) runs both runtimes but must fit a 64 KB
heap next to the parser; the cases here are CPython data. They reach MicroPython through a
micropython process at a device heap that reads policies on stdin and prints what parse()
made of them, which must equal CPython's answer byte for byte (on the 32-bit interpreter
too, where ../shared/tools/micropython32 has one).
"""
import json
import os
import subprocess

import pytest

import mp_suite
from gwbox.policy import PolicyError, ip_to_int, parse, route
from test_policy import BAD, BASE, cases, expect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "boards", "cluster-example.policy")
MP32 = os.path.join(ROOT, "..", "shared", "tools", "micropython32", "micropython")

# More bad policies, in the form of BAD in tests/firmware/test_policy.py: the lines added to
# BASE (lines 9 on), then "-> line | field | message" per error expected.
MORE_BAD = """[GENERAL]
dial = gw1
-> 10 | Dial | duplicate key, first set on line 2
--
[GENERAL]
OutboxBytes = 255
-> 10 | OutboxBytes | must be from 256 to 65536, not 255
--
[GENERAL]
FailbackTime = 1.2345
-> 10 | FailbackTime | '1.2345' is not a number of seconds (at most 3 decimals)
--
[GENERAL]
StatusInterval = -1
-> 10 | StatusInterval | must be at least 0 s, not -1
--
[GENERAL]
RekeyTime = 0.5
-> 10 | RekeyTime | must be at least 1 s, not 0.5
--
[GENERAL]
HandshakeRetryTime = 0.05
-> 10 | HandshakeRetryTime | must be at least 0.1 s, not 0.05
--
[GENERAL]
RekeyKBytes = 0
-> 10 | RekeyKBytes | must be from 1 to 1073741823, not 0
--
[GENERAL]
HeartbeatRetries = 0
-> 10 | HeartbeatRetries | must be from 1 to 20, not 0
--
[GENERAL]
HandshakeRetries = +3
-> 10 | HandshakeRetries | '+3' is not a whole number
--
Cluster1 = hex:
-> 9 | Cluster1 | key is empty
--
Cluster1 = base64:ABEiM0RVZneImaq7zN3u/w
-> 9 | Cluster1 | key is not valid base64
--
Cluster1 = base64:ABEiM0RVZneImaq7zN3u/w===
-> 9 | Cluster1 | key is not valid base64
--
Cluster1 = base64:ABEiM0RVZneI maq7zN3u/w==
-> 9 | Cluster1 | key is not valid base64
--
Cluster1 = hex:00112233445566778899aabbccddeefg
-> 9 | Cluster1 | key is not valid hex
--
Cluster1 = 00112233445566778899aabbccddeeff0
-> 9 | Cluster1 | key is not valid hex
--
Cluster1 = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01
-> 9 | Cluster1 | key is longer than 64 bytes
--
AccessServer = 143.1.2.1
-> 9 | [KEYS] | unknown key name (expected Default, Cluster<nr> or a gateway address)
--
Cluster1 = 00112233445566778899aabbccddeeff
Cluster 1 = 00112233445566778899aabbccddeeff
-> 10 | Cluster1 | duplicate key, first set on line 9
--
[DIAL]
143.1.0.64 = 0123 456
-> 10 | 143.1.0.64 | dial number '0123 456' is not 1 to 40 of 0-9 A-Z a-z * # , + - _ . :
--
[DIAL]
143.1.0.64 = 01234567890123456789012345678901234567890
-> 10 | 143.1.0.64 | dial number (value not shown) is not 1 to 40
--
[DIAL]
gw1 = 123
-> 10 | [DIAL] gw1 | unknown key (expected <gateway address> = <dial number>)
--
[GENERAL
-> 9 | [GENERAL | a section header is [NAME]
--
[GENERAL]
= 5
-> 10 | [GENERAL] | line has no key before '='
--
[TUNNEL]
Tunnel2 = 10..0.1 143.1.0.64
-> 10 | Tunnel2 | '10..0.1' is not an IPv4 address
--
[TUNNEL]
Tunnel2 = 10.0.0.1 +143.1.0.64
-> 10 | Tunnel2 | '+143.1.0.64' is not an IPv4 address
--
[TUNNEL]
Tunnel2 = 10.0.0.1.5 143.1.0.64
-> 10 | Tunnel2 | '10.0.0.1.5' is not an IPv4 address
--
[TUNNEL]
Tunnel2 = 10.0.0.1 Cluster 0
-> 10 | Tunnel2 | Cluster needs a positive number, not '0'
--
[TUNNEL]
Tunnel2 =
-> 10 | Tunnel2 | needs a range and a target
--
[TUNNEL]
Tunnel1 = 10.9.9.9 Cluster 1
-> 10 | Tunnel1 | duplicate key, first set on line 6
--
[TUNNEL]
TunnelX = 10.9.9.9 Cluster 1
-> 10 | TunnelX | needs a positive decimal number after the keyword
--
[CLUSTER]
Cluster2 = 1.2.3.4 1.2.3.4
-> 10 | Cluster2 | gateway 1.2.3.4 is listed twice
--
[CLUSTER]
Cluster2 =
-> 10 | Cluster2 | needs at least one gateway address
--
[CLUSTER]
Cluster0 = 1.2.3.4
ClusterX = 1.2.3.4
Member1 = 1.2.3.4
-> 10 | Cluster0 | needs a positive decimal number after the keyword
-> 11 | ClusterX | needs a positive decimal number after the keyword
-> 12 | Member1 | unknown key (expected Cluster<nr> or Preferred<nr>)
--
[CLUSTER]
Preferred2 = 143.1.1.160
-> 10 | Preferred2 | Cluster2 is not defined in [CLUSTER]
--
[CLUSTER]
Cluster2 = 143.1.0.64
[KEYS]
Cluster1 = 00112233445566778899aabbccddeeff
Cluster2 = ffeeddccbbaa99887766554433221100
-> 4 | Cluster1 | gateway 143.1.0.64 is in clusters with different keys (add [KEYS] 143.1.0.64)
--
[GENERAL]
RetryTime = 600
-> 10 | RetryTime | RetryMaxTime 300 s is less than RetryTime 600 s
--
[GENERAL]
AccessServer = 143.1.2.1
[TUNNEL]
Tunnel2 = 10.0.0.1 AUTO
Redirect Tunnel1 = 143.1.2.9 Cluster 1
-> 12 | Tunnel2 | AUTO tunnel needs AccessServer and a Redirect for it (no Redirect Tunnel<nr> = 143.1.2.1)
--
[TUNNEL]
Redirect Tunnel1 = 143.1.2.1 - 143.1.2.2 Cluster 1
-> 10 | Redirect Tunnel1 | a redirect names one server address, not a range
--
[TUNNEL]
Redirect Tunnel1 = 143.1.2.1 Cluster 7
-> 10 | Redirect Tunnel1 | Cluster7 is not defined in [CLUSTER]
--
[TUNNEL]
Tunnel2 = 10.0.0.1 - 10.0.0.5
-> 10 | Tunnel2 | needs a target (gateway address, Cluster <nr> or AUTO)
--
[TUNNEL]
Tunnel2 = 143.1.0.20 - 143.1.0.24 143.1.1.160
Tunnel3 = 143.1.0.10 - 143.1.0.40 143.1.1.160
-> 10 | Tunnel2 | range 143.1.0.20 - 143.1.0.24 overlaps Tunnel1 on line 6 (143.1.0.24 - 143.1.0.30)
-> 11 | Tunnel3 | range 143.1.0.10 - 143.1.0.40 overlaps Tunnel1 on line 6
-> 11 | Tunnel3 | range 143.1.0.10 - 143.1.0.40 overlaps Tunnel2 on line 10
--
[GENERAL]
HeartbeatForm = ECHO
-> 10 | HeartbeatForm | must be PROTECTED, PROBE or SPI-ECHO, not 'ECHO'
--
[GENERAL]
RandomizeOrder = maybe
-> 10 | RandomizeOrder | must be ON or OFF, not 'maybe'
--
[GENERAL]
Identity = branch office
-> 10 | Identity | must be 1 to 32 printable ASCII characters, no spaces
--
[GENERAL]
Identity = 123456789012345678901234567890123
-> 10 | Identity | must be 1 to 32 printable ASCII characters, no spaces
--
[GENERAL]
ModemInit = ATZ E0
-> 10 | ModemInit | 'E0' is not an AT command
--
[GENERAL]
ModemInit =
-> 10 | ModemInit | needs at least one AT command
--
[GENERAL]
OutboxBytes = 00000000512
-> 10 | OutboxBytes | must be from 256 to 65536, not a number of 11 digits
--
[GENERAL]
ConsolePassword = pbkdf2$999$00112233445566778899aabbccddeeff$abababababababababababababababababababababababababababababababab
-> 10 | ConsolePassword | (value not shown) is not what gwbox console-password makes
--
[GENERAL]
ConsolePassword = pbkdf2$1000001$00112233445566778899aabbccddeeff$abababababababababababababababababababababababababababababababab
-> 10 | ConsolePassword | (value not shown) is not what gwbox console-password makes
--
Cluster1 = <secret>
-> 9 | Cluster1 | <secret> is a masked key (from gwbox config pull or show policy): put the key back
--
[GENERAL]
ConsolePassword = <secret>
-> 10 | ConsolePassword | <secret> is the masked value (from gwbox config pull): put the ConsolePassword line back
"""

# Numbers too long for int() on CPython (over 4,300 digits), and any too long to be a policy's.
MORE_BAD_NUMBERS = """[GENERAL]
HeartbeatRetries = %(digits)s
-> 10 | HeartbeatRetries | must be from 1 to 20, not a number of %(n)d digits
--
[GENERAL]
FailbackTime = %(digits)s.5
-> 10 | FailbackTime | a number of %(n)d digits does not fit the 2^29 ms (149 h) timer range
--
[GENERAL]
LanUart = 10.0.0.5:%(digits)s
-> 10 | LanUart | (value not shown) is not <address>:<port>
--
[CLUSTER]
Cluster%(digits)s = 143.1.0.64
-> 10 | [CLUSTER] | needs a positive decimal number after the keyword (at most 9 digits)
--
[TUNNEL]
Tunnel2 = 10.0.0.1 Cluster %(digits)s
-> 10 | Tunnel2 | Cluster needs a positive number, not a number of %(n)d digits
--
[GENERAL]
ConsolePassword = pbkdf2$%(digits)s$00112233445566778899aabbccddeeff$%(h32)s
-> 10 | ConsolePassword | (value not shown) is not what gwbox console-password makes
"""
# Numbers of 5,001 digits (CPython's int() refuses more than 4,300): CPython only, since a
# 5 KB line does not fit beside the parser in the 64K the MicroPython comparison runs at
# (and the box's console takes no line over 256 bytes); MORE_BAD has the same at 40 digits.
HUGE = MORE_BAD_NUMBERS % {"digits": "9" * 5001, "n": 5001, "h32": "ab" * 32}
MORE_BAD += "--\n" + MORE_BAD_NUMBERS % {"digits": "9" * 40, "n": 40, "h32": "ab" * 32}

# Good policies whose results MicroPython must reproduce too (besides the example file).
GOOD = (
    BASE,
    BASE + "[GENERAL]\nHeartbeat = deferred\nHeartbeatResponseTime = 0.8\nIdleHangupTime = 0\nRandomizeOrder = no\n"
           "ModemInit = ATZ AT&F&C1\nIdentity = b-17\nRekeyKBytes = 1048576\n[KEYS]\n"
           "143.1.1.157 = base64:ABEiM0RVZneImaq7zN3u/w==\n",
    BASE.replace("Tunnel1 = 143.1.0.24 - 143.1.0.30 Cluster 1", "tunnel 1=143.1.0.24-143.1.0.30 cluster1"),
)


def example():
    with open(EXAMPLE) as f:
        return f.read()


def test_example_policy_parses():
    p = parse(example())
    assert p.identity == b"branch-7" and p.heartbeat == "INSTANT"
    assert p.clusters == {1: ["143.1.0.64", "143.1.1.157", "143.1.0.63"]} and p.preferred == {1: "143.1.0.64"}
    assert p.gateways == ["143.1.0.64", "143.1.1.157", "143.1.0.63", "143.1.1.160"]
    assert p.dial_numbers == {"143.1.0.64": "ras", "143.1.1.157": "ras", "143.1.0.63": "ras", "143.1.1.160": "gw4"}
    assert sorted(len(k) for k in p.keys.values()) == [32] * 4 and p.keys["143.1.0.64"] != p.keys["143.1.1.160"]
    assert route(p, ip_to_int("10.1.0.77"))[3:] == ("cluster", 1)
    assert route(p, ip_to_int("10.2.0.15"))[3:] == ("addr", "143.1.1.160")
    assert route(p, ip_to_int("10.3.0.1"))[3:] == ("cluster", 1)  # AUTO, through the redirect
    assert route(p, ip_to_int("10.2.0.16")) is None
    m = p.masked()
    assert "<secret>" in m and all(k.hex()[:8] not in m for k in p.keys.values())


def test_example_policy_keys_are_labelled_placeholders():
    text = example()
    assert "replace with `gwbox psk new` output" in text
    assert text.count("= hex:") == 2


def test_more_bad_policies():
    n = 0
    for case, text, want in cases(MORE_BAD):
        try:
            expect(text, want)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (case, e))
        n += 1
    assert n == 58


def test_numbers_of_5001_digits_are_named_not_a_traceback():
    # CPython's int() refuses such numbers with its own words (or, outside a value, a traceback)
    n = 0
    for case, text, want in cases(HUGE):
        try:
            expect(text, want)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (case[:200], e))
        n += 1
    assert n == 6


def test_masked_round_trips_every_good_policy():
    for text in GOOD + (example(),):
        m = parse(text).masked()
        assert parse(m.replace("<secret>", "hex:" + "5a" * 32)).masked() == m


# --- the same texts under MicroPython ----------------------------------------------------

# Reads one JSON-encoded policy per line on stdin; prints one JSON line per policy.
DRIVER = """
import sys, json
sys.path.insert(0, "build/mpy/lib")
from gwbox.policy import parse, PolicyError
while True:
    line = sys.stdin.readline()
    if not line:
        break
    try:
        p = parse(json.loads(line))
        r = {"masked": p.masked(), "checksum": p.checksum, "repr": repr(p)}
    except PolicyError as e:
        r = {"errors": [list(x) for x in e.errors], "str": str(e)}
    print(json.dumps(r))
"""


def outcome(text):
    try:
        p = parse(text)
        return {"masked": p.masked(), "checksum": p.checksum, "repr": repr(p)}
    except PolicyError as e:
        return {"errors": [list(x) for x in e.errors], "str": str(e)}


def interpreters():
    found = [mp_suite.micropython_binary()]
    if os.path.exists(MP32):
        found.append(MP32)
    return found


@pytest.mark.parametrize("micropython", interpreters())
def test_micropython_gives_the_same_results(micropython):
    texts = [example()] + list(GOOD) + [t for _, t, _ in cases(BAD)] + [t for _, t, _ in cases(MORE_BAD)]
    mp_suite.build_mpy()
    proc = subprocess.run([micropython, "-X", "heapsize=64K", "-c", DRIVER], cwd=ROOT, capture_output=True, text=True,
                          input="".join(json.dumps(t) + "\n" for t in texts), timeout=300)
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and len(got) == len(texts), proc.stdout + proc.stderr
    for text, g in zip(texts, got):
        assert g == outcome(text), text
