"""`gwbox flash`: exact dry-run commands for both boards, the image checks, every refusal.

No hardware: images are built here byte by byte (an ESP32 image as MicroPython publishes
it: bootloader at 0x1000, partition table at 0x8000, application at 0x10000; a 1-block
RP2040 UF2), esptool's own image loader confirms the fake ESP32 images are well formed,
and subprocess is replaced where a real run would start esptool.
"""
import hashlib
import os
import struct
import sys

import pytest

from gwbox_tools import cli, flash, toolbase

UF2_MAGIC0, UF2_MAGIC1, UF2_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
RP2040, RP2350_ARM = 0xE48BFF56, 0xE48BFF59


def esp_image(chip=0, app=False, digest=True, segments=None):
    """An ESP image as esptool's elf2image writes it: header, extended header, segments,
    padding, checksum, SHA-256 digest."""
    if segments is None:
        first = (struct.pack("<I", flash.ESP_APP_DESC_MAGIC) if app else b"\x11\x22\x33\x44") + bytes(range(60))
        segments = [(0x3FFF0000, first), (0x40080000, b"\xa5" * 100)]
    out = struct.pack("<BBBBI", 0xE9, len(segments), 2, 0x20, 0x40080400)
    out += struct.pack("<BBBBHBHH4sB", 0xEE, 0, 0, 0, chip, 0, 0, 0xFFFF, bytes(4), 1 if digest else 0)
    checksum = 0xEF
    for addr, data in segments:
        data += bytes(-len(data) % 4)
        out += struct.pack("<II", addr, len(data)) + data
        for b in data:
            checksum ^= b
    out += bytes(15 - len(out) % 16) + bytes([checksum])
    return out + (hashlib.sha256(out).digest() if digest else b"")


def partition(ptype, subtype, offset, size, label):
    return struct.pack("<2sBBII16sI", b"\xaa\x50", ptype, subtype, offset, size, label.encode().ljust(16, b"\0"), 0)


def esp32_firmware(chip=0, app_chip=0):
    """A MicroPython ESP32 .bin: the flash image from 0x1000 on."""
    boot = esp_image(chip)
    table = (partition(1, 2, 0x9000, 0x6000, "nvs") + partition(1, 1, 0xF000, 0x1000, "phy_init")
             + partition(0, 0, 0x10000, 0x1F0000, "factory") + partition(1, 0x81, 0x200000, 0x200000, "vfs"))
    image = boot + b"\xff" * (0x7000 - len(boot)) + table
    image += b"\xff" * (0xF000 - len(image))
    return image + esp_image(app_chip, app=True)


def uf2(blocks=1, family=RP2040, flags=0x2000, num_blocks=None):
    out = b""
    for i in range(blocks):
        payload = bytes([i & 0xFF]) * 256
        out += (struct.pack("<8I", UF2_MAGIC0, UF2_MAGIC1, flags, 0x10000000 + 256 * i, 256, i,
                            blocks if num_blocks is None else num_blocks, family)
                + payload.ljust(476, b"\0") + struct.pack("<I", UF2_END))
    return out


@pytest.fixture
def files(tmp_path):
    def write(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return str(p)
    return write


@pytest.fixture
def port(tmp_path):
    """A serial port path that exists (the checks only look for it)."""
    p = tmp_path / "ttyUSB0"
    p.write_bytes(b"")
    return str(p)


@pytest.fixture
def drive(tmp_path):
    d = tmp_path / "RPI-RP2"
    d.mkdir()
    (d / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    return str(d)


@pytest.fixture
def no_tools(monkeypatch):
    """No real subprocess, no drive on this machine, no picotool: record what would run."""
    calls = []

    def call(cmd, **kw):
        calls.append((cmd, kw))
        return 0
    monkeypatch.setattr(flash.subprocess, "call", call)
    monkeypatch.setattr(flash, "RP2_DRIVE_GLOBS", ())
    monkeypatch.setattr(flash, "MOUNTS", "/nonexistent/mounts")
    monkeypatch.setattr(flash.shutil, "which", lambda name: None)
    return calls


def gwbox(*argv):
    return cli.main(["flash", *argv])


def refused(capsys, *argv):
    """Run, expect the refusal status, return the one-line message."""
    assert gwbox(*argv) == toolbase.EXIT_REFUSED
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("gwbox flash: ")
    return err.strip()


# ---------------------------------------------------------------- the fake images are real ones

def test_fake_esp32_images_are_what_esptool_reads():
    from esptool.bin_image import LoadFirmwareImage
    for chip_name, chip_id in (("esp32", 0), ("esp32s3", 9), ("esp32c3", 5), ("esp32s2", 2)):
        img = LoadFirmwareImage(chip_name, esp_image(chip_id))
        assert img.chip_id == chip_id
        assert img.checksum == img.calculate_checksum()
        assert img.stored_digest == img.calc_digest
    app = LoadFirmwareImage("esp32", esp32_firmware()[0xF000:])
    assert app.checksum == app.calculate_checksum()


def test_chip_ids_agree_with_esptool():
    from esptool.targets import CHIP_DEFS
    for name, rom in CHIP_DEFS.items():
        if name != "esp8266" and rom.IMAGE_CHIP_ID in flash.ESP_CHIPS:
            assert flash.ESP_CHIPS[rom.IMAGE_CHIP_ID].replace("-", "").lower() == name, name


# ---------------------------------------------------------------- dry runs: the exact commands

def test_esp32_dry_run_prints_the_esptool_command(files, port, no_tools, capsys):
    fw = files("ESP32_GENERIC-v1.28.0.bin", esp32_firmware())
    assert gwbox("--board", "esp32", "--port", port, "--dry-run", fw) == 0
    out, err = capsys.readouterr()
    assert out == "%s -m esptool --chip esp32 --port %s --baud 460800 write-flash 0x1000 %s\n" % (sys.executable, port, fw)
    assert err == "" and no_tools == []


def test_esp32_dry_run_with_erase(files, port, no_tools, capsys):
    fw = files("fw.bin", esp32_firmware())
    assert gwbox("--board", "esp32", "--port", port, "--erase", "--dry-run", fw) == 0
    assert capsys.readouterr().out == (
        "%s -m esptool --chip esp32 --port %s --baud 460800 write-flash --erase-all 0x1000 %s\n" % (sys.executable, port, fw))


def test_dry_run_quotes_for_the_shell(tmp_path, no_tools, capsys):
    fw = tmp_path / "my firmware.bin"
    fw.write_bytes(esp32_firmware())
    p = tmp_path / "tty USB0"
    p.write_bytes(b"")
    assert gwbox("--board", "esp32", "--port", str(p), "--dry-run", str(fw)) == 0
    assert capsys.readouterr().out.endswith("--port '%s' --baud 460800 write-flash 0x1000 '%s'\n" % (p, fw))


def test_pico_w_dry_run_prints_the_copy(files, drive, no_tools, capsys):
    fw = files("RPI_PICO_W-v1.28.0.uf2", uf2())
    assert gwbox("--board", "pico_w", "--drive", drive, "--dry-run", fw) == 0
    assert capsys.readouterr().out == "cp %s %s\n" % (fw, os.path.join(drive, "RPI_PICO_W-v1.28.0.uf2"))
    assert os.listdir(drive) == ["INFO_UF2.TXT"]


def test_pico_w_drive_found_automatically(files, drive, no_tools, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(flash, "RP2_DRIVE_GLOBS", (str(tmp_path / "RPI-RP2*"), str(tmp_path / "other*")))
    (tmp_path / "other").mkdir()  # a drive that is not an RP2040's
    fw = files("fw.uf2", uf2())
    assert gwbox("--board", "pico_w", "--dry-run", fw) == 0
    assert capsys.readouterr().out == "cp %s %s\n" % (fw, os.path.join(drive, "fw.uf2"))


def test_pico_w_drive_found_in_proc_mounts(files, drive, no_tools, monkeypatch, tmp_path, capsys):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 %s vfat rw,nosuid 0 0\n" % drive)
    monkeypatch.setattr(flash, "MOUNTS", str(mounts))
    fw = files("fw.uf2", uf2())
    assert gwbox("--board", "pico_w", "--dry-run", fw) == 0
    assert capsys.readouterr().out == "cp %s %s\n" % (fw, os.path.join(drive, "fw.uf2"))


def test_pico_w_two_drives_need_a_choice(files, drive, no_tools, monkeypatch, tmp_path, capsys):
    second = tmp_path / "RPI-RP2 1"
    second.mkdir()
    (second / "INFO_UF2.TXT").write_text("Board-ID: RPI-RP2\n")
    monkeypatch.setattr(flash, "RP2_DRIVE_GLOBS", (str(tmp_path / "RPI-RP2*"),))
    msg = refused(capsys, "--board", "pico_w", "--dry-run", files("fw.uf2", uf2()))
    assert "2 RP2040 boot drives are mounted" in msg and "--drive" in msg


def test_pico_w_dry_run_with_picotool(files, no_tools, monkeypatch, capsys):
    monkeypatch.setattr(flash.shutil, "which", lambda name: "/usr/local/bin/picotool" if name == "picotool" else None)
    fw = files("fw.uf2", uf2())
    assert gwbox("--board", "pico_w", "--dry-run", fw) == 0
    assert capsys.readouterr().out == "/usr/local/bin/picotool load -x %s\n" % fw


def test_pico_w_dry_run_with_port_reboots_into_the_bootloader(files, port, no_tools, capsys):
    fw = files("fw.uf2", uf2())
    assert gwbox("--board", "pico_w", "--port", port, "--dry-run", fw) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "%s -m mpremote connect %s bootloader" % (sys.executable, port)
    assert lines[1] == "# then, once the RPI-RP2 drive is mounted: cp %s '<drive>/fw.uf2'" % fw


# ---------------------------------------------------------------- real runs (no hardware)

def test_pico_w_copies_to_the_drive(files, drive, no_tools, capsys):
    data = uf2(blocks=3)
    fw = files("RPI_PICO_W.uf2", data)
    assert gwbox("--board", "pico_w", "--drive", drive, fw) == 0
    with open(os.path.join(drive, "RPI_PICO_W.uf2"), "rb") as f:
        assert f.read() == data
    assert "copying" in capsys.readouterr().out and no_tools == []


def test_esp32_runs_esptool_in_the_foreground(files, port, no_tools, capsys):
    fw = files("fw.bin", esp32_firmware())
    assert gwbox("--board", "esp32", "--port", port, fw) == 0
    (cmd, kw), = no_tools
    assert cmd == [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", port, "--baud", "460800",
                   "write-flash", "0x1000", fw]
    assert kw == {}  # output not captured: esptool's progress bar shows


def test_esptool_failure_is_reported_with_a_hint(files, port, no_tools, monkeypatch, capsys):
    monkeypatch.setattr(flash.subprocess, "call", lambda cmd, **kw: 2)
    assert gwbox("--board", "esp32", "--port", port, files("fw.bin", esp32_firmware())) == toolbase.EXIT_FAILED
    err = capsys.readouterr().err
    assert "esptool failed (exit status 2)" in err and "BOOT" in err and "Traceback" not in err


def test_nonexistent_port_is_refused_before_esptool_runs(files, no_tools, tmp_path, capsys):
    missing = str(tmp_path / "ttyUSB9")
    msg = refused(capsys, "--board", "esp32", "--port", missing, files("fw.bin", esp32_firmware()))
    assert msg == ("gwbox flash: serial port %s does not exist: is the box plugged in? (list serial ports with "
                   "`ls /dev/ttyUSB* /dev/ttyACM*` or `python -m serial.tools.list_ports`)" % missing)
    assert no_tools == []


def test_missing_port_is_refused_for_esp32(files, no_tools, capsys):
    msg = refused(capsys, "--board", "esp32", files("fw.bin", esp32_firmware()))
    assert "--port is required" in msg and "ls /dev/ttyUSB* /dev/ttyACM*" in msg
    assert no_tools == []


# ---------------------------------------------------------------- refusals

def test_wrong_board_lists_the_valid_ones(files, port, no_tools, capsys):
    msg = refused(capsys, "--board", "esp8266", "--port", port, files("fw.bin", esp32_firmware()))
    assert msg == "gwbox flash: unknown board 'esp8266': choose one of esp32, pico_w"


def test_missing_firmware_file(port, no_tools, tmp_path, capsys):
    missing = str(tmp_path / "nope.bin")
    assert refused(capsys, "--board", "esp32", "--port", port, missing) == (
        "gwbox flash: firmware file %s does not exist" % missing)


def test_empty_file(files, port, no_tools, capsys):
    fw = files("fw.bin", b"")
    assert "is empty" in refused(capsys, "--board", "esp32", "--port", port, fw)
    fw = files("fw.uf2", b"")
    assert "is empty" in refused(capsys, "--board", "pico_w", "--dry-run", fw)


def test_uf2_for_esp32_is_refused(files, port, no_tools, capsys):
    fw = files("firmware.bin", uf2())  # the name says .bin, the header says UF2
    assert refused(capsys, "--board", "esp32", "--port", port, fw) == (
        "gwbox flash: %s is a UF2 image for RP2040; --board esp32 needs an ESP32 .bin image" % fw)
    assert no_tools == []


def test_esp32_bin_for_pico_w_is_refused(files, drive, no_tools, capsys):
    fw = files("firmware.uf2", esp32_firmware())
    msg = refused(capsys, "--board", "pico_w", "--drive", drive, fw)
    assert msg == ("gwbox flash: %s is an ESP32 firmware image (.bin); --board pico_w needs a UF2 image for "
                   "RP2040, e.g. RPI_PICO_W-*.uf2" % fw)
    assert os.listdir(drive) == ["INFO_UF2.TXT"]


@pytest.mark.parametrize("chip, name", [(9, "ESP32-S3"), (2, "ESP32-S2"), (5, "ESP32-C3")])
def test_image_for_another_esp_chip_is_refused(files, port, no_tools, capsys, chip, name):
    fw = files("fw.bin", esp32_firmware(chip=chip, app_chip=chip))
    assert refused(capsys, "--board", "esp32", "--port", port, fw) == (
        "gwbox flash: %s is an image for %s (chip id %d in its header); --board esp32 needs an image for the "
        "classic ESP32 (chip id 0), e.g. ESP32_GENERIC-*.bin" % (fw, name, chip))


def test_truncated_esp32_image_is_refused(files, port, no_tools, capsys):
    whole = esp32_firmware()
    for cut in (10, 60, 0x3000, 0x7010, 0xF000 + 40, len(whole) - 1):
        msg = refused(capsys, "--board", "esp32", "--port", port, files("fw.bin", whole[:cut]))
        assert "is truncated" in msg and "download the firmware image again" in msg, (cut, msg)
    assert no_tools == []


def test_corrupt_esp32_image_is_refused(files, port, no_tools, capsys):
    bad = bytearray(esp32_firmware())
    bad[0xF000 + 40] ^= 0xFF  # a byte of the application's first segment
    assert "checksum" in refused(capsys, "--board", "esp32", "--port", port, files("fw.bin", bytes(bad)))


def test_application_image_alone_is_refused(files, port, no_tools, capsys):
    msg = refused(capsys, "--board", "esp32", "--port", port, files("micropython.bin", esp_image(app=True)))
    assert "application image alone (written at 0x10000)" in msg


def test_not_an_image_at_all(files, port, no_tools, capsys):
    msg = refused(capsys, "--board", "esp32", "--port", port, files("fw.bin", b"PK\x03\x04 a zip file"))
    assert "is not an ESP32 firmware image (first byte 0x50" in msg
    msg = refused(capsys, "--board", "pico_w", "--dry-run", files("fw.uf2", b"<html>not found</html>"))
    assert "is not a UF2 image" in msg


def test_uf2_with_the_wrong_family_is_refused(files, drive, no_tools, capsys):
    fw = files("RPI_PICO2_W.uf2", uf2(family=RP2350_ARM))
    assert refused(capsys, "--board", "pico_w", "--drive", drive, fw) == (
        "gwbox flash: %s is a UF2 image for RP2350 (Arm) (family id 0xe48bff59); --board pico_w needs one for "
        "RP2040 (family id 0xe48bff56), e.g. RPI_PICO_W-*.uf2" % fw)


def test_truncated_uf2_is_refused(files, drive, no_tools, capsys):
    whole = uf2(blocks=4)
    for data in (whole[:-100], whole[:512 * 3]):
        msg = refused(capsys, "--board", "pico_w", "--drive", drive, files("fw.uf2", data))
        assert "is truncated" in msg
    assert os.listdir(drive) == ["INFO_UF2.TXT"]


def test_drive_that_is_not_an_rp2040_boot_drive(files, tmp_path, no_tools, capsys):
    d = tmp_path / "USBSTICK"
    d.mkdir()
    msg = refused(capsys, "--board", "pico_w", "--drive", str(d), files("fw.uf2", uf2()))
    assert "is not an RP2040 boot drive (no INFO_UF2.TXT saying Board-ID: RPI-RP2)" in msg


def test_no_drive_and_no_picotool(files, no_tools, capsys):
    msg = refused(capsys, "--board", "pico_w", files("fw.uf2", uf2()))
    assert "no RPI-RP2 drive is mounted and picotool is not installed" in msg and "BOOTSEL" in msg


def test_options_for_the_other_board_are_refused(files, port, drive, no_tools, capsys):
    assert "--drive is for --board pico_w" in refused(capsys, "--board", "esp32", "--port", port, "--drive", drive,
                                                      files("fw.bin", esp32_firmware()))
    assert "--erase is for --board esp32" in refused(capsys, "--board", "pico_w", "--erase", "--drive", drive,
                                                     files("fw.uf2", uf2()))
