"""gwbox.policy: the [GENERAL] keys of the console and the device's LAN side (ConsolePassword,
LanUart): valid forms, the exact errors, and the password's hash never shown or checksummed."""
from gwbox.policy import PolicyError, parse

BASE = """[GENERAL]
Dial = ras
[CLUSTER]
Cluster1 = 143.1.0.64 143.1.1.157
[TUNNEL]
Tunnel1 = 10.0.0.1 - 10.0.0.9 Cluster 1
[KEYS]
Default = hex:00112233445566778899aabbccddeeff
[GENERAL]
"""  # the cases add line 10
SALT = "30313233343536373839616263646566"
HASH = "f4c2d595b47742de110e9d9292f5a512c95ead124f3801f9a22acd13b8e14096"
GOOD = "pbkdf2$1000$%s$%s" % (SALT, HASH)


def errors(line):
    try:
        parse(BASE + line + "\n")
    except PolicyError as e:
        return ["line %d: %s: %s" % x for x in e.errors]
    raise AssertionError("parsed: " + line)


def test_console_password_is_parsed_and_masked():
    p = parse(BASE + "ConsolePassword = " + GOOD + "\n")
    assert p.console_password == (1000, bytes.fromhex(SALT), bytes.fromhex(HASH))
    m = p.masked()
    assert "ConsolePassword = <secret>" in m and HASH not in m and SALT not in m and HASH not in repr(p)
    assert parse(BASE).console_password is None and "ConsolePassword" not in parse(BASE).masked()


def test_console_password_errors_never_show_the_value():
    bad = ("pbkdf2$1000$%s" % SALT, "pbkdf2$999$%s$%s" % (SALT, HASH), "pbkdf2$1000$00$%s" % HASH,
           "pbkdf2$1000$%s$%s" % (SALT, HASH[:-2]), "sha1$1000$%s$%s" % (SALT, HASH), "pbkdf2$x$%s$%s" % (SALT, HASH),
           "pbkdf2$1000$%s$%sz" % (SALT, HASH[:-1]), "hunter2", "")
    for v in bad:
        e = errors("ConsolePassword = " + v)
        assert e == ["line 10: [GENERAL] ConsolePassword: (value not shown) is not what gwbox console-password "
                     "makes"], (v, e)


def test_the_checksum_does_not_cover_the_password_hash():
    a = parse(BASE + "ConsolePassword = " + GOOD + "\n")
    b = parse(BASE + "ConsolePassword = pbkdf2$2000$%s$%s\n" % (SALT, "ab" * 32))
    assert a.checksum == b.checksum != parse(BASE).checksum


def test_lan_uart_target_and_its_errors():
    p = parse(BASE + "LanUart = 10.0.0.5:4001\n")
    assert p.lan_uart == ("10.0.0.5", 4001) and "LanUart = 10.0.0.5:4001" in p.masked()
    assert parse(BASE).lan_uart is None
    assert errors("LanUart = 10.0.0.5") == ["line 10: [GENERAL] LanUart: '10.0.0.5' is not <address>:<port>"]
    assert errors("LanUart = 10.0.0.5:0") == ["line 10: [GENERAL] LanUart: '10.0.0.5:0' is not <address>:<port>"]
    assert errors("LanUart = 10.0.0.5:65536") == [
        "line 10: [GENERAL] LanUart: '10.0.0.5:65536' is not <address>:<port>"]
    assert errors("LanUart = till:4001") == ["line 10: [GENERAL] LanUart: 'till' is not an IPv4 address"]
    assert errors("LanUart = 10.9.0.5:4001") == ["line 10: [GENERAL] LanUart: target 10.9.0.5 is in no [TUNNEL] range"]
