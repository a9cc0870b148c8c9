"""The `gwbox` subcommands around a running box: --help everywhere; `gwbox gateway` on TCP;
`gwbox emulate` up, usable (its console answers), and gone after Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gwbox_tools import cli
from gwbox_tools.devconsole import DeviceConsole

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "host_tools"), os.path.join(ROOT, "firmware")]))

pytestmark = pytest.mark.timeout(180)


def start(*argv, sigint=signal.SIG_DFL):
    """The command in a session of its own. SIGINT as `sigint` there (a child inherits only
    an ignored one): SIG_DFL as from a terminal, SIG_IGN as in a job started with `&` from a
    script (how CI may run `make test`), whatever this test process was given."""
    return subprocess.Popen([sys.executable, "-m", "gwbox_tools", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))


def stop(proc, sig=signal.SIGINT):
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return out


def descendants(pid):
    """Every process started under `pid` (from /proc), whatever session it put itself in."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_until(proc, pred, timeout):
    lines = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if pred(lines[-1]):
            return lines
    raise AssertionError("\n".join(lines))


@pytest.mark.parametrize("argv", [[], ["config"], ["config", "check"], ["config", "push"], ["config", "pull"],
                                  ["console"], ["monitor"], ["console-password"], ["gateway"], ["emulate"],
                                  ["demo"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gwbox") and ("Example" in out or not argv or argv == ["config"])


def test_gateway_on_tcp_logs_json_and_stops_on_ctrl_c(tmp_path):
    psk = tmp_path / "boxes.psk"
    psk.write_text("branch-7 hex:%s\n" % ("ab" * 32))
    proc = start("gateway", "--psk-file", str(psk), "--tcp", "127.0.0.1:0", "--address", "143.1.0.63")
    try:
        lines = read_until(proc, lambda ln: "gateway_ready" in ln, 30)
        ready = json.loads(lines[-1])
        assert ready["address"] == "143.1.0.63" and ready["tcp_port"] > 0 and ready["boxes"] == 1
    finally:
        out = stop(proc)
    assert "gateway_stopped" in out and "ab" * 32 not in out


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["terminal", "background"])
def test_emulate_runs_a_box_whose_console_answers_and_ctrl_c_stops_everything(sigint):
    proc = start("emulate", sigint=sigint)
    try:
        lines = read_until(proc, lambda ln: ln.startswith("  modem line"), 90)
        port = [ln.split()[2] for ln in lines if ln.startswith("  box console")][0]
        password = [ln.split()[1] for ln in lines if ln.startswith("  password")][0]
        assert "whole firmware under 32-bit MicroPython, a 110K heap as on an ESP32" in lines[0] or \
            "whole firmware under 64-bit MicroPython, a 156K heap (110K on a 32-bit board" in lines[0], lines[0]
        # after the banner: the call, then the box connected through its preferred gateway
        more = read_until(proc, lambda ln: "the box is connected" in ln, 90)
        assert any(" box link_up " in ln for ln in more), more
        assert any(" box gateway_in_use " in ln and "gateway=143.1.0.64" in ln for ln in more), more
        assert more[-1].endswith("the box is connected: gateway 143.1.0.64 carries its LAN traffic"), more
        with DeviceConsole(port) as c:
            c.sync()
            c.login(password)
            assert c.command("show policy").ok
            assert c.command("logout").ok
        started = descendants(proc.pid)
        assert len(started) >= 5  # the box, the access server, three gateways
    finally:
        out = stop(proc)
    assert "gwbox emulate: stopped; everything it started is gone" in out
    end = time.monotonic() + 10
    while [p for p in started if alive(p)] and time.monotonic() < end:
        time.sleep(0.2)
    assert [p for p in started if alive(p)] == []


# --- what a new user hit (issue 19): clear refusals, exit 2, no traceback -----------------------

def gwbox(argv, capsys, stdin=None, monkeypatch=None):
    """cli.main in this process: (status, stdout, stderr)."""
    if stdin is not None:
        import io
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


@pytest.mark.parametrize("address, says", [
    ("999.1.1.1", "--address 999.1.1.1 is not an IPv4 address: give the gateway's IPv4 address (four numbers 0-255"),
    ("gw1.example.com", "--address gw1.example.com is a host name: give the gateway's IPv4 address"),
    ("143.1.0", "--address 143.1.0 is not an IPv4 address"),
])
def test_gateway_refuses_a_bad_address_with_exit_2(address, says, tmp_path, capsys):
    psk = tmp_path / "boxes.psk"
    psk.write_text("branch-7 hex:%s\n" % ("ab" * 32))
    status, out, err = gwbox(["gateway", "--psk-file", str(psk), "--tcp", "127.0.0.1:0", "--address", address], capsys)
    assert status == 2 and err.startswith("gwbox gateway: " + says), err


def test_gateway_refuses_a_bad_psk_file_or_tcp_port_with_exit_2(tmp_path, capsys):
    psk = tmp_path / "boxes.psk"
    psk.write_text("branch-7\n")
    status, out, err = gwbox(["gateway", "--psk-file", str(psk), "--tcp", "127.0.0.1:0"], capsys)
    assert status == 2 and "line 1: expected '<box identity> <key>', found 1 field" in err, err
    assert "the gateway did not start (its message is above)" in err
    psk.write_text("branch-7 hex:%s\n" % ("ab" * 32))
    status, out, err = gwbox(["gateway", "--psk-file", str(psk), "--tcp", "127.0.0.1:x"], capsys)
    assert status == 2 and err.startswith("gwbox gateway: --tcp: expected HOST:PORT, got '127.0.0.1:x'"), err


@pytest.mark.parametrize("iterations", ["0", "-3", "5", "999", "1000001", "2000000"])
def test_console_password_refuses_iterations_the_policy_would_reject(iterations, capsys, monkeypatch):
    status, out, err = gwbox(["console-password", "--stdin", "--iterations", iterations], capsys,
                             stdin="a long passphrase\n", monkeypatch=monkeypatch)
    assert status == 2 and out == "", out  # no line that `config check` would then refuse
    assert err == ("gwbox console-password: --iterations %s: must be from 1,000 to 1,000,000, the range a policy's "
                   "ConsolePassword takes (default 4000)\n" % iterations), err


@pytest.mark.parametrize("iterations", ["1000", "1000000"])
def test_console_password_at_either_end_of_the_range_is_taken_by_the_parser(iterations, capsys, monkeypatch):
    from gwbox.policy import parse
    from gwbox.policyvalue import KDF_ITERATIONS
    assert KDF_ITERATIONS == (1000, 1000000)
    status, out, err = gwbox(["console-password", "--stdin", "--iterations", iterations], capsys,
                             stdin="a long passphrase\n", monkeypatch=monkeypatch)
    assert status == 0 and out.startswith("ConsolePassword = pbkdf2$%s$" % iterations), out
    p = parse("[GENERAL]\nDial = ras\n%s[CLUSTER]\nCluster1 = 143.1.0.64\n[TUNNEL]\nTunnel1 = 10.0.0.1 Cluster 1\n"
              "[KEYS]\nDefault = hex:%s\n" % (out, "5a" * 32))
    assert p.console_password[0] == int(iterations)


EXAMPLE = os.path.join(ROOT, "boards", "cluster-example.policy")


def example_text():
    with open(EXAMPLE, encoding="utf-8") as f:
        return f.read()


def own_keys(text):
    """The example with fresh keys in place of its placeholders."""
    import re
    return re.sub(r"= hex:[0-9a-f]{64}", lambda m: "= hex:" + os.urandom(32).hex(), text)


def padded(size):
    """The example (own keys) padded with comment lines to exactly `size` bytes as sent."""
    text = own_keys(example_text())
    n = len(text.encode())  # the example's drawing is not ASCII
    while n < size:
        pad = "#" * min(200, size - n - 1) + "\n"
        text += pad
        n += len(pad)
    assert len(text.encode()) == size
    return text


def test_config_check_holds_a_policy_to_the_box_limit_the_store_uses(tmp_path, capsys):
    from gwbox import POLICY_MAX
    from gwbox.store import Store, StoreError
    f = tmp_path / "edge.policy"
    f.write_text(padded(POLICY_MAX))
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    assert status == 0 and "edge.policy: valid" in out, err
    Store(str(tmp_path / "gwbox.policy")).save(f.read_text())  # the box's store takes the same
    f.write_text(padded(POLICY_MAX + 1))
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    lines = f.read_text().split("\n")
    assert status == 2 and "%s: line %d: the policy is 12,289 bytes, more than the 12,288 a box takes (it passes " \
                           "the limit on this line): shorten it; comments count too" % (f, len(lines) - 1) in err, err
    try:
        Store(str(tmp_path / "gwbox.policy")).save(f.read_text())
        raise AssertionError("the store took what config check refused")
    except StoreError:
        pass


@pytest.mark.parametrize("size, says", [(200 * 1024, "204,800"), (10 * 1024 * 1024, "10,485,760")])
def test_config_check_and_push_refuse_a_huge_policy_before_anything_is_sent(size, says, tmp_path, capsys):
    f = tmp_path / "huge.policy"
    f.write_text(padded(size) if size < 300000 else "#" * (size - 1) + "\n")
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    assert status == 2 and err == "gwbox config: %s is %s bytes: a box takes a policy of at most 12,288 bytes " \
                                  "(docs/policy.md)\n" % (f, says), err
    # push checks first: the port (which does not exist) is never even looked at
    status, out, err = gwbox(["config", "push", "--port", str(tmp_path / "no-such-port"), str(f)], capsys)
    assert status == 2 and "is %s bytes" % says in err and "no-such-port" not in err, err


def test_config_check_names_a_bom_cr_line_ends_a_long_line_and_a_huge_number(tmp_path, capsys):
    text = own_keys(example_text())
    f = tmp_path / "p.policy"
    f.write_bytes(b"\xef\xbb\xbf" + text.encode())
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    assert status == 2 and err.splitlines()[1:] == [
        "%s: line 1: the file starts with a UTF-8 byte-order mark (BOM), which the box does not take: save it as "
        "UTF-8 without BOM" % f], err
    f.write_bytes(text.replace("\n", "\r").encode())
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    assert status == 2 and err.splitlines()[1:] == [
        "%s: line 1: the line ends with CR alone (classic Mac OS line ends), and %d more lines do: the box reads "
        "LF or CR LF line ends; save the file with those" % (f, text.count("\n") - 1)], err
    f.write_bytes(text.replace("\n", "\r\n").encode())  # CR LF is fine
    assert gwbox(["config", "check", str(f)], capsys)[0] == 0
    f.write_text(text.replace("HeartbeatRetries = 5", "HeartbeatRetries = " + "9" * 5001))
    n = text.split("\n").index([ln for ln in text.split("\n") if ln.startswith("HeartbeatRetries")][0]) + 1
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    assert status == 2 and err.splitlines()[1:] == [
        "%s: line %d: the line is %d bytes: the box's console takes lines of at most 256" % (
            f, n, len("HeartbeatRetries = ") + 5001 + len(text.split("\n")[n - 1]) - len("HeartbeatRetries = 5")),
        "%s: line %d: [GENERAL] HeartbeatRetries: must be from 1 to 20, not a number of 5001 digits" % (f, n)], err


def test_config_check_warns_of_the_example_placeholder_keys(tmp_path, capsys):
    status, out, err = gwbox(["config", "check", EXAMPLE], capsys)
    assert status == 0 and "valid" in out
    assert err.splitlines() == [
        "warning: %s: line %d: [KEYS] %s: this is the placeholder key of boards/cluster-example.policy, which anyone "
        "can read: replace it with the output of `gwbox psk new` (and give the gateways the same key)" % (EXAMPLE, n, k)
        for n, k in ((43, "Cluster1"), (44, "143.1.1.160"))], err
    f = tmp_path / "mine.policy"
    f.write_text(own_keys(example_text()))
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    assert status == 0 and err == "", err


def test_config_check_of_a_pulled_policy_says_to_put_the_keys_back(tmp_path, capsys):
    from gwbox.policy import parse
    pulled = parse(own_keys(example_text())).masked()  # what `config pull` writes: <secret> for every key
    f = tmp_path / "pulled.policy"
    f.write_text("# gwbox config pull from /dev/ttyUSB0: stored in gwbox.policy\n" + pulled)
    status, out, err = gwbox(["config", "check", str(f)], capsys)
    lines = err.splitlines()[1:]
    assert status == 2 and len(lines) == 4, err  # one per gateway's key
    for ln in lines:
        assert ln.endswith("<secret> is a masked key (from gwbox config pull or show policy): put the key back"), ln
