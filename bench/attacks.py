"""Issue 8's measurements: what an attacker on the line costs the link, and what it cannot do.

Keys (one JSON object on the last line):

  mp_sa_init_cookie_us / mp_sa_init_full_us / mp_sa_init_refused_us
      responder CPU per unauthenticated SA_INIT under MicroPython (the .venv interpreter,
      64-bit; mp32_* the same on the 32-bit one, MICROPYTHON32 or
      ../shared/tools/micropython32/micropython, skipped with a note when absent), firmware
      as .mpy from build/mpy: a gateway Endpoint takes forged SA_INITs (fresh SPIs, nonce,
      random X25519 key) on one link. Cookie path: a handshake is already in progress on
      that link, so each gets a stateless COOKIE (one HMAC). Full path: none is, so each
      costs the responder its X25519 key pair and shared secret and a half-open entry.
      Refused: only unsupported transforms (finding 9). Per-SA_INIT median of each run
      (gc.collect() before each, time.ticks_us around `receive` only), median of RUNS runs.
  flood_login_ms
      real time, over the rig (box firmware under micropython at 9,600 baud, the line
      attacker between the modem emulator and the box): forged SA_INITs toward the
      gateway at line rate (tests/host/test_attacks.py Flood: the line to the access server
      always busy with them) from before the box's own SA_INIT; the time from letting the
      box's SA_INIT through to `sa_established`. Median of FLOOD_RUNS runs;
      flood_login_ms_quiet: the same without a flood; flood_frames_per_s: the flood's rate.
  rekey_5pct_loss_lost
      virtual time (tests/firmware/clustersim.py, the whole Box against three firmware
      gateways): RekeyTime 5 s, 5 % of frames lost each way at random, a message every
      200 ms for REKEY_MINUTES minutes, each answered by its target (NH_REPLY): messages the
      box accepted that never reached a target (must be 0). Also: rekey_5pct_loss_rekeys,
      rekey_5pct_loss_frames_lost (the line's doing), rekey_5pct_loss_old_sa_drops (packets
      that arrived and were dropped for an SA already gone, either side; must be 0),
      rekey_5pct_loss_replies_missing (answers that did not come back: only ever lost
      frames, so at most frames_lost).
  fuzz_examples_per_target / fuzz_failures
      tests/host/test_fuzz_sa.py at GWBOX_FUZZ_EXAMPLES (FUZZ_EXAMPLES, 100,000) per target,
      two pytest processes at a time: the fewest examples any target ran, and the failed
      tests (fuzz_seconds: wall time).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in ("firmware", "host_tools", os.path.join("tests", "host"), os.path.join("tests", "firmware")):
    sys.path.insert(0, os.path.join(ROOT, p))

from gwbox.port import host_aes  # noqa: E402

host_aes.install()

from gwbox_tools import mpy_build  # noqa: E402

RUNS = 7
FLOOD_RUNS = int(os.environ.get("GWBOX_FLOOD_RUNS", "3"))
REKEY_MINUTES = int(os.environ.get("GWBOX_REKEY_MINUTES", "10"))
FUZZ_EXAMPLES = int(os.environ.get("GWBOX_FUZZ_EXAMPLES", "100000"))

# Runs under micropython with build/mpy as its current directory (firmware under lib/).
MP_SCRIPT = r'''
import gc
import json
import sys
import time

sys.path.insert(0, "lib")
from gwbox import message, wire  # noqa: E402
from gwbox.config import LinkConfig  # noqa: E402
from gwbox.crypto.entropy import random_bytes  # noqa: E402
from gwbox.endpoint import Endpoint  # noqa: E402

RUNS = int(sys.argv[1])
N_COOKIE = 60
N_FULL = 6
NOW = (1 << 30) - 5000


def spi():
    while True:
        s = int.from_bytes(random_bytes(4), "big")
        if s >> 24 and s != 0xFFFFFFFF:
            return s


def msg1(proposal=message.DEFAULT_PROPOSAL):
    ctl = spi()
    pl = [(wire.PL_SA, message.encode_sa(ctl, spi(), [proposal])),
          (wire.PL_KE, message.tagged(wire.DH_X25519, random_bytes(32))), (wire.PL_NONCE, random_bytes(16))]
    return message.encode(message.Message(wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0, pl, ctl, 0), True)


def timed(ep, m):
    gc.collect()
    t = time.ticks_us()
    ep.receive(m, NOW, "line")
    dt = time.ticks_diff(time.ticks_us(), t)
    out = ep.take_output()
    ep.take_events()
    return dt, out


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def one_run():
    ep = Endpoint(LinkConfig(), b"143.1.0.64", psks={b"branch-7": b"\x11" * 32})
    ep.receive(msg1(), NOW, "line")  # a handshake in progress on the link
    ep.take_output()
    ms = [msg1() for _ in range(N_COOKIE)]
    cookie = []
    for m in ms:
        dt, out = timed(ep, m)
        assert len(out) == 1 and len(out[0][1]) == 39, out  # a COOKIE, nothing kept
        cookie.append(dt)
    assert ep.cookies_sent == N_COOKIE and len(ep.half_open) == 1
    ms = [msg1() for _ in range(N_FULL)]
    full = []
    for m in ms:
        ep.half_open = []  # no handshake in progress on the link: the full path
        dt, out = timed(ep, m)
        assert len(out) == 1 and len(out[0][1]) == 90 and len(ep.half_open) == 1, out
        full.append(dt)
    ms = [msg1(b"\x01\x01\x01\x63") for _ in range(N_COOKIE)]
    refused = []
    for m in ms:
        dt, out = timed(ep, m)
        assert len(out) == 1 and len(out[0][1]) == 23, out
        refused.append(dt)
    return median(cookie), median(full), median(refused)


runs = [one_run() for _ in range(RUNS)]
print(json.dumps({"cookie": median([r[0] for r in runs]), "full": median([r[1] for r in runs]),
                  "refused": median([r[2] for r in runs]), "runs": runs}))
'''


def sa_init_cpu(out):
    mpy_build.build_mpy()
    script = os.path.join(mpy_build.BUILD, "bench_sa_init.py")
    with open(script, "w") as f:
        f.write(MP_SCRIPT)
    exes = [("mp", mpy_build.micropython_binary())]
    exe32 = mpy_build.micropython32_binary()
    if exe32:
        exes.append(("mp32", exe32))
    else:
        out["notes"].append("no 32-bit interpreter (MICROPYTHON32 or ../shared/tools/micropython32/micropython): "
                            "mp32_sa_init_* not measured")
    try:
        for prefix, exe in exes:
            r = subprocess.run([exe, "-X", "heapsize=128K", "bench_sa_init.py", str(RUNS)], cwd=mpy_build.BUILD,
                               capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise SystemExit("attacks: %s failed:\n%s%s" % (exe, r.stdout, r.stderr))
            d = json.loads(r.stdout.strip().splitlines()[-1])
            out[prefix + "_sa_init_cookie_us"] = d["cookie"]
            out[prefix + "_sa_init_full_us"] = d["full"]
            out[prefix + "_sa_init_refused_us"] = d["refused"]
            out[prefix + "_sa_init_runs"] = d["runs"]
    finally:
        os.unlink(script)


def flood_login(out):
    """Login of the real box while forged SA_INITs fill its line (and once without)."""
    from gwbox_tools.cluster_rig import GATEWAYS
    from line_attacker import HOLD, UP, on_nth
    from test_attacks import GENERAL, Flood, attacked, is_sa_init_request, mark, up_packet, wait_box

    general = GENERAL.replace("HandshakeRetryTime = 2", "HandshakeRetryTime = 3")

    def one(flood):
        with attacked(general, login=False) as (rig, att):
            att.set_rule(UP, on_nth(1, HOLD, up_packet(is_sa_init_request)))
            wait_box(rig, "handshake_started", 20)
            end = time.monotonic() + 5
            while att.counters(UP)["held_now"] == 0:
                assert time.monotonic() < end
                time.sleep(0.01)
            if not flood:
                i = mark(rig)
                t0 = time.monotonic()
                att.release(UP)
                e = wait_box(rig, "sa_established", 10, i, peer=GATEWAYS[0])
                return (e["mono"] - t0) * 1000, 0.0
            with Flood(rig, att) as fl:
                time.sleep(2.0)  # the flood has the line, and G1 a half-open entry of it
                n0, t1 = fl.sent, time.monotonic()
                i = mark(rig)
                t0 = time.monotonic()
                att.release(UP)
                e = wait_box(rig, "sa_established", 10, i, peer=GATEWAYS[0])
                time.sleep(1.0)
                rate = (fl.sent - n0) / (time.monotonic() - t1)
                assert fl.error is None, fl.error
            return (e["mono"] - t0) * 1000, rate

    quiet = [one(False)[0] for _ in range(FLOOD_RUNS)]
    runs = [one(True) for _ in range(FLOOD_RUNS)]
    out["flood_login_ms"] = round(statistics.median([r[0] for r in runs]), 1)
    out["flood_login_ms_runs"] = [round(r[0], 1) for r in runs]
    out["flood_login_ms_quiet"] = round(statistics.median(quiet), 1)
    out["flood_frames_per_s"] = round(statistics.median([r[1] for r in runs]), 2)


REKEY_POLICY = """
[GENERAL]
Identity = branch-7
Dial = ras
RekeyTime = 5
RandomizeOrder = OFF
[CLUSTER]
Cluster1 = 143.1.0.64 143.1.1.157 143.1.0.63
Preferred1 = 143.1.0.64
[TUNNEL]
Tunnel1 = 10.0.0.1 - 10.0.0.9 Cluster 1
[KEYS]
Default = hex:%s
"""


def rekey_under_loss(out):
    import clustersim
    from gwbox.box import Box
    from gwbox.link.modem import Modem
    from gwbox.policy import parse

    psk = b"\x5a" * 32
    pol = parse(REKEY_POLICY % psk.hex())
    gws = ("143.1.0.64", "143.1.1.157", "143.1.0.63")

    def factory(now):
        return Box(pol, Modem(guard_ms=clustersim.GUARD, baud=9600, max_attempts=2),
                   rand_bytes=clustersim.Rand(7).bytes, start=now)

    s = clustersim.Sim(factory, {g: psk for g in gws}, {"ras": "ras"}, loss=0.05, seed=11)
    gw_drops = []
    for g in s.gateways.values():
        g.reply = True
        take = g.ep.take_events

        def keep(take=take):
            evs = take()
            gw_drops.extend(e for e in evs if e.name == "dropped")
            return evs
        g.ep.take_events = keep
    s.run(5000)
    dst = (10 << 24) | 5
    accepted = 0
    n = REKEY_MINUTES * 60 * 5
    for i in range(1, n + 1):
        if s.box.lan_send(dst, 5000, b"msg %d" % i, s.now):
            accepted += 1
        s.run(200)
    s.run(30000)  # everything in flight is confirmed or sent again
    delivered = set(num for _space, num in s.delivered())
    replies = set(p for _src, _port, p in s.lan_in)
    old_sa = [e for e in gw_drops + s.find("dropped") if "SPI" in str(e.get("reason"))]
    out["rekey_5pct_loss_lost"] = len(set(range(1, accepted + 1)) - delivered)
    out["rekey_5pct_loss_messages"] = accepted
    out["rekey_5pct_loss_rekeys"] = len(s.find("rekeyed"))
    out["rekey_5pct_loss_frames_lost"] = s.lost
    out["rekey_5pct_loss_old_sa_drops"] = len(old_sa)
    out["rekey_5pct_loss_replies_missing"] = len(set(b"re:msg %d" % i for i in range(1, accepted + 1)) - replies)
    out["rekey_5pct_loss_failovers"] = len(s.find("gateway_dead"))
    out["rekey_5pct_loss_minutes"] = REKEY_MINUTES
    if old_sa:
        out["notes"].append("rekey under loss: dropped for an SA already gone: %s" % sorted(
            set(str(e.get("reason")) for e in old_sa))[:5])


FUZZ_PARTS = (
    "sa_receive_path or handshake_receive_path",
    "not (sa_receive_path or handshake_receive_path)",
)


def fuzz(out):
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="gwbox-fuzz-")
    procs = []
    try:
        for k, expr in enumerate(FUZZ_PARTS):
            env = dict(os.environ, GWBOX_FUZZ_EXAMPLES=str(FUZZ_EXAMPLES),
                       GWBOX_FUZZ_REPORT=os.path.join(tmp, "counts%d.json" % k),
                       PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]))
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=0",
                   "--junitxml", os.path.join(tmp, "junit%d.xml" % k), "-k", expr,
                   os.path.join("tests", "host", "test_fuzz_sa.py")]
            log = open(os.path.join(tmp, "log%d.txt" % k), "w")
            procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        for p, log in procs:
            p.wait()
            log.close()
        counts, failures, tests = {}, 0, 0
        for k in range(len(FUZZ_PARTS)):
            path = os.path.join(tmp, "counts%d.json" % k)
            if os.path.exists(path):
                with open(path) as f:
                    counts.update(json.load(f))
            suite = ET.parse(os.path.join(tmp, "junit%d.xml" % k)).getroot()
            for ts in suite.iter("testsuite"):
                failures += int(ts.get("failures", 0)) + int(ts.get("errors", 0))
                tests += int(ts.get("tests", 0))
            if procs[k][0].returncode not in (0, 1):
                with open(os.path.join(tmp, "log%d.txt" % k)) as f:
                    raise SystemExit("attacks: fuzz run failed to run:\n" + f.read()[-3000:])
            if procs[k][0].returncode == 1:
                with open(os.path.join(tmp, "log%d.txt" % k)) as f:
                    out["notes"].append("fuzz failures:\n" + f.read()[-3000:])
        out["fuzz_examples_per_target"] = min(counts.values()) if counts else 0
        out["fuzz_targets"] = len(counts)
        out["fuzz_examples"] = counts
        out["fuzz_failures"] = failures
        out["fuzz_tests"] = tests
        out["fuzz_seconds"] = round(time.monotonic() - t0, 1)
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def main():
    out = {"notes": []}
    parts = sys.argv[1:] or ["cpu", "rekey", "flood", "fuzz"]
    if "cpu" in parts:
        sa_init_cpu(out)
    if "rekey" in parts:
        rekey_under_loss(out)
    if "flood" in parts:
        flood_login(out)
    if "fuzz" in parts:
        fuzz(out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
