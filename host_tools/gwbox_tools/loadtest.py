"""`gwbox loadtest`: N real boxes against a real head office, and the re-authentication storm.

    gwbox loadtest --boxes 200 --gateways 3 [--kill] [--cached] [--failback] [--json FILE]

The head office is gwbox_tools.headoffice as everywhere else (gateway and access server
processes, the LAN on loopback UDP), at scale: several access servers (one per 4,000
boxes; a loopback address each), every gateway on a loopback address of its own, quiet
event logs and a `gateway_stats` line a second. The boxes are firmware `Box` objects in
worker processes (gwbox_tools.loadgen, up to 2,500 each), each with its own identity,
PSK, policy (preferred gateway round-robin) and modem line to its access server.

A run: the boxes start (spread over --start-s), log in and send one message every
--interval-s each; when all carry, optionally `--cached` (every box also keys the next
gateway of its order), then `--kill` the first gateway (SIGKILL): the storm. It measures,
per box that was on it, the time from the kill until it carries payload again through
another gateway (a message confirmed), split by how its cluster chose that gateway
(cached_key / authenticated); the surviving gateways' CPU seconds and peak RSS over the
storm and their admission counters. `--failback` then restarts the killed gateway and
measures the wave of boxes returning to it (their failback tries are spread, see
gwbox.cluster). Finally traffic stops, the outboxes drain, and every message a box
accepted is looked for at the target hosts: lost = accepted and never delivered.

Progress lines go to stderr while it runs; the result is one JSON object (stdout, or
--json FILE). Everything it starts, it stops (also on Ctrl-C).
"""
import json
import math
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time

from .headoffice import FIRMWARE, HOST_TOOLS, ROOT, HeadOffice, ras_name

GATEWAYS = ("143.1.0.64", "143.1.1.157", "143.1.0.63", "143.1.0.62", "143.1.0.61", "143.1.0.60")
TARGETS = ("10.0.0.5", "10.0.0.6")
BOXES_PER_WORKER = 2000
BOXES_PER_RAS = 4000
# The boxes' policy beyond topology and key: payload every interval keeps heartbeats away
# (the defer time is longer), so a dead gateway is noticed by unanswered payload.
GENERAL = """HeartbeatDeferTime = %d
FailbackTime = 30
"""


class LoadTestError(RuntimeError):
    pass


def raise_fd_limit(want):
    """Open-file limit up to `want` (root may raise the hard limit too); the limit we have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    for new in ((want, max(hard, want)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, new)
            return new[0]
        except (ValueError, OSError):
            continue
    return soft


def proc_cpu_s(pid):
    """User + system CPU seconds of a process (from /proc), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kb(pid, key="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def host_load():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(math.ceil(p / 100.0 * len(xs))) - 1)]


class Worker:
    """One loadgen process: its boxes, and its JSON lines read on a thread."""

    def __init__(self, n, spec, workdir):
        self.n = n
        path = os.path.join(workdir, "worker%d.json" % n)
        with open(path, "w") as f:
            json.dump(spec, f)
        os.chmod(path, 0o600)  # the boxes' keys
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([FIRMWARE, HOST_TOOLS]), PYTHONUNBUFFERED="1")
        self.err = open(os.path.join(workdir, "worker%d.stderr" % n), "wb")
        self.p = subprocess.Popen([sys.executable, "-m", "gwbox_tools.loadgen", "--spec", path], cwd=ROOT, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                pass
        self.q.put(None)

    def send(self, obj):
        try:
            self.p.stdin.write((json.dumps(obj) + "\n").encode())
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            raise LoadTestError("load worker %d died:\n%s" % (self.n, self.stderr()))

    def get(self, key, timeout):
        end = time.monotonic() + timeout
        while True:
            try:
                m = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise LoadTestError("load worker %d: no %s within %.0f s:\n%s" % (self.n, key, timeout, self.stderr()))
            if m is None:
                raise LoadTestError("load worker %d ended:\n%s" % (self.n, self.stderr()))
            if key in m:
                return m[key]

    def stderr(self):
        try:
            with open(self.err.name, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        if self.p.poll() is None:
            try:
                self.send({"cmd": "stop"})
                self.p.wait(10)
            except (LoadTestError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        self.err.close()


class LoadTest:
    def __init__(self, boxes, gateways=3, interval_s=10.0, latency_ms=20, baud=9600, start_s=None,
                 workers=None, access_servers=None, general=None, progress=None, seed=1, quiet=True):
        if boxes < 1 or not 2 <= gateways <= len(GATEWAYS):
            raise ValueError("--boxes must be at least 1 and --gateways from 2 to %d" % len(GATEWAYS))
        self.n = boxes
        self.gateways = list(GATEWAYS[:gateways])
        self.interval = interval_s
        self.latency = latency_ms
        self.baud = baud
        self.start_s = start_s if start_s is not None else boxes / 150.0  # logins spread over this
        self.n_workers = workers or max(1, -(-boxes // BOXES_PER_WORKER))
        self.n_ras = access_servers or max(1, -(-boxes // BOXES_PER_RAS))
        self.general = general if general is not None else GENERAL % max(20, int(interval_s * 1.5) + 1)
        self.progress = progress or (lambda text: None)
        self.seed = seed
        self.quiet = quiet  # gateways and access servers log no per-box events
        self.ho = None
        self.workers = []
        self.workdir = None
        self.delivered = {}  # box identity -> set of message numbers that reached a target
        self._lock = threading.Lock()
        self.result = {"boxes": boxes, "gateways": gateways, "access_servers": self.n_ras,
                       "workers": self.n_workers, "interval_s": interval_s, "baud": baud, "latency_ms": latency_ms}

    # --- life cycle ------------------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def start(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self):
        self.result["fd_limit"] = raise_fd_limit(4 * self.n + 4096)
        self.workdir = tempfile.mkdtemp(prefix="gwbox-loadtest-")
        ids = ["box-%05d" % i for i in range(self.n)]
        keys = [os.urandom(32) for _ in ids]
        self.ho = HeadOffice(dict(zip(ids, keys)), gateways=self.gateways, targets=TARGETS, echo=False,
                             access_servers=self.n_ras, own_hosts=True, quiet=self.quiet,
                             gateway_args=["--stats-ms", "1000"], workdir=os.path.join(self.workdir, "ho"),
                             ready_timeout=60.0)
        self.ho.start()
        self.ho.targets.record = False
        self.ho.targets.on_datagram = self._on_datagram
        numbers = self.ho.dial_targets()
        self.t0 = time.monotonic()
        per = -(-self.n // self.n_workers)
        for w in range(self.n_workers):
            boxes = []
            for i in range(w * per, min(self.n, (w + 1) * per)):
                boxes.append({"identity": ids[i], "key": keys[i].hex(), "preferred": self.gateways[i % len(self.gateways)],
                              "dial": ras_name(i % self.n_ras)})
            spec = {"boxes": boxes, "gateways": self.gateways, "targets": list(TARGETS), "numbers": numbers,
                    "baud": self.baud, "latency_ms": self.latency, "interval_s": self.interval,
                    "start_s": self.start_s, "general": self.general, "seed": self.seed + w}
            self.workers.append(Worker(w, spec, self.workdir))
        for w in self.workers:
            w.get("ready", 60 + self.n / 200.0)
        self.progress("%d boxes in %d worker(s), %d gateways, %d access server(s)"
                      % (self.n, self.n_workers, len(self.gateways), self.n_ras))

    def close(self):
        for w in self.workers:
            w.close()
        self.workers = []
        if self.ho is not None:
            self.ho.close()
            self.ho = None
        if self.workdir:
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # --- what arrived ----------------------------------------------------------------

    def _on_datagram(self, t, name, src, payload):
        parts = payload.split(b"|", 2)
        if len(parts) < 3:
            return
        try:
            num = int(parts[1])
        except ValueError:
            return
        with self._lock:
            self.delivered.setdefault(parts[0].decode("ascii", "replace"), set()).add(num)

    # --- steering the workers ----------------------------------------------------------

    def broadcast(self, obj):
        for w in self.workers:
            w.send(obj)

    def status(self):
        self.broadcast({"cmd": "status"})
        keys = ("boxes", "carrying", "cached", "sent", "confirmed", "errors", "on_line", "handshaking", "candidates")
        total = dict.fromkeys(keys, 0)
        total["in_use"] = {}
        total["lag_ms"] = 0
        for w in self.workers:
            s = w.get("status", 30)
            total["lag_ms"] = max(total["lag_ms"], s["lag_ms"])
            for k in keys:
                total[k] += s[k]
            for g, c in s["in_use"].items():
                total["in_use"][g] = total["in_use"].get(g, 0) + c
        return total

    def wait(self, what, pred, timeout, every=2.0):
        """Poll the workers' status until pred(status); progress lines meanwhile."""
        end = time.monotonic() + timeout
        while True:
            s = self.status()
            self.progress("%s: %d/%d carrying (%d on a call, %d handshaking), in use %s, sent %d, confirmed %d, "
                          "boxes served up to %d ms late, load %s"
                          % (what, s["carrying"], s["boxes"], s["on_line"], s["handshaking"], s["in_use"], s["sent"],
                             s["confirmed"], s["lag_ms"], host_load()[0]))
            if pred(s):
                return s
            if time.monotonic() > end:
                raise LoadTestError("%s: not within %.0f s (%d of %d boxes carrying)" % (what, timeout, s["carrying"],
                                                                                        s["boxes"]))
            time.sleep(every)

    def reports(self):
        self.broadcast({"cmd": "report"})
        boxes = {}
        for w in self.workers:
            boxes.update(w.get("report", 60)["boxes"])
        return boxes

    def gateway_usage(self):
        """{address: (cpu seconds, rss kB)} of the live gateways."""
        out = {}
        for g in self.gateways:
            pid = self.ho.pids.get(g)
            if pid is not None:
                out[g] = (proc_cpu_s(pid), proc_rss_kb(pid))
        return out

    # --- the scenario ----------------------------------------------------------------

    def login(self, timeout=None):
        t = time.monotonic()
        s = self.wait("login", lambda s: s["carrying"] == self.n, timeout or (120 + self.start_s + self.n / 50.0))
        self.result["login_s"] = round(time.monotonic() - t, 1)
        self.result["gateway_rss_kb_logged_in"] = dict((g, u[1]) for g, u in self.gateway_usage().items())
        return s

    def cache(self, timeout=None):
        spread = self.n / 150.0  # as fast as the logins
        self.broadcast({"cmd": "cache", "spread_s": spread / self.n_workers * self.n_workers})
        self.wait("caching a second key", lambda s: s["cached"] == self.n and s["carrying"] == self.n,
                  timeout or 120 + 2 * spread)

    def storm(self, victim=None, timeout=None, steady_s=None):
        """Kill `victim` (default: the first gateway) and wait until every box carries again."""
        victim = victim or self.gateways[0]
        time.sleep(self.interval if steady_s is None else steady_s)  # steady traffic first
        before = self.status()
        on_victim = before["in_use"].get(victim, 0)
        survivors = [g for g in self.gateways if g != victim]
        use0 = self.gateway_usage()
        self.broadcast({"cmd": "mark", "name": "storm", "gateway": victim})
        t_kill = time.monotonic()
        self.ho.kill(victim)
        load = []

        def all_back(s):
            load.append(host_load()[0])
            return s["carrying"] == self.n and s["in_use"].get(victim, 0) == 0
        self.wait("storm (%s killed, %d boxes on it)" % (victim, on_victim), all_back,
                  timeout or (120 + self.n / 20.0))
        wall = time.monotonic() - t_kill
        use1 = self.gateway_usage()
        boxes = self.reports()
        rec = dict((k, []) for k in ("all", "cached_key", "authenticated"))
        for b in boxes.values():
            if b["was_on"].get("storm") and "storm" in b["recovered"]:
                ms = b["recovered"]["storm"] * 1000.0
                rec["all"].append(ms)
                rec.setdefault(b["how"].get("storm") or "?", []).append(ms)
        r = self.result
        r["storm_victim"] = victim
        r["storm_boxes_on_victim"] = on_victim
        r["storm_recovered"] = len(rec["all"])
        for k, xs in rec.items():
            if xs:
                r["storm_%s_ms_max" % k] = round(max(xs))
                r["storm_%s_ms_median" % k] = round(percentile(xs, 50))
                r["storm_%s_ms_p95" % k] = round(percentile(xs, 95))
                r["storm_%s_boxes" % k] = len(xs)
        r["storm_wall_s"] = round(wall, 1)
        r["storm_host_load_max"] = max(load) if load else None
        cpu = {}
        for g in survivors:
            a, b = use0.get(g), use1.get(g)
            if a and b and a[0] is not None and b[0] is not None:
                cpu[g] = round((b[0] - a[0]) / wall, 3)
        r["storm_survivor_cpu_share"] = cpu  # CPU seconds per wall second during the storm
        r["storm_survivor_rss_kb"] = dict((g, proc_rss_kb(self.ho.pids[g], "VmHWM")) for g in survivors
                                          if g in self.ho.pids)
        r["storm_admission"] = self.admission(survivors, t_kill)
        return r

    def admission(self, gateways, since_mono):
        """The survivors' admission counters (from their gateway_stats lines) since `since_mono`:
        cookies sent, SA_INITs turned away, the largest half-open count, sessions at the end."""
        out = {}
        since_ms = (since_mono - self.ho.t0) * 1000
        for g in gateways:
            st = [e for e in self.ho.events(g) if e["event"] == "gateway_stats"]
            before = [e for e in st if e["t_ms"] <= since_ms]
            after = [e for e in st if e["t_ms"] > since_ms]
            if not after:
                continue
            b = before[-1] if before else dict.fromkeys(("cookies_sent", "turned_away", "evicted", "lan_refused"), 0)
            a = after[-1]
            out[g] = {"cookies_sent": a["cookies_sent"] - b["cookies_sent"],
                      "turned_away": a["turned_away"] - b["turned_away"],
                      "half_open_max": max(e["half_open"] for e in after), "sessions": a["sessions"],
                      "handshakes_per_s_max": self._rate_max(st, since_ms)}
        return out

    @staticmethod
    def _rate_max(stats, since_ms):
        """Largest growth of the session count between two stats lines, per second."""
        best = 0.0
        prev = None
        for e in stats:
            if prev is not None and e["t_ms"] > since_ms and e["t_ms"] > prev["t_ms"]:
                best = max(best, (e["sessions"] - prev["sessions"]) * 1000.0 / (e["t_ms"] - prev["t_ms"]))
            prev = e
        return round(best, 1)

    def failback(self, victim=None, timeout=None):
        """Restart the killed gateway; wait until the boxes that prefer it are back on it."""
        victim = victim or self.gateways[0]
        prefer = sum(1 for i in range(self.n) if self.gateways[i % len(self.gateways)] == victim)
        t = time.monotonic()
        self.ho.restart(victim, 60)
        self.wait("failback to %s (%d prefer it)" % (victim, prefer),
                  lambda s: s["in_use"].get(victim, 0) == prefer and s["carrying"] == self.n,
                  timeout or (300 + self.n / 20.0), every=3.0)
        r = self.result
        r["failback_s"] = round(time.monotonic() - t, 1)
        r["failback_boxes"] = prefer
        st = [e for e in self.ho.events(victim) if e["event"] == "gateway_stats"]
        since = (t - self.ho.t0) * 1000
        r["failback_handshakes_per_s_max"] = self._rate_max(st, since)
        rates = []
        prev = None
        for e in st:
            if prev is not None and e["t_ms"] > since and e["t_ms"] > prev["t_ms"]:
                rates.append((e["sessions"] - prev["sessions"]) * 1000.0 / (e["t_ms"] - prev["t_ms"]))
            prev = e
        busy = [x for x in rates if x > 0]
        r["failback_wave_s"] = len(busy)  # seconds (stats lines) in which boxes came back
        return r

    def drain(self, timeout=120):
        """Stop new messages; wait until every accepted message is confirmed; count the lost."""
        self.broadcast({"cmd": "quiet"})
        end = time.monotonic() + timeout
        while True:
            boxes = self.reports()
            with self._lock:
                missing = 0
                sent = refused = dup_free = 0
                for name, b in boxes.items():
                    got = self.delivered.get(name, set())
                    accepted = set(range(1, b["sent"] + 1)) - set(b["refused"])
                    missing += len(accepted - got)
                    sent += len(accepted)
                    refused += len(b["refused"])
                    dup_free += len(accepted & got)
            self.progress("drain: %d of %d accepted messages delivered, %d missing" % (dup_free, sent, missing))
            if missing == 0 or time.monotonic() > end:
                break
            time.sleep(2.0)
        r = self.result
        r["messages_accepted"] = sent
        r["messages_refused"] = refused
        r["messages_lost"] = missing
        r["worker_errors"] = self.status()["errors"]
        return r


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="gwbox loadtest", description=__doc__.split("\n")[0])
    p.add_argument("--boxes", type=int, default=200, help="how many boxes (default 200)")
    p.add_argument("--gateways", type=int, default=3, help="gateways in the cluster (default 3)")
    p.add_argument("--interval-s", type=float, default=10.0, help="each box sends a message this often (default 10)")
    p.add_argument("--start-s", type=float, default=None, help="box starts spread over this (default boxes/150)")
    p.add_argument("--latency-ms", type=int, default=20, help="one-way modem line latency (default 20)")
    p.add_argument("--kill", action="store_true", help="kill the first gateway once all carry: the storm")
    p.add_argument("--cached", action="store_true", help="before the kill, every box keys a second gateway")
    p.add_argument("--failback", action="store_true", help="after the storm, restart the killed gateway")
    p.add_argument("--json", default=None, help="write the result here (default: stdout)")
    a = p.parse_args(argv)

    if a.boxes < 1 or not 2 <= a.gateways <= len(GATEWAYS) or a.interval_s <= 0:
        print("gwbox loadtest: --boxes must be at least 1 and --gateways from 2 to %d (--interval-s above 0)"
              % len(GATEWAYS), file=sys.stderr)
        return 2

    def progress(text):
        print("loadtest %6.1f s  %s" % (time.monotonic() - t0, text), file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        with LoadTest(a.boxes, a.gateways, a.interval_s, a.latency_ms, start_s=a.start_s, progress=progress) as lt:
            lt.login()
            if a.cached:
                lt.cache()
            if a.kill:
                lt.storm()
                if a.failback:
                    lt.failback()
            lt.drain()
            result = lt.result
    except (LoadTestError, ValueError) as e:
        print("gwbox loadtest: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    text = json.dumps(result, indent=1, sort_keys=True)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0 if result.get("messages_lost") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
