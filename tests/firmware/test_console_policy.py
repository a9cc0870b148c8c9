"""The console's policy commands (gwbox.policyedit): load with line-numbered errors, set, save
(atomic, on a fake file system), show policy/pending masked, safe mode without a password."""
# mp-heap: 128K  (one box's console session with its policy commands: the console, gwbox.policyedit, the
# parser and the store at once, on the 64-bit interpreter; the 32-bit figures are in docs/console.md)
import json

from consolerig import ITER, P, PASSWORD, POLICY, SALT, Rig, store

BAD = """[GENERAL]
Heartbeat = SOMETIMES
Dial = ras
[CLUSTER]
Cluster1 = 143.1.0.64
[TUNNEL]
Tunnel1 = 10.0.0.9 - 10.0.0.1 Cluster 1
[KEYS]
Default = hex:0011
"""


def test_show_policy_needs_no_login_and_masks_every_secret():
    r = Rig()
    e, lines = r.cmd("show policy")
    assert e["ok"] and e["checksum"] and e["msg"] == "stored in gwbox.policy"
    assert "ConsolePassword = <secret>" in lines and "143.1.0.64 = <secret>" in lines and "Identity = branch-7" in lines


def test_show_policy_prints_the_text_rendered_at_boot_until_a_save():
    # gwbox.start renders the booted policy while the parser is loaded anyway: showing it then
    # needs no parser beside the running box. After a save, the stored policy is parsed to show it.
    r = Rig()
    r.port.shown = ("[GENERAL]\nIdentity = rendered-at-boot\n", P, "0123456789abcdef")
    e, lines = r.cmd("show policy")
    assert e["ok"] and e["checksum"] == "0123456789abcdef" and e["msg"] == "stored in gwbox.policy"
    assert lines == ["[GENERAL]", "Identity = rendered-at-boot"], lines
    r.cmd("login " + PASSWORD)
    r.send(b"load\n" + POLICY.replace("branch-7", "branch-8").encode() + b".\n")
    r.run(500)
    assert r.cmd("save")[0]["ok"] and r.port.shown is None
    e, lines = r.cmd("show policy")
    assert e["ok"] and "Identity = branch-8" in lines and e["checksum"] != "0123456789abcdef"


def test_load_with_errors_is_rejected_with_line_numbers_and_nothing_changes():
    r = Rig()
    before = dict(r.fs.disk)
    r.cmd("login " + PASSWORD)
    since = len(r.evs)
    r.send(b"load\r\n" + BAD.encode().replace(b"\n", b"\r\n") + b".\r\n")
    r.run(1000)
    evs = [e for e in r.evs[since:] if e["event"] == "console"]
    final = [e for e in evs if "ok" in e][-1]
    assert final["cmd"] == "load" and not final["ok"] and final["errors"] == 3
    assert final["msg"] == "policy rejected (3 errors): nothing changed"
    errs = [e["line"] for e in evs if e.get("line", "").startswith("line ")]
    assert errs == ["line 2: [GENERAL] Heartbeat: must be NONE, DEFERRED or INSTANT, not 'SOMETIMES'",
                    "line 7: [TUNNEL] Tunnel1: range end 10.0.0.1 is before start 10.0.0.9",
                    "line 9: [KEYS] Default: key is shorter than 16 bytes"], errs
    assert r.fs.disk == before
    e, _ = r.cmd("save")
    assert not e["ok"] and e["msg"] == "nothing to save: load or set first"
    

def test_load_then_save_stores_it_atomically_and_show_pending_masks_it():
    r = Rig()
    r.cmd("login " + PASSWORD)
    new = POLICY.replace("Identity = branch-7", "Identity = branch-8")
    since = len(r.evs)
    r.send(b"load\n" + new.encode() + b".\n")
    r.run(500)
    final = [e for e in r.evs[since:] if e["event"] == "console" and "ok" in e][-1]
    assert final["ok"] and final["msg"].startswith("policy valid (checksum ")
    e, lines = r.cmd("show pending")
    assert e["ok"] and "Identity = branch-8" in lines and "ConsolePassword = <secret>" in lines
    assert r.stored() == POLICY
    e, _ = r.cmd("save")
    assert e["ok"] and e["msg"] == "saved: `reboot` to use it"
    assert r.stored() == new and store(r.fs).read(P + ".bak") == POLICY
    e, lines = r.cmd("show policy")
    assert "Identity = branch-8" in lines
    

def test_load_checks_the_sha256_the_host_sends_with_the_end_line():
    import hashlib
    r = Rig()
    r.cmd("login " + PASSWORD)
    body = POLICY.encode()
    good = "".join("%02x" % b for b in hashlib.sha256(body).digest())
    bad = "0" * 64
    for digest, ok in ((bad, False), (good, True)):
        since = len(r.evs)
        r.send(b"load\n" + body + b". " + digest.encode() + b"\n")
        r.run(500)
        final = [e for e in r.evs[since:] if e["event"] == "console" and "ok" in e][-1]
        assert final["ok"] is ok, final
    assert "damaged" in [e for e in r.evs if e.get("cmd") == "load" and e.get("ok") is False][0]["msg"]


def test_load_can_be_cancelled_and_is_abandoned_when_the_paste_stops():
    r = Rig()
    r.cmd("login " + PASSWORD)
    r.send(b"load\n")
    r.port.step()
    assert [r.port.step() for _ in range(3)] == [20, 20, 20]  # waiting for the paste: the loop sleeps
    r.send(b"\x03")
    r.run(100)
    since = len(r.evs)
    r.send(b"load\n[GENERAL]\n\x03")
    r.run(200)
    assert [e["msg"] for e in r.evs[since:] if "ok" in e] == ["load cancelled: nothing changed"]
    since = len(r.evs)
    r.send(b"load\n[GENERAL]\n")
    r.run(61000)
    assert [e["msg"] for e in r.evs[since:] if "ok" in e] == ["load abandoned: no input for 60 s; nothing changed"]
    e, _ = r.cmd("show pending")
    assert not e["ok"]


def test_an_overlong_paste_is_refused():
    r = Rig()
    r.cmd("login " + PASSWORD)
    since = len(r.evs)
    r.send(b"load\n")
    for _ in range(200):
        r.send(b"# " + b"x" * 78 + b"\n")
        r.run(20)
    r.send(b".\n")
    r.run(200)
    assert [e["msg"] for e in r.evs[since:] if "ok" in e] == [
        "the policy is longer than 12288 bytes: nothing changed"]


def test_set_changes_one_general_key_validated_against_the_stored_policy():
    r = Rig()
    r.cmd("login " + PASSWORD)
    e, _ = r.cmd("set HeartbeatRetries 99")
    assert not e["ok"] and e["msg"] == "policy rejected (1 error): nothing changed"
    e, lines = r.cmd("set HeartbeatRetries 99")
    assert lines == ["line 2: [GENERAL] HeartbeatRetries: must be from 1 to 20, not 99"]
    e, lines = r.cmd("set Colour blue")
    assert not e["ok"] and lines == ["line 2: [GENERAL] Colour: unknown key"]
    e, _ = r.cmd("set Heartbeat DEFERRED")
    assert e["ok"] and e["msg"].startswith("Heartbeat = DEFERRED (checksum ")
    e, _ = r.cmd("set Identity branch-9")  # on top of the pending change
    assert e["ok"]
    e, _ = r.cmd("save")
    assert e["ok"]
    text = r.stored()
    assert "Heartbeat = DEFERRED\n" in text and "Identity = branch-9\n" in text and "Identity = branch-7" not in text
    e, _ = r.cmd("set Dial ras # comment")
    assert not e["ok"] and "cannot hold '#'" in e["msg"]
    

def test_set_console_password_never_echoes_it():
    r = Rig()
    r.cmd("login " + PASSWORD)
    from gwbox.console import pbkdf2
    h2 = pbkdf2(b"another one", SALT, ITER)
    value = "pbkdf2$%d$%s$%s" % (ITER, "".join("%02x" % b for b in SALT), "".join("%02x" % b for b in h2))
    e, _ = r.cmd("set ConsolePassword " + value)
    assert e["ok"] and e["msg"].startswith("ConsolePassword = (value not shown) (checksum ")
    assert not [x for x in r.evs if value[20:] in json.dumps(x)]
    e, lines = r.cmd("set ConsolePassword pbkdf2$10$00$11")
    assert not e["ok"] and value not in "".join(lines) and "pbkdf2$10" not in json.dumps(r.evs)


def test_set_general_edits_text():
    from gwbox.policyedit import set_general
    t = "# top\n[general]\nDial = ras   # the RAS\nHeartbeat=NONE\n[CLUSTER]\nHeartbeat = x\n"
    assert set_general(t, "heartbeat", "INSTANT") == \
        "# top\n[general]\nDial = ras   # the RAS\nheartbeat = INSTANT\n[CLUSTER]\nHeartbeat = x\n"
    assert set_general(t, "Identity", "b") == \
        "# top\n[general]\nIdentity = b\nDial = ras   # the RAS\nHeartbeat=NONE\n[CLUSTER]\nHeartbeat = x\n"
    assert set_general("[CLUSTER]\n", "Dial", "ras") == "[GENERAL]\nDial = ras\n[CLUSTER]\n"


def test_safe_mode_without_a_password_allows_changes_and_repl_ends_the_loop():
    r = Rig(policy=None, password=False, safe="no policy can be loaded")
    e, _ = r.cmd("status")
    assert e["msg"] == "safe mode: no policy can be loaded" and e["status"]["safe"] == "no policy can be loaded"
    e, _ = r.cmd("show policy")
    assert not e["ok"] and e["msg"] == "no policy is stored"
    e, _ = r.cmd("set Heartbeat NONE")
    assert not e["ok"] and e["msg"] == "no policy is stored: load one first"
    since = len(r.evs)
    r.send(b"load\n" + POLICY.encode() + b".\n")
    r.run(300)
    assert [e["ok"] for e in r.evs[since:] if "ok" in e] == [True]
    e, _ = r.cmd("save")
    assert e["ok"] and r.stored() == POLICY
    r.port.running = True
    e, _ = r.cmd("repl")
    assert e["ok"] and r.port.running is False
