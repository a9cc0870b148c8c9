"""gwbox_tools.romfs_image: images MicroPython mounts, and the whole box running from one.

The images are read by the real interpreters (vfs.VfsRom), not by a Python model of the
format; the box test runs firmware/main.py with its modules only in the image (the module
path has no lib/), through a handshake, traffic and a failover.
"""
import hashlib
import os
import subprocess

import pytest

from gwbox_tools import mp_box, mpy_build, romfs_image
from gwbox_tools.cluster_rig import GATEWAYS, ClusterRig
import leakcheck

nothing_leaks = leakcheck.nothing_leaks  # autouse: nothing a test starts outlives it

INTERPRETERS = mpy_build.interpreters()
IDS = [name for name, _exe, _scale in INTERPRETERS]


def run_mp(exe, code, image_path, heap="256K"):
    """Run `code` under `exe` after mounting the image at /rom; its output."""
    prelude = ("import vfs, sys\nf = open(%r, 'rb')\nimg = f.read()\nf.close()\n"
               "vfs.mount(vfs.VfsRom(img), '/rom')\nsys.path[:] = ['/rom']\n" % image_path)
    r = subprocess.run([exe, "-X", "heapsize=" + heap, "-c", prelude + code], capture_output=True, text=True,
                       timeout=60, cwd=mp_box.DEVICE_DIR, env=dict(os.environ, MICROPYPATH=""))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("exe", [exe for _n, exe, _s in INTERPRETERS], ids=IDS)
def test_micropython_reads_every_file_and_directory_back(exe, tmp_path):
    files = {"a.txt": b"alpha", "d/b.bin": bytes(range(256)) * 3, "d/e/c": b"", "d/e/f/g.txt": b"deep",
             "z.mpy": os.urandom(1000)}
    image = romfs_image.build_image(files)
    assert romfs_image.image_length(image) == len(image)
    path = tmp_path / "t.romfs"
    path.write_bytes(image)
    out = run_mp(exe, "import os, hashlib, binascii\n"
                      "def walk(p):\n"
                      " for e in sorted(os.ilistdir(p)):\n"
                      "  q = p + '/' + e[0]\n"
                      "  if e[1] & 0x4000:\n"
                      "   print('D', q)\n"
                      "   walk(q)\n"
                      "  else:\n"
                      "   print('F', q, binascii.hexlify(hashlib.sha256(open(q, 'rb').read()).digest()).decode())\n"
                      "walk('/rom')\n", str(path))
    want = ["D /rom/d", "D /rom/d/e", "D /rom/d/e/f"]
    want += ["F /rom/%s %s" % (p, hashlib.sha256(b).hexdigest()) for p, b in files.items()]
    assert sorted(out.split("\n")[:-1]) == sorted(want)


def test_image_length_reads_the_header_and_refuses_what_is_not_an_image():
    for files in ({}, {"x": b"1"}, {"x": os.urandom(200000)}):
        image = romfs_image.build_image(files)
        assert romfs_image.image_length(image[:16]) == len(image)
        assert romfs_image.image_length(image + b"\xff" * 100) == len(image)  # the rest of a partition
    assert romfs_image.image_length(b"\xff" * 16) is None  # erased flash
    assert romfs_image.image_length(b"") is None
    assert romfs_image.image_length(b"\xd2\xcd\x31" + b"\x80" * 13) is None  # no end to the length


def test_a_path_twice_or_as_file_and_directory_is_refused():
    with pytest.raises(ValueError, match="twice"):
        romfs_image.build_image({"a/b": b"1", "/a/b/": b"2"})
    with pytest.raises(ValueError, match="a file and a directory"):
        romfs_image.build_image({"a": b"1", "a/b": b"2"})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("exe", [exe for _n, exe, _s in INTERPRETERS], ids=IDS)
def test_the_firmware_image_holds_the_device_modules_and_they_run_from_it(exe):
    image_path = mp_box.build_romfs()
    out = run_mp(exe, "import sys\nimport gwbox.box, gwbox.link.modem, gwbox.port.device, gwbox.keyschedule\n"
                      "import os\n"
                      "print(sorted(os.listdir('/rom/gwbox/port')))\n"
                      "for n in sorted(sys.modules):\n"
                      " if n.startswith('gwbox'):\n"
                      "  print(n, sys.modules[n].__file__)\n", image_path)
    lines = out.splitlines()
    port_files = eval(lines[0])
    assert "device.mpy" in port_files
    assert "pipe.mpy" not in port_files and "host_aes.mpy" not in port_files  # host-only: never on a device
    mods = dict(line.split(" ", 1) for line in lines[1:])
    assert {"gwbox.box", "gwbox.link.modem", "gwbox.port.device", "gwbox.keyschedule"} <= set(mods)
    assert all(f.startswith("/rom/gwbox/") and f.endswith(".mpy") for f in mods.values()), mods


DEVICE_HEAP_K = 80  # below the 98K the same .mpy files need loaded from a file system (bench)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("name,exe,scale", INTERPRETERS, ids=IDS)
def test_the_box_runs_from_the_image_at_a_device_heap_through_a_failover(name, exe, scale):
    """boards/unix/romfs.py mounts the image as a board mounts its ROMFS partition; the heap
    is a device heap plus what the image takes there (on a board it is flash)."""
    image_path = mp_box.build_romfs()
    block = 16 if scale == 1.0 else 32
    heap = int(mpy_build.scaled_heap("%dK" % DEVICE_HEAP_K, scale)[:-1]) * 1024
    heap += -(-os.path.getsize(image_path) // block) * block + block
    g1 = GATEWAYS[0]
    general = "HeartbeatDeferTime = 1\nHeartbeatResponseTime = 0.5\nHeartbeatRetries = 2\nHandshakeRetryTime = 1\n"
    rig = ClusterRig(general=general, heap="%dK" % -(-heap // 1024), micropython=exe, baud=57600,
                     box_env={"MICROPYPATH": "unix", "GWBOX_ROMFS": image_path})
    try:
        assert rig.box.wait_event(lambda e: e["event"] == "gateway_in_use", 30), rig.box.stderr[-5:]
        for i in range(1, 21):
            rig.send(i)
        assert rig.wait_delivered(range(1, 21), 20), "lost before the failover"
        mark = rig.box.count()
        rig.freeze(g1)
        use = rig.box.wait_event(lambda e: e["event"] == "gateway_in_use", 20, mark)
        assert use and use["gateway"] != g1, rig.box.stderr[-5:]
        for i in range(21, 41):
            rig.send(i)
        assert rig.wait_delivered(range(1, 41), 20), "lost across the failover"
        assert not rig.box.find("out_of_memory")
        assert rig.box.alive() and not [x for x in rig.box.stderr if "Error" in x], rig.box.stderr[-5:]
    finally:
        rig.close()
