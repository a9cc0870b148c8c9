"""gwbox.policy: the seed's syntax and gwbox's keys parse; bad policies name every problem; no secret leaks."""
from gwbox.policy import PolicyError, int_to_ip, ip_to_int, parse, route

KEY = "00112233445566778899aabbccddeeff"  # 16 bytes, a valid test key
KEY2 = "ffeeddccbbaa99887766554433221100"
TAIL = "[KEYS]\nDefault = hex:" + KEY + "\n[GENERAL]\nDial = ras\n"  # completes a seed example
SEED_CLUSTER = "[CLUSTER]\nCluster 1 = 143.1.0.64 143.1.1.157\n"

# Lines 1-8 of most test policies; the cases add lines from 9 on (a section may be opened again).
BASE = """[GENERAL]
Dial = ras
[CLUSTER]
Cluster1 = 143.1.0.64 143.1.1.157
[TUNNEL]
Tunnel1 = 143.1.0.24 - 143.1.0.30 Cluster 1
[KEYS]
Default = hex:00112233445566778899aabbccddeeff
"""

# The example of DESIGN.md "Policy file", verbatim (lines 1-10).
DESIGN = """[GENERAL]
Heartbeat = DEFERRED            # NONE | DEFERRED | INSTANT   (default NONE)
HeartbeatResponseTime = 2       # seconds
HeartbeatDeferTime = 10         # seconds without a received packet before a heartbeat
[CLUSTER]
Cluster1 = 143.1.0.64 143.1.1.157
[TUNNEL]
Tunnel1 = 143.1.0.24 - 143.1.0.30 Cluster 1
Tunnel2 = 143.1.0.24 - 143.1.0.30 143.1.1.160
Redirect Tunnel1 = 143.1.2.1 Cluster 1
"""


def errors_of(text):
    try:
        parse(text)
    except PolicyError as e:
        return e
    raise AssertionError("policy parsed, expected errors")


def expect(text, want):
    """Exactly the errors `want` = [(line, field substring, message substring)], in order."""
    got = errors_of(text).errors
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert g[0] == w[0] and w[1] in g[1] and w[2] in g[2], (g, w)


def key(h):
    return bytes.fromhex(h)


# --- the seed's own examples (GB 2 363 548) and DESIGN.md's --------------------------------

def test_seed_examples_parse():
    p = parse(SEED_CLUSTER + "Cluster 2 = 143.1.0.63 143.1.0.65 143.1.0.66\n[TUNNEL]\n"
              "Tunnel1 = 143.1.0.24 - 143.1.0.30 Cluster 1\n" + TAIL)
    assert p.clusters == {1: ["143.1.0.64", "143.1.1.157"], 2: ["143.1.0.63", "143.1.0.65", "143.1.0.66"]}
    assert p.gateways == ["143.1.0.64", "143.1.1.157", "143.1.0.63", "143.1.0.65", "143.1.0.66"]
    assert p.tunnels == [(1, ip_to_int("143.1.0.24"), ip_to_int("143.1.0.30"), "cluster", 1)]
    p = parse("[TUNNEL]\nTunnel2 = 143.1.0.24 - 143.1.0.30 143.1.1.160\n" + TAIL)
    assert p.tunnels == [(2, ip_to_int("143.1.0.24"), ip_to_int("143.1.0.30"), "addr", "143.1.1.160")]
    assert p.gateways == ["143.1.1.160"] and p.keys == {"143.1.1.160": key(KEY)}
    p = parse(SEED_CLUSTER + "[TUNNEL]\nTunnel1 = 10.0.0.1 143.1.0.64\nRedirect Tunnel1 = 143.1.2.1 Cluster 1\n" + TAIL)
    assert p.redirects == [(1, "143.1.2.1", "cluster", 1)]
    p = parse("[GENERAL]\nHeartbeat = DEFERRED\nHeartbeatResponseTime = 2\nHeartbeatDeferTime = 10\n" + BASE)
    assert (p.heartbeat, p.response_ms, p.defer_ms) == ("DEFERRED", 2000, 10000)
    assert parse("[GENERAL]\nHeartbeat = NONE\n" + BASE).heartbeat == "NONE"


def test_seed_tunnels_together_overlap():
    expect(SEED_CLUSTER + "[TUNNEL]\nTunnel1 = 143.1.0.24 - 143.1.0.30 Cluster 1\n"
           "Tunnel2 = 143.1.0.24 - 143.1.0.30 143.1.1.160\n" + TAIL, [(5, "Tunnel2", "overlaps Tunnel1 on line 4")])


def test_design_example_reports_its_overlap():
    # As written, its Tunnel1 and Tunnel2 share a range: that is the only thing wrong with it.
    expect(DESIGN + TAIL, [(9, "Tunnel2", "overlaps Tunnel1 on line 8 (143.1.0.24 - 143.1.0.30)")])


def test_design_example_completed():
    p = parse(DESIGN.replace("Tunnel2 = 143.1.0.24 - 143.1.0.30", "Tunnel2 = 143.1.0.31 - 143.1.0.40")
              + "[KEYS]\nCluster1 = hex:" + KEY + "\n143.1.1.160 = hex:" + KEY2
              + "\n[DIAL]\n143.1.1.160 = gw4\n[GENERAL]\nDial = ras\n")
    assert (p.heartbeat, p.response_ms, p.defer_ms) == ("DEFERRED", 2000, 10000)
    assert p.gateways == ["143.1.0.64", "143.1.1.157", "143.1.1.160"]
    assert p.keys == {"143.1.0.64": key(KEY), "143.1.1.157": key(KEY), "143.1.1.160": key(KEY2)}
    assert p.dial_numbers == {"143.1.0.64": "ras", "143.1.1.157": "ras", "143.1.1.160": "gw4"}
    assert [t[3:] for t in p.tunnels] == [("cluster", 1), ("addr", "143.1.1.160")]


# --- syntax and values ---------------------------------------------------------------------

def test_case_insensitive():
    p = parse("[general]\nHEARTBEAT = deferred\nheartbeatdefertime = 7\n[Cluster]\nCLUSTER 1 = 143.1.0.64\n"
              "preferred1 = 143.1.0.64\n[tunnel]\nTUNNEL1 = 10.0.0.1 - 10.0.0.9 cluster 1\n"
              "redirect tunnel1 = 143.1.2.1 CLUSTER 1\n[keys]\nDEFAULT = HEX:" + KEY.upper() + "\n[dial]\n"
              "143.1.0.64 = ras\n")
    assert (p.heartbeat, p.defer_ms, p.preferred) == ("DEFERRED", 7000, {1: "143.1.0.64"})
    assert p.keys == {"143.1.0.64": key(KEY)}


def test_comments_blank_lines_spacing():
    p = parse("# a policy\n\n   [GENERAL]   # general\nDial=ras#comment right after the value\n"
              "  HeartbeatRetries    =    3   \n\n[CLUSTER]\n\tCluster1 =\t143.1.0.64   # one gateway\n"
              "[TUNNEL]\nTunnel1 = 10.0.0.1 Cluster1\n[KEYS]\nDefault = " + KEY + "\r\n")
    assert (p.dial, p.retries, p.tunnels[0][3:]) == ("ras", 3, ("cluster", 1))


def test_range_spacing():
    a = parse(BASE.replace("143.1.0.24 - 143.1.0.30", "143.1.0.24-143.1.0.30")).tunnels
    assert a == parse(BASE.replace(" - 143.1.0.30", " -143.1.0.30")).tunnels == parse(BASE).tunnels
    assert parse(BASE.replace(" - 143.1.0.30", "")).tunnels[0][1:3] == (ip_to_int("143.1.0.24"),) * 2


def test_defaults():
    p = parse(BASE)
    assert (p.heartbeat, p.response_ms, p.defer_ms, p.retries, p.form) == ("INSTANT", 1000, 5000, 5, "PROTECTED")
    assert (p.identity, p.randomize, p.outbox_bytes) == (b"gwbox", True, 8192)
    assert (p.modem_init, p.dial, p.access_server) == (("ATZ", "ATE0V1Q0&C1&D2"), "ras", None)
    assert (p.rekey_ms, p.rekey_bytes, p.handshake_retry_ms, p.handshake_retries) == (28800000, 10485760, 3000, 3)
    assert (p.retry_ms, p.retry_max_ms, p.failback_ms, p.idle_hangup_ms, p.status_ms) == (5000, 300000, 30000, 60000, 0)
    assert (p.preferred, p.redirects, len(p.checksum)) == ({}, [], 16)


def test_general_values():
    p = parse(BASE + "[GENERAL]\nHeartbeatForm = spi-echo\nIdentity = branch-17\nRandomizeOrder = no\n"
              "OutboxBytes = 256\nModemInit = atz AT&F ATS0=0\nAccessServer = 143.001.002.001\nRekeyTime = 3600\n"
              "RekeyKBytes = 1\nHandshakeRetryTime = 0.25\nHandshakeRetries = 0\nRetryTime = 0.8\n"
              "RetryMaxTime = 0.8\nFailbackTime = 60.125\nIdleHangupTime = 0\nStatusInterval = 10\n"
              "HeartbeatRetries = 20\n")
    assert (p.form, p.identity, p.randomize, p.outbox_bytes, p.retries) == ("SPI-ECHO", b"branch-17", False, 256, 20)
    assert p.modem_init == ("atz", "AT&F", "ATS0=0")  # only the first '=' splits key and value
    assert p.access_server == "143.1.2.1"
    assert (p.rekey_ms, p.rekey_bytes, p.handshake_retry_ms, p.handshake_retries) == (3600000, 1024, 250, 0)
    assert (p.retry_ms, p.retry_max_ms, p.failback_ms, p.idle_hangup_ms, p.status_ms) == (800, 800, 60125, 0, 10000)
    for w in ("ON", "yes", "True", "1", "off", "NO", "false", "0"):
        assert parse(BASE + "[GENERAL]\nRandomizeOrder = " + w + "\n").randomize is (w.upper() in "ON YES TRUE 1")


def test_key_forms_and_precedence():
    # Own entry, else the cluster's, else Default; hex:, base64: and bare hex.
    more = "\n[TUNNEL]\nTunnel2 = 10.0.0.1 143.1.1.160\n[KEYS]\nCluster1 = base64:ABEiM0RVZneImaq7zN3u/w==\n"
    p = parse(BASE + "143.1.1.157 = " + KEY2 + more)
    assert p.keys == {"143.1.0.64": key(KEY), "143.1.1.157": key(KEY2), "143.1.1.160": key(KEY)}
    p = parse(BASE.replace("hex:" + KEY, "hex:" + KEY2) + more)
    assert p.keys == {"143.1.0.64": key(KEY), "143.1.1.157": key(KEY), "143.1.1.160": key(KEY2)}


def test_dial_numbers():
    p = parse(BASE + "[DIAL]\n143.1.1.157 = 0,01234#567\n[TUNNEL]\nTunnel2 = 10.0.0.1 143.1.1.160\n"
              "[DIAL]\n143.1.1.160 = P9W0123-gw_4.x:1\n")  # '#' starts a comment, also here
    assert p.dial_numbers == {"143.1.0.64": "ras", "143.1.1.157": "0,01234", "143.1.1.160": "P9W0123-gw_4.x:1"}


def test_gateways_order_and_preferred():
    p = parse("[TUNNEL]\nTunnel1 = 10.0.0.1 9.9.9.9\nRedirect Tunnel1 = 143.1.2.1 8.8.8.8\nTunnel2 = 10.0.0.2 7.7.7.7\n"
              "Tunnel3 = 10.0.0.3 9.9.9.9\n[CLUSTER]\nCluster2 = 1.1.1.1 2.2.2.2\nCluster1 = 3.3.3.3 1.1.1.1\n" + TAIL)
    assert p.gateways == ["1.1.1.1", "2.2.2.2", "3.3.3.3", "9.9.9.9", "8.8.8.8", "7.7.7.7"]
    assert parse(BASE + "[CLUSTER]\nPreferred1 = 143.1.1.157\n").preferred == {1: "143.1.1.157"}


AUTO = BASE + "[GENERAL]\nAccessServer = 143.1.2.1\n[TUNNEL]\nTunnel2 = 10.0.0.0 - 10.0.0.255 AUTO\n"


def test_auto_tunnel_and_redirects():
    p = parse(AUTO + "Redirect Tunnel7 = 143.1.2.1 143.1.1.160\nRedirect Tunnel8 = 143.1.9.9 Cluster 1\n")
    assert p.tunnels[1] == (2, ip_to_int("10.0.0.0"), ip_to_int("10.0.0.255"), "auto", None)
    assert p.redirects == [(7, "143.1.2.1", "addr", "143.1.1.160"), (8, "143.1.9.9", "cluster", 1)]
    assert "143.1.1.160" in p.gateways and "143.1.2.1" not in p.gateways


def test_route():
    p = parse(BASE + "[TUNNEL]\nTunnel2 = 10.0.0.0 - 10.0.0.255 143.1.1.160\nTunnel3 = 10.0.1.0 Cluster 1\n")
    for a, i in (("143.1.0.24", 0), ("143.1.0.30", 0), ("10.0.0.128", 1), ("10.0.1.0", 2)):
        assert route(p, ip_to_int(a)) == p.tunnels[i]
    for a in ("143.1.0.23", "143.1.0.31", "10.0.1.1", "0.0.0.0", "255.255.255.255"):
        assert route(p, ip_to_int(a)) is None
    # AUTO: through the Redirect of the AccessServer address.
    p = parse(AUTO + "Redirect Tunnel1 = 143.1.9.9 143.1.1.160\nRedirect Tunnel2 = 143.1.2.1 Cluster 1\n")
    assert route(p, ip_to_int("10.0.0.9")) == (2, ip_to_int("10.0.0.0"), ip_to_int("10.0.0.255"), "cluster", 1)


def test_ip_helpers():
    assert ip_to_int("143.1.0.64") == 0x8F010040 and int_to_ip(0x8F010040) == "143.1.0.64"
    assert ip_to_int("255.255.255.255") == 0xFFFFFFFF and int_to_ip(0) == "0.0.0.0"
    for bad in ("143.1.0.256", "143.1.0", "1.2.3.4.5", "a.b.c.d", "1..2.3", "+1.2.3.4", "1.2.3.-4", "", "1.2.3.0004",
                " 1.2.3.4", -1, 1 << 32):
        try:
            int_to_ip(bad) if isinstance(bad, int) else ip_to_int(bad)
            raise AssertionError(bad)
        except ValueError:
            pass


def test_checksum():
    a = parse(BASE).checksum
    assert parse("# header\n\n" + BASE.replace("Dial = ras", "Dial = ras   # the access server")).checksum == a
    assert parse(BASE.replace("Dial = ras", "Dial = ras2")).checksum != a
    assert parse(BASE).checksum == parse(BASE.encode()).checksum == a  # pure; str or bytes


# --- errors --------------------------------------------------------------------------------

# Bad policies, one case per block (blocks end at "--"): the lines added to BASE (lines 9 on),
# then "-> line | field | message" for each error expected, in order (field and message:
# substrings of the real ones; the field's "[SECTION] " is left out when a key follows it).
# One string, split as the test runs, so that it fits a device-sized heap. More cases of this
# form, for every other message, are in tests/host/test_policy_example.py (CPython and, in a
# micropython process of its own, MicroPython).
BAD = """[TUNNEL]
Tunnel2 = 10.0.0.1 Cluster 3
-> 10 | Tunnel2 | Cluster3 is not defined in [CLUSTER]
--
[TUNNEL]
Tunnel2 = 143.1.0.30 - 143.1.0.20 Cluster 1
-> 10 | Tunnel2 | range end 143.1.0.20 is before start 143.1.0.30
--
[TUNNEL]
Tunnel2 = 143.1.0.30 - 143.1.0.40 143.1.1.160
-> 10 | Tunnel2 | range 143.1.0.30 - 143.1.0.40 overlaps Tunnel1 on line 6
--
[CLUSTER]
Cluster 1 = 1.2.3.4
-> 10 | Cluster1 | duplicate key, first set on line 4
--
[GENERAL]
HeartbeatRetries = five
-> 10 | HeartbeatRetries | 'five' is not a whole number
--
[GENERAL]
HeartbeatDeferTime = 536871
-> 10 | HeartbeatDeferTime | does not fit the 2^29 ms (149 h) timer range
--
[GENERAL]
HeartbeatResponseTime = 0
-> 10 | HeartbeatResponseTime | must be more than 0 s
--
[GENERAL]
RetryTime = -5
-> 10 | RetryTime | must be more than 0 s, not -5
--
Cluster1 = hex:00112233445566778899aabbccddee
-> 9 | Cluster1 | key is shorter than 16 bytes
--
Cluster1 = 0000000000000000000000000000000000000000000000000000000000000000
-> 9 | Cluster1 | key is all zero bytes
--
Cluster1 =
-> 9 | Cluster1 | key is empty
--
Cluster1 = base64:ABEiM0RVZneImaq7zN3u/w=A
-> 9 | Cluster1 | key is not valid base64
--
143.1.1.1 = 00112233445566778899aabbccddeeff
Cluster4 = 00112233445566778899aabbccddeeff
-> 9 | 143.1.1.1 | key for gateway 143.1.1.1, which is not defined
-> 10 | Cluster4 | key for Cluster4, which is not defined
--
[DIAL]
143.1.1.1 = gw1
-> 10 | 143.1.1.1 | 143.1.1.1 is not a gateway of [CLUSTER] or [TUNNEL]
--
[ROUTES]
Route1 = x
-> 9 | [ROUTES] | unknown section
--
[GENERAL]
HeartBeats = 3
[TUNNEL]
Tunel3 = 10.0.0.1 AUTO
-> 10 | HeartBeats | unknown key
-> 12 | Tunel3 | unknown key
--
[GENERAL]
Heartbeat INSTANT
-> 10 | [GENERAL] | line has no '='
--
[CLUSTER]
Cluster2 = 143.1.0.256
-> 10 | Cluster2 | '143.1.0.256' is not an IPv4 address
--
[TUNNEL]
Tunnel2 = 10.0.0 143.1.0.64
-> 10 | Tunnel2 | '10.0.0' is not an IPv4 address
--
[GENERAL]
AccessServer = ras.example
-> 10 | AccessServer | 'ras.example' is not an IPv4 address
--
[CLUSTER]
Preferred1 = 143.1.1.160
-> 10 | Preferred1 | 143.1.1.160 is not a member of Cluster1
--
[GENERAL]
RetryTime = 10
RetryMaxTime = 9.5
-> 11 | RetryMaxTime | RetryMaxTime 9.5 s is less than RetryTime 10 s
--
[TUNNEL]
Tunnel2 = 10.0.0.1 AUTO
Redirect Tunnel1 = 143.1.2.1 Cluster 1
-> 10 | Tunnel2 | ([GENERAL] AccessServer is not set)
--
[GENERAL]
AccessServer = 143.1.2.1
[TUNNEL]
Tunnel2 = 10.0.0.1 AUTO
Redirect Tunnel1 = 143.1.2.9 Cluster 1
-> 12 | Tunnel2 | AUTO tunnel needs AccessServer and a Redirect for it (no Redirect Tunnel<nr> = 143.1.2.1)
--
[TUNNEL]
Redirect Tunnel1 = 143.1.2.1 AUTO
-> 10 | Redirect Tunnel1 | a redirect cannot go to AUTO
--
[TUNNEL]
Redirect Tunnel1 = 143.1.2.1 Cluster 1
Redirect Tunnel2 = 143.1.2.1 143.1.0.64
-> 11 | Redirect Tunnel2 | 143.1.2.1 is already redirected by Redirect Tunnel1 on line 10
--
[TUNNEL]
Tunnel2 = 10.0.0.1 Cluster 1 please
-> 10 | Tunnel2 | unexpected 'please' after the target
--
[GENERAL]
Heartbeat = ALWAYS
-> 10 | Heartbeat | must be NONE, DEFERRED or INSTANT, not 'ALWAYS'
"""


def cases(table):
    """(case text, BASE + its lines, [(line, field, message)]) for each case of a table like BAD."""
    i = 0
    while i >= 0:
        j = table.find("\n--\n", i)
        case = table[i:j] if j > 0 else table[i:]
        text, want = [], []
        for line in case.split("\n"):
            if line.startswith("-> "):
                f = line[3:].split(" | ")
                want.append((int(f[0]), f[1], f[2]))
            elif line:
                text.append(line)
        yield case, BASE + "\n".join(text) + "\n", want
        i = j + 4 if j > 0 else -1


def test_bad_policies():
    n = 0
    for case, text, want in cases(BAD):
        try:
            expect(text, want)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (case, e))
        n += 1
    assert n == 28


def test_bad_whole_policies_and_no_follow_on_errors():
    # A missing dial number or key is reported where the gateway first appears.
    expect(BASE.replace("Dial = ras", ""), [(4, "Cluster1", "143.1.0.64 (add"), (4, "Cluster1", "143.1.1.157 (add")])
    expect(BASE.replace("Default", "143.1.0.64") + "[TUNNEL]\nTunnel2 = 10.0.0.1 143.1.1.160\n",
           [(4, "Cluster1", "no key for gateway 143.1.1.157 (add [KEYS] 143.1.1.157, Cluster1 or Default)"),
            (10, "Tunnel2", "(add [KEYS] 143.1.1.160 or Default)")])
    expect("Heartbeat = NONE\n" + BASE, [(1, "policy", "line is outside any section")])
    expect(BASE.replace("Tunnel1", "# Tunnel1"), [(5, "[TUNNEL]", "the policy defines no tunnel")])
    expect("[GENERAL]\nDial = ras\n\n", [(2, "[TUNNEL]", "the policy defines no tunnel")])
    # A bad key or number is one error: what it was meant for is not reported "missing" on top.
    expect(BASE.replace(KEY, "0011"), [(8, "Default", "key is shorter than 16")])
    expect(BASE.replace("ras", "r a s"), [(2, "Dial", "dial number 'r a s'")])
    expect(AUTO.replace("143.1.2.1", "ras"), [(10, "AccessServer", "'ras' is not an IPv4 address")])


def test_all_errors_at_once_in_line_order():
    e = errors_of("[GENERAL]\nHeartbeat = SOMETIMES\n[TUNNEL]\nTunnel1 = 143.1.0.30 - 143.1.0.20 Cluster 1\n"
                  "Tunnel2 = 10.0.0.1 Cluster 9\n[CLUSTER]\nCluster1 = 143.1.0.64 143.1.0.256\n[KEYS]\n"
                  "Default = hex:00\n[BOGUS]\n")
    assert isinstance(e, ValueError) and [x[0] for x in e.errors] == [2, 4, 5, 7, 7, 9, 10], e.errors
    s = str(e).split("\n")
    assert len(s) == 7 and s[5] == "line 9: [KEYS] Default: key is shorter than 16 bytes"
    assert s[1] == "line 4: [TUNNEL] Tunnel1: range end 143.1.0.20 is before start 143.1.0.30"
    assert s[4] == ("line 7: [CLUSTER] Cluster1: missing dial number for gateway 143.1.0.64 (add [DIAL] 143.1.0.64 "
                    "= number or [GENERAL] Dial)")


# --- secrets -------------------------------------------------------------------------------

SHORT = "00112233445566778899aabbccddee"  # 15 bytes: refused


def leaks(text, secret):
    """Any 8 characters of `secret` in `text`."""
    for i in range(len(secret) - 7):
        if secret[i:i + 8].lower() in text.lower():
            return True
    return False


# A short key, a bad one, keys pasted where a name or a value of another section goes: one
# case per line, "/" for a line break, %s for the short key.
LEAKY = """Cluster1 = hex:%s
Cluster1 = %szz
Cluster1 = base64:%s!
143.1.0.64 %s
%s = x
hex:%s
Default = hex:%s
[GENERAL]/Psk = hex:%s
[GENERAL]/hex:%s
[GENERAL]/%s
[GENERAL]/RetryTime = %s
[GENERAL]/Psk base64:ABEiM0RVZneImaq7zN3u/w==/[GENERAL]/Dial = %s
[DIAL]/%s = 1
[CLUSTER]/Cluster2 = %s
[CLUSTER]/Cluster2 = 0011 2233 44556677 8899aabb
[%s]
[TUNNEL]/Tunnel3 = 10.0.0.1 %s
[TUNNEL]/Tunnel3 = 10.0.0.1 Cluster %s"""


def test_no_secret_in_errors():
    for t in LEAKY.split("\n"):
        t = t.replace("/", "\n").replace("%s", SHORT)
        for text in (BASE + t, t + "\n" + BASE):
            e = errors_of(text)
            assert not leaks(str(e) + repr(e) + repr(e.errors), SHORT), (text, str(e))
            assert not leaks(str(e), "ABEiM0RVZneImaq7zN3u/w") and not leaks(str(e), "44556677 8899aabb"), str(e)


def test_masked():
    p = parse(AUTO + "Redirect Tunnel1 = 143.1.2.1 143.1.1.160\n[DIAL]\n143.1.1.160 = gw4\n[KEYS]\nCluster1 = hex:"
              + KEY2 + "\n[CLUSTER]\nPreferred1 = 143.1.1.157\n")
    m = p.masked()
    assert m.startswith("[GENERAL]\nHeartbeat = INSTANT\nHeartbeatResponseTime = 1\n")
    assert "AccessServer = 143.1.2.1\n" in m
    assert m[m.find("[CLUSTER]"):] == """[CLUSTER]
Cluster1 = 143.1.0.64 143.1.1.157
Preferred1 = 143.1.1.157
[TUNNEL]
Tunnel1 = 143.1.0.24 - 143.1.0.30 Cluster 1
Tunnel2 = 10.0.0.0 - 10.0.0.255 AUTO
Redirect Tunnel1 = 143.1.2.1 143.1.1.160
[KEYS]
143.1.0.64 = <secret>
143.1.1.157 = <secret>
143.1.1.160 = <secret>
[DIAL]
143.1.0.64 = ras
143.1.1.157 = ras
143.1.1.160 = gw4
"""
    assert not (leaks(m, KEY) or leaks(m, KEY2) or leaks(repr(p), KEY) or leaks(repr(p), KEY2))


def test_masked_parses_again():
    # masked() prints every setting; with the keys filled in it parses to the same policy.
    m = parse(BASE + "[GENERAL]\nHandshakeRetryTime = 0.25\nRandomizeOrder = off\nIdentity = b17\n[CLUSTER]\n"
              "Preferred1 = 143.1.1.157\n[TUNNEL]\nTunnel2 = 10.0.0.7 143.1.1.160\n").masked()
    q = parse(m.replace("<secret>", KEY2))
    assert q.masked() == m and q.keys == {"143.1.0.64": key(KEY2), "143.1.1.157": key(KEY2), "143.1.1.160": key(KEY2)}
    assert (q.handshake_retry_ms, q.randomize, q.identity, q.preferred) == (250, False, b"b17", {1: "143.1.1.157"})
