"""gwbox.console through the device port: reading, login and its rate limit, reboot, hostile
input, and the module leaving the heap when idle (consolerig: fake input, files, time)."""
import sys

from consolerig import PASSWORD, POLICY, PW_LINE, Rig, store


def test_reading_needs_no_login():
    r = Rig()
    e, lines = r.cmd("help")
    assert e["ok"] and "load  (then the policy, then a line holding only '.')" in lines
    e, _ = r.cmd("status")
    assert e["ok"] and e["status"]["line"] == "off" and e["login"] is False
    e, lines = r.cmd("SHOW   LOG")
    assert e["ok"]


def test_show_log_prints_events_as_text_for_people():
    r = Rig()
    r.t = 17345
    r.port.event("gateway_dead", {"cluster": "Cluster1", "gateway": b"143.1.0.64", "reason": "peer_dead"})
    r.port.event("status", {"uptime_s": 12})  # status and console lines are not kept
    r.port.event("lan_refused", {"reason": "outbox_full", "detail": "x" * 300})
    e, lines = r.cmd("show log")
    assert e["ok"] and e["msg"] == "2 recent events", e
    # the time since boot (the Rig's clock starts at 5 s), the name, key=value; never JSON
    assert lines[0].startswith("12.345 s gateway_dead ") and lines[0][0] != "{", lines
    assert sorted(lines[0].split()[3:]) == ["cluster=Cluster1", "gateway=143.1.0.64", "reason=peer_dead"], lines
    assert lines[1].startswith("12.345 s lan_refused ") and len(lines[1]) == 160, lines  # cut, name first
    r.t = 65004
    for _ in range(10):
        r.port.event("heartbeat_sent", {"peer": b"143.1.0.64"})
    e, lines = r.cmd("show log")
    assert e["msg"] == "6 recent events" and lines == ["60.004 s heartbeat_sent peer=143.1.0.64"] * 6, lines



def test_changes_need_login_and_the_password_is_checked():
    r = Rig()
    for c in ("set Heartbeat NONE", "load", "save", "reboot", "test link"):
        e, _ = r.cmd(c)
        assert not e["ok"] and e["msg"] == "login first", (c, e)
    e, _ = r.cmd("login " + PASSWORD)
    assert e["ok"] and e["msg"] == "logged in: changes allowed"
    e, _ = r.cmd("status")
    assert e["login"] is True
    e, _ = r.cmd("logout")
    assert e["ok"]
    e, _ = r.cmd("save")
    assert e["msg"] == "login first"
    assert r.resets == 0
    

def test_wrong_passwords_lock_the_login_for_a_doubling_delay():
    r = Rig()
    waits = []
    for _ in range(10):
        e, _ = r.cmd("login wrong")
        assert not e["ok"] and e["msg"].startswith("wrong password: next try in "), e
        waits.append(e["wait_s"])
        e, _ = r.cmd("login " + PASSWORD)  # even the right password is refused while locked
        assert not e["ok"] and e["msg"].startswith("too many wrong passwords: try again in "), e
        r.run(waits[-1] * 1000)
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    e, _ = r.cmd("login " + PASSWORD)
    assert e["ok"] and r.port.fails == 0 and r.port.locked_until is None
    

def test_the_lock_outlives_the_console_module():
    r = Rig()
    r.cmd("login wrong")
    r.run(6000)  # idle: the console module leaves the heap
    assert "gwbox.console" not in sys.modules and r.port._con is None
    e, _ = r.cmd("login wrong")
    assert e["wait_s"] == 2  # the count survived


def test_reboot_writes_a_clean_boot_record_and_safe_reboot_a_one_shot_flag():
    r = Rig()
    r.cmd("login " + PASSWORD)
    store(r.fs).write_boot_record(2)
    e, _ = r.cmd("reboot")
    assert e["ok"] and r.resets == 1 and store(r.fs).boot_record() == (0, False)
    # the console left the heap before the store's code came in (a reboot never needs both);
    # a board is reset now, the rig's stand-in returns: the next command meets a new console
    assert r.console_at_reset is False and r.port._con is None
    e, _ = r.cmd("reboot safe")
    assert e["msg"] == "login first" and r.resets == 1
    r.cmd("login " + PASSWORD)
    e, _ = r.cmd("reboot safe")
    assert e["msg"] == "rebooting into safe mode" and r.resets == 2 and store(r.fs).boot_record() == (0, True)
    r.cmd("login " + PASSWORD)
    e, _ = r.cmd("repl")
    assert not e["ok"] and "only in safe mode" in e["msg"]


def test_a_policy_without_password_makes_a_read_only_console_outside_safe_mode():
    r = Rig(policy=POLICY.replace(PW_LINE, ""), password=False)
    e, _ = r.cmd("set Heartbeat NONE")
    assert e["msg"].startswith("this policy sets no ConsolePassword: the console changes nothing outside safe mode")
    e, _ = r.cmd("login anything")
    assert not e["ok"] and r.port.fails == 0


def hostile_pieces():
    """Every byte value, invalid UTF-8, an over-long line, NUL, a bare login, a run of CRs: in
    pieces of up to 97 bytes, as a serial line delivers them."""
    for _ in range(4):
        for i in range(0, 256, 97):
            yield bytes(range(i, min(256, i + 97)))
    yield b"\xff\xfe\r\n"
    for _ in range(31):
        yield b"A" * 97
    yield b"\n\x00\nlogin\n" + b"\r" * 50


def test_hostile_input_never_raises_or_spins():
    r = Rig()
    for piece in hostile_pieces():
        r.send(piece)
        w = r.port.step()
        assert 0 <= w <= 20
        r.t += 1
    r.run(3000)
    finals = [e for e in r.evs if e["event"] == "console" and "ok" in e]
    assert finals and all(e["ok"] is False for e in finals)
    assert "line longer than 256 bytes: ignored" in [e["msg"] for e in finals]
    assert "usage: login PASSWORD" in [e["msg"] for e in finals]
    assert not [e for e in r.evs if e["event"] == "console_error"]
    e, _ = r.cmd("status")  # still answering
    assert e["ok"]


def test_one_reply_per_line_whatever_the_line_ends():
    r = Rig()
    since = len(r.evs)
    r.send(b"status\r\nstatus\nstatus\r")
    r.run(200)
    r.send(b"\nstatus\r\n")
    r.run(200)
    assert len([e for e in r.evs[since:] if "ok" in e]) == 4


def test_the_console_leaves_the_heap_when_idle_and_a_login_times_out():
    r = Rig()
    r.cmd("status")
    assert "gwbox.console" in sys.modules
    r.run(6000)
    assert "gwbox.console" not in sys.modules and "gwbox.policy" not in sys.modules
    assert "gwbox.policyvalue" not in sys.modules
    import gwbox
    assert not hasattr(gwbox, "console") and not hasattr(gwbox, "policyedit") and not hasattr(gwbox, "store")
    r.cmd("login " + PASSWORD)
    r.run(60000)
    assert "gwbox.console" in sys.modules  # logged in: kept
    since = len(r.evs)
    r.run(250000)
    assert "gwbox.console" not in sys.modules
    assert [e["note"] for e in r.evs[since:] if "note" in e] == ["console idle: logged out"]
    e, _ = r.cmd("save")
    assert e["msg"] == "login first"


def test_pbkdf2_matches_rfc_vector_and_the_host_tool():
    from consolerig import HASH, ITER, SALT
    from gwbox.console import pbkdf2
    assert pbkdf2(PASSWORD.encode(), SALT, ITER) == HASH
    # RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, dkLen=64 (first 32 bytes)
    assert pbkdf2(b"passwd", b"salt", 1) == bytes.fromhex(
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
