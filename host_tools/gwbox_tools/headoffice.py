"""The whole emulated head office for a test or the demo: access server, gateways, targets.

    from gwbox_tools.headoffice import HeadOffice
    with HeadOffice({"box1": key}, gateways=["143.1.0.64", "143.1.1.157"],
                    direct=["143.1.1.157"], targets=["10.0.0.5"], echo=True) as ho:
        ho.ras_port                      # TCP port: the modem emulator's "ras" dial target
        ho.gateway_tcp_ports["143.1.1.157"]   # a gateway's own dial number
        ho.freeze("143.1.0.64"); ho.thaw("143.1.0.64")       # SIGSTOP / SIGCONT
        ho.kill("143.1.0.64"); ho.restart("143.1.0.64")      # SIGKILL; fresh state, same ports
        ho.events("143.1.0.64"), ho.events("ras")            # parsed JSON lines so far
        ho.targets.wait_for("10.0.0.5", 1)                   # what the target hosts got

Start-up: a temporary directory gets the LanMap (`lan.json`: every gateway and target),
the PSK file (`psk.txt`, mode 0600) and one events / stderr / ready file per process. UDP
ports are allocated race-free (gwbox_tools.lan.allocate): the targets take their bound
sockets in process, each gateway inherits its bound socket (`--lan-fd`). Then the access
server and the gateways start as real processes (`python -m gwbox_tools.<tool>`, cwd the
checkout, PYTHONPATH firmware:host_tools), all with the same `--t0` (one time base for every
log) and a lifeline pipe: if this process dies in any way, they read EOF and exit. start()
waits for every ready file and fails loudly (with the process's stderr) on a timeout or an
early exit, after cleaning up what it started.

close() (also the context manager's exit; idempotent) SIGCONTs stopped processes, SIGTERMs
every one, SIGKILLs what is still alive after `grace_s`, reaps them all, stops the target
thread, closes every fd and removes the directory (unless keep_files). Nothing is registered
(no atexit, no signal handlers) that could outlive the object.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import lan as lanmod
from .pskfile import PskFileError, format_psks, load_psks
from .targets import Targets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, "firmware")
HOST_TOOLS = os.path.join(ROOT, "host_tools")

DEFAULT_GATEWAYS = ("143.1.0.64", "143.1.1.157", "143.1.0.63")
DEFAULT_TARGETS = ("10.0.0.5", "10.0.0.6")
RAS = "ras"
RAS_ADDRESS = "143.1.2.1"  # the access servers' policy addresses count up from here
RAS_HOST = "127.0.0.2"  # ... and their LAN hosts (a loopback address of their own each) from here
GATEWAY_HOST = "127.0.1.1"  # with own_hosts: each gateway on a loopback address of its own


def _nth(addr, i):
    return lanmod.int_to_ip(lanmod.ip_to_int(addr) + i)


def ras_name(i):
    """Name (dial target and process) of access server i: "ras", "ras2", "ras3", ..."""
    return RAS if i == 0 else "%s%d" % (RAS, i + 1)


class HeadOfficeError(RuntimeError):
    pass


class _Proc:
    def __init__(self, name, module, args):
        self.name = name
        self.module = module
        self.args = args  # without the per-start options (ready file, fds)
        self.popen = None
        self.stopped = False
        self.ready = None  # parsed ready file
        self.finished = []  # Popen of every reaped incarnation


def _proc_state(pid):
    """One-letter state from /proc/<pid>/stat (R, S, T, Z, ...), or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rfind(")") + 2:][:1]


class HeadOffice:
    def __init__(self, boxes=None, gateways=DEFAULT_GATEWAYS, direct=(), targets=DEFAULT_TARGETS,
                 echo=True, heartbeat=None, settings=None, gateway_settings=None, ras=True,
                 serial=None, baud=9600, workdir=None, keep_files=False, ready_timeout=15.0, grace_s=3.0,
                 python=None, access_servers=1, own_hosts=False, gateway_args=(), quiet=False):
        """`boxes` {box identity (str or bytes): key bytes} (default: one box "box1" with a
        random key, see .psks); `gateways` their addresses; `direct` those that also get a
        direct dial line (`--tcp`); `targets` target host addresses; `echo` targets answer
        b"re:" + payload; `heartbeat` / `settings` {name: int} for every gateway's
        LinkConfig, `gateway_settings` {address: {name: value}} per gateway on top;
        `ras` False: no access server; `serial` {address: device} gateways that also serve a
        serial line (`--serial`, e.g. a modem emulator "pty" gateway's path) at `baud`.
        `access_servers` how many (dial targets "ras", "ras2", ...; each its own LAN host
        127.0.0.2, .3, ... and policy address 143.1.2.1, .2, ... in the LAN map);
        `own_hosts` each gateway on a loopback address of its own (127.0.1.1, .2, ...: the
        scale-out of docs/headoffice.md); `gateway_args` extra command-line arguments of
        every gateway; `quiet` no per-box or per-message events (gateways and access servers)."""
        if boxes is None:
            boxes = {"box1": os.urandom(32)}
        self.psks = {(k.encode() if isinstance(k, str) else bytes(k)): bytes(v) for k, v in boxes.items()}
        self.gateway_addrs = [lanmod.int_to_ip(lanmod.ip_to_int(a)) for a in gateways]
        self.direct = [lanmod.int_to_ip(lanmod.ip_to_int(a)) for a in direct]
        for a in self.direct:
            if a not in self.gateway_addrs:
                raise ValueError("direct gateway %s is not one of the gateways" % a)
        self.target_addrs = [lanmod.int_to_ip(lanmod.ip_to_int(a)) for a in targets]
        self.echo = echo
        self.heartbeat = heartbeat
        self.settings = dict(settings or {})
        self.gateway_settings = {lanmod.int_to_ip(lanmod.ip_to_int(a)): dict(v)
                                 for a, v in (gateway_settings or {}).items()}
        self.with_ras = ras
        self.n_ras = access_servers if ras else 0
        self.own_hosts = own_hosts
        self.gateway_args = list(gateway_args)
        self.quiet = quiet
        self.ras_ports = []
        self.serial = {lanmod.int_to_ip(lanmod.ip_to_int(a)): v for a, v in (serial or {}).items()}
        for a in self.serial:
            if a not in self.gateway_addrs:
                raise ValueError("serial gateway %s is not one of the gateways" % a)
        self.baud = baud
        self.keep_files = keep_files
        self.ready_timeout = ready_timeout
        self.grace_s = grace_s
        self.python = python or sys.executable
        self._own_dir = workdir is None
        self.workdir = workdir
        self.t0 = None
        self.lan = None
        self.lan_map_path = None
        self.psk_path = None
        self.targets = None
        self.ras_port = None
        self.gateway_tcp_ports = {}
        self._procs = {}
        self._alloc = None
        self._life_r = self._life_w = None
        self._started = False
        self._closed = False

    # --- life cycle ------------------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def start(self):
        if self._started:
            return self
        if self._closed:
            raise HeadOfficeError("head office already closed")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self):
        self.t0 = time.monotonic()
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="gwbox-headoffice-")
        else:
            os.makedirs(self.workdir, exist_ok=True)
        self._life_r, self._life_w = os.pipe()  # both non-inheritable; children get _life_r
        hosts = {}
        if self.own_hosts:
            hosts = dict((a, _nth(GATEWAY_HOST, i)) for i, a in enumerate(self.gateway_addrs))
        self._alloc = lanmod.allocate(self.gateway_addrs + self.target_addrs, hosts=hosts)
        self.lan = self._alloc.map
        for i in range(self.n_ras):
            self.lan.add(_nth(RAS_ADDRESS, i), (_nth(RAS_HOST, i), 0))
        self.lan_map_path = os.path.join(self.workdir, "lan.json")
        self.lan.save(self.lan_map_path)
        self.psk_path = os.path.join(self.workdir, "psk.txt")
        fd = os.open(self.psk_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(format_psks(self.psks))
        self.targets = Targets(self.lan, self.target_addrs, self.echo,
                               sockets={a: self._alloc.take(a) for a in self.target_addrs}).start()
        for addr in self.gateway_addrs:
            args = ["--address", addr, "--psk-file", self.psk_path, "--lan-map", self.lan_map_path]
            if self.heartbeat is not None:
                args += ["--heartbeat", self.heartbeat]
            kw = dict(self.settings)
            kw.update(self.gateway_settings.get(addr, {}))
            for k, v in kw.items():
                args += ["--setting", "%s=%s" % (k, v)]
            if addr in self.serial:
                args += ["--serial", self.serial[addr], "--baud", str(self.baud)]
            if self.quiet:
                args.append("--quiet")
            args += self.gateway_args
            p = self._procs[addr] = _Proc(addr, "gwbox_tools.gateway", args)
            sock = self._alloc.take(addr)
            try:
                self._spawn(p, ["--tcp", "127.0.0.1:0"] if addr in self.direct else [], sock)
            finally:
                sock.close()  # the child has its own copy now
        for i in range(self.n_ras):
            name = ras_name(i)
            p = self._procs[name] = _Proc(name, "gwbox_tools.access_server",
                                          ["--listen", "127.0.0.1:0", "--lan-map", self.lan_map_path,
                                           "--lan-host", _nth(RAS_HOST, i), "--name", name]
                                          + (["--quiet"] if self.quiet else []))
            self._spawn(p, [])
        for p in self._procs.values():
            self._wait_ready(p)
        self.ras_ports = [self._procs[ras_name(i)].ready["port"] for i in range(self.n_ras)]
        if self.with_ras:
            self.ras_port = self.ras_ports[0]
        for addr in self.direct:
            self.gateway_tcp_ports[addr] = self._procs[addr].ready["tcp_port"]

    def _path(self, name, kind):
        return os.path.join(self.workdir, "%s.%s" % (name, kind))

    def _spawn(self, p, extra, lan_sock=None):
        ready = self._path(p.name, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        p.ready = None
        fds = [self._life_r]
        argv = [self.python, "-m", p.module] + p.args + extra + [
            "--events", self._path(p.name, "events"), "--ready-file", ready,
            "--t0", repr(self.t0), "--lifeline-fd", str(self._life_r)]
        if lan_sock is not None:
            fds.append(lan_sock.fileno())
            argv += ["--lan-fd", str(lan_sock.fileno())]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([FIRMWARE, HOST_TOOLS] + (
            [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        with open(self._path(p.name, "stderr"), "ab") as err:
            p.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=err,
                                       stderr=err, pass_fds=fds, close_fds=True)
        p.stopped = False

    def _wait_ready(self, p, timeout=None):
        path = self._path(p.name, "ready")
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        while True:
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                p.ready = {"port": int(text)} if p.module == "gwbox_tools.access_server" else json.loads(text)
                return
            rc = p.popen.poll()
            if rc is not None:
                self._reap(p)
                raise HeadOfficeError("%s exited with %d before it was ready:\n%s" % (p.name, rc, self.stderr(p.name)))
            if time.monotonic() > deadline:
                raise HeadOfficeError("%s not ready after %.1f s:\n%s" % (p.name, self.ready_timeout, self.stderr(p.name)))
            time.sleep(0.02)

    def close(self):
        """Terminate and reap every process, stop the targets, remove the files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        live = [p for p in self._procs.values() if p.popen is not None and p.popen.poll() is None]
        for p in live:
            self._signal(p, signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
            p.stopped = False
            self._signal(p, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for p in live:
            try:
                p.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(p, signal.SIGKILL)
        for p in self._procs.values():
            self._reap(p)
        if self.targets is not None:
            self.targets.close()
        if self._alloc is not None:
            self._alloc.close()
        for fd in (self._life_r, self._life_w):
            if fd is not None:
                os.close(fd)
        self._life_r = self._life_w = None
        if self._own_dir and self.workdir and not self.keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _signal(p, sig):
        try:
            p.popen.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass

    @staticmethod
    def _reap(p):
        if p.popen is not None and p.popen.returncode is None:
            p.popen.wait()
        if p.popen is not None and p.popen not in p.finished:
            p.finished.append(p.popen)

    # --- looking at it ---------------------------------------------------------------

    def _proc(self, name):
        key = name if name.startswith(RAS) else lanmod.int_to_ip(lanmod.ip_to_int(name))
        p = self._procs.get(key)
        if p is None:
            raise KeyError("no process %r" % name)
        return p

    @property
    def pids(self):
        """{name: pid} of the processes alive now ("ras" and the gateway addresses)."""
        return {n: p.popen.pid for n, p in self._procs.items()
                if p.popen is not None and p.popen.poll() is None}

    def alive(self, name):
        p = self._proc(name)
        return p.popen is not None and p.popen.poll() is None

    def exit_codes(self, name):
        """Return codes of every finished incarnation of `name` (negative: killed by a signal)."""
        return [po.returncode for po in self._proc(name).finished]

    def events(self, name):
        """Parsed JSON-lines events of `name` ("ras" or a gateway address), all lifetimes."""
        path = self._path(self._proc(name).name, "events")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.split("\n")[:-1]:  # a last line without its newline is still being written
            if line.strip():
                out.append(json.loads(line))
        return out

    def find(self, name, event, since=0, **fields):
        return [e for e in self.events(name)[since:]
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]

    def wait_event(self, name, event, timeout=5.0, since=0, **fields):
        """The first event `event` of `name` (index >= since) with `fields`; AssertionError
        after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(name, event, since, **fields)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError("%s: no %s %r within %.1f s; last events: %r"
                                     % (name, event, fields, timeout, self.events(name)[-8:]))
            time.sleep(0.02)

    def stderr(self, name):
        try:
            with open(self._path(self._proc(name).name, "stderr"), encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def dial_targets(self):
        """{dial target: TCP port} for gwbox_tools.modem_emu.ModemEmulator(gateways=...):
        "ras" and each direct gateway by its address."""
        d = dict(self.gateway_tcp_ports)
        for i, port in enumerate(self.ras_ports):
            d[ras_name(i)] = port
        return d

    # --- faults ------------------------------------------------------------------------

    def _wait_state(self, p, want_stopped, timeout=2.0):
        deadline = time.monotonic() + timeout
        while True:
            st = _proc_state(p.popen.pid)
            if st is None or (st == "T") == want_stopped:
                return
            if time.monotonic() > deadline:
                raise HeadOfficeError("%s: state %s after %s" % (p.name, st, "SIGSTOP" if want_stopped else "SIGCONT"))
            time.sleep(0.005)

    def freeze(self, name):
        """SIGSTOP: the process neither reads nor answers; its sockets stay open (datagrams
        queue in its socket buffer and are read after thaw, like a stalled host)."""
        p = self._proc(name)
        self._require_alive(p)
        self._signal(p, signal.SIGSTOP)
        p.stopped = True
        self._wait_state(p, True)

    def thaw(self, name):
        """SIGCONT."""
        p = self._proc(name)
        self._require_alive(p)
        self._signal(p, signal.SIGCONT)
        p.stopped = False
        self._wait_state(p, False)

    def kill(self, name):
        """SIGKILL and reap: all state lost, its sockets closed (a direct dial is refused)."""
        p = self._proc(name)
        if p.popen is not None and p.popen.poll() is None:
            self._signal(p, signal.SIGKILL)
        self._reap(p)
        p.stopped = False

    def restart(self, name, timeout=None):
        """Kill (if alive) and start again: same address, LAN port, dial port and keys; fresh
        state. The new process binds its known ports itself (see gwbox_tools.lan)."""
        p = self._proc(name)
        self.kill(name)
        if self._closed:
            raise HeadOfficeError("head office closed")
        if p.module == "gwbox_tools.access_server":
            extra = []
            port = self.ras_ports[[ras_name(i) for i in range(self.n_ras)].index(p.name)]
            p.args = [a if a != "127.0.0.1:0" else "127.0.0.1:%d" % port for a in p.args]
        elif p.name in self.gateway_tcp_ports:
            extra = ["--tcp", "127.0.0.1:%d" % self.gateway_tcp_ports[p.name]]
        else:
            extra = []
        self._spawn(p, extra)
        self._wait_ready(p, timeout)

    def _require_alive(self, p):
        if p.popen is None or p.popen.poll() is not None:
            raise HeadOfficeError("%s is not running" % p.name)


def main(argv=None):
    """Run a head office until SIGINT/SIGTERM (for trying things by hand)."""
    p = argparse.ArgumentParser(prog="python -m gwbox_tools.headoffice", description=main.__doc__)
    p.add_argument("--psk-file", required=True, help="box keys, as for the gateway")
    p.add_argument("--gateway", action="append", default=[], help="a gateway address (repeatable)")
    p.add_argument("--direct", action="append", default=[], help="a gateway that also gets a dial line")
    p.add_argument("--target", action="append", default=[], help="a target host address (repeatable)")
    p.add_argument("--echo", action="store_true", help="targets answer b're:' + payload")
    p.add_argument("--heartbeat", default=None)
    p.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--workdir", default=None, help="keep the files here (default: a temporary directory)")
    a = p.parse_args(argv)
    try:
        psks = load_psks(a.psk_file)
        settings = dict(kv.split("=", 1) for kv in a.setting)
    except (OSError, PskFileError, ValueError) as e:
        print("headoffice: %s" % e, file=sys.stderr)
        return 2
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        with HeadOffice(psks, gateways=a.gateway or DEFAULT_GATEWAYS, direct=a.direct,
                        targets=a.target or DEFAULT_TARGETS, echo=a.echo, heartbeat=a.heartbeat,
                        settings=settings, workdir=a.workdir, keep_files=a.workdir is not None) as ho:
            print(json.dumps({"ras_port": ho.ras_port, "gateway_tcp_ports": ho.gateway_tcp_ports,
                              "pids": ho.pids, "lan_map": dict(ho.lan.items()), "workdir": ho.workdir}),
                  flush=True)
            while not stop:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except (HeadOfficeError, ValueError) as e:
        print("headoffice: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
