"""The modem emulator end to end: the box side is a real pty opened with pyserial, gateways
are real loopback TCP servers (a thread each) or the emulator's own ptys, faults go through
the control socket. Timing checks are lower bounds only: the machine is shared.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import serial

from gwbox_tools.line_shaper import FLAG
from gwbox_tools.modem_control import send_control
from gwbox_tools.modem_emu import ModemEmulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUARD_S12 = 10          # 0.2 s escape guard time in the tests
GUARD = GUARD_S12 / 50.0


# ---------------------------------------------------------------- helpers

def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_leaks():
    """Every test leaves no thread and no fd behind."""
    threads, fds = set(threading.enumerate()), open_fds()
    yield
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and (
            set(threading.enumerate()) - threads or open_fds() > fds):
        time.sleep(0.02)
    assert set(threading.enumerate()) - threads == set()
    assert open_fds() <= fds


class TcpGateway:
    """A loopback TCP server standing for a head-office gateway; accepts in a thread."""

    def __init__(self):
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        self._conns = []
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._accept_loop, name="test-gateway")
        self._thread.start()

    def _accept_loop(self):
        while True:
            ready, _, _ = select.select([self.srv, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            conn, _ = self.srv.accept()
            with self._cv:
                self._conns.append(conn)
                self._cv.notify_all()

    def accept(self, n=1, timeout=3.0):
        """The n-th connection the gateway has received (1-based)."""
        with self._cv:
            assert self._cv.wait_for(lambda: len(self._conns) >= n, timeout), "no call arrived"
            return self._conns[n - 1]

    @property
    def calls(self):
        with self._cv:
            return len(self._conns)

    def close(self):
        os.write(self._wake_w, b"x")
        self._thread.join(5.0)
        for c in self._conns:
            c.close()
        self.srv.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def recv_n(conn, n, timeout=3.0):
    conn.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while len(buf) < n and time.monotonic() < deadline:
        try:
            chunk = conn.recv(n - len(buf))
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def recv_for(conn, seconds):
    """Everything the connection yields within `seconds` (b"" if nothing)."""
    conn.settimeout(0.05)
    buf = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = conn.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
    return buf


def is_closed(conn, timeout=2.0):
    conn.settimeout(timeout)
    try:
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def read_until(port, token, timeout=3.0):
    """Bytes from the serial port up to and including `token`; fails on timeout."""
    buf = b""
    deadline = time.monotonic() + timeout
    while token not in buf:
        left = deadline - time.monotonic()
        assert left > 0, "waited %.1fs for %r, got %r" % (timeout, token, buf)
        port.timeout = min(left, 0.2)
        buf += port.read(1)                 # one at a time: never read past the token
    return buf


def read_for(port, seconds):
    buf = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        port.timeout = max(0.01, min(0.1, deadline - time.monotonic()))
        buf += port.read(max(1, port.in_waiting))
    return buf


@pytest.fixture
def gateway():
    gw = TcpGateway()
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture
def make_emu():
    made = []

    def make(**kw):
        kw.setdefault("connect_delay_ms", 50)
        kw.setdefault("fail_delay_ms", 50)
        kw.setdefault("control", "127.0.0.1:0")
        kw.setdefault("seed", 1)
        emu = ModemEmulator(**kw)
        made.append(emu)
        return emu.start()
    try:
        yield make
    finally:
        for emu in made:
            emu.close()


@pytest.fixture
def open_port():
    ports = []

    def opener(path, baud=9600):
        p = serial.Serial(path, baud, timeout=0.2)
        ports.append(p)
        return p
    try:
        yield opener
    finally:
        for p in ports:
            p.close()


@pytest.fixture
def setup(gateway, make_emu, open_port):
    """(emulator with gw1 -> the TCP gateway, the box's serial port, the gateway)."""
    emu = make_emu(gateways={"gw1": "tcp:127.0.0.1:%d" % gateway.port})
    box = open_port(emu.box_path)
    return emu, box, gateway


def dial(box, target=b"gw1"):
    """Echo off, short guard time, dial; returns the result code as the box saw it."""
    box.write(b"ATE0S12=%d\r" % GUARD_S12)
    read_until(box, b"OK\r\n")
    box.write(b"ATD%s\r" % target)
    return read_until(box, b"\r\n", 3.0) + read_until(box, b"\r\n", 3.0)


def connected(setup_tuple, target=b"gw1"):
    emu, box, gw = setup_tuple
    before = gw.calls
    assert dial(box, target) == b"\r\nCONNECT 9600\r\n"
    return gw.accept(before + 1)


def escape(box):
    time.sleep(GUARD * 1.5)
    box.write(b"+++")
    return read_until(box, b"OK\r\n", 3.0)


def ctl(emu, line):
    return send_control(emu.control_address, line)


# ---------------------------------------------------------------- AT commands

def test_at_answers_ok_with_echo(setup):
    emu, box, _ = setup
    box.write(b"AT\r")
    assert read_until(box, b"OK\r\n") == b"AT\r\r\nOK\r\n"
    box.write(b"noise before at\r")          # no AT: ignored, echoed only
    box.write(b"at\r")
    assert read_until(box, b"OK\r\n").endswith(b"at\r\r\nOK\r\n")


def test_echo_off_and_on(setup):
    emu, box, _ = setup
    box.write(b"ATE0\r")
    assert read_until(box, b"OK\r\n") == b"ATE0\r\r\nOK\r\n"
    box.write(b"AT\r")
    assert read_until(box, b"OK\r\n") == b"\r\nOK\r\n"
    box.write(b"ATE1\r")
    assert read_until(box, b"OK\r\n") == b"\r\nOK\r\n"
    box.write(b"AT\r")
    assert read_until(box, b"OK\r\n") == b"AT\r\r\nOK\r\n"


def test_verbose_numeric_and_quiet(setup):
    emu, box, _ = setup
    box.write(b"ATE0V0\r")
    assert read_until(box, b"\r0\r") == b"ATE0V0\r0\r"
    box.write(b"ATNONSENSE\r")
    assert read_until(box, b"\r") == b"4\r"
    box.write(b"ATQ1\r")
    assert read_for(box, 0.3) == b""
    box.write(b"ATQ0V1\r")
    assert read_until(box, b"OK\r\n") == b"\r\nOK\r\n"


def test_combined_line_and_s_registers(setup):
    emu, box, _ = setup
    box.write(b"ATE0V1Q0&C1&D2\r")
    assert read_until(box, b"OK\r\n") == b"ATE0V1Q0&C1&D2\r\r\nOK\r\n"
    box.write(b"ATS7=30S7?S12?\r")
    assert read_until(box, b"OK\r\n") == b"\r\n030\r\n\r\n050\r\n\r\nOK\r\n"
    box.write(b"ATI\r")
    assert b"GWBOX-EMU" in read_until(box, b"OK\r\n")


@pytest.mark.parametrize("line", [b"ATFOO", b"ATS99=1", b"ATE7", b"AT+CGMI", b"ATS12=300",
                                  b"AT&Z", b"ATO5"])
def test_unknown_or_bad_commands_answer_error(setup, line):
    emu, box, _ = setup
    box.write(b"ATE0\r")
    read_until(box, b"OK\r\n")
    box.write(line + b"\r")
    assert read_until(box, b"\r\n", 2.0) + read_until(box, b"\r\n", 2.0) == b"\r\nERROR\r\n"


def test_atz_restores_factory_settings(setup):
    emu, box, _ = setup
    box.write(b"ATE0V0\r")
    read_until(box, b"\r0\r")
    box.write(b"ATZ\r")
    assert read_until(box, b"OK\r\n") == b"\r\nOK\r\n"
    box.write(b"AT\r")
    assert read_until(box, b"OK\r\n") == b"AT\r\r\nOK\r\n"


# ---------------------------------------------------------------- dialing

def test_dial_connects_and_carries_bytes_both_ways(setup):
    emu, box, gw = setup
    box.write(b"ATDT gw1\r")
    assert read_until(box, b"CONNECT 9600\r\n") == b"ATDT gw1\r\r\nCONNECT 9600\r\n"
    conn = gw.accept()
    box.write(b"hello gateway")
    assert recv_n(conn, 13) == b"hello gateway"
    conn.sendall(b"hello box")
    assert read_until(box, b"hello box") == b"hello box"
    st = emu.status()
    assert st["mode"] == "data" and st["call"]["gateway"] == "gw1"
    assert st["counters"]["bytes_to_gw"] == 13 and st["counters"]["bytes_to_box"] == 9


def test_dial_numeric_connect_code(setup):
    emu, box, gw = setup
    box.write(b"ATE0V0DTgw1\r")                      # echoed: E0 acts after the line
    assert read_until(box, b"\r12\r") == b"ATE0V0DTgw1\r12\r"   # 12 = CONNECT 9600


def test_dial_string_modifiers_are_ignored(gateway, make_emu, open_port):
    emu = make_emu(gateways={"5551234": gateway.port})
    box = open_port(emu.box_path)
    assert dial(box, b"T 555-1234") == b"\r\nCONNECT 9600\r\n"
    escape(box)
    box.write(b"ATH\r")
    read_until(box, b"OK\r\n")
    assert dial(box, b"P9W555,1234") == b"\r\nNO ANSWER\r\n"   # 9 is part of the number
    assert dial(box, b"555W1234;") == b"\r\nCONNECT 9600\r\n"


def test_a_slash_repeats_last_line(setup):
    emu, box, _ = setup
    box.write(b"ATE0S7?\r")
    assert read_until(box, b"OK\r\n").endswith(b"\r\n050\r\n\r\nOK\r\n")
    box.write(b"A/")
    assert read_until(box, b"OK\r\n") == b"\r\n050\r\n\r\nOK\r\n"


def test_dial_unknown_target_no_answer(setup):
    emu, box, _ = setup
    assert dial(box, b"T5551234") == b"\r\nNO ANSWER\r\n"
    assert emu.status()["mode"] == "command"


def test_dial_refused_no_carrier(make_emu, open_port):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                       # nobody listens there now
    emu = make_emu(gateways={"gw1": "tcp:%d" % port})
    box = open_port(emu.box_path)
    assert dial(box) == b"\r\nNO CARRIER\r\n"


def test_dial_busy_and_no_dialtone(gateway, make_emu, open_port):
    emu = make_emu(gateways={"gw1": "tcp:127.0.0.1:%d,busy" % gateway.port})
    box = open_port(emu.box_path)
    assert dial(box) == b"\r\nBUSY\r\n"
    assert emu.set_no_dialtone(True)["ok"]
    assert dial(box) == b"\r\nNO DIALTONE\r\n"
    assert gateway.calls == 0


def test_keypress_aborts_dial(gateway, make_emu, open_port):
    emu = make_emu(gateways={"gw1": gateway.port}, connect_delay_ms=1500)
    box = open_port(emu.box_path)
    box.write(b"ATE0D gw1\r")
    assert read_until(box, b"ATE0D gw1\r") == b"ATE0D gw1\r"
    time.sleep(0.2)
    box.write(b"x")
    assert read_until(box, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
    assert gateway.calls <= 1


def test_ath_hangs_up_and_closes_gateway(setup):
    emu, box, gw = setup
    conn = connected(setup)
    escape(box)
    box.write(b"ATH\r")
    assert read_until(box, b"OK\r\n") == b"\r\nOK\r\n"
    assert is_closed(conn)
    assert emu.status()["mode"] == "command"
    box.write(b"ATO\r")                              # nothing to return to
    assert read_until(box, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"


def test_gateway_hangup_delivers_last_bytes_then_no_carrier(setup):
    emu, box, gw = setup
    conn = connected(setup)
    conn.sendall(b"goodbye")
    conn.shutdown(socket.SHUT_RDWR)
    assert read_until(box, b"NO CARRIER\r\n") == b"goodbye\r\nNO CARRIER\r\n"
    assert emu.status()["counters"]["carrier_losses"] == 1


def test_pty_gateway(make_emu, open_port):
    emu = make_emu(gateways={"gw2": "pty"})
    box = open_port(emu.box_path)
    far = open_port(emu.gateway_paths["gw2"])
    assert dial(box, b"gw2") == b"\r\nCONNECT 9600\r\n"
    box.write(b"to gateway")
    assert read_until(far, b"to gateway") == b"to gateway"
    far.write(b"to box")
    assert read_until(box, b"to box") == b"to box"


# ---------------------------------------------------------------- +++ escape

def test_escape_with_guard_time_then_ato_resumes(setup):
    emu, box, gw = setup
    conn = connected(setup)
    assert escape(box) == b"\r\nOK\r\n"
    assert emu.status()["mode"] == "online_command"
    assert not is_closed(conn, 0.1)                   # the call stays up
    box.write(b"AT\r")
    assert read_until(box, b"OK\r\n") == b"\r\nOK\r\n"
    box.write(b"ATO\r")
    assert read_until(box, b"CONNECT 9600\r\n") == b"\r\nCONNECT 9600\r\n"
    box.write(b"after ato")
    assert recv_n(conn, 9) == b"after ato"            # the +++ never reached the gateway


def test_fast_plus_inside_data_is_data(setup):
    emu, box, gw = setup
    conn = connected(setup)
    box.write(b"abc+++def")
    assert recv_n(conn, 9) == b"abc+++def"
    time.sleep(0.1)
    box.write(b"xyz")
    box.write(b"+++")                                 # no silence before it
    assert recv_n(conn, 6) == b"xyz+++"
    assert read_for(box, GUARD * 2) == b""
    assert emu.status()["mode"] == "data"


def test_plus_followed_by_data_within_guard_is_data(setup):
    emu, box, gw = setup
    conn = connected(setup)
    time.sleep(GUARD * 1.5)
    box.write(b"+++")
    time.sleep(GUARD / 4)
    box.write(b"x")
    assert recv_n(conn, 4) == b"+++x"
    assert read_for(box, GUARD * 2) == b""
    assert emu.status()["mode"] == "data"


# ---------------------------------------------------------------- line timing

def test_throttled_to_baud_rate(setup):
    emu, box, gw = setup
    conn = connected(setup)
    t0 = time.monotonic()
    box.write(b"t" * 960)                             # 960 bytes = 1 s at 9,600 baud 8N1
    assert recv_n(conn, 960, 10.0) == b"t" * 960
    assert time.monotonic() - t0 >= 0.9


def test_latency_each_way(gateway, make_emu, open_port):
    emu = make_emu(gateways={"gw1": gateway.port}, latency_ms=300)
    box = open_port(emu.box_path)
    assert dial(box).endswith(b"CONNECT 9600\r\n")
    conn = gateway.accept()
    t0 = time.monotonic()
    box.write(b"p")
    assert recv_n(conn, 1) == b"p"
    assert time.monotonic() - t0 >= 0.29
    assert ctl(emu, "latency 100")["ok"]
    t0 = time.monotonic()
    conn.sendall(b"q")
    assert read_until(box, b"q") == b"q"
    assert time.monotonic() - t0 >= 0.09


# ---------------------------------------------------------------- faults

def test_noise_reaches_the_box(setup):
    emu, box, gw = setup
    conn = connected(setup)
    r = ctl(emu, "noise 50")
    assert r["ok"] and r["bytes"] == 50
    got = read_for(box, 0.5)
    assert len(got) == 50
    assert recv_for(conn, 0.1) == b""                 # toward the box only
    assert emu.status()["faults_injected"]["noise_bytes"] == 50


def test_noise_without_a_call_is_refused(setup):
    emu, box, gw = setup
    assert ctl(emu, "noise 5")["ok"] is False


def test_bit_errors_change_bytes(setup):
    emu, box, gw = setup
    conn = connected(setup)
    assert ctl(emu, "baud 115200")["ok"]
    assert ctl(emu, "ber 0.01 box")["ok"]
    sent = bytes(range(256)) * 4
    conn.sendall(sent)
    got = b""
    deadline = time.monotonic() + 3
    while len(got) < len(sent) and time.monotonic() < deadline:
        got += read_for(box, 0.1)
    assert len(got) == len(sent)
    flipped = sum(bin(a ^ b).count("1") for a, b in zip(sent, got))
    assert flipped > 0
    assert flipped == emu.status()["faults_injected"]["bits_flipped"]
    assert ctl(emu, "ber 0")["ok"]
    conn.sendall(b"clean")
    assert read_until(box, b"clean") == b"clean"


def test_frame_loss_drops_whole_frames(setup):
    emu, box, gw = setup
    conn = connected(setup)
    assert ctl(emu, "baud 115200")["ok"]
    assert ctl(emu, "loss 0.5 gw")["ok"]
    flag = bytes((FLAG,))
    frames = [b"frame %02d payload" % i for i in range(40)]
    for f in frames:
        box.write(flag + f + flag)
    time.sleep(0.3)
    got = recv_for(conn, 0.5)
    kept = [f for f in got.split(flag) if f]
    assert set(kept) <= set(frames)                   # never a partial frame
    assert kept == sorted(kept)
    dropped = emu.status()["faults_injected"]["frames_dropped"]
    assert 0 < dropped < len(frames)
    assert len(kept) == len(frames) - dropped


def test_drop_gives_no_carrier_and_closes_gateway(setup):
    emu, box, gw = setup
    conn = connected(setup)
    assert ctl(emu, "drop")["ok"]
    assert read_until(box, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
    assert is_closed(conn)
    assert emu.status()["mode"] == "command"
    assert ctl(emu, "drop")["ok"] is False            # nothing left to drop


def test_drop_silent_ends_the_call_without_a_word(setup):
    emu, box, gw = setup
    conn = connected(setup)
    r = ctl(emu, "drop silent")
    assert r["ok"] and r["how"] == "silent"
    assert is_closed(conn)
    assert read_for(box, 0.3) == b""                  # no NO CARRIER: the box is not told
    assert emu.status()["mode"] == "command"
    box.write(b"AT\r")                                # but the modem is in command mode
    assert read_until(box, b"OK\r\n") == b"\r\nOK\r\n"


def test_drop_frame_ends_the_call_right_behind_the_next_frame_in_one_write(setup):
    emu, box, gw = setup
    conn = connected(setup)
    assert ctl(emu, "drop frame")["ok"]
    assert emu.status()["mode"] == "data"             # armed: the call is still up
    conn.sendall(b"\x7e\x7eframe\x7e\x7enext frame\x7e")  # a closing flag after "frame"
    got = read_until(box, b"NO CARRIER\r\n")
    assert got == b"\x7e\x7eframe\x7e\r\nNO CARRIER\r\n"  # the rest was on the line: lost
    assert is_closed(conn) and emu.status()["mode"] == "command"
    assert ctl(emu, "drop sideways")["ok"] is False


def test_line_noise_with_bytes_above_127_before_a_command_does_not_break_it(setup):
    # The box may write frames into a modem whose call just went: that noise sits in front of
    # its next command. 0xDF upper-cases to "SS" in Python: it once shifted ATD's index.
    emu, box, gw = setup
    box.write(b"ATE0\r")
    read_until(box, b"OK\r\n")
    box.write(b"\xdf\xdf~}noise ATDgw1\r")
    assert read_until(box, b"\r\n", 3.0) + read_until(box, b"\r\n", 3.0) == b"\r\nCONNECT 9600\r\n"
    assert gw.accept(1) is not None


def test_freeze_silences_gateway_and_thaw_restores(setup):
    emu, box, gw = setup
    conn = connected(setup)
    assert ctl(emu, "freeze gw1")["ok"]
    conn.sendall(b"lost reply")
    box.write(b"lost request")
    assert read_for(box, 0.4) == b""
    assert recv_for(conn, 0.1) == b""
    st = emu.status()
    assert st["mode"] == "data" and st["gateways"]["gw1"]["frozen"]
    assert st["faults_injected"]["frozen_discarded_bytes"] == 22
    assert not is_closed(conn, 0.1)
    assert ctl(emu, "thaw")["ok"]                     # no name: the gateway in call
    conn.sendall(b"back")
    assert read_until(box, b"back") == b"back"
    box.write(b"again")
    assert recv_n(conn, 5) == b"again"


def test_reboot_drops_call_and_gateway_is_down_for_a_while(setup):
    emu, box, gw = setup
    conn = connected(setup)
    r = ctl(emu, "reboot gw1 600")
    assert r["ok"] and r["call_dropped"]
    assert read_until(box, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
    assert is_closed(conn)
    box.write(b"ATD gw1\r")
    assert read_until(box, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
    time.sleep(0.6)
    box.write(b"ATD gw1\r")
    assert read_until(box, b"CONNECT 9600\r\n") == b"\r\nCONNECT 9600\r\n"
    assert gw.accept(2) is not None


def test_dead_gateway_refuses_calls_until_revived(setup):
    emu, box, gw = setup
    assert ctl(emu, "dead gw1")["ok"]
    assert dial(box) == b"\r\nNO CARRIER\r\n"
    assert gw.calls == 0
    assert ctl(emu, "revive gw1")["ok"]
    assert dial(box) == b"\r\nCONNECT 9600\r\n"


def test_control_socket_rejects_bad_commands(setup):
    emu, box, gw = setup
    assert ctl(emu, "frobnicate")["ok"] is False
    assert ctl(emu, "ber 2")["ok"] is False
    assert ctl(emu, "freeze nosuchgw")["ok"] is False
    assert ctl(emu, "noise x")["ok"] is False
    st = ctl(emu, "status")
    assert st["ok"] and st["box_path"] == emu.box_path
    assert ctl(emu, "help")["ok"]


# ---------------------------------------------------------------- CLI

def test_cli_runs_prints_json_and_stops_on_sigterm(gateway, open_port):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "host_tools"))
    cmd = [sys.executable, "-m", "gwbox_tools.modem_emu", "--baud", "9600",
           "--latency-ms", "20", "--connect-delay-ms", "50",
           "--gateway", "gw1=tcp:127.0.0.1:%d" % gateway.port, "--gateway", "gw2=pty",
           "--control", "127.0.0.1:0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        info = json.loads(proc.stdout.readline())
        assert os.path.exists(info["box"]) and set(info["gateways"]) == {"gw2"}
        box = open_port(info["box"])
        assert dial(box) == b"\r\nCONNECT 9600\r\n"
        ctl_run = subprocess.run(
            [sys.executable, "-m", "gwbox_tools.modem_emu", "ctl", info["control"], "drop"],
            env=env, capture_output=True, timeout=10)
        assert ctl_run.returncode == 0, ctl_run.stderr
        assert json.loads(ctl_run.stdout)["ok"] is True
        assert read_until(box, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
        box.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        host, port = info["control"].rsplit(":", 1)
        with pytest.raises(OSError):                   # control socket gone with it
            socket.create_connection((host, int(port)), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
