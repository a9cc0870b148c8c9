"""The least MicroPython heap on which the whole box firmware runs its scenario, as .mpy.

The box is firmware/main.py exactly as `make demo` runs it (gwbox_tools.cluster_rig:
boards/unix, firmware as .mpy under build/mpy, its UART on the modem emulator's pty at
9,600 baud, the access server and three gateways as processes), at `-X heapsize=<n>K`.
The scenario, one run:

  boot (parse the policy, build the box), dial the access server, handshake with G1;
  BURST messages at once (all in the outbox together), every one delivered;
  an idle heartbeat round answered;
  TRICKLE more messages at TRICKLE_HZ; after FREEZE_AFTER of them G1 freezes (carrier
  up, nothing answers): the box declares it dead, authenticates the next gateway and
  re-sends what was unconfirmed; every message 1..BURST+TRICKLE reaches a target;
  a console session on the box's console pty (gwbox_tools.devconsole, as `gwbox console`
  talks to a board): status, show log, show policy (the policy parser loaded beside the
  running box), login, test link, logout: every one must succeed.

Short heartbeat timers (HeartbeatDeferTime 1 s, HeartbeatResponseTime 0.5 s, retries 2,
HandshakeRetryTime 1 s) keep a run to about 15 s; they change when things happen, not
what the box holds. A run passes only if the scenario completes within RUN_TIMEOUT_S,
with 0 lost, the box process alive and no `out_of_memory` event (the device port
survives a MemoryError in its loop and reports it: that counts as a failure here) and
no traceback on its console. The heap search is heapsearch.py's, from LOW_K (the firmware
cannot even import there; checked), 20 of 20 runs at the answer, PARALLEL runs at a time
(each with its own rig).

Legs: the firmware as .mpy files in lib/ (a board's file system: the .mpy is copied
into the heap) on the 64-bit .venv `micropython` ("mp") and the 32-bit MICROPYTHON32 or
../shared/tools/micropython32/micropython ("mp32", skipped with a note when absent); the
same .mpy files in a ROMFS image on the 32-bit one ("mp32romfs": run in place, as on a
board with a ROMFS partition; boards/unix/romfs.py reads the image into one bytearray at
boot, and that allocation is subtracted from every figure of the leg, since on a board
the image is flash); the firmware frozen into a 32-bit build ("mp32frozen", only with
MICROPYTHON32_FROZEN; docs/memory.md has the build line).

Keys, per leg:
  mp_box_peak_heap_bytes / mp32_box_peak_heap_bytes     the least heap (bytes), 20/20
  mp_box_import_heap_bytes / mp32_box_import_heap_bytes gc.mem_alloc() after gc.collect()
      once what the running box keeps is imported (board, machine, gwbox.box, gwbox.link.modem,
      gwbox.port.device, time, gwbox.port.udplan, what gwbox.boxbuild imports for Box(), and
      gwbox.session with what it imports, loaded by the first handshake),
      policy parser and boxbuild not loaded
  mp_box_state_heap_bytes / mp32_box_state_heap_bytes   the difference
  mp_box_failover_code_heap_bytes / mp32_...             the same once the names of boot's code
      (dropped after boot) and the key exchange a fresh-key failover loads are added: the code
      the box holds at its peak, before any state; the least heap can be no lower
  mp_heap_word_bits / mp32_heap_word_bits                struct.calcsize("P") * 8
  mp32romfs_box_image_bytes, mp32romfs_box_heap_with_image_bytes   the image, and the least
      heap before the image's allocation is subtracted
Prints one JSON object.
"""
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox_tools import mp_box  # noqa: E402
from gwbox_tools.cluster_rig import GATEWAYS, ClusterRig, RigError  # noqa: E402
from gwbox_tools.devconsole import ConsoleError, DeviceConsole, hash_password  # noqa: E402
from heapsearch import CONFIRM_RUNS, HeapSearch, interpreters, mp_run, word_bits  # noqa: E402

G1 = GATEWAYS[0]
BURST = 50
TRICKLE = 50
TRICKLE_HZ = 10.0
FREEZE_AFTER = 10
RUN_TIMEOUT_S = 60.0
LOW_K = 24
PARALLEL = int(os.environ.get("GWBOX_HEAP_PARALLEL", "3"))
CONSOLE_PASSWORD = "bench-console-password"  # 1,000 PBKDF2 iterations: the heap is the same, the login quicker
GENERAL = """HeartbeatDeferTime = 1
HeartbeatResponseTime = 0.5
HeartbeatRetries = 2
HandshakeRetryTime = 1
ConsolePassword = %s
""" % hash_password(CONSOLE_PASSWORD, iterations=1000)
CONSOLE_SESSION = ("status", "show log", "show policy", "login " + CONSOLE_PASSWORD, "test link", "logout")
MAIN_IMPORTS = ("import gc\nimport sys\nimport board\nimport machine\nfrom gwbox.box import Box\n"
                "from gwbox.link.modem import Modem\nfrom gwbox.port.device import DevicePort\nimport time\n"
                "from gwbox.port.udplan import UdpLan\nimport gwbox.boxbuild\nfrom gwbox import forget\n"
                "forget('gwbox.boxbuild', 'gwbox.ipv4')\nimport gwbox.session\n")
# (Box() imports what the built box keeps, then drops boxbuild; the session's code comes with
# the first handshake and stays: gwbox.endpoint._SESSION_CODE.)
# Then what a fresh-key failover adds to that code, with no state at all: the names boot's code
# leaves behind (it is dropped, interned names never are) and the key exchange (initiator.py
# brings handshake, message, keyschedule and X25519), as the box holds them at its peak.
FAILOVER_IMPORTS = ("import gwbox.start, gwbox.store, gwbox.policy, gwbox.link.hayes\n"
                    "forget('gwbox.start', 'gwbox.store', 'gwbox.policy', 'gwbox.policyvalue', 'gwbox.ipv4', "
                    "'gwbox.link.hayes')\nimport gwbox.initiator\n")

_build_lock = threading.Lock()


class Fail(Exception):
    pass


def wait(rig, name, timeout, start=0, **fields):
    """A box event, or Fail: the box ran out of memory, died, or took too long."""
    def pred(e):
        if e["event"] == "out_of_memory":
            return True
        return e["event"] == name and all(e.get(k) == v for k, v in fields.items())
    e = rig.box.wait_event(pred, timeout, start)
    if e is None:
        raise Fail("%s: %s" % ("died" if not rig.box.alive() else "no %s" % name,
                               " | ".join(rig.box.stderr[-3:])[-300:]))
    if e["event"] == "out_of_memory":
        raise Fail("out_of_memory")
    return e


def delivered(rig, n, deadline):
    while time.monotonic() < deadline:
        if not rig.box.alive():
            raise Fail("died: %s" % " | ".join(rig.box.stderr[-3:])[-300:])
        if rig.box.find("out_of_memory"):
            raise Fail("out_of_memory")
        if len(set(rig.delivered()) & set(range(1, n + 1))) == n:
            return
        time.sleep(0.1)
    raise Fail("lost %d" % (n - len(set(rig.delivered()) & set(range(1, n + 1)))))


def console_session(rig):
    """The console's read-only commands, as an integrator runs them: each must be answered."""
    try:
        with DeviceConsole(rig.box.console_path, timeout=10.0) as c:
            c.sync()
            for cmd in CONSOLE_SESSION:
                r = c.command(cmd)
                if not r.ok:
                    raise Fail("console %s: %s" % (cmd, r.msg))
    except (ConsoleError, OSError) as e:
        raise Fail("console: %s" % e)


def scenario(exe, heap_k, env=None):
    """One run at `heap_k` KB: None if it passed, else why not. `env`: the box's module path
    and ROMFS image, per leg (LIB when not given)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with _build_lock:
        rig = ClusterRig(general=GENERAL, heap="%dK" % heap_k, micropython=exe, baud=9600,
                         box_env=env or LIB, box_console=True)
    try:
        wait(rig, "gateway_in_use", 30, gateway=G1)
        for i in range(1, BURST + 1):
            rig.send(i)
        delivered(rig, BURST, deadline)
        wait(rig, "heartbeat_ack", 10, rig.box.count())
        with rig.traffic(TRICKLE_HZ, TRICKLE, first=BURST + 1) as feed:
            feed.wait_for(BURST + FREEZE_AFTER, 30)
            mark = rig.box.count()
            rig.freeze(G1)
            wait(rig, "gateway_dead", 20, mark, gateway=G1)
            use = wait(rig, "gateway_in_use", 20, mark)
            if use["gateway"] == G1:
                raise Fail("failed over to the frozen gateway")
            feed.join(30)
        delivered(rig, BURST + TRICKLE, deadline)
        console_session(rig)
        if rig.box.find("out_of_memory") or not rig.box.alive():
            raise Fail("out_of_memory at the end")
        bad = [ln for ln in rig.box.stderr if "Traceback" in ln or "Error" in ln]
        if bad:
            raise Fail("console: %s" % bad[-1][-200:])
        return None
    except (Fail, RigError) as e:
        return str(e)[:300]
    finally:
        rig.close()


def import_heap(exe, env):
    """Heap in use (after a collection) before any import (with a ROMFS image: once `import
    board` has mounted it), once main.py's imports are done, and with FAILOVER_IMPORTS too."""
    mount = "import board\n" if "GWBOX_ROMFS" in env else ""
    show = "gc.collect()\nprint(gc.mem_alloc())\n"
    out = mp_run("mp_box_heap", exe, "import gc\n" + mount + show + MAIN_IMPORTS + show + FAILOVER_IMPORTS + show,
                 mp_box.DEVICE_DIR, env["MICROPYPATH"], env=env)
    return [int(x) for x in out[-3:]]


# Where the box finds the firmware, per leg: .mpy files in lib/ (a board's file system);
# frozen into the interpreter (boards/unix/manifest.py; the build line is in
# docs/memory.md); a ROMFS image mounted at /rom (boards/unix/romfs.py).
LIB = {"MICROPYPATH": "unix:lib"}
FROZEN = {"MICROPYPATH": "unix:.frozen"}


def romfs_env():
    return {"MICROPYPATH": "unix", "GWBOX_ROMFS": mp_box.build_romfs()}


def image_allocation(word_bits_, image_bytes):
    """The heap that boards/unix/romfs.py's bytearray takes: its data rounded up to GC blocks
    (16 bytes on 32-bit, 32 on 64-bit), plus one block for the bytearray object itself."""
    block = 16 if word_bits_ == 32 else 32
    return -(-image_bytes // block) * block + block


def legs(notes):
    """[(key prefix, interpreter, box env)]."""
    out = [(prefix, exe, LIB) for prefix, exe in interpreters(notes, "mp32_box_*, mp32romfs_box_*")]
    exe32 = dict((prefix, exe) for prefix, exe, _env in out).get("mp32")
    if exe32:
        out.append(("mp32romfs", exe32, romfs_env()))
    frozen = os.environ.get("MICROPYTHON32_FROZEN")
    if frozen and os.path.isfile(frozen):
        out.append(("mp32frozen", frozen, FROZEN))
    else:
        notes.append("no frozen 32-bit build (MICROPYTHON32_FROZEN; docs/memory.md has the build line): "
                     "mp32frozen_box_* keys not measured")
    return out


def main():
    mp_box.build_device()
    out = {"notes": [], "mp_box_heap_log": {}, "mp_box_heap_seconds": {}}
    for prefix, exe, env in legs(out["notes"]):
        t1 = time.monotonic()
        log = out["mp_box_heap_log"][prefix] = []
        run = (lambda e, k, env=env: scenario(e, k, env))
        heap = HeapSearch("mp_box_heap " + prefix, run, LOW_K, PARALLEL).least_heap(exe, log) * 1024
        bare, imports, failover_code = import_heap(exe, env)
        bits = word_bits("mp_box_heap", exe, mp_box.DEVICE_DIR)
        rom = 0
        if "GWBOX_ROMFS" in env:  # the image sits in this heap; on a board it is in flash
            size = os.path.getsize(env["GWBOX_ROMFS"])
            rom = image_allocation(bits, size)
            out[prefix + "_box_image_bytes"] = size
            out[prefix + "_box_heap_with_image_bytes"] = heap
        out[prefix + "_box_peak_heap_bytes"] = heap - rom
        out[prefix + "_box_import_heap_bytes"] = imports - rom
        out[prefix + "_box_failover_code_heap_bytes"] = failover_code - rom
        out[prefix + "_box_state_heap_bytes"] = heap - imports
        out[prefix + "_box_interpreter_heap_bytes"] = bare - rom
        out[prefix + "_heap_word_bits"] = bits
        out["mp_box_heap_seconds"][prefix] = round(time.monotonic() - t1, 1)
        out[prefix + "_box_heap_runs"] = sum(x["runs"] for x in log)
    out["mp_box_heap_confirm_runs"] = CONFIRM_RUNS
    print(json.dumps(out))


if __name__ == "__main__":
    main()
