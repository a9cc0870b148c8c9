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


def start(*argv):
    return subprocess.Popen([sys.executable, "-m", "gwbox_tools", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)


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


def test_emulate_runs_a_box_whose_console_answers_and_ctrl_c_stops_everything():
    proc = start("emulate")
    try:
        lines = read_until(proc, lambda ln: ln.startswith("  modem line"), 90)
        port = [ln.split()[2] for ln in lines if ln.startswith("  box console")][0]
        password = [ln.split()[1] for ln in lines if ln.startswith("  password")][0]
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
