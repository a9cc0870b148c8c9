"""Tests of the line attacker (tests/host/line_attacker.py), on real ptys.

The "line" is a pty pair made here: the attacker opens its slave as the box would open the
modem's pty, the test plays the line on its master. The "box" opens `attacker.path` with
pyserial. The last test puts the attacker between the real modem emulator and a real box
node. Timing checks have generous upper bounds: the machine is shared and noisy.
"""
import faulthandler
import os
import select
import signal
import threading
import time
import tty

import pytest
import serial

from gwbox.link.framing import Framer
from line_attacker import (DOWN, DROP, HOLD, PASS, UP, Frame, LineAttacker, chain, delay,
                           delay_if, drop_if, drop_nth, drop_random, flip, flip_if, hold_if,
                           is_cleartext, on_nth, replace, spi_of)

SLACK_S = 1.5   # upper-bound margin for scheduling noise


# ---------------------------------------------------------------- fixtures and helpers

def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_leaks():
    """Every test leaves no thread and no fd behind."""
    threads, fds = set(threading.enumerate()), open_fds()
    yield
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and (set(threading.enumerate()) - threads or open_fds() > fds):
        time.sleep(0.02)
    assert set(threading.enumerate()) - threads == set()
    assert open_fds() <= fds


def time_limit(seconds):
    """Decorator: this test's time limit (default 20 s)."""
    def mark(fn):
        fn.time_limit_s = seconds
        return fn
    return mark


@pytest.fixture(autouse=True)
def deadline(request):
    """Every test has a time limit: SIGALRM raises in the test thread (whose waits all
    return to Python at least every 0.2 s); a hard faulthandler exit backs it up."""
    limit = getattr(request.function, "time_limit_s", 20)

    def on_alarm(signum, frame):
        raise TimeoutError("test ran longer than its %d s limit" % limit)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    faulthandler.dump_traceback_later(limit + 30, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


def read_exact(fd, n, timeout=3.0):
    buf = bytearray()
    end = time.monotonic() + timeout
    while len(buf) < n:
        left = end - time.monotonic()
        assert left > 0, "wanted %d bytes within %.1fs, got %d: %r" % (n, timeout, len(buf), bytes(buf))
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            try:
                buf += os.read(fd, n - len(buf))
            except BlockingIOError:
                pass
    return bytes(buf)


def read_for(fd, seconds):
    """Everything that arrives within `seconds`."""
    buf = bytearray()
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return bytes(buf)
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            try:
                buf += os.read(fd, 4096)
            except BlockingIOError:
                pass


def write_all(fd, data):
    mv = memoryview(data)
    while mv:
        select.select([], [fd], [], 1.0)
        try:
            n = os.write(fd, mv)
        except BlockingIOError:
            continue
        mv = mv[n:]


class Line:
    """Upstream pty (the test is the line, on its master) <-> attacker <-> box port."""

    def __init__(self, **kw):
        self.att = self.box = None
        self.m, self.s = os.openpty()
        try:
            tty.setraw(self.s)
            tty.setraw(self.m)
            os.set_blocking(self.m, False)
            self.att = LineAttacker(os.ttyname(self.s), **kw).start()
            self.box = serial.Serial(self.att.path, 9600, timeout=0)
        except BaseException:
            self.close()
            raise

    def to_line(self, data):          # the box writes, the line should get it
        write_all(self.box.fd, data)

    def to_box(self, data):           # the line writes, the box should get it
        write_all(self.m, data)

    def line_reads(self, n, timeout=3.0):
        return read_exact(self.m, n, timeout)

    def box_reads(self, n, timeout=3.0):
        return read_exact(self.box.fd, n, timeout)

    def close(self):
        if self.box is not None:
            self.box.close()
        if self.att is not None:
            self.att.close()
        for fd in (self.m, self.s):
            os.close(fd)


@pytest.fixture
def line():
    ln = Line()
    try:
        yield ln
    finally:
        ln.close()


FR = Framer()


def frame(payload):
    return FR.encode(payload)


def decode(raw):
    """Payloads and counters a fresh firmware Framer gets from these wire bytes."""
    f = Framer()
    return f.feed(raw), f


# Payloads that exercise escaping: flags and escapes inside, a cleartext and a protected one.
P_CLEAR = b"\x00" + b"\x11\x22\x33\x44" + b"\x7e\x7d" * 5 + bytes(range(20))
P_PROT = bytes.fromhex("8a0b0c0d") + (7).to_bytes(4, "big") + bytes(range(0x70, 0x80)) + b"\x7d" * 16


# ---------------------------------------------------------------- pure helpers

def test_predicates_with_and_without_an_outer_header():
    assert is_cleartext(P_CLEAR) and not is_cleartext(P_PROT)
    assert spi_of(P_PROT) == 0x8A0B0C0D and spi_of(P_CLEAR) is None
    outer = b"\x03"                                     # context 3, no address
    outer5 = bytes((0x80 | 3,)) + bytes((10, 0, 0, 1))  # context 3 + IPv4 address
    for hdr in (outer, outer5):
        assert is_cleartext(hdr + P_CLEAR, offset=len(hdr))
        assert not is_cleartext(hdr + P_PROT, offset=len(hdr))
        assert spi_of(hdr + P_PROT, offset=len(hdr)) == 0x8A0B0C0D
        assert spi_of(hdr + P_CLEAR, offset=len(hdr)) is None
    assert not is_cleartext(None) and spi_of(None) is None and spi_of(b"\x01\x02") is None
    f = Frame(frame(P_PROT), P_PROT, UP, 0, 0.0)
    assert spi_of(f) == 0x8A0B0C0D and not is_cleartext(f)   # a Frame works too


def test_rule_constructors_pure():
    fs = [Frame(b"", bytes([i]), UP, i, 0.0) for i in range(6)]
    r = drop_nth(3)
    assert [r(f) is DROP for f in fs] == [False, False, True, False, False, False]
    r = drop_nth(2, pred=lambda f: f.payload[0] % 2)   # the 2nd odd one: payload 3
    assert [r(f) is DROP for f in fs] == [False, False, False, True, False, False]
    r1, r2 = drop_random(0.5, seed=1), drop_random(0.5, seed=1)
    a = [r1(f) is DROP for f in fs * 20]
    assert a == [r2(f) is DROP for f in fs * 20]      # seeded: the same choices
    assert 20 < sum(a) < 100
    r = chain(drop_if(lambda f: f.payload == b"\x01"), hold_if(lambda f: f.payload < b"\x03"))
    assert [r(f).kind for f in fs[:4]] == ["hold", "drop", "hold", "pass"]
    assert on_nth(1, HOLD)(fs[0]) is HOLD
    with pytest.raises(ValueError):
        drop_nth(0)
    with pytest.raises(ValueError):
        flip(0, 8)


# ---------------------------------------------------------------- pass-through

def test_at_text_passes_both_ways_untouched(line):
    cmds = b"ATZ\rATE0V1Q0&C1&D2S12=10\rATDTgw1\r"
    line.to_line(cmds)
    assert line.line_reads(len(cmds)) == cmds
    results = b"\r\nOK\r\n\r\nOK\r\n\r\nCONNECT 9600\r\n"
    line.to_box(results)
    assert line.box_reads(len(results)) == results
    line.to_line(b"+++")
    assert line.line_reads(3) == b"+++"
    c = line.att.counters()
    assert c[UP]["frames"] == c[DOWN]["frames"] == 0
    assert c[UP]["bytes_outside"] == c[UP]["bytes_in"] == c[UP]["bytes_out"] == len(cmds) + 3
    assert c[DOWN]["bytes_outside"] == c[DOWN]["bytes_out"] == len(results)


def test_text_outside_frames_is_not_held_back(line):
    """Outside bytes go out at once: the box sees a result code long before any frame."""
    t0 = time.monotonic()
    line.to_box(b"\r\nCONNECT 9600\r\n")
    assert line.box_reads(16, timeout=1.0) == b"\r\nCONNECT 9600\r\n"
    assert time.monotonic() - t0 < 1.0


def test_frames_pass_byte_identical_in_any_chunking(line):
    f1, f2, f3 = frame(P_CLEAR), frame(P_PROT), frame(b"")
    garbage = b"\x7e\x01\x02\x03\x7e"          # a run with a bad FCS: passed as it is too
    stream = b"AT\r" + f1 + b"\x7e" + f2 + garbage + b"noise" + f3 + b"\r\nNO CARRIER\r\n"
    line.to_line(stream)
    assert line.line_reads(len(stream)) == stream
    for i in range(0, len(stream), 7):            # the other way, in 7-byte pieces
        line.to_box(stream[i:i + 7])
        time.sleep(0.002)
    assert line.box_reads(len(stream)) == stream
    for d in (UP, DOWN):
        fs = line.att.frames(d)
        assert [f.raw for f in fs] == [f1, f2, garbage, f3]
        assert [f.payload for f in fs] == [P_CLEAR, P_PROT, None, b""]
        assert [f.fcs_ok for f in fs] == [True, True, False, True]
        assert [f.index for f in fs] == [0, 1, 2, 3]
        assert all(f.direction == d and f.action == "pass" for f in fs)
        assert all(a.t <= b.t for a, b in zip(fs, fs[1:]))
        c = line.att.counters(d)
        assert (c["frames"], c["passed"], c["bad_fcs"]) == (4, 4, 1)
        assert c["bytes_outside"] == len(b"AT\r" + b"\x7e" + b"noise" + b"\r\nNO CARRIER\r\n")
        assert c["bytes_in"] == c["bytes_out"] == len(stream)


# ---------------------------------------------------------------- rules

def test_drop_nth_drops_exactly_that_frame(line):
    line.att.set_rule(UP, drop_nth(2))
    fs = [frame(b"frame %d" % i) for i in range(4)]
    line.to_line(b"".join(fs))
    want = fs[0] + fs[2] + fs[3]
    assert line.line_reads(len(want)) == want
    assert read_for(line.m, 0.3) == b""
    c = line.att.counters(UP)
    assert (c["frames"], c["passed"], c["dropped"], c["bytes_removed"]) == (4, 3, 1, len(fs[1]))
    assert [f.action for f in line.att.frames(UP)] == ["pass", "drop", "pass", "pass"]


def test_hold_then_release_later_in_order(line):
    line.att.set_rule(DOWN, hold_if(lambda f: f.payload.startswith(b"H")))
    h1, a, h2, b = (frame(p) for p in (b"H1", b"a", b"H2", b"b"))
    line.to_box(h1 + b"text" + a + h2 + b)
    want = b"text" + a + b                      # the held frames delay nothing else
    assert line.box_reads(len(want)) == want
    assert [f.raw for f in line.att.held(DOWN)] == [h1, h2]
    assert read_for(line.box.fd, 0.3) == b""
    assert [f.raw for f in line.att.release(DOWN, 1)] == [h1]
    assert line.box_reads(len(h1)) == h1
    assert [f.raw for f in line.att.held(DOWN)] == [h2]
    line.att.release(DOWN)
    assert line.box_reads(len(h2)) == h2
    assert line.att.held(DOWN) == []
    c = line.att.counters(DOWN)
    assert (c["held"], c["released"], c["passed"], c["held_now"]) == (2, 2, 2, 0)


def test_delay_keeps_order_unless_told(line):
    ms = 300
    line.att.set_rule(DOWN, delay_if(lambda f: f.payload == b"late", ms))
    late, other = frame(b"late"), frame(b"other")
    t0 = time.monotonic()
    line.to_box(late + b"TXT" + other)
    got = line.box_reads(len(late) + 3 + len(other), timeout=ms / 1000 + SLACK_S + 1)
    dt = time.monotonic() - t0
    assert got == late + b"TXT" + other         # order kept: everything waited behind it
    assert ms / 1000 - 0.02 <= dt <= ms / 1000 + SLACK_S, dt

    line.att.set_rule(DOWN, delay_if(lambda f: f.payload == b"late", ms, keep_order=False))
    t0 = time.monotonic()
    line.to_box(late + b"TXT" + other)
    got = line.box_reads(len(late) + 3 + len(other), timeout=ms / 1000 + SLACK_S + 1)
    dt = time.monotonic() - t0
    assert got == b"TXT" + other + late         # only the late one waited
    assert ms / 1000 - 0.02 <= dt <= ms / 1000 + SLACK_S, dt
    assert line.att.counters(DOWN)["delayed"] == 2


def test_replay_resends_byte_identical(line):
    f1 = frame(P_PROT)
    line.to_box(f1)
    assert line.box_reads(len(f1)) == f1
    rec = line.att.wait_frame(DOWN, lambda f: f.payload == P_PROT)
    assert rec is not None and rec.raw == f1
    line.att.replay(DOWN, rec, count=2)
    assert line.box_reads(2 * len(f1)) == f1 + f1
    line.att.replay(UP, rec)                    # reflected back to where it came from
    assert line.line_reads(len(f1)) == f1
    assert line.att.counters(DOWN)["replayed"] == 2
    assert line.att.counters(UP)["replayed"] == 1


@pytest.mark.parametrize("byte,bit", [(3, 5), (9, 0), (-1, 7)])
def test_bit_flip_with_and_without_a_valid_fcs(line, byte, bit):
    line.att.set_rule(UP, flip_if(lambda f: spi_of(f) is not None, byte, bit, fix_fcs=True))
    f1 = frame(P_PROT)
    line.to_line(f1)
    got = line.line_reads(2, timeout=3.0)
    got += read_for(line.m, 0.3)
    assert got[0] == 0x7E and got[-1] == 0x7E and got.count(b"\x7e") == 2
    payloads, fr = decode(got)
    assert len(payloads) == 1 and fr.bad_fcs == 0
    diff = bytes(a ^ b for a, b in zip(payloads[0], P_PROT))
    want = bytearray(len(P_PROT))
    want[byte] = 1 << bit
    assert diff == bytes(want) and len(payloads[0]) == len(P_PROT)

    line.att.set_rule(UP, flip(byte, bit, fix_fcs=False))      # every frame, FCS left as it was
    line.to_line(f1)
    got = line.line_reads(2) + read_for(line.m, 0.3)
    payloads, fr = decode(got)
    assert payloads == [] and fr.bad_fcs == 1
    c = line.att.counters(UP)
    assert (c["frames"], c["modified"]) == (2, 2)


def test_replace_and_a_failing_rule(line):
    line.att.set_rule(DOWN, chain(drop_if(lambda f: f.payload == b"x"), lambda f: replace(b"forged")))
    line.to_box(frame(b"x") + frame(b"y"))
    want = frame(b"forged")
    assert line.box_reads(len(want)) == want
    line.att.set_rule(DOWN, lambda f: 1 / 0)         # a broken rule passes the frame
    line.to_box(frame(b"z"))
    assert line.box_reads(len(frame(b"z"))) == frame(b"z")
    c = line.att.counters(DOWN)
    assert (c["dropped"], c["modified"], c["rule_errors"], c["passed"]) == (1, 1, 1, 1)
    assert isinstance(line.att.errors[-1][2], ZeroDivisionError)


def test_inject_and_inject_raw(line):
    forged = b"\x00forged\x7e\x7d" + bytes(range(32))
    raw = line.att.inject(DOWN, forged)
    got = line.box_reads(len(raw))
    assert got == raw
    payloads, fr = decode(got)
    assert payloads == [forged] and fr.frames_in == 1
    nc = b"\r\nNO CARRIER\r\n"
    line.att.inject_raw(DOWN, nc)
    assert line.box_reads(len(nc)) == nc
    line.att.inject(UP, b"up too")
    assert decode(line.line_reads(len(frame(b"up too"))))[0] == [b"up too"]
    c = line.att.counters()
    assert (c[DOWN]["injected"], c[DOWN]["injected_raw"], c[UP]["injected"]) == (1, 1, 1)
    assert c[DOWN]["bytes_added"] == len(raw) + len(nc)


def test_inject_raw_lands_between_frames_not_inside(line):
    """Raw bytes injected while a frame is arriving go before it, never into it."""
    f1 = frame(bytes(200))
    line.to_box(f1[:50])
    assert line.att.wait_frame(DOWN, timeout=0.3) is None     # still open
    line.att.inject_raw(DOWN, b"\r\nNO CARRIER\r\n")
    line.to_box(f1[50:])
    assert line.box_reads(14 + len(f1)) == b"\r\nNO CARRIER\r\n" + f1


def test_a_rule_may_inject_at_once_in_reply(line):
    """A rule runs on the attacker's thread and may call the API there: it can answer a
    request the instant it sees it, before the real answer can arrive (a forged response)."""
    att = line.att

    def answer(f):
        if is_cleartext(f):
            att.inject(DOWN, b"\x00forged answer to #%d" % f.index)
            return HOLD
        return PASS
    att.set_rule(UP, answer)
    line.to_line(frame(P_CLEAR))
    want = frame(b"\x00forged answer to #0")
    assert line.box_reads(len(want)) == want
    assert [f.raw for f in att.held(UP)] == [frame(P_CLEAR)]


def test_pause_holds_everything_until_resume(line):
    line.att.pause(UP)
    line.to_line(b"AT\r" + frame(b"a"))
    assert read_for(line.m, 0.3) == b""
    line.att.resume(UP)
    assert line.line_reads(3 + len(frame(b"a"))) == b"AT\r" + frame(b"a")


def test_stray_flag_does_not_stall_text():
    ln = Line(flush_ms=200)
    try:
        t0 = time.monotonic()
        ln.to_box(b"\x7e\r\nOK\r\n")               # a flag, then no closing flag
        assert ln.box_reads(7, timeout=2.0) == b"\x7e\r\nOK\r\n"
        assert 0.18 <= time.monotonic() - t0 <= 0.2 + SLACK_S
        c = ln.att.counters(DOWN)
        assert (c["flushed"], c["frames"], c["bytes_outside"]) == (1, 0, 7)
    finally:
        ln.close()


def test_counters_add_up(line):
    att = line.att
    att.set_rule(UP, chain(drop_nth(1), hold_if(lambda f: f.payload == b"hold"),
                           flip_if(lambda f: f.payload == b"flip", 0, 1),
                           delay_if(lambda f: f.payload == b"slow", 50)))
    payloads = [b"first", b"hold", b"flip", b"slow", b"plain", b"hold"]
    sent = b"AT\r" + b"".join(frame(p) for p in payloads) + b"\x7e\x00\x7e"   # + a runt
    line.to_line(sent)
    att.inject(UP, b"inj")
    att.inject_raw(UP, b"raw")
    assert att.wait_frame(UP, lambda f: f.index == 6) is not None
    att.replay(UP, att.frames(UP)[4], count=3)
    att.release(UP, 1)
    assert att.drain(3.0)
    got = read_for(line.m, 0.5)
    c = att.counters(UP)
    assert c["frames"] == 7 and c["bad_fcs"] == 1
    assert c["frames"] == c["passed"] + c["dropped"] + c["held"] + c["delayed"] + c["modified"]
    assert (c["dropped"], c["held"], c["modified"], c["delayed"], c["passed"]) == (1, 2, 1, 1, 2)
    assert (c["released"], c["replayed"], c["injected"], c["injected_raw"], c["held_now"]) == (1, 3, 1, 1, 1)
    assert c["bytes_in"] == len(sent)
    assert c["pending"] == 0
    assert c["bytes_out"] == len(got)
    assert c["bytes_out"] + c["pending"] + c["bytes_lost"] == c["bytes_in"] - c["bytes_removed"] + c["bytes_added"]
    payloads_out, fr = decode(got)
    # "flip" with bit 1 of byte 0 flipped is "dlip"; the runt passed, and framing rejects it.
    assert sorted(payloads_out) == sorted([b"dlip", b"slow", b"plain", b"inj", b"hold"] + [b"plain"] * 3)
    assert fr.runts == 1
    assert att.counters(DOWN)["bytes_in"] == 0


def test_close_is_idempotent_and_leaves_nothing():
    m, s = os.openpty()
    try:
        fds, threads = open_fds(), set(threading.enumerate())
        att = LineAttacker(os.ttyname(s), up=HOLD)
        assert att.path is None
        with att:
            assert att.running and os.path.exists(att.path)
            box = serial.Serial(att.path, 9600, timeout=0)
            write_all(box.fd, frame(b"held forever"))
            assert att.wait_frame(UP) is not None
            att.pause(DOWN)
            write_all(m, b"stuck")
            time.sleep(0.1)
        assert not att.running
        att.close()
        box.close()
        assert set(threading.enumerate()) == threads
        assert open_fds() == fds
        with pytest.raises(RuntimeError):
            att.start()
    finally:
        os.close(m)
        os.close(s)


def test_upstream_going_away_ends_nothing_badly():
    m, s = os.openpty()
    tty.setraw(s)
    att = LineAttacker(os.ttyname(s)).start()
    try:
        box = serial.Serial(att.path, 9600, timeout=0)
        os.close(m)
        os.close(s)
        end = time.monotonic() + 3
        while not att.upstream_closed and time.monotonic() < end:
            time.sleep(0.02)
        assert att.upstream_closed and att.running
        write_all(box.fd, frame(b"into the void"))
        assert att.wait_frame(UP) is not None
        assert att.drain(2.0)
        assert att.counters(UP)["bytes_lost"] == len(frame(b"into the void"))
        box.close()
    finally:
        att.close()


def test_default_pass_action_constant(line):
    line.att.set_rule("both", PASS)
    line.to_line(frame(b"u"))
    line.to_box(frame(b"d"))
    assert line.line_reads(len(frame(b"u"))) == frame(b"u")
    assert line.box_reads(len(frame(b"d"))) == frame(b"d")
    with pytest.raises(ValueError):
        line.att.set_rule("sideways", None)
    with pytest.raises(ValueError):
        delay(-1)


# ---------------------------------------------------------------- over the real emulator and firmware

@time_limit(60)
def test_box_through_the_attacker_dials_logs_in_then_dropping_down_frames_kills_the_gateway():
    """The box (its whole firmware, under micropython) dials the access server and logs in
    with a gateway through the attacker (cleartext handshake up and down, then protected
    frames both ways); then every frame toward the box is dropped (AT result codes still
    pass) and the box's heartbeat declares the gateway dead within its bound."""
    from gwbox_tools.cluster_rig import ClusterRig

    general = "HeartbeatDeferTime = 1\nHeartbeatResponseTime = 0.5\nHeartbeatRetries = 1"
    bound_s = 1 + 2 * 0.5
    att = None
    with ClusterRig(general=general, start_box=False) as rig:
        try:
            att = LineAttacker(rig.emu.box_path).start()
            box = rig.start_box(att.path)
            assert rig.in_use(20) is not None, box.stderr
            # The handshake went through the attacker: outer address + cleartext up, cleartext
            # down, then protected frames both ways.
            assert is_cleartext(att.wait_frame(UP, lambda f: f.fcs_ok, timeout=1), offset=5)
            assert att.wait_frame(DOWN, is_cleartext, timeout=1) is not None
            n_up, n_down = att.frame_count(UP), att.frame_count(DOWN)
            assert att.wait_frame(UP, lambda f: spi_of(f, offset=1) is not None, start=n_up, timeout=5) is not None
            assert att.wait_frame(DOWN, lambda f: spi_of(f) is not None, start=n_down, timeout=5) is not None
            assert att.counters(DOWN)["bad_fcs"] == 0 and att.counters(UP)["bad_fcs"] == 0

            # Now every frame toward the box vanishes; AT result codes still pass.
            i = box.count()
            t0 = time.monotonic()
            att.set_rule(DOWN, DROP)
            dead = box.wait_event("gateway_dead", bound_s + 5, i)
            assert dead is not None, [e["event"] for e in box.events[i:]]
            assert dead["mono"] - t0 <= bound_s + 1.5
            assert att.counters(DOWN)["dropped"] >= 1
            assert box.alive()
        finally:
            if att is not None:
                att.close()
