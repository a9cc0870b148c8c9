"""The emulated head office as real processes: access server, gateways, target hosts.

No modem: the test plays the box itself, a firmware Endpoint (initiator) whose frames go
over a TCP connection exactly as the modem emulator would carry them (RFC 1662 frames, an
outer address header on every frame from the box, none towards it). Only the last test puts
the modem emulator in between, to show that the pieces fit. Real sockets, real processes;
every test has a time limit and leaves no process, thread or fd behind.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import serial

from gwbox import ticks, tunnel, wire
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.link.framing import Framer
from gwbox_tools import lan as lanmod
from gwbox_tools.headoffice import ROOT, HeadOffice
from gwbox_tools.lan import LanMap, allocate, ip_to_int
from gwbox_tools.modem_emu import ModemEmulator
import leakcheck
from leakcheck import child_pids

nothing_leaks, time_limit = leakcheck.nothing_leaks, leakcheck.time_limit  # autouse: a limit, no leaks

G1, G2, G3 = "143.1.0.64", "143.1.1.157", "143.1.0.63"
T1, T2 = "10.0.0.5", "10.0.0.6"
KEY = bytes(range(1, 33))
BOX = b"box1"
TEST_LIMIT_S = 20


@pytest.fixture
def ho():
    with HeadOffice({BOX: KEY}, gateways=[G1, G2, G3], direct=[G3], targets=[T1, T2], echo=True) as h:
        yield h


# --- the box, played by the test -----------------------------------------------------------

def clock_ms():
    return int(time.monotonic() * 1000) & ticks.MASK


class Box:
    """A firmware Endpoint (initiator) on one byte stream: a TCP "call" to the access server
    or a gateway's direct line, or a serial port through the modem emulator."""

    def __init__(self, port=None, ser=None, psks=None, identity=BOX):
        self.ep = Endpoint(LinkConfig(), identity, psks=psks or {G1.encode(): KEY, G2.encode(): KEY,
                                                                 G3.encode(): KEY}, initiator=True)
        self.ser = ser
        self.sock = None
        if ser is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            self.sock.setblocking(False)
        self.fd = self.sock.fileno() if self.sock is not None else ser.fileno()
        self.framer = Framer()
        self.ctx = {}  # gateway address -> context number
        self.sent_long = set()  # contexts sent in the long form once
        self.messages = []  # (peer, next header, body)
        self.events = []
        self.eof = False

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def context(self, gw, ctx=None):
        if gw not in self.ctx:
            self.ctx[gw] = ctx or len(self.ctx) + 1
        return self.ctx[gw]

    def write(self, data):
        if self.sock is not None:
            self.sock.setblocking(True)
            self.sock.sendall(data)
            self.sock.setblocking(False)
        else:
            self.ser.write(data)

    def frame_to(self, gw, packet):
        """Frame `packet` for gateway `gw`: long form the first time on its context, then short."""
        ctx = self.context(gw)
        head = tunnel.encode_outer(ctx, None if ctx in self.sent_long else ip_to_int(gw))
        self.sent_long.add(ctx)
        self.write(self.framer.encode(head + packet))

    def flush(self):
        for link, pkt in self.ep.take_output():
            self.frame_to(link, pkt)
        self.messages += self.ep.take_messages()
        self.events += self.ep.take_events()
        self.ep.take_received()

    def pump(self, seconds=None, until=None, timeout=5.0):
        """Run the box for `seconds`, or until `until()` is true (AssertionError after `timeout`)."""
        end = time.monotonic() + (seconds if seconds is not None else timeout)
        while True:
            self.flush()
            if until is not None and until():
                return
            left = end - time.monotonic()
            if left <= 0:
                assert until is None, "box: condition not met within %.1f s; events %r" % (timeout, self.events[-6:])
                return
            dl = self.ep.next_deadline()
            wait = left if dl is None else min(left, max(0, ticks.diff(dl, clock_ms())) / 1000.0)
            r, _, _ = select.select([self.fd], [], [], min(wait, 0.2))
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except BlockingIOError:
                    data = None
                if data == b"":
                    self.eof = True
                for pkt in self.framer.feed(data or b""):
                    self.ep.receive(pkt, clock_ms())
            now = clock_ms()
            if ticks.reached(now, self.ep.next_deadline()):
                self.ep.tick(now)

    def handshake(self, gw):
        """A new key with `gw` (replacing a session the box may still hold)."""
        since = len(self.events)
        self.ep.connect(clock_ms(), gw.encode(), link=gw)
        self.pump(until=lambda: any(e.name == "sa_established" and e.get("peer") == gw.encode()
                                    for e in self.events[since:]))

    def send_msg(self, gw, num, dst, payload, port=5000, space=0):
        self.ep.send_plain(tunnel.encode_msg(space, num, ip_to_int(dst), port, payload), clock_ms(), gw.encode())
        self.flush()

    def got(self, nh, gw=None):
        decode = tunnel.decode_confirm if nh == wire.NH_CONFIRM else tunnel.decode_reply
        return [decode(b) for p, n, b in self.messages if n == nh and (gw is None or p == gw.encode())]

    def confirmed(self, gw, num, space=0):
        for sp, top, bits in self.got(wire.NH_CONFIRM, gw):
            if sp == space and (num == top or (top - 1 - num >= 0 and bits >> (top - 1 - num) & 1)):
                return True
        return False


@pytest.fixture
def box_on():
    boxes = []

    def make(port=None, **kw):
        b = Box(port, **kw)
        boxes.append(b)
        return b

    yield make
    for b in boxes:
        b.close()


# --- the access server and one gateway --------------------------------------------------------

def test_message_handed_on_confirmed_and_answered(ho, box_on):
    box = box_on(ho.ras_port)
    ho.wait_event("ras", "call_up")
    box.handshake(G1)
    assert ho.find("ras", "bound", ctx=1, gateway=G1)
    ho.wait_event(G1, "sa_established", peer="box1")

    box.send_msg(G1, 1, T1, b"hello", port=5001)
    assert ho.targets.wait_for(T1, 1) == [b"hello"]
    box.pump(until=lambda: box.confirmed(G1, 1) and box.got(wire.NH_REPLY, G1))
    assert box.got(wire.NH_REPLY, G1) == [(ip_to_int(T1), 5001, b"re:hello")]
    e = ho.wait_event(G1, "handed_on", peer="box1", num=1)
    assert (e["dst"], e["port"], e["bytes"]) == (T1, 5001, 5)
    ho.wait_event(G1, "reply", peer="box1", src=T1, port=5001)

    box.close()
    down = ho.wait_event("ras", "call_down", call=1)
    assert down["reason"] == "eof" and down["forwarded"] == 3 and down["unbound"] == 0


def test_duplicate_message_is_confirmed_but_handed_on_once(ho, box_on):
    box = box_on(ho.ras_port)
    box.handshake(G1)
    box.send_msg(G1, 7, T2, b"once")
    box.pump(until=lambda: box.confirmed(G1, 7))
    n = len(box.got(wire.NH_CONFIRM, G1))
    box.send_msg(G1, 7, T2, b"once")  # its confirmation was "lost": the box sends it again
    box.pump(until=lambda: len(box.got(wire.NH_CONFIRM, G1)) > n)
    assert box.confirmed(G1, 7)
    box.pump(0.3)
    assert ho.targets.payloads(T2) == [b"once"]
    assert len(ho.find(G1, "handed_on", num=7)) == 1


def test_short_frame_for_unbound_context_is_dropped_and_counted(ho, box_on):
    box = box_on(ho.ras_port)
    box.handshake(G1)
    box.write(box.framer.encode(tunnel.encode_outer(5) + b"\x12\x34\x56\x78 never bound"))
    e = ho.wait_event("ras", "unroutable", reason="unbound")
    assert (e["ctx"], e["count"]) == (5, 1)
    box.write(box.framer.encode(tunnel.encode_outer(6, ip_to_int("143.1.9.9")) + b"nobody there"))
    e = ho.wait_event("ras", "unroutable", reason="unknown_address")
    assert (e["ctx"], e["gateway"]) == (6, "143.1.9.9")
    box.write(box.framer.encode(b"\x00 context zero"))
    ho.wait_event("ras", "unroutable", reason="bad_outer")
    # the call carries on
    box.send_msg(G1, 1, T1, b"still here")
    box.pump(until=lambda: box.confirmed(G1, 1))
    box.close()
    down = ho.wait_event("ras", "call_down")
    assert (down["unbound"], down["unknown_address"], down["bad_outer"]) == (1, 1, 1)


def test_gateway_takes_lan_datagrams_only_from_access_servers_and_mapped_hosts(ho, box_on):
    """A forged SA_INIT from a LAN address that is neither an access server's host nor in
    the LAN map costs the gateway no protocol work: lan_refused, counted; the box behind
    the access server (its own loopback host, port 0 in the map) logs in as before."""
    assert ho.lan.access_servers() == {"143.1.2.1": "127.0.0.2"}
    atk = Endpoint(LinkConfig(), b"atk", psk=KEY, expect_peer=G1.encode())
    atk.connect(clock_ms())
    out = atk.take_output()
    for _ in range(100):  # its X25519 key is computed a slice per tick first
        if out:
            break
        atk.tick(clock_ms())
        out = atk.take_output()
    msg1 = out[0][1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(3):
            s.sendto(msg1, ho.lan[G1])
        e = ho.wait_event(G1, "lan_refused", count=3)
        assert e["src"] == "127.0.0.1:%d" % s.getsockname()[1] and e["bytes"] == len(msg1)
    finally:
        s.close()
    assert ho.find(G1, "handshake_started") == []
    box = box_on(ho.ras_port)
    box.handshake(G1)
    assert ho.wait_event("ras", "call_up")["lan"].startswith("127.0.0.2:")


def test_two_gateways_behind_one_call(ho, box_on):
    box = box_on(ho.ras_port)
    box.handshake(G1)
    box.handshake(G2)
    assert box.ctx == {G1: 1, G2: 2}
    assert ho.find("ras", "bound", ctx=2, gateway=G2)
    box.send_msg(G1, 1, T1, b"via one")
    box.send_msg(G2, 1, T1, b"via two")
    box.pump(until=lambda: box.confirmed(G1, 1) and box.confirmed(G2, 1)
             and len(box.got(wire.NH_REPLY)) == 2)
    assert sorted(ho.targets.wait_for(T1, 2)) == [b"via one", b"via two"]
    assert box.got(wire.NH_REPLY, G1) == [(ip_to_int(T1), 5000, b"re:via one")]
    assert box.got(wire.NH_REPLY, G2) == [(ip_to_int(T1), 5000, b"re:via two")]
    assert len(ho.find("ras", "call_up")) == 1


def test_direct_tcp_line_to_a_gateway(ho, box_on):
    box = box_on(ho.gateway_tcp_ports[G3])
    ho.wait_event(G3, "line_up")
    box.handshake(G3)
    box.send_msg(G3, 1, T2, b"direct")
    box.pump(until=lambda: box.confirmed(G3, 1) and box.got(wire.NH_REPLY, G3))
    assert ho.targets.payloads(T2) == [b"direct"]
    assert box.got(wire.NH_REPLY, G3) == [(ip_to_int(T2), 5000, b"re:direct")]
    assert ho.find("ras", "call_up") == []  # no access server involved
    box.close()
    e = ho.wait_event(G3, "line_down")
    assert e["reason"] == "eof" and e["frames_in"] >= 3


def test_killed_gateway_cuts_its_direct_call_and_refuses_dials_until_restarted(ho, box_on):
    port = ho.gateway_tcp_ports[G3]
    box = box_on(port)
    box.handshake(G3)
    ho.kill(G3)
    box.pump(until=lambda: box.eof)  # carrier loss
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    ho.restart(G3)
    assert ho.gateway_tcp_ports[G3] == port
    again = box_on(port)
    again.handshake(G3)
    # the access server restarts on its port too; its calls are cut
    ras = box_on(ho.ras_port)
    ho.wait_event("ras", "call_up")
    ho.restart("ras")
    ras.pump(until=lambda: ras.eof)
    box_on(ho.ras_port).handshake(G1)


def test_frozen_gateway_does_not_answer_until_thawed(ho, box_on):
    box = box_on(ho.ras_port)
    box.handshake(G1)
    ho.freeze(G1)
    box.send_msg(G1, 1, T1, b"while frozen")
    box.pump(1.0)
    assert not box.confirmed(G1, 1)
    assert ho.targets.payloads(T1) == []
    ho.thaw(G1)
    # the datagram waited in the stopped process's socket buffer: it is read now
    box.pump(until=lambda: box.confirmed(G1, 1))
    box.send_msg(G1, 2, T1, b"after thaw")
    box.pump(until=lambda: box.confirmed(G1, 2))
    assert ho.targets.wait_for(T1, 2) == [b"while frozen", b"after thaw"]


def test_restarted_gateway_has_lost_its_state(ho, box_on):
    box = box_on(ho.ras_port)
    box.handshake(G1)
    box.send_msg(G1, 1, T1, b"first life")
    box.pump(until=lambda: box.confirmed(G1, 1))
    old_pid = ho.pids[G1]
    ho.restart(G1)
    assert ho.pids[G1] != old_pid and ho.exit_codes(G1) == [-signal.SIGKILL]
    since = len(ho.events(G1))
    n = len(box.got(wire.NH_CONFIRM, G1))
    box.send_msg(G1, 2, T1, b"old SA")
    e = ho.wait_event(G1, "dropped", since=since)
    assert "unknown SPI" in e["reason"]
    box.pump(0.3)
    assert len(box.got(wire.NH_CONFIRM, G1)) == n  # nobody knows that SA any more
    box.handshake(G1)  # a new login replaces the box's stale session
    box.send_msg(G1, 1, T1, b"second life")  # message numbers it had seen are forgotten too
    box.pump(until=lambda: len(box.got(wire.NH_CONFIRM, G1)) > n)
    assert ho.targets.wait_for(T1, 2) == [b"first life", b"second life"]
    assert len(ho.find(G1, "gateway_ready")) == 2


# --- the PSK file, settings (the file's parsing: test_pskfile.py) ----------------------------------------------------------------

def run_gateway(tmp_path, psk_text, *extra):
    m = LanMap({G1: ("127.0.0.1", 9)})
    m.save(str(tmp_path / "lan.json"))
    (tmp_path / "psk.txt").write_text(psk_text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "firmware"),
                                                       os.path.join(ROOT, "host_tools")]))
    return subprocess.run([sys.executable, "-m", "gwbox_tools.gateway", "--address", G1, "--psk-file",
                           str(tmp_path / "psk.txt"), "--lan-map", str(tmp_path / "lan.json")] + list(extra),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=10)


def test_gateway_process_refuses_a_bad_psk_file_or_setting(tmp_path):
    r = run_gateway(tmp_path, "box1 hex:%s\nbox2 hex:0102030405060708\n" % KEY.hex())
    assert r.returncode == 2
    assert "line 2: key is shorter than 16 bytes" in r.stderr
    assert "0102030405060708" not in r.stderr + r.stdout and KEY.hex() not in r.stderr + r.stdout
    r = run_gateway(tmp_path, "box1 hex:%s\n" % KEY.hex(), "--setting", "bogus_ms=5")
    assert r.returncode == 2 and "unknown link setting 'bogus_ms'" in r.stderr
    r = run_gateway(tmp_path, "box1 hex:%s\n" % KEY.hex(), "--setting", "defer_ms=0")
    assert r.returncode == 2 and "defer_ms must be an integer" in r.stderr


# --- clean-up ---------------------------------------------------------------------------------

def test_close_leaves_no_process_even_a_frozen_one():
    h = HeadOffice({BOX: KEY}, gateways=[G1, G2], direct=[G2], targets=[T1]).start()
    pids = dict(h.pids)
    assert sorted(pids) == sorted([G1, G2, "ras"])
    assert sorted(child_pids()) == sorted(pids.values())
    h.freeze(G1)
    workdir = h.workdir
    h.close()
    h.close()  # idempotent
    assert child_pids() == []
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not os.path.exists(workdir)
    assert h.exit_codes(G1) == [0] and h.exit_codes(G2) == [0] and h.exit_codes("ras") == [0]


def test_gateway_exits_when_its_parent_is_gone(tmp_path):
    """The lifeline: nothing outlives the head office, even if the test process is killed."""
    alloc = allocate([G1])
    alloc.map.save(str(tmp_path / "lan.json"))
    alloc.close()
    (tmp_path / "psk.txt").write_text("box1 hex:%s\n" % KEY.hex())
    r, w = os.pipe()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "firmware"),
                                                       os.path.join(ROOT, "host_tools")]))
    p = subprocess.Popen([sys.executable, "-m", "gwbox_tools.gateway", "--address", G1, "--psk-file",
                          str(tmp_path / "psk.txt"), "--lan-map", str(tmp_path / "lan.json"),
                          "--ready-file", str(tmp_path / "ready"), "--events", str(tmp_path / "ev"),
                          "--lifeline-fd", str(r)], cwd=ROOT, env=env, pass_fds=[r],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.close(r)
        deadline = time.monotonic() + 10
        while not (tmp_path / "ready").exists():
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.close(w)  # the parent "dies"
        assert p.wait(5) == 0
        last = json.loads((tmp_path / "ev").read_text().splitlines()[-1])
        assert (last["event"], last["reason"]) == ("gateway_stopped", "parent gone")
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


# --- the LAN map, targets --------------------------------------------------------------------

def test_lan_map_round_trip_reverse_and_allocation(tmp_path):
    with allocate([G1, "10.0.0.005"]) as a:
        m = a.map
        assert sorted(m.names()) == sorted([G1, T1])
        assert a.sockets[T1].getsockname() == m[T1]
        path = str(tmp_path / "lan.json")
        m.save(path)
        m2 = LanMap.load(path)
        assert dict(m2.items()) == dict(m.items())
        assert m2.reverse(m[G1]) == G1 and m2.reverse(("127.0.0.1", 1)) is None
        assert m2.lookup(ip_to_int(T1)) == m[T1] and "10.0.0.9" not in m2
        with pytest.raises(ValueError, match="mapped twice"):
            m2.add(G1, ("127.0.0.1", 1))
        with pytest.raises(ValueError, match="mapped twice"):
            allocate([T1], lan_map=m2)
    (tmp_path / "bad.json").write_text('{"143.1.0.64": ["127.0.0.1", 70000]}')
    with pytest.raises(ValueError, match="bad.json"):
        LanMap.load(str(tmp_path / "bad.json"))
    assert lanmod.int_to_ip(0x8F010040) == G1


def test_targets_process_logs_and_echoes(tmp_path):
    alloc = allocate([T1])
    alloc.map.save(str(tmp_path / "lan.json"))
    addr = alloc.map[T1]
    alloc.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "firmware"),
                                                       os.path.join(ROOT, "host_tools")]))
    p = subprocess.Popen([sys.executable, "-m", "gwbox_tools.targets", "--lan-map", str(tmp_path / "lan.json"),
                          "--names", T1, "--echo", "--log", str(tmp_path / "log"), "--ready-file",
                          str(tmp_path / "ready")], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "ready").exists():
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        s.settimeout(5)
        s.sendto(b"ping", addr)
        assert s.recvfrom(100) == (b"re:ping", addr)
        p.terminate()
        assert p.wait(5) == 0
        log = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
        d = [e for e in log if e["event"] == "datagram"]
        assert len(d) == 1 and (d[0]["target"], d[0]["payload"], d[0]["hex"]) == (T1, "ping", b"ping".hex())
    finally:
        s.close()
        if p.poll() is None:
            p.kill()
        p.wait()


# --- the pieces fit: the modem emulator dials the access server ----------------------------------

def test_modem_emulator_call_reaches_the_access_server(ho):
    with ModemEmulator(baud=115200, gateways=ho.dial_targets(), connect_delay_ms=50) as emu:
        ser = serial.Serial(emu.box_path, 115200, timeout=0.1)
        try:
            dial(ser, "ras")
            ho.wait_event("ras", "call_up")
            box = Box(ser=ser)
            box.handshake(G2)
            box.send_msg(G2, 1, T1, b"over the modem")
            box.pump(until=lambda: box.confirmed(G2, 1) and box.got(wire.NH_REPLY, G2))
            assert ho.targets.payloads(T1) == [b"over the modem"]
        finally:
            ser.close()
    ho.wait_event("ras", "call_down", reason="eof")


def dial(ser, target):
    ser.write(b"ATD%s\r" % target.encode())
    buf = b""
    deadline = time.monotonic() + 5
    while b"CONNECT" not in buf:
        assert time.monotonic() < deadline, buf
        buf += ser.read(64)
    while not buf.endswith(b"\r\n"):
        buf += ser.read(1)


def test_gateway_on_a_serial_line_of_the_modem_emulator():
    """--serial: the gateway serves a pty of the modem emulator (a "pty" dial target)."""
    with ModemEmulator(baud=115200, gateways={"g3": "pty"}, connect_delay_ms=50) as emu:
        with HeadOffice({BOX: KEY}, gateways=[G3], targets=[T1], ras=False,
                        serial={G3: emu.gateway_paths["g3"]}, baud=115200) as h:
            h.wait_event(G3, "line_up", line="serial:" + emu.gateway_paths["g3"])
            ser = serial.Serial(emu.box_path, 115200, timeout=0.1)
            try:
                dial(ser, "g3")
                box = Box(ser=ser)
                box.handshake(G3)
                box.send_msg(G3, 1, T1, b"over a pty")
                box.pump(until=lambda: box.confirmed(G3, 1) and box.got(wire.NH_REPLY, G3))
                assert h.targets.payloads(T1) == [b"over a pty"]
            finally:
                ser.close()
