"""The protected serial link end to end, in real time, on real ptys: no in-memory fakes.

Box: a Node (Modem + Framer + Endpoint) in a Runner on the modem emulator's box pty.
Gateway: a modemless Node in a Runner on the emulator's gateway pty (or a loopback TCP
port). 9,600 baud, short timers. Faults go through the emulator's control socket.
Time is measured on the runners' own clock (monotonic ms reduced into ticks), the same
clock that stamps every event. Upper bounds carry a margin for a noisy shared machine.
"""
import json
import os
import threading
import time

import pytest

from gwbox import ticks
from gwbox.config import LinkConfig
from gwbox_tools.modem_emu import send_control
from gwbox_tools.rig import LinkRig
from gwbox_tools.runner import clock_ms

BAUD = 9600
PSK = bytes(range(32))
GUARD_MS = 200   # S12=10: a +++ hang-up costs 2 x 0.2 s, not 2 x 1 s
INIT = ("ATZ", "ATE0V1Q0&C1&D2S12=10")
CFG = dict(keepalive_idle_ms=2000, response_ms=1000, retries=1)
MARGIN_MS = 1500  # scheduling noise on a shared machine; far below what a carrier-less
                  # detection would need to pass (see test_frozen_router_...)


@pytest.fixture(autouse=True)
def nothing_leaks():
    threads, fds = set(threading.enumerate()), len(os.listdir("/proc/self/fd"))
    yield
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and (set(threading.enumerate()) - threads
                                           or len(os.listdir("/proc/self/fd")) > fds):
        time.sleep(0.02)
    assert set(threading.enumerate()) - threads == set()
    assert len(os.listdir("/proc/self/fd")) <= fds


class Link(LinkRig):
    """Emulator + box runner + gateway runner; `close` tears all of it down."""

    def __init__(self, gateway="pty", box_events=None):
        LinkRig.__init__(self, LinkConfig(**CFG), PSK, BAUD, gateway, latency_ms=10, control="127.0.0.1:0",
                         modem=dict(init=INIT, guard_ms=GUARD_MS), box_runner=dict(events=box_events))

    def ctl(self, line):
        reply = send_control(self.emu.control_address, line)
        assert reply["ok"], reply
        return reply

    def wait(self, runner, name, start=0, timeout=10.0, **fields):
        def pred(e):
            return e["event"] == name and all(e.get(k) == v for k, v in fields.items())
        ev = runner.wait_event(pred, timeout, start)
        assert ev is not None, "%s: no %s %r within %.1fs; events: %s" % (
            runner.name, name, fields, timeout, [e["event"] for e in runner.events[start:]])
        return ev

    def wait_received(self, runner, payload, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if payload in runner.received:
                return
            time.sleep(0.01)
        raise AssertionError("%s never received %r (got %r)" % (runner.name, payload, runner.received))

    def close(self):
        LinkRig.close(self)
        for r in (self.box, self.gw):
            assert r is None or r.error is None, r.error


@pytest.fixture
def link():
    lk = Link("pty")
    try:
        yield lk
    finally:
        lk.close()


def up_and_talking(lk):
    """Dial, handshake, data both ways, one keepalive round; returns the box's event index."""
    lk.wait(lk.box, "link_up")
    lk.wait(lk.box, "sa_established", peer="gw1")
    lk.wait(lk.gw, "sa_established", peer="box1")
    assert lk.box.send(b"box->gw over 9600", wait=True)
    assert lk.gw.send(b"gw->box over 9600", wait=True)
    lk.wait_received(lk.gw, b"box->gw over 9600")
    lk.wait_received(lk.box, b"gw->box over 9600")
    i = lk.box.event_count()
    lk.wait(lk.box, "keepalive_ack", start=i, timeout=lk.cfg.keepalive_idle_ms / 1000.0 + 3)
    return lk.box.event_count()


def test_carrier_drop_then_frozen_router_on_a_fresh_call(link):
    lk = link
    up_and_talking(lk)
    assert not lk.box.find_events("dropped") and not lk.gw.find_events("dropped")

    # (a) Carrier drop: the box reports link down and deletes the SA within 1 s.
    i = lk.box.event_count()
    t0 = clock_ms()
    lk.ctl("drop")
    down = lk.wait(lk.box, "link_down", start=i, timeout=3)
    deleted = lk.wait(lk.box, "sa_deleted", start=i, timeout=3)
    assert down["reason"] == "no carrier"
    assert deleted["reason"] == "link_down"
    assert ticks.diff(down["t_ms"], t0) < 1000, ticks.diff(down["t_ms"], t0)
    assert ticks.diff(deleted["t_ms"], t0) < 1000
    assert not lk.box.find_events("keepalive_sent", i)  # the carrier, not the keepalive

    # A fresh call, by dial on demand: payload sent while down is queued, then delivered.
    i = lk.box.event_count()
    assert lk.box.send(b"queued while down", wait=True)
    lk.wait(lk.box, "payload_queued", start=i, timeout=1)
    lk.wait(lk.box, "dialing", start=i)
    lk.wait(lk.box, "sa_established", start=i)
    lk.wait_received(lk.gw, b"queued while down")
    assert lk.box.find_events("queue_flushed", i)[0]["payloads"] == 1
    i = lk.box.event_count()
    lk.wait(lk.box, "keepalive_ack", start=i, timeout=5)

    # (b) Frozen router: carrier stays up, no byte passes. Only the keepalive can tell.
    i = lk.box.event_count()
    t0 = clock_ms()
    lk.ctl("freeze gw1")
    bound = lk.cfg.detect_bound_ms()  # idle + (retries + 1) * response = 4000 ms
    dead = lk.wait(lk.box, "peer_dead", start=i, timeout=(bound + 3000) / 1000.0)
    deleted = lk.wait(lk.box, "sa_deleted", start=i, timeout=1)
    elapsed = ticks.diff(deleted["t_ms"], t0)
    assert deleted["reason"] == "peer_dead"
    # Upper bound: the keepalive's own budget from the last packet heard (at most the
    # freeze instant) plus margin. Lower bound: at least (retries + 1) response times
    # passed after a probe went unanswered, so no carrier signal caused this.
    assert elapsed <= bound + MARGIN_MS, elapsed
    assert elapsed >= (lk.cfg.retries + 1) * lk.cfg.response_ms - 250, elapsed
    sent = [e for e in lk.box.find_events("keepalive_sent", i) if ticks.diff(e["t_ms"], dead["t_ms"]) <= 0]
    assert len(sent) >= lk.cfg.retries + 1
    downs = lk.box.find_events("link_down", i)
    assert downs and downs[0]["reason"] == "hangup"  # the carrier never dropped: we hung up
    assert ticks.diff(downs[0]["t_ms"], dead["t_ms"]) >= 0
    # ... and the line is not left up.
    lk.wait(lk.box, "hangup_done", start=i, timeout=5)
    assert lk.emu.status()["mode"] == "command"
    assert lk.ctl("status")["call"] is None


def test_tcp_gateway_sees_the_carrier_drop_as_eof(tmp_path):
    log = str(tmp_path / "box.jsonl")
    lk = Link("tcp", box_events=log)
    try:
        lk.wait(lk.box, "sa_established")
        lk.wait(lk.gw, "sa_established")
        assert lk.box.send(b"over tcp", wait=True)
        lk.wait_received(lk.gw, b"over tcp")
        i, j = lk.box.event_count(), lk.gw.event_count()
        t0 = clock_ms()
        lk.ctl("drop")
        down = lk.wait(lk.box, "link_down", start=i, timeout=3)
        assert ticks.diff(down["t_ms"], t0) < 1000
        lk.wait(lk.box, "sa_deleted", start=i, timeout=1, reason="link_down")
        lk.wait(lk.gw, "link_down", start=j, timeout=3, reason="carrier")
        lk.wait(lk.gw, "sa_deleted", start=j, timeout=1, reason="link_down")
    finally:
        lk.close()
    with open(log) as f:
        lines = [json.loads(line) for line in f]
    assert lines == lk.box.events  # the JSON-lines file holds exactly the box's events
    assert lines[0]["node"] == "box1" and isinstance(lines[0]["t_ms"], int)
    est = [e for e in lines if e["event"] == "sa_established"][0]
    assert est["peer"] == "gw1"  # bytes fields decoded to str
