"""The box's console end to end: the whole firmware (firmware/main.py, boards/unix) under the
real `micropython` interpreter, its REPL stream on a pty that the host tools open with
pyserial as they would a board's USB serial port (gwbox_tools.mp_box, console=True).

`gwbox config push` of a policy with errors (refused here with line numbers; the box's own
check too) and of a good one; `gwbox config pull` with every secret masked; a power cut at
every file system step of `save` (the box dies mid-write, boots again on the same files:
the last good policy survives); safe mode reached (a key at boot, the safe button, no
policy, a crash loop); the console password's rate limit; `gwbox monitor` and
`gwbox console`. The modem line is a pty nobody answers: the box dials in vain, which is
all these tests need of it. Every process and pty is stopped on every path.
"""
import json
import os
import signal
import subprocess
import sys
import time
import tty

import pytest

from gwbox_tools import mpy_build
from gwbox_tools.devconsole import DeviceConsole, hash_password
from gwbox_tools.mp_box import MpBox

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "branch office 7"
KEY = "9db57deec0b01b0f06d30b2f1c300eddc5885cfb735c075b151caaed55f636db"
STEP_S = 60

pytestmark = pytest.mark.timeout(240)


def policy(identity="branch-7", password=PASSWORD, extra=""):
    pw = "ConsolePassword = %s\n" % hash_password(password, 1000) if password else ""
    return ("# test policy\n[GENERAL]\nIdentity = %s\nDial = ras\nStatusInterval = 1\n%s%s[CLUSTER]\n"
            "Cluster1 = 143.1.0.64 143.1.1.157\n[TUNNEL]\nTunnel1 = 10.0.0.1 - 10.0.0.9 Cluster 1\n[KEYS]\n"
            "Default = hex:%s\n" % (identity, pw, extra, KEY))


BAD = """[GENERAL]
Heartbeat = SOMETIMES
Dial = ras
[CLUSTER]
Cluster1 = 143.1.0.64
[TUNNEL]
Tunnel1 = 10.0.0.9 - 10.0.0.1 Cluster 1
[KEYS]
Default = hex:00112233
"""
BAD_ERRORS = ["line 2: [GENERAL] Heartbeat: must be NONE, DEFERRED or INSTANT, not 'SOMETIMES'",
              "line 7: [TUNNEL] Tunnel1: range end 10.0.0.1 is before start 10.0.0.9",
              "line 9: [KEYS] Default: key is shorter than 16 bytes"]


class Device:
    """A box's file system (a directory), its modem pty, and the box when started."""

    def __init__(self, path):
        self.dir = path
        self.policy = str(path / "gwbox.policy")
        self.m, self.s = os.openpty()
        tty.setraw(self.s)
        self.box = None

    def save_policy(self, text):
        """As `save` writes it (gwbox.store), so the box finds a checksummed policy."""
        from gwbox.store import Store
        Store(self.policy).save(text)

    def start(self, **kw):
        self.stop()
        kw.setdefault("console", True)
        self.box = MpBox(os.ttyname(self.s), self.policy, **kw)
        assert self.box.wait_event("boot", STEP_S) is not None, self.box.stderr
        return self.box

    def stop(self):
        if self.box is not None:
            self.box.stop()
            self.box = None

    def close(self):
        self.stop()
        os.close(self.m)
        os.close(self.s)

    def files(self):
        out = {}
        for f in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, f), "rb") as fh:
                out[f] = fh.read()
        return out

    def uart_bytes(self):
        os.set_blocking(self.m, False)
        try:
            return os.read(self.m, 4096)
        except BlockingIOError:
            return b""


@pytest.fixture
def dev(tmp_path):
    d = Device(tmp_path / "flash")
    (tmp_path / "flash").mkdir()
    try:
        yield d
    finally:
        d.close()


def gwbox(*argv, stdin=None, env=None):
    """`python -m gwbox_tools ...` in its own process group: (status, stdout + stderr)."""
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "host_tools"), os.path.join(ROOT, "firmware")]))
    e.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "gwbox_tools", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.PIPE, text=True, env=e, start_new_session=True)
    try:
        out, _ = proc.communicate(stdin, timeout=STEP_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode, out


def pwfile(tmp_path, pw=PASSWORD):
    f = tmp_path / "pw"
    f.write_text(pw + "\n")
    return str(f)


def no_secret(text):
    assert KEY not in text and PASSWORD not in text and "pbkdf2$" not in text, text


# --- config push / pull ----------------------------------------------------------------------------

def test_config_push_refuses_a_policy_with_errors_and_nothing_changes(dev, tmp_path):
    dev.save_policy(policy())
    box = dev.start()
    before = dev.files()
    bad = tmp_path / "bad.policy"
    bad.write_text(BAD)
    status, out = gwbox("config", "push", "--port", box.console_path, "--password-file", pwfile(tmp_path), str(bad))
    assert status == 2, out
    assert ("gwbox config: %s has 3 errors; nothing was sent to the box:\n" % bad) in out
    for err in BAD_ERRORS:
        assert "%s: %s" % (bad, err) in out
    # The box checks again itself, with the same line numbers, and changes nothing either.
    with DeviceConsole(box.console_path) as c:
        c.sync()
        c.login(PASSWORD)
        r = c.load(BAD)
        assert not r.ok and r.msg == "policy rejected (3 errors): nothing changed" and r.lines == BAD_ERRORS
        assert not c.command("save").ok
    assert dev.files() == before
    no_secret(out)


def test_config_push_of_a_good_policy_then_pull_with_secrets_masked(dev, tmp_path):
    dev.save_policy(policy())
    box = dev.start()
    good = tmp_path / "branch-8.policy"
    good.write_text(policy("branch-8"))
    status, out = gwbox("config", "push", "--port", box.console_path, "--password-file", pwfile(tmp_path), str(good))
    assert status == 0, out
    assert "the box accepted %s (checksum " % good in out and "and saved it" in out
    files = dev.files()
    assert files["gwbox.policy"].startswith(b"#gwbox-policy ") and b"Identity = branch-8" in files["gwbox.policy"]
    assert b"Identity = branch-7" in files["gwbox.policy.bak"] and "gwbox.policy.tmp" not in files
    status, out = gwbox("config", "pull", "--port", box.console_path)
    assert status == 0, out
    assert "Identity = branch-8" in out and "ConsolePassword = <secret>" in out and "143.1.0.64 = <secret>" in out
    assert out.startswith("# gwbox config pull from %s: stored in " % box.console_path)
    no_secret(out)
    # --reboot: the box restarts on the same files and the banner names the new policy.
    box.wait_event("console", 1)
    n = box.count()
    status, out = gwbox("config", "push", "--port", box.console_path, "--password-file", pwfile(tmp_path),
                        "--reboot", str(good))
    assert status == 0 and "the box reboots with it" in out, out
    banner = box.wait_event(lambda e: e["event"] == "boot" and e["boot"] == 2, STEP_S, n)
    assert banner is not None and banner["identity"] == "branch-8" and banner["safe"] is None, box.stderr
    no_secret(json.dumps(box.events))


def test_config_push_with_a_wrong_password_is_refused_by_the_box(dev, tmp_path):
    dev.save_policy(policy())
    box = dev.start()
    good = tmp_path / "good.policy"
    good.write_text(policy("branch-9"))
    before = dev.files()
    status, out = gwbox("config", "push", "--port", box.console_path, "--password-file", pwfile(tmp_path, "nope nope"),
                        str(good))
    assert status == 1 and "login refused by the box: wrong password: next try in 1 s" in out, out
    assert dev.files() == before


def test_config_check_here(tmp_path):
    bad = tmp_path / "bad.policy"
    bad.write_text(BAD)
    status, out = gwbox("config", "check", str(bad))
    assert status == 2 and out.splitlines()[0] == "gwbox config: %s has 3 errors:" % bad, out
    assert out.splitlines()[1:] == ["%s: %s" % (bad, e) for e in BAD_ERRORS]
    good = tmp_path / "good.policy"
    good.write_text(policy(password=None))
    status, out = gwbox("config", "check", str(good))
    assert status == 0 and "good.policy: valid: identity branch-7, 2 gateways, 1 tunnel, checksum " in out, out
    assert "sets no ConsolePassword" in out
    status, out = gwbox("config", "check", str(tmp_path / "missing.policy"))
    assert status == 2 and "does not exist" in out


def test_console_password_makes_a_hash_the_firmware_accepts(tmp_path):
    status, out = gwbox("console-password", "--stdin", stdin="a long passphrase\n")
    assert status == 0 and out.startswith("ConsolePassword = pbkdf2$4000$"), out
    assert "a long passphrase" not in out
    from gwbox.console import pbkdf2
    from gwbox.policy import parse
    p = parse(policy(password=None).replace("StatusInterval = 1\n", "StatusInterval = 1\n" + out))
    n, salt, h = p.console_password
    assert pbkdf2(b"a long passphrase", salt, n) == h
    status, out = gwbox("console-password", "--stdin", stdin="short\n")
    assert status == 2 and "shorter than 8" in out


# --- power cut during save ----------------------------------------------------------------------

def test_power_cut_at_every_step_of_save_keeps_the_last_good_policy(dev, tmp_path):
    old, new = policy("branch-old"), policy("branch-new")
    step = 0
    while True:
        step += 1
        dev.save_policy(old)
        for f in ("gwbox.policy.bak", "gwbox.policy.tmp", "gwbox.boot"):
            if os.path.exists(os.path.join(dev.dir, f)):
                os.unlink(os.path.join(dev.dir, f))
        box = dev.start(env={"GWBOX_POWER_CUT_AT": str(step)})
        with DeviceConsole(box.console_path, timeout=20) as c:
            c.sync()
            c.login(PASSWORD)
            assert c.load(new).ok
            c.write_line("save")
            cut = box.wait_event("power_cut", 10)
            if cut is None:  # the save completed: every step has had its cut
                assert c.wait_reply("save").ok
                break
        assert box.wait_event(lambda e: False, 10) is None and box.exit_code == 87, box.stderr
        box = dev.start()  # power back: the same files
        banner = box.events[0]
        assert banner["event"] == "boot" and banner["safe"] is None, banner
        assert banner["identity"] == "branch-old", (step, banner)  # not saved: the last good one
        if banner["policy_file"].endswith(".bak"):
            assert banner["notes"][-1] == "using the last good policy, %s.bak" % dev.policy
    assert step >= 7  # open, write, write, flush, close, rename, rename: each was cut once
    box = dev.start()
    assert box.events[0]["identity"] == "branch-new" and box.events[0]["notes"] == []


# --- safe mode -----------------------------------------------------------------------------------

def test_safe_mode_from_a_key_at_boot_stops_the_box_and_reaches_the_repl(dev, tmp_path):
    dev.save_policy(policy())
    dev.box = box = MpBox(os.ttyname(dev.s), dev.policy, console=True, safe_wait_ms=3000)
    with DeviceConsole(box.console_path) as c:
        c.ser.write(b" ")  # any key within the window
        c.ser.flush()
        safe = box.wait_event("safe_mode", STEP_S)
        assert safe is not None and safe["reason"] == "console key at boot", box.events
        assert box.events[0]["safe_key_ms"] == 3000
        time.sleep(1)
        assert dev.uart_bytes() == b""  # the box never started: not even ATZ on the modem line
        c.sync()
        st = c.status()
        assert st["msg"] == "safe mode: console key at boot" and st["status"]["line"] == "off"
        assert c.command("repl").msg == "login first"
        c.login(PASSWORD)
        assert c.command("repl").ok
    assert box.wait_event(lambda e: False, 5) is None and box.exit_code == 0  # main.py returned: the REPL's turn


def test_safe_mode_from_the_safe_button(dev):
    dev.save_policy(policy())
    box = dev.start(safe_button=True)
    assert box.wait_event("safe_mode", 5)["reason"] == "safe button held at boot"


def test_no_policy_boots_into_safe_mode_where_a_first_policy_can_be_pushed(dev, tmp_path):
    box = dev.start()
    assert box.events[0]["safe"] == "no policy can be loaded"
    assert box.events[0]["notes"][0] == "%s: missing" % dev.policy
    status, out = gwbox("config", "pull", "--port", box.console_path)
    assert status == 1 and "the box says: no policy is stored" in out, out
    first = tmp_path / "first.policy"
    first.write_text(policy("branch-1"))
    status, out = gwbox("config", "push", "--port", box.console_path, "--reboot", str(first))
    assert status == 0, out  # no password to ask for: there is no policy yet
    banner = box.wait_event(lambda e: e["event"] == "boot" and e["boot"] == 2, STEP_S)
    assert banner["identity"] == "branch-1" and banner["safe"] is None, box.events


def test_a_crash_loop_ends_in_safe_mode(dev):
    dev.save_policy(policy())
    # The modem UART cannot be opened: every boot crashes before the box runs, and resets.
    box = MpBox(str(dev.dir / "no-such-uart"), dev.policy, console=True)
    dev.box = box
    safe = box.wait_event("safe_mode", STEP_S)
    assert safe is not None and safe["reason"] == "3 boots in a row ended within a minute", box.events
    assert [e["error"] for e in box.events if e["event"] == "crash"] == ["OSError"] * 3
    assert box.boots == 4 and safe["retry_s"] == 600


# --- the password's rate limit ---------------------------------------------------------------------

def test_wrong_console_passwords_are_rate_limited_with_a_doubling_delay(dev):
    dev.save_policy(policy())
    box = dev.start()
    with DeviceConsole(box.console_path) as c:
        c.sync()
        t = []
        for want in (1, 2, 4):
            r = c.command("login wrong password")
            assert not r.ok and r.final["wait_s"] == want, r.final
            r = c.command("login " + PASSWORD)  # refused unchecked while locked
            assert not r.ok and r.msg.startswith("too many wrong passwords: try again in "), r.final
            t.append(time.monotonic())
            time.sleep(want + 0.2)
        assert c.command("login " + PASSWORD).ok
        assert c.command("logout").ok
    no_secret(json.dumps(box.events))


# --- monitor and the interactive console ------------------------------------------------------------

def test_monitor_prints_plain_status_lines_off_a_terminal(dev):
    dev.save_policy(policy())
    box = dev.start()
    status, out = gwbox("monitor", "--port", box.console_path, "--count", "3", "--interval", "0.5")
    assert status == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith("uptime=")]
    assert len(lines) == 3 and "line=" in lines[0] and "outbox=0" in lines[0] and "heap_free=" in lines[0], out


def test_console_terminal_runs_commands_and_shows_replies(dev):
    dev.save_policy(policy())
    box = dev.start()
    status, out = gwbox("console", "--port", box.console_path, "--quiet", stdin="status\nhelp\nshow policy\n")
    assert status == 0, out
    assert "ok: running" in out and "Identity = branch-7" in out
    assert "  load  (then the policy, then a line holding only '.')" in out
    no_secret(out)
    # a command the box refuses: the session's status says so, for a script
    status, out = gwbox("console", "--port", box.console_path, "--quiet", stdin="status\nfrobnicate\n")
    assert status == 1 and "error: unknown command: type help" in out, out
    assert "gwbox console: the box refused 1 of 2 commands (error: above)" in out
    status, out = gwbox("console", "--port", box.console_path, "--quiet", stdin="set Heartbeat NONE\n")
    assert status == 1 and "error: login first" in out, out


def test_show_log_prints_readable_lines(dev):
    dev.save_policy(policy())
    box = dev.start()
    e = box.wait_event(lambda e: e["event"] not in ("boot", "status", "console"), STEP_S)  # the modem, say
    assert e is not None, box.stderr
    status, out = gwbox("console", "--port", box.console_path, "--quiet", stdin="show log\n")
    assert status == 0, out
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  ")]
    assert lines and all(not ln.startswith("{") for ln in lines), out
    assert lines[0].split()[1:3] == ["s", "boot"] and "identity=branch-7" in lines[0], out
    t = "%d.%03d s %s " % (e["t_ms"] // 1000, e["t_ms"] % 1000, e["event"])  # seconds since boot, name, key=value
    assert any(ln.startswith(t) for ln in lines), (t, out)


@pytest.mark.parametrize("name,binary,scale", mpy_build.interpreters(), ids=[i[0] for i in mpy_build.interpreters()])
def test_config_push_to_a_box_at_a_board_heap(dev, tmp_path, name, binary, scale):
    """The firmware at a board's heap (96K on the 32-bit interpreter where there is one, 1.4
    times that on the 64-bit one): a push works, in place or, when the running box has no room
    for the policy parser, through safe mode (gwbox config push does both)."""
    dev.save_policy(policy())
    box = dev.start(micropython=binary, heap=mpy_build.scaled_heap("96K", scale))
    good = tmp_path / "branch-32.policy"
    good.write_text(policy("branch-32"))
    status, out = gwbox("config", "push", "--port", box.console_path, "--password-file", pwfile(tmp_path),
                        "--reboot", str(good))
    assert status == 0, out
    banner = box.wait_event(lambda e: e["event"] == "boot" and e["identity"] == "branch-32" and e["safe"] is None,
                            STEP_S)
    assert banner is not None, (out, box.events)
    assert not [e for e in box.events if e["event"] in ("crash", "console_error")], box.events


# --- docs/console.md: the table of bad configurations is what the box prints ------------------------

def doc_cases():
    text = open(os.path.join(ROOT, "docs", "console.md"), encoding="utf-8").read()
    section = text.split("## Bad configurations and what the box prints", 1)[1]
    base = section.split("```\n", 2)[1]
    rows = []
    for ln in section.split("| lines 9–10 | what the box prints |", 1)[1].splitlines()[2:]:
        if not ln.startswith("| "):
            break
        case, errors = ln[2:-2].split(" | ")
        rows.append(("\n".join(c.strip().strip("`") for c in case.split("⏎")),
                     [e.strip("`") for e in errors.split("<br>")]))
    return base, rows


def test_the_bad_configurations_table_of_docs_console_md_is_what_the_box_prints(dev):
    base, rows = doc_cases()
    assert len(rows) >= 20 and base.startswith("[GENERAL]\nDial = ras\n")
    dev.save_policy(policy())
    box = dev.start()
    with DeviceConsole(box.console_path) as c:
        c.sync()
        c.login(PASSWORD)
        for case, errors in rows:
            r = c.load(base + case + "\n")
            assert not r.ok and r.lines == errors, (case, r.lines)
            assert r.msg == "policy rejected (%d error%s): nothing changed" % (len(errors), "" if len(errors) == 1
                                                                               else "s")
