"""gwbox_tools.chip: the firmware's modules on the emulated RP2040, and what the runner adds
to rp2040js (docs/chip.md): the held USB OUT endpoint, the UART FIFOs paced at the baud
rate with overruns counted, flash writes, pulls on undriven inputs, watchdog resets.

Every figure asserted here is device time, which does not depend on the host's load.
Each test boots a chip (about 1-3 s of host time)."""
import subprocess
import sys

import pytest

from gwbox_tools.chip import images, repl
from gwbox_tools.chip.__main__ import build_flash
from gwbox_tools.chip.runner import Chip
import leakcheck
from leakcheck import limit

nothing_leaks, time_limit = leakcheck.nothing_leaks, leakcheck.time_limit  # autouse: a limit, no leaks

TEST_LIMIT_S = 120
pytestmark = pytest.mark.xdist_group("cpu")  # CPU-bound: one such test at a time in `make test` (Makefile)


def booted(flash, **kw):
    chip = Chip(flash, **kw)
    try:
        repl.wait_prompt(chip)
    except BaseException:
        chip.close()
        raise
    return chip


def run(chip, code, limit_ms=20000):
    return repl.check_answer(repl.exec_raw(chip, code, limit_ms), "the test script")


def test_a_script_imports_gwbox_from_the_romfs_partition_and_reads_device_time():
    flash, _ = build_flash("romfs", None)
    with booted(flash) as chip:
        assert chip.ms < 100  # boot to the prompt: 15-19 ms on the stock image
        r = run(chip, "import time, gc\nfrom gwbox import wire\nimport gwbox.crypto.mac as m\n"
                      "print(m.__file__)\nt = time.ticks_ms()\ntime.sleep_ms(250)\n"
                      "print(time.ticks_diff(time.ticks_ms(), t))\n")
        lines = r.out.decode().split()
        assert lines[0] == "/rom/gwbox/crypto/mac.mpy"
        assert 250 <= int(lines[1]) <= 252
        assert 250 <= r.device_ms <= 300  # the chip's clock is the runner's (plus the imports)


def test_the_usb_console_does_not_eat_the_cpu():
    # rp2040js answers every OUT arm at once: this loop then takes ~960 ms, not ~330.
    with booted(images.flash_image(images.image_path("pico"), "pico")) as chip:
        r = run(chip, "def f():\n for i in range(100000): pass\nf()\n")
        assert r.device_ms < 400


def test_littlefs_form_loads_mpy_files_and_keeps_what_the_chip_writes():
    flash, layout = build_flash("littlefs", None)
    with booted(flash) as chip:
        r = run(chip, "import gwbox.sa as s\nprint(s.__file__)\n"
                      "f = open('kept.txt', 'w')\nf.write('x' * 5000)\nf.close()\n")
        assert r.out.split() == [b"gwbox/sa.mpy"]
        after = images.read_littlefs(chip.flash(), layout)
    assert after["kept.txt"] == b"x" * 5000
    assert "gwbox/sa.mpy" in after


def test_uart_tx_takes_line_time_and_rx_overruns_are_counted():
    with booted(images.flash_image(images.image_path("pico"), "pico"), watch_pins=[3], drive_pins={2: 0}) as chip:
        r = run(chip, "from machine import UART, Pin\nimport time\n"
                      "u = UART(1, 9600, tx=Pin(4), rx=Pin(5), rxbuf=64)\n"
                      "t = time.ticks_us()\nu.write(b'0123456789' * 4)\n"
                      "while not u.txdone(): pass\nprint(time.ticks_diff(time.ticks_us(), t))\n"
                      "print(Pin(2, Pin.IN).value(), Pin(6, Pin.IN, Pin.PULL_UP).value(),"
                      " Pin(7, Pin.IN, Pin.PULL_DOWN).value())\n"
                      "import rp2\nprint(rp2.bootsel_button())\n"
                      "d = Pin(3, Pin.OUT)\nd.value(1)\nd.value(0)\n")
        tx_us, dcd, up, down, bootsel = [int(x) for x in r.out.split()]
        assert 40 * 10 / 9600 * 1e6 <= tx_us <= 40 * 10 / 9600 * 1e6 + 3000  # 40 characters of 10 bits
        assert bytes(chip.uart_out[1]) == b"0123456789" * 4
        assert (dcd, up, down) == (0, 1, 0)
        assert bootsel == 0  # released (rp2040js alone reads it pressed)
        assert [e["v"] for e in chip.events if e.get("ev") == "pin" and e["v"] is not None][-2:] == [1, 0]
        assert chip.stats()["overruns"] == [0, 0]
        chip.uart_write(1, bytes(range(200)))  # the chip reads none of it for 400 ms
        r = run(chip, "time.sleep_ms(400)\nprint(len(u.read()))\n")
        got = int(r.out)
        assert got == 64 + 32  # the ring buffer, then the hardware FIFO
        assert chip.stats()["overruns"] == [0, 200 - got]


@limit(180)
def test_a_watchdog_that_is_not_fed_resets_the_chip_which_boots_again():
    with booted(images.flash_image(images.image_path("pico"), "pico")) as chip:
        start, t0 = len(chip.usb_out), chip.us
        chip.usb_write(b"\x01from machine import WDT\nw = WDT(timeout=200)\n\x04")
        chip.run_while(lambda: not chip.resets, limit_ms=2000)
        assert chip.resets[0]["why"] == "watchdog"
        assert 200_000 <= chip.resets[0]["us"] - t0 <= 250_000
        repl.wait_prompt(chip)
        assert chip.stats()["wdtResets"] == 1
        assert b"MicroPython" in chip.usb_out[start:]  # the banner of the second boot
        r = run(chip, "import machine\nprint(machine.reset_cause() == machine.WDT_RESET)\n")
        assert r.out.split() == [b"True"]


def test_the_command_prints_the_output_and_the_device_time(tmp_path):
    ok = tmp_path / "ok.py"
    ok.write_text("import gwbox.wire\nprint('hello from the chip')\n")
    bad = tmp_path / "bad.py"
    bad.write_text("raise ValueError('on purpose')\n")
    r = subprocess.run([sys.executable, "-m", "gwbox_tools.chip", "run", str(ok)], capture_output=True,
                       text=True, timeout=100)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the chip\n"
    assert "device time" in r.stderr
    r = subprocess.run([sys.executable, "-m", "gwbox_tools.chip", "run", "--form", "littlefs", str(bad)],
                       capture_output=True, text=True, timeout=100)
    assert r.returncode == 1 and "ValueError: on purpose" in r.stderr


@pytest.mark.parametrize("args, why", [(["--form", "romfs", "--image", "pico"], "no ROMFS partition"),
                                        (["--form", "frozen"], "needs --image")])
def test_the_command_refuses_an_image_that_cannot_hold_the_form(tmp_path, args, why):
    s = tmp_path / "s.py"
    s.write_text("print(1)\n")
    r = subprocess.run([sys.executable, "-m", "gwbox_tools.chip", "run", *args, str(s)], capture_output=True,
                       text=True, timeout=100)
    assert r.returncode == 2 and why in r.stderr
