"""gwbox.start: boot from the stored policy to the box, or to safe mode (and why), the start-up
banner, the boot record, the policy parser gone before the box runs."""
# mp-heap: 256K  (the whole box is built here, with the parser loaded before it: more than one device heap)
import json
import sys

from consolerig import POLICY, PW_LINE
from fakefs import FakeFs
from fakeio import FakeUart
from gwbox.store import Store

P = "gwbox.policy"


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, id, mode=0, pull=None, value=None):
        self.id = id
        self.v = 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class Uart:
    def __init__(self, id, baudrate=9600, tx=None, rx=None, rxbuf=256):
        self.id = id
        self.baud = baudrate
        self.out = bytearray()

    def read(self):
        return None

    def write(self, data):
        self.out.extend(data)


class Wdt:
    def __init__(self, timeout=0):
        self.timeout = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1


class Machine:
    def __init__(self):
        self.Pin = Pin
        self.UART = Uart
        self.WDT = Wdt
        self.resets = 0

    def reset(self):
        self.resets += 1


class Board:
    BOARD = "test"
    NAME = "box"
    POLICY = P
    UART_ID = 2
    BAUD = 9600
    TX = 17
    RX = 16
    RXBUF = 1024
    DCD = None
    DTR = 5
    LED = 2
    WDT_MS = 30000
    SAFE_WAIT_MS = 0


class Clock:
    """Virtual time that moves on by itself at each reading (the boot's safe-key window waits on it)."""

    def __init__(self, step=0):
        self.t = 1000
        self.step = step

    def __call__(self):
        self.t += self.step
        return self.t


def boot(disk=None, board=None, console=None):
    from gwbox.start import boot as start
    lines = []
    fs = FakeFs(disk)
    m = Machine()
    clock = Clock(100 if board is not None and board.SAFE_WAIT_MS else 0)
    port = start(board or Board(), m, log=lines.append, fs=fs, console=console or FakeUart(), clock=clock)
    clock.step = 0
    return port, [json.loads(x) for x in lines], fs, m


def saved(*texts):
    fs = FakeFs()
    for t in texts:
        Store(P, fs).save(t)
    return fs.disk


def test_normal_boot_runs_the_box_with_a_banner_and_no_parser_left():
    port, evs, fs, m = boot(saved(POLICY))
    assert port.box is not None and port.safe is None and port.wdt is not None and port.wdt.timeout == 30000
    b = evs[0]
    assert b["event"] == "boot" and b["t_ms"] == 0
    assert b["version"] and b["board"] == "test" and b["identity"] == "branch-7"
    assert b["gateways"] == ["143.1.0.64", "143.1.1.157"] and len(b["policy"]) == 16
    assert b["policy_file"] == P and b["notes"] == [] and b["boots"] == 1 and b["safe"] is None
    assert "5a5a5a5a" not in json.dumps(evs) and "pbkdf2" not in json.dumps(evs)
    assert "gwbox.policy" not in sys.modules and "gwbox.start" in sys.modules
    assert "gwbox.policyvalue" not in sys.modules
    assert port.password[0] == 1000 and len(port.password[2]) == 32
    assert Store(P, fs).boot_record() == (1, False)
    assert port.uart.id == 2 and port.dtr.value() == 1 and port.stable_ms == 60000


def test_only_a_board_with_heap_to_spare_makes_a_failover_s_key_and_code_ahead():
    port, _evs, _fs, _m = boot(saved(POLICY))
    assert port.box.endpoint.lean  # Board has no AHEAD: an ESP32-sized heap

    class Roomy(Board):
        AHEAD = True
    port, _evs, _fs, _m = boot(saved(POLICY), Roomy())
    assert not port.box.endpoint.lean


def test_boot_renders_the_masked_policy_for_show_policy_while_the_parser_is_loaded():
    port, evs, fs, m = boot(saved(POLICY))
    text, where, checksum = port.shown
    assert where == P and checksum == evs[0]["policy"]
    assert "Identity = branch-7" in text and "ConsolePassword = <secret>" in text
    assert "5a5a5a5a" not in text and "pbkdf2" not in text


def test_the_boot_counts_as_good_after_a_minute():
    port, evs, fs, m = boot(saved(POLICY))
    port.start()
    for _ in range(3100):
        port.step()
        port.clock.t += 20
    assert Store(P, fs).boot_record() == (0, False) and port.wdt.fed > 3000


def test_no_policy_is_safe_mode_and_says_why():
    port, evs, fs, m = boot()
    assert port.box is None and port.wdt is None
    assert port.safe == "no policy can be loaded"
    assert evs[0]["notes"][-1].startswith("no policy can be loaded")
    assert evs[1]["event"] == "safe_mode" and evs[1]["reason"] == "no policy can be loaded"
    assert port.password is None


def test_a_corrupt_policy_falls_back_to_the_last_good_and_the_banner_says_so():
    disk = saved(POLICY, POLICY.replace("branch-7", "branch-8"))
    disk[P] = disk[P][:-10]
    port, evs, fs, m = boot(disk)
    assert port.box is not None and evs[0]["identity"] == "branch-7" and evs[0]["policy_file"] == P + ".bak"
    assert evs[0]["notes"] == ["gwbox.policy: incomplete (%d bytes after its first line: a write that did not "
                               "finish)" % (len(POLICY) + len("Identity = branch-8") - len("Identity = branch-7") - 10),
                               "using the last good policy, gwbox.policy.bak"]


def test_a_policy_that_does_not_parse_and_no_backup_is_safe_mode():
    port, evs, fs, m = boot({P: b"[GENERAL]\nHeartbeat = SOMETIMES\n"})
    assert port.safe == "no policy can be loaded"
    assert evs[0]["notes"][0].startswith("gwbox.policy: line 2: [GENERAL] Heartbeat: must be NONE, DEFERRED or INSTANT")


def test_crash_loop_is_safe_mode_with_a_later_retry():
    disk = saved(POLICY)
    fs = FakeFs(disk)
    Store(P, fs).write_boot_record(3)
    port, evs, fs, m = boot(fs.disk)
    assert port.safe == "3 boots in a row ended within a minute" and port.retry_ms == 600000
    assert Store(P, fs).boot_record() == (4, False)
    port.clock.t += 600001
    port.step()
    assert m.resets == 1 and Store(P, fs).boot_record() == (2, False)  # one more crash: safe again


def test_safe_button_and_requested_safe_mode():
    class Held(Board):
        def safe_button(self):
            return True
    port, evs, fs, m = boot(saved(POLICY), board=Held())
    assert port.safe == "safe button held at boot" and port.retry_ms == 0 and port.password is not None
    fs = FakeFs(saved(POLICY))
    Store(P, fs).write_boot_record(0, True)
    port, evs, fs, m = boot(fs.disk)
    assert port.safe == "requested by `reboot safe`"
    assert Store(P, fs).boot_record() == (1, False)  # one shot


def test_a_console_key_within_the_window_is_safe_mode():
    class Waits(Board):
        SAFE_WAIT_MS = 3000
    key = FakeUart()
    key.rx.extend(b" ")
    port, evs, fs, m = boot(saved(POLICY), board=Waits(), console=key)
    assert evs[0]["safe_key_ms"] == 3000 and port.safe == "console key at boot" and port.box is None
    port, evs, fs, m = boot(saved(POLICY), board=Waits())
    assert port.safe is None and port.box is not None


def test_policy_keys_for_the_console_and_the_lan_uart_reach_the_port():
    text = POLICY.replace(PW_LINE, PW_LINE + "\nLanUart = 10.0.0.5:4001")

    class WithLanUart(Board):
        LAN_UART = (1, 26, 27, 19200)
    port, evs, fs, m = boot(saved(text), board=WithLanUart())
    lan = port.lan
    assert lan.target == (10 << 24) | 5 and lan.port == 4001 and lan.uart.id == 1 and lan.uart.baud == 19200
