"""`gwbox flash`: write a MicroPython firmware image to a board, after checking it is one.

ESP32: esptool (v5, pinned in requirements.txt) `write-flash` at 0x1000, in the foreground
so its own progress bar shows. The file must be the classic-ESP32 image that MicroPython
publishes (ESP32_GENERIC-*.bin): a merged image of bootloader (flash 0x1000), partition
table (0x8000) and application (0x10000), written from 0x1000. Its header says which chip
it is for (esptool's image format: byte 0 magic 0xE9, byte 1 segment count, extended
header at 8..23 with the chip id at 12, little-endian: 0 = ESP32).

Pico W: the .uf2 is copied to the RP2040 boot drive (RPI-RP2, mounted when the board is
plugged in with BOOTSEL held), found automatically; or `picotool load -x` when no drive
is mounted; or, with --port, the running MicroPython is asked to reboot into its
bootloader first. A UF2 file is 512-byte blocks, each with magics at 0, 4 and 508, and
the family id at 28 when flag 0x2000 is set (RP2040: 0xe48bff56).

Nothing is written before the image, the board and the port have been checked.
"""
import functools
import glob
import operator
import os
import shutil
import struct
import subprocess
import sys
import time

from gwbox_tools.toolbase import EXIT_FAILED, UserError, check_serial_port, require_module, shell_join

BOARDS = ("esp32", "pico_w")
ESP32_OFFSET = "0x1000"  # the classic ESP32's second-stage bootloader lives at 0x1000
ESP32_BAUD = 460800

# --- ESP32 image format (esptool docs: advanced-topics/firmware-image-format) ---
ESP_IMAGE_MAGIC = 0xE9
ESP_CHECKSUM_MAGIC = 0xEF
ESP_HEADER_LEN = 24  # 8-byte header + 16-byte extended header
ESP_CHIP_ID_OFFSET = 12
ESP_MAX_SEGMENTS = 16
ESP32_CHIP_ID = 0
# esp_app_format.h: esp_chip_id_t
ESP_CHIPS = {0: "ESP32", 2: "ESP32-S2", 5: "ESP32-C3", 9: "ESP32-S3", 12: "ESP32-C2", 13: "ESP32-C6",
             16: "ESP32-H2", 18: "ESP32-P4", 20: "ESP32-C61", 23: "ESP32-C5", 25: "ESP32-H21",
             28: "ESP32-H4", 32: "ESP32-S31"}
ESP_APP_DESC_MAGIC = 0xABCD5432  # first word of an application's first segment
# In the merged image (file offset = flash address - 0x1000):
ESP32_PARTITION_TABLE = 0x8000 - 0x1000
ESP_PARTITION_MAGIC = b"\xaa\x50"
ESP_PARTITION_ENTRY = 32
ESP_PARTITION_TYPE_APP = 0

# --- UF2 (github.com/microsoft/uf2) ---
UF2_BLOCK = 512
UF2_MAGIC_START0 = 0x0A324655
UF2_MAGIC_START1 = 0x9E5D5157
UF2_MAGIC_END = 0x0AB16F30
UF2_FLAG_NOT_MAIN_FLASH = 0x0001
UF2_FLAG_FAMILY_ID = 0x2000
UF2_MAX_PAYLOAD = 476
RP2040_FAMILY = 0xE48BFF56
UF2_FAMILIES = {0xE48BFF56: "RP2040", 0xE48BFF57: "RP2 (absolute)", 0xE48BFF58: "RP2 (data)",
                0xE48BFF59: "RP2350 (Arm)", 0xE48BFF5A: "RP2350 (RISC-V)", 0xE48BFF5B: "RP2350 (Arm, non-secure)",
                0x1C5F21B0: "ESP32", 0xBFDD4EEE: "ESP32-S2", 0xC47E5767: "ESP32-S3", 0xD42BA06C: "ESP32-C3",
                0x68ED2B88: "SAMD21", 0x55114460: "SAMD51", 0xADA52840: "nRF52840"}

# --- where an RP2040 boot drive is mounted ---
RP2_DRIVE_GLOBS = ("/media/*/RPI-RP2*", "/run/media/*/RPI-RP2*", "/media/RPI-RP2*", "/mnt/RPI-RP2*",
                   "/Volumes/RPI-RP2*")
RP2_BOARD_ID = "RPI-RP2"
RP2_DRIVE_WAIT_S = 30
MOUNTS = "/proc/mounts"

BOOTSEL_HINT = ("hold BOOTSEL while plugging the Pico W in and wait for the RPI-RP2 drive to mount, "
                "or pass --drive PATH")


def run(args):
    if args.board not in BOARDS:
        raise UserError("unknown board %r: choose one of %s" % (args.board, ", ".join(BOARDS)))
    data = read_image(args.firmware)
    if args.board == "esp32":
        return flash_esp32(args, data)
    return flash_pico_w(args, data)


def read_image(path):
    if not os.path.exists(path):
        raise UserError("firmware file %s does not exist" % path)
    if os.path.isdir(path):
        raise UserError("%s is a directory: give the firmware image file" % path)
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise UserError("%s is empty: download the firmware image again" % path)
    return data


# ---------------------------------------------------------------------------- ESP32

def flash_esp32(args, data):
    if args.drive:
        raise UserError("--drive is for --board pico_w; esp32 is flashed over --port")
    check_esp32_image(args.firmware, data)
    check_serial_port(args.port)
    require_module("esptool")
    cmd = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", args.port, "--baud", str(ESP32_BAUD),
           "write-flash"] + (["--erase-all"] if args.erase else []) + [ESP32_OFFSET, args.firmware]
    if args.dry_run:
        print(shell_join(cmd))
        return 0
    # Foreground, output not captured: esptool's own progress bar and messages show.
    status = subprocess.call(cmd)
    if status:
        raise UserError("esptool failed (exit status %d): check the port, and if it could not connect, "
                        "hold the board's BOOT button while it starts" % status, EXIT_FAILED)
    return 0


def check_esp32_image(path, data):
    """Refuse anything but a complete MicroPython firmware image for the classic ESP32."""
    if is_uf2(data):
        raise UserError("%s is a UF2 image for %s; --board esp32 needs an ESP32 .bin image"
                        % (path, uf2_family_name(data)))
    if data[:4] == b"\x7fELF":
        raise UserError("%s is an ELF file; --board esp32 needs the firmware .bin image" % path)
    if data[0] != ESP_IMAGE_MAGIC:
        raise UserError("%s is not an ESP32 firmware image (first byte 0x%02x; an ESP image starts with 0xe9)"
                        % (path, data[0]))
    chip = esp_chip_id(path, data, 0)
    if chip != ESP32_CHIP_ID:
        raise UserError("%s is an image for %s (chip id %d in its header); --board esp32 needs an image for "
                        "the classic ESP32 (chip id 0), e.g. ESP32_GENERIC-*.bin"
                        % (path, ESP_CHIPS.get(chip, "another chip"), chip))
    esp_image_end(path, data, 0)
    if len(data) >= ESP_HEADER_LEN + 12 and struct.unpack_from("<I", data, ESP_HEADER_LEN + 8)[0] == ESP_APP_DESC_MAGIC:
        raise UserError("%s is an ESP32 application image alone (written at 0x10000); gwbox flash writes the "
                        "full firmware .bin that MicroPython publishes (bootloader + partition table + "
                        "application, written at %s)" % (path, ESP32_OFFSET))
    app = esp32_app_offset(path, data)
    if esp_chip_id(path, data, app) != ESP32_CHIP_ID or data[app] != ESP_IMAGE_MAGIC:
        raise UserError("%s is corrupt: no ESP32 application image at flash 0x%x where its partition table "
                        "puts it" % (path, app + 0x1000))
    esp_image_end(path, data, app)


def esp_chip_id(path, data, start):
    if len(data) < start + ESP_HEADER_LEN:
        raise truncated(path, "its image header is cut short")
    return struct.unpack_from("<H", data, start + ESP_CHIP_ID_OFFSET)[0]


def esp_image_end(path, data, start):
    """Offset just past the ESP image at `start`: segments, padding, checksum, digest.
    Refuses an image cut short or whose checksum does not match its segments."""
    nseg = data[start + 1]
    if not 0 < nseg <= ESP_MAX_SEGMENTS:
        raise UserError("%s is corrupt: %d segments in the image at 0x%x (1..%d)" % (path, nseg, start, ESP_MAX_SEGMENTS))
    pos = start + ESP_HEADER_LEN
    checksum = ESP_CHECKSUM_MAGIC
    for i in range(nseg):
        if pos + 8 > len(data):
            raise truncated(path, "segment %d header missing" % i)
        size = struct.unpack_from("<I", data, pos + 4)[0]
        pos += 8
        if pos + size > len(data):
            raise truncated(path, "segment %d needs %d bytes, %d left" % (i, size, len(data) - pos))
        checksum = functools.reduce(operator.xor, memoryview(data)[pos:pos + size], checksum)
        pos += size
    pos += 15 - (pos - start) % 16  # padded to 16 bytes, checksum is the last byte
    digest = 32 if data[start + 23] == 1 else 0
    if pos + 1 + digest > len(data):
        raise truncated(path, "the image's checksum or digest is missing")
    if data[pos] != checksum:
        raise UserError("%s is corrupt: the checksum of the image at 0x%x does not match its contents" % (path, start))
    return pos + 1 + digest


def esp32_app_offset(path, data):
    """File offset of the first application partition, from the table at flash 0x8000."""
    table = ESP32_PARTITION_TABLE
    if data[table:table + 2] != ESP_PARTITION_MAGIC:
        if len(data) <= table:
            raise truncated(path, "it ends before the partition table at 0x8000 (a bootloader alone?)")
        raise UserError("%s is not a complete MicroPython ESP32 firmware image: no partition table at flash "
                        "0x8000" % path)
    apps = []
    pos = table
    while data[pos:pos + 2] == ESP_PARTITION_MAGIC:  # entries until the MD5 entry or erased flash
        if pos + ESP_PARTITION_ENTRY >= len(data):
            raise truncated(path, "it ends inside the partition table")
        ptype, offset = data[pos + 2], struct.unpack_from("<I", data, pos + 4)[0]
        if ptype == ESP_PARTITION_TYPE_APP:
            apps.append(offset)
        pos += ESP_PARTITION_ENTRY
    if not apps:
        raise UserError("%s is corrupt: its partition table has no application partition" % path)
    app = min(apps) - 0x1000
    if app + ESP_HEADER_LEN > len(data):
        raise truncated(path, "it ends before the application at flash 0x%x" % min(apps))
    return app


def truncated(path, why):
    return UserError("%s is truncated (%s): download the firmware image again" % (path, why))


# ---------------------------------------------------------------------------- UF2 / Pico W

def is_uf2(data):
    return len(data) >= 8 and struct.unpack_from("<II", data) == (UF2_MAGIC_START0, UF2_MAGIC_START1)


def uf2_family_name(data):
    """The chip a UF2 image's first block names, for messages."""
    if len(data) < 32 or not struct.unpack_from("<I", data, 8)[0] & UF2_FLAG_FAMILY_ID:
        return "an unnamed chip"
    family = struct.unpack_from("<I", data, 28)[0]
    return UF2_FAMILIES.get(family, "family 0x%08x" % family)


def check_uf2_image(path, data):
    """Refuse anything but a complete UF2 image for the RP2040."""
    if data[0] == ESP_IMAGE_MAGIC:
        raise UserError("%s is an ESP32 firmware image (.bin); --board pico_w needs a UF2 image for RP2040, "
                        "e.g. RPI_PICO_W-*.uf2" % path)
    if not is_uf2(data):
        raise UserError("%s is not a UF2 image (no UF2 magic at offset 0); --board pico_w needs a UF2 image "
                        "for RP2040, e.g. RPI_PICO_W-*.uf2" % path)
    if len(data) % UF2_BLOCK:
        raise truncated(path, "%d bytes is not a whole number of 512-byte UF2 blocks" % len(data))
    count = len(data) // UF2_BLOCK
    for i in range(count):
        b = i * UF2_BLOCK
        m0, m1, flags, _addr, size, block_no, num_blocks, family = struct.unpack_from("<8I", data, b)
        end, = struct.unpack_from("<I", data, b + UF2_BLOCK - 4)
        if (m0, m1, end) != (UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_MAGIC_END):
            raise UserError("%s is corrupt: UF2 block %d has a wrong magic number" % (path, i))
        if flags & UF2_FLAG_FAMILY_ID and family != RP2040_FAMILY:
            raise UserError("%s is a UF2 image for %s (family id 0x%08x); --board pico_w needs one for RP2040 "
                            "(family id 0x%08x), e.g. RPI_PICO_W-*.uf2"
                            % (path, UF2_FAMILIES.get(family, "another chip"), family, RP2040_FAMILY))
        if size > UF2_MAX_PAYLOAD:
            raise UserError("%s is corrupt: UF2 block %d carries %d bytes (at most %d)" % (path, i, size, UF2_MAX_PAYLOAD))
        if flags & UF2_FLAG_NOT_MAIN_FLASH:
            continue
        if num_blocks != count or block_no != i:
            raise truncated(path, "block %d says it is %d of %d, the file holds %d blocks"
                            % (i, block_no, num_blocks, count))


def is_rp2040_drive(path):
    try:
        with open(os.path.join(path, "INFO_UF2.TXT"), errors="replace") as f:
            info = f.read(4096)
    except OSError:
        return False
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "board-id" and value.strip() == RP2_BOARD_ID:
            return True
    return False


def _mount_points():
    try:
        with open(MOUNTS) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    # /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...).
    return [fields[1].encode().decode("unicode_escape") for fields in (l.split() for l in lines) if len(fields) > 2]


def find_rp2040_drives():
    """Every mounted RP2040 boot drive: INFO_UF2.TXT says Board-ID: RPI-RP2."""
    candidates = [p for pattern in RP2_DRIVE_GLOBS for p in sorted(glob.glob(pattern))] + _mount_points()
    found = []
    for p in candidates:
        real = os.path.realpath(p)
        if real not in found and os.path.isdir(real) and is_rp2040_drive(real):
            found.append(real)
    return found


def flash_pico_w(args, data):
    if args.erase:
        raise UserError("--erase is for --board esp32 (the RP2040 bootloader replaces the whole image)")
    check_uf2_image(args.firmware, data)
    name = os.path.basename(args.firmware)
    if args.drive:
        if not os.path.isdir(args.drive):
            raise UserError("--drive %s is not a directory: give the mounted RPI-RP2 drive" % args.drive)
        if not is_rp2040_drive(args.drive):
            raise UserError("--drive %s is not an RP2040 boot drive (no INFO_UF2.TXT saying Board-ID: %s); %s"
                            % (args.drive, RP2_BOARD_ID, BOOTSEL_HINT))
        return copy_to_drive(args, args.drive, name)
    drives = find_rp2040_drives()
    if len(drives) > 1:
        raise UserError("%d RP2040 boot drives are mounted (%s): choose one with --drive"
                        % (len(drives), ", ".join(drives)))
    if drives:
        return copy_to_drive(args, drives[0], name)
    if args.port:
        check_serial_port(args.port)
        require_module("mpremote")
        cmd = [sys.executable, "-m", "mpremote", "connect", args.port, "bootloader"]
        if args.dry_run:
            print(shell_join(cmd))
            print("# then, once the RPI-RP2 drive is mounted: " + shell_join(["cp", args.firmware, "<drive>/" + name]))
            return 0
        print("asking the board on %s to reboot into its bootloader ..." % args.port)
        try:
            subprocess.call(cmd, timeout=30)  # the board drops off USB as it reboots: its status says little
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + RP2_DRIVE_WAIT_S
        while time.monotonic() < deadline:
            drives = find_rp2040_drives()
            if len(drives) == 1:
                return copy_to_drive(args, drives[0], name)
            time.sleep(0.5)
        raise UserError("no RPI-RP2 drive was mounted within %d s of the reboot into the bootloader; mount it "
                        "and pass --drive PATH, or %s" % (RP2_DRIVE_WAIT_S, BOOTSEL_HINT), EXIT_FAILED)
    picotool = shutil.which("picotool")
    if picotool:
        cmd = [picotool, "load", "-x", args.firmware]
        if args.dry_run:
            print(shell_join(cmd))
            return 0
        status = subprocess.call(cmd)
        if status:
            raise UserError("picotool failed (exit status %d): is the board in BOOTSEL mode? %s"
                            % (status, BOOTSEL_HINT), EXIT_FAILED)
        return 0
    raise UserError("no RPI-RP2 drive is mounted and picotool is not installed: %s; or give --port to "
                    "reboot a board running MicroPython into its bootloader" % BOOTSEL_HINT)


def copy_to_drive(args, drive, name):
    dst = os.path.join(drive, name)
    if args.dry_run:
        print(shell_join(["cp", args.firmware, dst]))
        return 0
    with open(args.firmware, "rb") as f:
        data = f.read()
    print("copying %s (%d bytes) to %s" % (args.firmware, len(data), drive))
    written = 0
    try:
        with open(dst, "wb") as out:
            written = out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        # Once every byte is out, the board reboots and its drive goes away, which may fail
        # the flush or close: that is success. Anything earlier is not.
        if written != len(data):
            raise UserError("copying to %s failed after %d of %d bytes (%s): %s"
                            % (drive, written, len(data), e.strerror or e, BOOTSEL_HINT), EXIT_FAILED)
    print("done: the Pico W reboots into the new firmware")
    return 0
