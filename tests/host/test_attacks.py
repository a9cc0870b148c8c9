"""Issue 8: an active attacker on the serial line, over real ptys, against the real firmware.

    box firmware (micropython, boards/unix) == pty == [LineAttacker] == pty == modem emulator
        == access server == head-office LAN (UDP) == gateways (firmware on CPython)

Every rig test starts the whole ClusterRig with `start_box=False` and puts the line attacker
(tests/host/line_attacker.py) between the modem emulator and the box: it passes, drops,
holds, replays, bit-flips and injects frames and raw bytes in either direction. One test per
numbered finding of issue 8 (`test_f1_...` to `test_f9_...`; findings 7 and 9 are
CPython-level, virtual time or measured on the firmware objects, and say so), then the
issue's further attacks: a flood of SA_INITs at line rate while the box logs in and keeps
its heartbeats, forged and replayed DELETEs, garbage and oversize frames, and a gateway
that reboots and loses its state.

Every test has its own time limit (SIGALRM; the waits here all return to Python at least
every 0.2 s) under pytest-timeout's 300 s, and leaves no thread, fd or child process
behind. Timing bounds are generous: the machine is shared.
"""
import contextlib
import functools
import os
import socket
import statistics
import sys
import threading
import time
from unittest import mock

import pytest

from gwbox import message, ticks, tunnel, wire
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.ipv4 import ip_to_int
from gwbox.link.framing import Framer
from gwbox_tools.cluster_rig import GATEWAYS, IDENTITY, TARGETS, ClusterRig
from line_attacker import DOWN, DROP, HOLD, PASS, UP, LineAttacker, is_cleartext, on_nth
import leakcheck
import netsim
from leakcheck import limit

nothing_leaks, time_limit = leakcheck.nothing_leaks, leakcheck.time_limit  # autouse: a limit, no leaks

G1, G2, G3 = GATEWAYS
T1 = TARGETS[0]
G1_INT = ip_to_int(G1)
# Heartbeats every second, answered within one; two more before a verdict. The handshake
# is retransmitted after 2 s. Status lines every second carry the box's framing counters.
GENERAL = ("StatusInterval = 1\nHeartbeatDeferTime = 1\nHeartbeatResponseTime = 1\nHeartbeatRetries = 2\n"
           "HandshakeRetryTime = 2")
LINE_BYTES_PER_S = 960  # 9,600 baud, 8N1


# --- the rig with the attacker in the line ----------------------------------------------

@contextlib.contextmanager
def attacked(general=GENERAL, login=True, ho_settings=None, **kw):
    """A ClusterRig whose box talks to the modem emulator through a LineAttacker.
    With `login`, waits until the box uses a gateway. `ho_settings`: LinkConfig settings
    for every gateway (the rig has no parameter for them). Yields (rig, attacker)."""
    with contextlib.ExitStack() as stack:
        if ho_settings:
            from gwbox_tools import cluster_rig
            from gwbox_tools.headoffice import HeadOffice
            stack.enter_context(mock.patch.object(cluster_rig, "HeadOffice",
                                                  functools.partial(HeadOffice, settings=ho_settings)))
        rig = stack.enter_context(ClusterRig(general=general, start_box=False, **kw))
        att = LineAttacker(rig.emu.box_path).start()
        try:
            rig.start_box(att.path)
            if login:
                assert rig.in_use(20) is not None, (names(rig), rig.box.stderr[-8:])
            yield rig, att
        finally:
            att.close()


def names(rig, start=0):
    """The box's event names since `start` (status lines left out)."""
    with rig.box._lock:
        return [e["event"] for e in rig.box.events[start:] if e["event"] != "status"]


def box_events(rig, name, start=0, **fields):
    return rig.box.find(name, start, **fields)


def wait_box(rig, name, timeout, start=0, **fields):
    """The first box event `name` (index >= start) with `fields`, or an AssertionError that
    shows what the box did instead."""
    e = rig.box.wait_event(lambda d: d["event"] == name and all(d.get(k) == v for k, v in fields.items()),
                           timeout, start)
    assert e is not None, "box: no %s %r within %.0f s; events since: %s; output: %s" % (
        name, fields, timeout, names(rig, start)[-25:], rig.box.stderr[-8:])
    return e


def mark(rig):
    """The index the box's next event will have (for `start=`)."""
    return rig.box.count()


def gw_events(rig, gw, name=None, **fields):
    return [e for e in rig.ho.events(gw) if (name is None or e["event"] == name)
            and all(e.get(k) == v for k, v in fields.items())]


def gw_sa_life(rig, gw, box_est):
    """The gateway's side of the SA the box reports in `box_est` (its `sa_established`): the
    gateway's `handshake_started` for the box's SPI (msg1 answered: the moment its keys, and
    so its lifetimes, were made), its `sa_established` after it and the `sa_deleted` of that
    SA (None while it lives). Times are the gateway's own `t_ms` (CLOCK_MONOTONIC from the
    head office's t0), each event also with its `mono` (the clock of the box's events)."""
    evs = [dict(e, mono=rig.ho.t0 + e["t_ms"] / 1000.0) for e in rig.ho.events(gw)]
    k = [i for i, e in enumerate(evs) if e["event"] == "handshake_started" and e.get("spi") == box_est["ctl_spi"]]
    assert k, "gateway %s: no handshake_started for SPI %s" % (gw, box_est["ctl_spi"])
    est = [e for e in evs[k[0]:] if e["event"] == "sa_established" and e.get("peer") == IDENTITY][0]
    end = [e for e in evs if e["event"] == "sa_deleted" and e.get("ctl_spi") == est["ctl_spi"]]
    return evs[k[0]], est, end[0] if end else None


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    p = s[s.rfind(")") + 2:].split()
    return (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")


def packet_of(frame):
    """The packet inside a box -> line frame (after its outer address), or None."""
    if frame.payload is None:
        return None
    try:
        _ctx, _addr, off = tunnel.decode_outer(frame.payload)
    except Exception:
        return None
    return frame.payload[off:]


def up_packet(pred):
    """A predicate on up frames that looks at the packet behind the outer address."""
    def p(frame):
        pkt = packet_of(frame)
        return pkt is not None and pred(pkt)
    return p


def protected(pkt):
    return len(pkt) >= 24 and pkt[0] != 0


def cleartext_kind(pkt):
    """(exchange, is response, notify type or None) of a cleartext message, or None."""
    if not pkt or pkt[0] != 0:
        return None
    try:
        m = message.decode(pkt, True)
    except Exception:
        return None
    n = m.find(wire.PL_NOTIFY)
    return m.exch, m.is_response(), (message.decode_notify(n)[0] if n is not None else None)


def is_cookie_reply(frame):
    k = cleartext_kind(frame.payload)
    return k is not None and k[1] and k[2] == wire.N_COOKIE


def is_sa_init_request(pkt):
    k = cleartext_kind(pkt)
    return k is not None and k[0] == wire.EXCH_SA_INIT and not k[1]


def forged_sa_init():
    """A well-formed SA_INIT request from someone without a key: fresh SPIs, nonce and a
    (random, so not low-order) X25519 public key. 90 bytes."""
    def spi():
        while True:
            s = int.from_bytes(os.urandom(4), "big")
            if s >> 24 and s != wire.SPI_ECHO:
                return s
    ctl = spi()
    payloads = [(wire.PL_SA, message.encode_sa(ctl, spi(), [message.DEFAULT_PROPOSAL])),
                (wire.PL_KE, message.tagged(wire.DH_X25519, os.urandom(32))), (wire.PL_NONCE, os.urandom(16))]
    return message.encode(message.Message(wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0, payloads, ctl, 0), True)


def toward_g1(pkt, ctx=1):
    """`pkt` as a box -> line frame payload for G1 (long outer address: binds `ctx` to G1)."""
    return tunnel.encode_outer(ctx, G1_INT) + pkt


def heartbeat_rounds(rig, start=0):
    """(heartbeats sent, of them retries, acks) since `start`."""
    sent = box_events(rig, "heartbeat_sent", start)
    return len(sent), sum(1 for e in sent if e.get("attempt", 1) > 1), len(box_events(rig, "heartbeat_ack", start))


class Flood:
    """Forged SA_INITs toward G1 at line rate on the box's own line, from a thread: the next
    one goes in whenever less than one frame waits for the line to the access server (in
    the attacker, in the pty between it and the modem emulator, and in the emulator's
    line queue), so the line stays busy with the flood while anything the box sends waits
    behind at most one forged frame. (A flood faster than the line would only queue up
    in the emulator, 2 KB like a modem's buffer, and delay everything: that is no more
    than dropping frames, which an attacker on the line can always do.)"""

    def __init__(self, rig, att, queued_below=120):
        self.rig, self.att, self.below = rig, att, queued_below
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sa-init-flood", daemon=True)
        self.error = None

    def __enter__(self):
        self._base = self._in_pty()  # what the attacker wrote before data mode (AT commands)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _in_pty(self):
        """Bytes the attacker wrote toward the emulator that it has not counted (yet)."""
        c = self.att.counters(UP)
        st = self.rig.emu.status()
        call = st.get("call") or {}
        return c["bytes_out"] - st["counters"]["bytes_from_box"], call.get("backlog_to_gw", 0), c["pending"]

    def _run(self):
        try:
            while not self._stop.is_set():
                in_pty, backlog, pending = self._in_pty()
                if in_pty - self._base[0] + backlog + pending < self.below:
                    self.att.inject(UP, toward_g1(forged_sa_init()))
                    self.sent += 1
                else:
                    self._stop.wait(0.005)
        except Exception as e:  # reported by the test
            self.error = e


# --- finding 1: login lock-out by SA_INITs --------------------------------------------------

@limit(60)
def test_f1_sa_inits_before_the_box_s_own_get_cookies_not_slots():
    """Issue 8 finding 1: each unauthenticated SA_INIT used to take one of 8 half-open slots
    for 12 s, so 8 of them locked the box out. Now the gateway answers every SA_INIT on a
    link that already has a handshake in progress with a stateless COOKIE: 12 forged
    SA_INITs ahead of the box's own take one slot, the box's msg1 gets a cookie, returns it
    and logs in within one handshake retry, and a refill while it does changes nothing."""
    with attacked(GENERAL.replace("HandshakeRetryTime = 2", "HandshakeRetryTime = 4"), login=False) as (rig, att):
        # Hold the box's first SA_INIT; let 12 forged ones reach G1 first.
        att.set_rule(UP, on_nth(1, HOLD, up_packet(is_sa_init_request)))
        spi = wait_box(rig, "handshake_started", 20)["spi"]
        deadline = time.monotonic() + 5
        while att.counters(UP)["held_now"] == 0:
            assert time.monotonic() < deadline, "the box's SA_INIT never came"
            time.sleep(0.01)
        n_down = att.frame_count(DOWN)
        for _ in range(12):
            att.inject(UP, toward_g1(forged_sa_init()))
        # 12 x 92 bytes take ~1.2 s of line time; G1 answers the first with msg2, then cookies.
        end = time.monotonic() + 8
        while sum(1 for f in att.frames(DOWN) if f.index >= n_down and is_cookie_reply(f)) < 11:
            assert time.monotonic() < end, "G1 sent %d cookies" % sum(
                1 for f in att.frames(DOWN) if f.index >= n_down and is_cookie_reply(f))
            time.sleep(0.05)
        started = gw_events(rig, G1, "handshake_started", role="responder")
        assert len(started) == 1, "only the first forged SA_INIT on this call may cost G1 state: %r" % started

        i = mark(rig)
        t0 = time.monotonic()
        att.release(UP)  # the box's msg1 now: it gets a cookie, returns it, logs in
        for _ in range(4):
            att.inject(UP, toward_g1(forged_sa_init()))  # and the attacker refills
        e = wait_box(rig, "sa_established", 6, i, peer=G1)
        login_s = e["mono"] - t0
        assert login_s < 4.0, "login took %.2f s (handshake retry 4 s)" % login_s
        assert box_events(rig, "handshake_failed") == []
        mine = [f for f in att.frames(UP) if up_packet(lambda p: is_sa_init_request(p)
                                                         and int.from_bytes(p[1:5], "big") == spi)(f)]
        assert len(mine) == 2, "the box's msg1, then once more with the cookie; no retransmission"
        print("f1: login %.2f s after release; G1 answered the flood with %d cookies" % (login_s, len(
            [f for f in att.frames(DOWN) if f.index >= n_down and is_cookie_reply(f)])))
        assert rig.in_use(3, G1) is not None
        cookies = [f for f in att.frames(DOWN) if f.index >= n_down and is_cookie_reply(f)]
        assert len(cookies) >= 12  # 11 for the flood, at least 1 for the box (4 more for the refill)
        # G1's half-open state: the flood's first entry and the box's handshake, no more.
        assert len(gw_events(rig, G1, "handshake_started", role="responder")) == 2
        assert rig.box.alive()


@limit(40)
def test_f1_half_open_state_goes_with_the_call_that_made_it():
    """Issue 8 finding 1, second half: half-open handshakes outlived the call that created
    them. `Endpoint.release(link)` drops a link's half-open state; the gateway process must
    call it when a direct-dial line goes down. Two SA_INITs on a direct call to G3 (handshake
    retry 0.5 s: a half-open entry would time out 2 s later), then the call ends: G3 reports
    no handshake of that call timing out afterwards."""
    from gwbox_tools.headoffice import HeadOffice
    with HeadOffice({IDENTITY: os.urandom(32)}, gateways=[G3], direct=[G3], targets=[T1], ras=False,
                    settings={"handshake_retry_ms": 500}) as ho:
        sock = socket.create_connection(("127.0.0.1", ho.gateway_tcp_ports[G3]), timeout=5)
        try:
            fr = Framer()
            for _ in range(2):
                sock.sendall(fr.encode(tunnel.encode_outer(1, ip_to_int(G3)) + forged_sa_init()))
            ho.wait_event(G3, "handshake_started", 5, role="responder")
            got = []
            end = time.monotonic() + 5
            while len(got) < 2 and time.monotonic() < end:  # msg2 and a cookie
                sock.settimeout(max(0.05, end - time.monotonic()))
                try:
                    got += fr.feed(sock.recv(4096))
                except socket.timeout:
                    break
            assert len(got) == 2, got
        finally:
            sock.close()
        ho.wait_event(G3, "line_down", 5)
        time.sleep(3.0)  # beyond the 2 s a half-open entry lives
        timed_out = [e for e in ho.events(G3) if e["event"] == "handshake_failed" and e.get("reason") == "timeout"]
        assert timed_out == [], ("G3 kept the half-open handshake of a call that had ended and timed it out "
                                 "later: gwbox_tools/gateway.py `_line_down` does not call Endpoint.release(line)")


# --- finding 2: forged SA_INIT responses ----------------------------------------------------

@pytest.mark.parametrize("forgery", ["refusal", "own_key", "both"])
@limit(50)
def test_f2_a_forged_sa_init_response_does_not_end_the_login(forgery):
    """Issue 8 finding 2: one forged 23-byte NO_PROPOSAL_CHOSEN with the box's SPI ended its
    handshake at once (and the genuine answer after it was dropped); a forged response
    carrying the attacker's own X25519 key killed the attempt too. The attacker holds back
    G1's genuine SA_INIT response, answers the box's msg1 first with its forgeries, then
    lets the genuine one through: the box logs in with G1 all the same, within one
    handshake retry, and never reports a failed handshake."""
    with attacked(login=False) as (rig, att):
        att.set_rule(DOWN, on_nth(1, HOLD, lambda f: is_cleartext(f)))  # G1's msg2
        spi = wait_box(rig, "handshake_started", 20)["spi"]
        msg1 = att.wait_frame(UP, up_packet(is_sa_init_request), timeout=5)
        assert msg1 is not None
        deadline = time.monotonic() + 5
        while att.counters(DOWN)["held_now"] == 0:
            assert time.monotonic() < deadline, "G1's answer never came"
            time.sleep(0.01)
        i = mark(rig)
        n_up = att.frame_count(UP)
        if forgery in ("refusal", "both"):
            refusal = message.encode(message.Message(
                wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
                [(wire.PL_NOTIFY, message.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))], spi, 0), True)
            assert len(refusal) == 23
            att.inject(DOWN, refusal)
        if forgery in ("own_key", "both"):
            mitm = Endpoint(LinkConfig(), G1.encode(), psks={IDENTITY.encode(): os.urandom(32)})
            mitm.receive(packet_of(msg1), ticks.PERIOD - 1000, "line")
            forged = [p for _link, p in mitm.take_output()]
            assert len(forged) == 1 and forged[0][0] == 0  # an SA_INIT response with the attacker's key
            att.inject(DOWN, forged[0])
        time.sleep(0.7)  # the forgeries reach the box and are handled
        assert box_events(rig, "handshake_failed", i) == [], names(rig, i)
        if forgery != "refusal":  # the box answered the forged response with a msg3 under its keys
            assert att.wait_frame(UP, up_packet(protected), timeout=3, start=n_up) is not None
        t0 = time.monotonic()
        att.release(DOWN)
        e = wait_box(rig, "sa_established", 5, i, peer=G1)
        assert e["mono"] - t0 < 2.0, "login %.2f s after the genuine answer (handshake retry 2 s)" % (e["mono"] - t0)
        print("f2 %s: login %.2f s after the genuine answer was let through" % (forgery, e["mono"] - t0))
        assert rig.in_use(3, G1) is not None
        assert box_events(rig, "handshake_failed") == []
        if forgery != "refusal":  # the msg3 under the attacker's keys: an unknown SPI at G1
            drops = gw_events(rig, G1, "dropped")
            assert any("unknown SPI" in str(e.get("reason")) for e in drops), drops
        # and the link works: heartbeats answered
        wait_box(rig, "heartbeat_ack", 5, i)


# --- finding 3: an unauthenticated packet re-pointing a session's link ------------------------

@limit(50)
def test_f3_no_unauthenticated_packet_re_points_the_gateway_s_session():
    """Issue 8 finding 3: the gateway set a session's output link from a packet before its
    ICV was checked, so one forged packet from another link (another call's socket, anyone
    on the head-office LAN) took the box's traffic. Here the attacker copies one of the
    box's protected frames off the line and sends G1, from a socket of its own (as another
    call would), a bit-flipped copy, an exact replay and a forgery with the right SPI; it
    also replays the frame on the line under another outer context. Each is `dropped` at G1
    (bad ICV, replayed), nothing goes to the attacker's socket, and the box's heartbeats
    keep being answered over its own call."""
    with attacked() as (rig, att):
        hb = att.wait_frame(UP, up_packet(lambda p: protected(p) and len(p) == 26), timeout=5)
        assert hb is not None, "no heartbeat from the box"
        pkt = packet_of(hb)
        time.sleep(0.5)  # it reached G1 (and was answered)
        n_drop = len(gw_events(rig, G1, "dropped"))
        i = mark(rig)
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # on the access server's host, as another call's socket is (the gateway takes LAN
            # datagrams only from access servers and LAN-map hosts: anything else is refused
            # before the protocol sees it, test_headoffice checks that)
            ras_host = list(rig.ho.lan.access_servers().values())[0]
            other.bind((ras_host, 0))
            other.settimeout(0.2)
            g1 = tuple(rig.ho.lan.lookup(G1))
            flipped = bytearray(pkt)
            flipped[10] ^= 0x01
            forged = pkt[:8] + os.urandom(len(pkt) - 8)
            for p in (bytes(flipped), pkt, forged):
                other.sendto(p, g1)
            # the same frame again on the line, under a context the attacker binds to G1 anew
            att.inject(UP, toward_g1(pkt, ctx=99))
            end = time.monotonic() + 3.0
            got = []
            while time.monotonic() < end:
                try:
                    got.append(other.recvfrom(4096))
                except socket.timeout:
                    pass
            assert got == [], "G1 sent the attacker's socket %d packets" % len(got)
        finally:
            other.close()
        drops = gw_events(rig, G1, "dropped")[n_drop:]
        reasons = [str(e.get("reason")) for e in drops]
        assert len(drops) == 4, reasons
        assert sum("bad ICV" in r for r in reasons) == 2 and sum("replayed" in r for r in reasons) == 2, reasons
        # The box's own call still carries G1's answers.
        sent, retries, acks = heartbeat_rounds(rig, i)
        assert acks >= 2 and retries == 0, names(rig, i)
        assert "gateway_dead" not in names(rig, i) and "sa_deleted" not in names(rig, i)
        assert gw_events(rig, G1, "sa_deleted") == []


# --- finding 4: an in-band NO CARRIER ----------------------------------------------------------

@limit(50)
def test_f4_an_injected_no_carrier_does_not_drop_the_call():
    """Issue 8 finding 4: the modem driver scanned data-mode bytes, frame contents included,
    for CR LF NO CARRIER CR LF, so 14 injected bytes tore the SA down while the carrier
    stayed up. The box here has no DCD (a pty has none), so the mark is a doubt: the box
    asks G1 at once, G1's authenticated answer disproves it (`carrier_confirmed`), and the
    call, the SA and the heartbeats go on. Three times, a second apart."""
    with attacked() as (rig, att):
        i = mark(rig)
        calls = rig.emu.status()["counters"]["calls_connected"]
        for k in range(3):
            j = mark(rig)
            att.inject_raw(DOWN, b"\r\nNO CARRIER\r\n")
            wait_box(rig, "carrier_doubt", 3, j)
            wait_box(rig, "carrier_confirmed", 3, j)
            time.sleep(1.0)
        seen = names(rig, i)
        for bad in ("link_down", "dialing", "sa_deleted", "gateway_dead", "handshake_started", "gateway_trying"):
            assert bad not in seen, seen
        assert seen.count("carrier_doubt") == 3 and seen.count("carrier_confirmed") == 3
        sent, retries, acks = heartbeat_rounds(rig, i)
        assert acks >= 3 and retries == 0, seen
        assert rig.emu.status()["counters"]["calls_connected"] == calls and rig.emu.mode == "data"
        assert gw_events(rig, G1, "sa_deleted") == []


def test_issue19_r4_a_no_carrier_with_the_answers_dropped_costs_a_hang_up_not_a_dial_timeout():
    """Issue 19 review item 4: 14 injected bytes, and the gateway's frames dropped a little
    past the doubt (1.5 s here: half of three heartbeat rounds), give a verdict without DCD
    while the call is live. The driver then sent ATD into the call as payload and waited out
    the 60 s dial timeout (the first LAN message 71 s later). Now it hangs up first: +++ (the
    emulator escapes and says OK: the call was live), ATH, then the dial. Payload flows all
    along; every message arrives, none later than 10 s after it was sent."""
    with attacked() as (rig, att):
        i = mark(rig)
        c0 = rig.emu.status()["counters"]
        with rig.traffic(5.0) as feed:
            feed.wait_for(10)
            first = feed.last + 1
            att.set_rule(DOWN, DROP)
            att.inject_raw(DOWN, b"\r\nNO CARRIER\r\n")
            t0 = time.monotonic()
            wait_box(rig, "carrier_doubt", 3, i)
            time.sleep(max(0.0, t0 + 1.6 - time.monotonic()))
            att.set_rule(DOWN, PASS)
            down = wait_box(rig, "link_down", 3, i)
            assert down["reason"] == "no carrier"
            up = wait_box(rig, "gateway_verified", 15, i)
            feed.wait_for(feed.last + 15)
            feed.stop()
        sent = feed.last
        assert rig.wait_delivered(range(1, sent + 1), 20), sorted(set(range(1, sent + 1)) - set(rig.delivered()))
        c1 = rig.emu.status()["counters"]
        assert c1["escapes"] == c0["escapes"] + 1 and c1["hangups"] == c0["hangups"] + 1  # +++ then ATH
        assert c1["calls_connected"] == c0["calls_connected"] + 1
        seen = names(rig, i)
        assert "modem_error" not in seen and "backoff" not in seen and "carrier_confirmed" not in seen, seen
        at, got = rig.sent(), rig.delivered()
        late = max(got[n][0] - at[n] for n in range(first, sent + 1))
        assert late < 10.0, late
        print("recovered %.2f s after the injection, latest message %.2f s" % (up["mono"] - t0, late))


# --- finding 5: suppressed rekeys --------------------------------------------------------------

def is_rekey_request(pkt):
    """A protected control packet as big as a REKEY request (102 bytes: SA, KE and NONCE
    payloads); heartbeats are 26, DELETEs 42, msg3 about 77."""
    return protected(pkt) and len(pkt) >= 90


@limit(60)
def test_f5_dropping_only_rekeys_ends_in_a_hard_expiry_never_a_spinning_timer():
    """Issue 8 finding 5 over the rig: nothing bounded an SA's lifetime, so dropping only the
    REKEY frames kept an SA forever (and past 2**29 ms the loop spun). The box's policy says
    RekeyTime = 2 s (its soft lifetime); the policy file has no key for the hard lifetime
    (the box's stays at its 9 h default), so the gateways get lifetime_ms = 5 s. The attacker
    drops every REKEY request: each SA ends at the gateway's hard lifetime (`sa_deleted
    reason=expired` there, a DELETE to the box), the box fails over and keys anew, and
    neither the box's interpreter nor any gateway burns CPU. The box side of the hard
    lifetime, and time past 2**29 ms, are in virtual time below.

    The lifetime is measured where it is defined: on the gateway's clock, from the moment
    the gateway made the SA's keys (it answered msg1: its `handshake_started`) to its
    `sa_deleted`. The box makes its keys a round trip later and reports `sa_established`
    after msg4, so its own view of the SA is shorter by the handshake's duration, which grows
    on a loaded machine (4.48 s once, against a 5 s lifetime): the box is held to seeing the
    gateway's DELETE promptly instead."""
    general = GENERAL + "\nRekeyTime = 2"
    with attacked(general, ho_settings={"rekey_ms": 4000, "lifetime_ms": 5000}) as (rig, att):
        att.set_rule(UP, lambda f: DROP if up_packet(is_rekey_request)(f) else PASS)
        box_pid = rig.box.proc.pid
        gw_pids = {g: rig.ho.pids[g] for g in GATEWAYS}
        c0 = {p: cpu_seconds(p) for p in [box_pid] + list(gw_pids.values())}
        t0 = time.monotonic()
        est = box_events(rig, "sa_established", peer=G1)[0]
        first = wait_box(rig, "sa_deleted", 8, peer=G1)
        assert first["reason"] == "peer_deleted", first
        assert [e.get("reason") for e in gw_events(rig, G1, "sa_deleted")] == ["expired"]
        life = check_hard_lifetime(rig, G1, est, first)
        i = rig.index(first)
        # the box keys again elsewhere, and that SA ends the same way
        nxt = wait_box(rig, "sa_established", 8, i)
        second = wait_box(rig, "sa_deleted", 8, i + 1, peer=nxt["peer"])
        assert second["reason"] == "peer_deleted", second
        life2 = check_hard_lifetime(rig, nxt["peer"], nxt, second)
        wall = time.monotonic() - t0
        cpu = {p: (cpu_seconds(p) - c0[p]) / wall for p in c0}
        seen = names(rig)
        assert att.counters(UP)["dropped"] >= 2 and "rekeyed" not in seen, seen
        assert seen.count("rekey_started") >= 2
        print("f5: SAs ended %.2f s and %.2f s after the gateways made them (the box had them "
              "%.2f s and %.2f s); CPU box %.1f%%, gateways %s" % (
                  life, life2, first["mono"] - est["mono"], second["mono"] - nxt["mono"], 100 * cpu[box_pid],
                  ", ".join("%.1f%%" % (100 * cpu[p]) for p in gw_pids.values())))
        assert cpu[box_pid] < 0.3, "box interpreter at %.0f%% CPU" % (100 * cpu[box_pid])
        for g, pid in gw_pids.items():
            assert cpu[pid] < 0.3, "gateway %s at %.0f%% CPU" % (g, 100 * cpu[pid])
        assert rig.box.alive()


def check_hard_lifetime(rig, gw, box_est, box_end, lifetime_s=5.0):
    """The SA the box made with `gw` (its `sa_established` box_est, its `sa_deleted` box_end)
    ended at the gateway's hard lifetime: on the gateway's clock, from its keys to its
    `sa_deleted reason=expired`, within [-0.5 s, +1.5 s] of `lifetime_s` (too short, too long
    and never all fail; the early side leaves room for the gateway logging msg1 late, the
    late side for a loaded loop waking late), and the box ended its SA on that DELETE, within
    2 s (a DELETE is ~0.1 s of line at 9,600 baud). Returns the lifetime measured (s)."""
    made, _est, end = gw_sa_life(rig, gw, box_est)
    assert end is not None and end["reason"] == "expired", (gw, end)
    life = (end["t_ms"] - made["t_ms"]) / 1000.0
    assert lifetime_s - 0.5 <= life <= lifetime_s + 1.5, \
        "SA with %s ended %.2f s after the gateway made it (hard lifetime %.1f s)" % (gw, life, lifetime_s)
    seen = box_end["mono"] - end["mono"]
    assert seen <= 2.0, "the box ended its SA with %s %.2f s after the gateway deleted it" % (gw, seen)
    return life


def test_f5_the_box_side_hard_lifetime_and_time_past_the_half_period_in_virtual_time():
    """Issue 8 finding 5 at the firmware API, virtual time (the box's hard lifetime cannot be
    shortened through the policy file): REKEY requests and responses dropped, the box's SA
    (rekey 3 s, hard lifetime 8 s) ends `expired` on both sides at 8 s, and no deadline is
    ever in the past. Then an SA that is (somehow) 2**29 ms + 1 h old, past the tick
    half-period where `ticks.diff` turns negative (simulating six days of heartbeat rounds
    would be too slow: its age is set back instead): next_deadline() stays ahead and the
    clock moves on, where the old code spun at one instant forever."""
    import netsim
    cfg = LinkConfig(rekey_ms=3000, lifetime_ms=8000, rekey_retry_ms=1000)
    n = netsim.pair(cfg)
    n.connect()
    n.drop = lambda src, p: len(p) > 60  # only REKEY requests and responses are this big
    t0 = n.b.session().current.created  # the gateway's SA: made last, expires last
    gone_at = None
    for _ in range(100):
        n.run_for(100)
        for ep in (n.a, n.b):
            dl = ep.next_deadline()
            assert dl is None or ticks.diff(dl, n.now) > 0, "deadline not ahead"
        if gone_at is None and "sa_deleted" in n.names(n.a) + n.names(n.b):
            gone_at = ticks.diff(n.now, t0)
    reasons = [e.get("reason") for e in n.events[id(n.a)] + n.events[id(n.b)] if e.name == "sa_deleted"]
    assert sorted(reasons) in (["expired", "expired"], ["expired", "peer_deleted"]), reasons
    assert gone_at is not None and 7900 <= gone_at <= 8100, gone_at  # at the hard lifetime
    assert "rekey_started" in n.names(n.a) and "rekeyed" not in n.names(n.a)
    assert n.a.session() is None and n.b.session() is None
    # a fresh SA that (somehow) missed every rekey for longer than the half-period
    n.drop = None
    n.connect()
    s = n.a.session()
    s.current.created = ticks.add(n.now, -((1 << 29) + 3600 * 1000))
    start = n.now
    for _ in range(50):
        dl = n.a.next_deadline()
        assert dl is not None and ticks.diff(dl, n.now) >= 0, "deadline in the past"
        n.run_for(100)
    assert ticks.diff(n.now, start) == 5000  # the clock moved on: nothing spun
    assert n.names(n.a).count("heartbeat_ack") >= 1  # and the session still works


def test_f5_lifetimes_outside_the_tick_half_period_are_refused():
    """Issue 8 finding 5, the other half: LinkConfig accepted rekey_ms above 2**29 (and the
    loop spun at once). Now every timer is checked against the tick half-period, in the
    policy file and in LinkConfig."""
    from gwbox import policy
    for bad in (dict(rekey_ms=1 << 29), dict(lifetime_ms=1 << 29), dict(rekey_ms=5000, lifetime_ms=5000),
                dict(rekey_retry_ms=0), dict(rekey_ms=True)):
        with pytest.raises(ValueError):
            LinkConfig(**bad)
    text = ClusterRigPolicy(general="RekeyTime = %d" % ((1 << 29) // 1000 + 1))
    with pytest.raises(policy.PolicyError) as e:
        policy.parse(text)
    assert "RekeyTime" in str(e.value)
    cfg = LinkConfig(rekey_ms=(1 << 29) - 1000)
    assert cfg.lifetime_ms < (1 << 29) and cfg.lifetime_ms > cfg.rekey_ms


def ClusterRigPolicy(general=""):
    from gwbox_tools.cluster_rig import policy_text
    return policy_text(b"\x11" * 32, general=general)


# --- finding 6: a lost DELETE after a rekey -----------------------------------------------------

def is_delete(pkt):
    """A protected control packet as big as a DELETE of two SPIs (42 bytes)."""
    return protected(pkt) and len(pkt) == 42


def drop_first_delete_after_each_rekey():
    """Rule (up): drop the first DELETE the box sends after each of its REKEY requests."""
    armed = [False]

    def rule(f):
        pkt = packet_of(f)
        if pkt is None:
            return PASS
        if is_rekey_request(pkt):
            armed[0] = True
        elif armed[0] and is_delete(pkt):
            armed[0] = False
            return DROP
        return PASS
    return rule


@limit(60)
def test_f6_a_lost_delete_after_a_rekey_loses_nothing():
    """Issue 8 finding 6: the box sent its DELETE of the old SAs once and dropped them 4 s
    later, while the gateway, which had not seen the DELETE, still sent on them (400 sent,
    350 received). Here a target host streams datagrams to the box through G1 (REPLY
    packets: best effort, never retransmitted, so any packet lost on the old SAs is a
    datagram missing) at 8 a second while the box rekeys every 4 s and the attacker drops
    the first DELETE after every rekey. Every datagram arrives, exactly once; the box drops
    nothing for an unknown SPI."""
    general = GENERAL.replace("HeartbeatDeferTime = 1", "HeartbeatDeferTime = 3") + "\nRekeyTime = 4"
    with attacked(general) as (rig, att):
        att.set_rule(UP, drop_first_delete_after_each_rekey())
        rig.send(1, T1)  # G1 opens its socket for this box's target traffic
        assert rig.wait_delivered([1], 10)
        srcs = [src for _t, name, src, data in list(rig.ho.targets.log) if data.startswith(b"00000001|")]
        assert srcs, rig.ho.targets.log
        g1_for_box = srcs[0]
        target = rig.ho.targets._socks[T1]  # the target host's own socket: G1 accepts only LanMap sources
        i = mark(rig)
        count = 110  # 13.75 s at 8/s: three rekeys
        t_next = time.monotonic()
        for k in range(count):
            target.sendto(b"to-box %04d ......" % k, g1_for_box)
            t_next += 0.125
            time.sleep(max(0.0, t_next - time.monotonic()))
        end = time.monotonic() + 5
        want = {b"to-box %04d ......" % k for k in range(count)}
        while time.monotonic() < end:
            with rig.box._lock:
                got = [r[3] for r in rig.box.replies]
            if want <= set(got):
                break
            time.sleep(0.1)
        missing = sorted(want - set(got))
        print("f6: %d of %d datagrams arrived, %d DELETEs dropped, %d rekeys" % (
            len(want & set(got)), count, att.counters(UP)["dropped"], names(rig, i).count("rekeyed")))
        assert missing == [], "%d of %d datagrams lost: %r" % (len(missing), count, missing[:5])
        assert len(got) == count, "duplicates"
        seen = names(rig, i)
        assert seen.count("rekeyed") >= 3, seen
        assert att.counters(UP)["dropped"] >= 3  # one DELETE per rekey
        unknown = [e for e in box_events(rig, "dropped", i) if "SPI" in str(e.get("reason"))]
        assert unknown == [], unknown
        assert "sa_deleted" not in seen and "gateway_dead" not in seen


# --- finding 7: sequence exhaustion (virtual time) ------------------------------------------------

def test_f7_sequence_numbers_never_run_out_and_nothing_raises():
    """Issue 8 finding 7, at the firmware API in virtual time (2**30 packets do not fit in a
    test over a 9,600 baud line): sequence exhaustion raised out of Endpoint.send and tick,
    and nothing rekeyed by packet count. Now the soft limit (2**30 packets) starts a rekey,
    the hard limit (2**31) deletes the SA if no rekey succeeds, and even an SA forced to
    the last sequence number makes send() return False with a `send_failed` event and
    tick() carry on: nothing raises."""
    import netsim
    from gwbox.session import HARD_PACKETS, SOFT_PACKETS

    # soft: a rekey by packet count, traffic goes on on fresh SAs
    n = netsim.pair()
    n.connect()
    n.a.session().current.data_out.seq = SOFT_PACKETS
    assert n.a.send(b"x", n.now) is not False
    n.run_for(1000)
    assert n.first(n.a, "rekey_started").get("reason") == "packets"
    assert "rekeyed" in n.names(n.a) and n.a.session().current.data_out.seq < 10

    # hard: rekeys suppressed, the SA is deleted at 2**31 packets, on the side that counted them
    n = netsim.pair()
    n.connect()
    n.drop = lambda src, p: len(p) > 60
    n.a.session().current.data_out.seq = HARD_PACKETS - 5
    for _ in range(10):
        n.a.send(b"x", n.now)
        n.run_for(100)
    assert "rekey_started" in n.names(n.a)
    assert [e.get("reason") for e in n.events[id(n.a)] if e.name == "sa_deleted"] == ["expired"]
    assert n.a.session() is None

    # the very end: the last sequence number on both SAs (as if the limits were not there)
    n = netsim.pair()
    n.connect()
    s = n.a.session()
    s.current.data_out.seq = 0xFFFFFFFF
    s.current.ctl_out.seq = 0xFFFFFFFF
    ok = n.a.send(b"x", n.now)  # must not raise
    for _ in range(30):
        n.run_for(1000)  # heartbeats and rekeys come due on the exhausted SAs: must not raise
    assert ok is False or "sa_deleted" in n.names(n.a)
    assert set(n.names(n.a)) & {"send_failed", "session_error", "sa_deleted"}, n.names(n.a)
    # the gateway side, likewise
    g = n.b.session()
    if g is not None:
        g.current.data_out.seq = 0xFFFFFFFF
        n.b.send(b"y", n.now)
        n.run_for(1000)


# --- finding 8: MemoryError inside the loop ---------------------------------------------------------

@limit(60)
def test_f8_a_memory_error_in_the_box_s_loop_backs_off_and_is_reported_never_spins():
    """Issue 8 finding 8: a MemoryError inside the loop spun (the deadline stayed where it
    was, 138,387 MemoryErrors in 30 s). Here the real box under micropython runs at a heap
    it barely fits in (160K on this 64-bit interpreter) with OutboxBytes = 65536, and a
    burst of small LAN datagrams fills its heap: the device port reports `out_of_memory`
    (in_a_row counting up), backs off 200 ms each time (about 5 a second, not thousands),
    its interpreter stays alive and nearly idle. (What happens next is the watchdog's job:
    the unix board has none, so the box stays there; the port-level test
    tests/firmware/test_port_device.py::test_a_memory_error_in_the_loop_is_survived_and_reported
    checks the backoff and the watchdog feeding in virtual time.)"""
    general = "StatusInterval = 1\nOutboxBytes = 65536"
    with ClusterRig(general=general, heap="160K") as rig:
        assert rig.in_use(20) is not None, (names(rig), rig.box.stderr[-8:])
        end = time.monotonic() + 15
        k = 0
        while not box_events(rig, "out_of_memory"):
            assert not box_events(rig, "lan_refused"), \
                "set-up: the outbox refused before the heap ran out, so no MemoryError to survive"
            assert time.monotonic() < end, "no out_of_memory after %d datagrams: %s" % (k, names(rig)[-10:])
            for _ in range(10):
                k += 1
                rig.send(k, T1, pad=1)
            time.sleep(0.03)
        pid = rig.box.proc.pid
        n0, c0, t0 = len(box_events(rig, "out_of_memory")), cpu_seconds(pid), time.monotonic()
        time.sleep(4.0)
        n1, c1, t1 = len(box_events(rig, "out_of_memory")), cpu_seconds(pid), time.monotonic()
        rate, cpu = (n1 - n0) / (t1 - t0), (c1 - c0) / (t1 - t0)
        print("f8: %d datagrams; then %.1f out_of_memory/s, interpreter at %.1f%% CPU" % (k, rate, 100 * cpu))
        oom = box_events(rig, "out_of_memory")
        assert rig.box.alive() and "crash" not in names(rig), (names(rig)[-5:], rig.box.stderr[-8:])
        assert rate <= 6.0, "%.1f MemoryErrors a second: the loop does not back off" % rate
        assert cpu < 0.5, "box interpreter at %.0f%% CPU while out of memory" % (100 * cpu)
        # in_a_row counts the MemoryErrors since the last pass that completed: each report is
        # one more than the one before, or 1 after a pass that got through (the outbox drains
        # between bursts, so a pass may complete); and a streak did count up
        streak = [e["in_a_row"] for e in oom]
        assert streak[0] >= 1 and all(b in (a + 1, 1) for a, b in zip(streak, streak[1:])), streak
        assert max(streak) >= 2, streak
        assert all(e.get("free") is not None for e in oom)


# --- finding 9: cheap refusals, no timing oracle (CPython measurements) --------------------------------

def _unsupported_sa_init():
    msg = message.decode(forged_sa_init(), True)
    msg.payloads = [(t, b if t != wire.PL_SA else b[:8] + bytes([1, 1, wire.TF_ENCR, 99])) for t, b in msg.payloads]
    return message.encode(msg, True)


def _median_us(fn, items):
    ts = []
    for x in items:
        t = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e6


def test_f9_unsupported_transforms_are_refused_statelessly_without_the_responder_code():
    """Issue 8 finding 9 (CPython, the firmware objects): an SA_INIT offering only
    unsupported transforms made the gateway import and unload responder.py every time
    (about 0.8 ms against 24 us). Now it is answered NO_PROPOSAL_CHOSEN statelessly
    (counter `refused`): responder.py is never imported, no state is kept, and it costs a
    small fraction of a genuine SA_INIT (two X25519 operations)."""
    now = ticks.PERIOD - 1000
    gw = Endpoint(LinkConfig(), G1.encode(), psks={IDENTITY.encode(): os.urandom(32)})
    sys.modules.pop("gwbox.responder", None)
    loaded = []

    class Watch:  # an import hook that only records
        def find_spec(self, name, path=None, target=None):
            if name == "gwbox.responder":
                loaded.append(name)
            return None
    hook = Watch()
    sys.meta_path.insert(0, hook)
    try:
        bad = [_unsupported_sa_init() for _ in range(300)]

        def refuse(p):
            gw.receive(p, now, "line")
            out = gw.take_output()
            assert len(out) == 1 and cleartext_kind(out[0][1])[2] == wire.N_NO_PROPOSAL_CHOSEN
        refused_us = _median_us(refuse, bad)
    finally:
        sys.meta_path.remove(hook)
    assert loaded == [] and "gwbox.responder" not in sys.modules
    assert gw.refused == 300 and len(gw.half_open) == 0 and gw.take_events() == []

    def full(p):  # a genuine SA_INIT, each on its own link: state and X25519
        gw.receive(p, now, object())
        gw.take_output()
    full_us = _median_us(full, [forged_sa_init() for _ in range(30)])
    print("f9: refused SA_INIT %.1f us, full SA_INIT %.0f us (CPython)" % (refused_us, full_us))
    assert refused_us < 200, "a refused SA_INIT costs %.0f us" % refused_us
    assert refused_us * 10 < full_us, (refused_us, full_us)


@pytest.mark.xdist_group("cpu")  # timed on the CPU: not beside another CPU-bound test
@limit(180)  # 1,800 pure-Python handshakes: 20 s on an idle machine, 36-52 s on a loaded one
def test_f9_unknown_identity_and_wrong_auth_cost_the_same():
    """Issue 8 finding 9, timing (CPython): an unknown identity was answered measurably
    faster than a wrong AUTH (the MAC was skipped: 0.81 of the time at the commit the work
    started from). Now both compute the AUTH MAC (counted here) and are answered in the same
    time: medians of 300 interleaved msg3s each within 15% (best of three rounds, the
    machine is shared), identical answers in size."""
    now = ticks.PERIOD - 1000
    psk = os.urandom(32)

    def one(box_id, box_psk, count):
        box = Endpoint(LinkConfig(), box_id, psk=box_psk, expect_peer=b"gw1")
        gw = Endpoint(LinkConfig(), b"gw1", psks={b"box1": psk})
        box.connect(now)
        gw.receive(netsim.output(box, now)[0][1], now)
        box.receive(gw.take_output()[0][1], now)
        m3 = netsim.output(box, now)[-1][1]
        import gwbox.responder as responder  # loaded now: count its MAC computations
        real = responder.auth_mac
        calls = []
        responder.auth_mac = lambda *a: calls.append(1) or real(*a)
        try:
            t = time.perf_counter()
            gw.receive(m3, now)
            dt = time.perf_counter() - t
        finally:
            responder.auth_mac = real
        out = gw.take_output()
        reason = [e.get("reason") for e in gw.take_events() if e.name == "handshake_failed"]
        count.append((len(calls), len(out[0][1]), tuple(reason)))
        return dt

    ratios = []
    for _round in range(3):
        wrong, unknown, cw, cu = [], [], [], []
        for _ in range(300):
            wrong.append(one(b"box1", os.urandom(32), cw))
            unknown.append(one(b"box9", psk, cu))  # same length as b"box1"
        assert set(cw) == {(1, cw[0][1], ("authentication_failed",))}, set(cw)
        assert set(cu) == {(1, cw[0][1], ("unknown_identity",))}, set(cu)
        ratios.append(statistics.median(unknown) / statistics.median(wrong))
        if 0.85 <= ratios[-1] <= 1.15:
            break
    print("f9: unknown identity / wrong AUTH answer time: %s" % ["%.3f" % r for r in ratios])
    assert 0.85 <= ratios[-1] <= 1.15, "unknown identity / wrong AUTH answer time: %r" % ratios


# --- further attacks of issue 8 ----------------------------------------------------------------------

@limit(60)
def test_a_flood_of_sa_inits_at_line_rate_while_the_box_logs_in_and_keeps_its_heartbeats():
    """Forged SA_INITs toward G1 at line rate on the box's own line (the line to the access
    server stays busy with them, see Flood), starting before the box's own SA_INIT and going
    on for 12 s after it logged in. The box logs in within one handshake retry (3 s) of its
    SA_INIT being let through, every heartbeat round is answered at its first attempt, and
    LAN messages sent meanwhile are delivered. G1 keeps at most 2 handshakes of that call
    half-open: the flood gets cookies."""
    general = GENERAL.replace("HandshakeRetryTime = 2", "HandshakeRetryTime = 3")
    with attacked(general, login=False) as (rig, att):
        att.set_rule(UP, on_nth(1, HOLD, up_packet(is_sa_init_request)))
        wait_box(rig, "handshake_started", 20)
        with Flood(rig, att) as flood:
            n_down = att.frame_count(DOWN)
            end = time.monotonic() + 6
            while sum(1 for f in att.frames(DOWN) if f.index >= n_down and is_cookie_reply(f)) < 5:
                assert time.monotonic() < end and flood.error is None, flood.error
                time.sleep(0.05)
            i = mark(rig)
            t0 = time.monotonic()
            att.release(UP)
            e = wait_box(rig, "sa_established", 6, i, peer=G1)
            login_s = e["mono"] - t0
            assert rig.in_use(3, G1) is not None
            j = mark(rig)
            f0, b0, t1 = flood.sent, rig.emu.status()["counters"]["bytes_from_box"], time.monotonic()
            for k in range(1, 11):
                rig.send(k, T1)
                time.sleep(1.2)
            f1, b1, t2 = flood.sent, rig.emu.status()["counters"]["bytes_from_box"], time.monotonic()
            assert flood.error is None, flood.error
        print("flood: login %.2f s, %.1f forged SA_INITs/s, line %.0f B/s up, %d heartbeats (%d retries), %d cookies"
              % (login_s, (f1 - f0) / (t2 - t1), (b1 - b0) / (t2 - t1), *heartbeat_rounds(rig, j)[:2],
                 sum(1 for f in att.frames(DOWN) if is_cookie_reply(f))))
        assert login_s < 3.0, "login took %.2f s during the flood (handshake retry 3 s)" % login_s
        rate = (f1 - f0) / (t2 - t1)
        line = (b1 - b0) / (t2 - t1)
        assert rate > 6 and line > 0.85 * LINE_BYTES_PER_S, "flood %.1f/s, line %.0f B/s" % (rate, line)
        sent, retries, acks = heartbeat_rounds(rig, j)
        rounds = [(e["event"][10:], round(e["mono"] - t1, 2), e.get("attempt", e.get("rtt_ms")))
                  for e in rig.box.events[j:] if e["event"] in ("heartbeat_sent", "heartbeat_ack")]
        print("flood: heartbeats (sent: attempt, ack: rtt ms) %s" % rounds)
        assert sent >= 6 and retries == 0 and acks >= sent - 1, rounds
        seen = names(rig, i)
        for bad in ("handshake_failed", "gateway_dead", "sa_deleted", "link_down"):
            assert bad not in seen, seen
        assert rig.wait_delivered(range(1, 11), 10), sorted(rig.delivered())
        started = gw_events(rig, G1, "handshake_started", role="responder")
        assert 2 <= len(started) <= 3, len(started)  # the flood's first, the box's (and one more at most)
        cookies = sum(1 for f in att.frames(DOWN) if is_cookie_reply(f))
        assert cookies >= 0.8 * flood.sent - 10, (cookies, flood.sent)


def delete_frames(att):
    """The box's DELETE frames (up) recorded so far."""
    return [f for f in att.frames(UP) if up_packet(is_delete)(f)]


def forged_protected(spi, size=42):
    """A packet of `size` bytes naming `spi`: sequence number 1..2**31, random ciphertext and ICV."""
    return spi.to_bytes(4, "big") + (1 + int.from_bytes(os.urandom(4), "big") % (1 << 31)).to_bytes(4, "big") \
        + os.urandom(size - 8)


@limit(60)
def test_forged_and_replayed_deletes_change_nothing():
    """A genuine DELETE of the box (the one after a rekey) is captured and replayed toward
    G1, at once and again after the next rekey; DELETE-sized forgeries naming the current
    control SPIs go both ways. Each is one `dropped` (replayed, unknown SPI or bad ICV) and
    nothing else: no SA ends, heartbeats keep being answered at their first attempt."""
    general = GENERAL + "\nRekeyTime = 3"
    with attacked(general) as (rig, att):
        wait_box(rig, "rekeyed", 8)
        end = time.monotonic() + 3
        while not delete_frames(att):
            assert time.monotonic() < end, "no DELETE after the rekey"
            time.sleep(0.05)
        genuine = delete_frames(att)[0]
        time.sleep(0.5)  # answered; the rekey is over
        i = mark(rig)
        g_drop = len(gw_events(rig, G1, "dropped"))
        att.replay(UP, genuine, count=2)
        # forgeries on the control SAs in use now (both ends name their inbound SPIs in events)
        box_ctl = (box_events(rig, "rekeyed") or box_events(rig, "sa_established"))[-1]["ctl_spi"]
        g1_ctl = (gw_events(rig, G1, "rekeyed") or gw_events(rig, G1, "sa_established"))[-1]["ctl_spi"]
        att.inject(DOWN, forged_protected(box_ctl))
        att.inject(UP, toward_g1(forged_protected(g1_ctl)))
        time.sleep(1.0)
        k = mark(rig)
        wait_box(rig, "rekeyed", 6, k)  # the next rekey: the captured DELETE's SA is superseded
        time.sleep(2.5)  # ... and gone
        att.replay(UP, genuine)
        time.sleep(1.5)
        g_reasons = [str(e.get("reason")) for e in gw_events(rig, G1, "dropped")[g_drop:]]
        assert len(g_reasons) == 4, g_reasons
        assert sum("replayed" in r for r in g_reasons) == 2 and sum("bad ICV" in r for r in g_reasons) == 1
        assert sum("SPI" in r or "replayed" in r for r in g_reasons[3:]) == 1, g_reasons
        b_reasons = [str(e.get("reason")) for e in box_events(rig, "dropped", i)]
        assert b_reasons == ["bad ICV"], b_reasons
        seen = names(rig, i)
        for bad in ("sa_deleted", "gateway_dead", "handshake_started", "link_down"):
            assert bad not in seen, seen
        assert gw_events(rig, G1, "sa_deleted") == []
        sent, retries, acks = heartbeat_rounds(rig, i)
        assert acks >= 3 and retries == 0, seen


def raw_frame(payload, good_fcs=True):
    """`payload` framed by hand (any size, so oversize too), with a good or a wrong FCS."""
    from gwbox.link.framing import fcs16
    from line_attacker import _escape
    fcs = fcs16(payload) ^ 0xFFFF
    if not good_fcs:
        fcs ^= 0x5A5A
    return b"\x7e" + _escape(payload + bytes((fcs & 0xFF, fcs >> 8))) + b"\x7e"


def noise(n):
    """n random bytes without flag or escape bytes (so a run of them is one bad frame)."""
    return bytes(b for b in os.urandom(2 * n) if b not in (0x7D, 0x7E))[:n]


def status(rig, start=0):
    return [e for e in rig.box.find("status", start)][-1]


@limit(60)
def test_garbage_and_oversize_frames_are_counted_and_nothing_else():
    """Toward the box: runs of line noise, frames with a wrong FCS, an oversize frame (1,700
    bytes: more than any frame may hold) and well-framed junk packets (cleartext junk, an
    unknown SPI, a runt, an empty frame, an SPI-echo the box does not speak, a forgery on
    its own data SPI). Toward the access server: a frame with outer context 0, one for an
    unbound context, one for an address not on the LAN, junk for G1, an oversize frame.
    Each is counted where it lands (the box's framer counters, one `dropped` per junk
    packet, the access server's `unroutable`, G1's `dropped`) and nothing else happens: the
    call, the SA and the heartbeats go on."""
    general = GENERAL.replace("HeartbeatResponseTime = 1", "HeartbeatResponseTime = 3")
    with attacked(general) as (rig, att):
        time.sleep(1.2)
        i = mark(rig)
        st0 = status(rig)
        g_drop = len(gw_events(rig, G1, "dropped"))
        ras0 = len(gw_events(rig, "ras", "unroutable"))
        data_spi = box_events(rig, "sa_established")[-1]["data_spi"]
        # toward the box
        runs = [noise(n) for n in (3, 50, 200)]
        bad = [raw_frame(os.urandom(n), good_fcs=False) for n in (4, 26, 90, 300)]
        junk = [b"\x00" + os.urandom(30), b"\x9a" + os.urandom(39), b"\x81\x02\x03", b"",
                b"\xff\xff\xff\xff" + os.urandom(4), data_spi.to_bytes(4, "big") + os.urandom(30)]
        sent = 0
        for r in runs:
            att.inject_raw(DOWN, r)
            att.inject(DOWN, junk[0])  # its flag ends the run: one bad frame
            sent += 1
        for b in bad:
            att.inject_raw(DOWN, b)
        for j in junk[1:]:
            att.inject(DOWN, j)
            sent += 1
        att.inject_raw(DOWN, raw_frame(os.urandom(1700)))
        # toward the access server
        att.inject(UP, b"\x00" + os.urandom(20))  # outer context 0
        att.inject(UP, bytes([77]) + os.urandom(30))  # short form, context 77 unbound
        att.inject(UP, tunnel.encode_outer(50, ip_to_int("10.9.9.9")) + os.urandom(30))
        att.inject(UP, toward_g1(b"\xab" + os.urandom(40), ctx=51))
        att.inject_raw(UP, raw_frame(tunnel.encode_outer(1) + os.urandom(1700)))
        time.sleep(6.0)  # ~3.8 s of oversize frames on a 9,600 baud line, then some heartbeats
        st1 = status(rig, i)
        b_reasons = [str(e.get("reason")) for e in box_events(rig, "dropped", i)]
        assert len(b_reasons) == sent, b_reasons
        assert st1["bad_fcs"] - st0["bad_fcs"] == len(runs) + len(bad), (st0["bad_fcs"], st1["bad_fcs"])
        ras = [e.get("reason") for e in gw_events(rig, "ras", "unroutable")[ras0:]]
        assert sorted(ras) == ["bad_outer", "unbound", "unknown_address"], ras
        g_reasons = [str(e.get("reason")) for e in gw_events(rig, G1, "dropped")[g_drop:]]
        assert len(g_reasons) == 1, g_reasons
        seen = names(rig, i)
        for badname in ("sa_deleted", "gateway_dead", "handshake_started", "link_down", "carrier_doubt"):
            assert badname not in seen, seen
        assert set(seen) <= {"dropped", "heartbeat_sent", "heartbeat_ack"}, set(seen)
        # 3.6 s of oversize frames block the line: a heartbeat may need its retry, no more
        hb, retries, acks = heartbeat_rounds(rig, i)
        assert acks >= 3 and retries <= 1 and acks >= hb - retries - 1, seen
        assert rig.box.alive() and rig.emu.status()["counters"]["calls_connected"] == 1


@limit(60)
def test_a_gateway_reboot_that_loses_its_state():
    """G1 is killed and started again (same address and ports, no SAs): the box's packets on
    the old SA are `dropped` there (unknown SPI), the box's heartbeat declares G1 dead
    within its bound (defer 1 s + 3 x 1 s) and fails over to the next gateway with a fresh
    handshake, and LAN messages sent throughout are all delivered."""
    with attacked() as (rig, att):
        rig.send(1, T1)
        assert rig.wait_delivered([1], 10)
        i = mark(rig)
        t0 = time.monotonic()
        rig.ho.restart(G1)
        for k in range(2, 12):
            rig.send(k, T1)
            time.sleep(0.5)
        dead = wait_box(rig, "gateway_dead", 8, i, gateway=G1)
        assert dead["mono"] - t0 <= 1 + 3 * 1 + 2.0, dead["mono"] - t0
        nxt = wait_box(rig, "gateway_in_use", 10, rig.index(dead))
        assert nxt["gateway"] != G1 or nxt.get("how") == "authenticated"
        assert rig.wait_delivered(range(1, 12), 15), sorted(rig.delivered())
        # the restarted G1 saw the box's packets on an SA it no longer has
        dropped = [e for e in gw_events(rig, G1, "dropped") if "unknown SPI" in str(e.get("reason"))]
        assert dropped, gw_events(rig, G1)[-10:]
        assert len(rig.ho.exit_codes(G1)) == 1  # one incarnation killed, one running
        seen = names(rig, i)
        assert "handshake_started" in seen and seen.count("sa_established") >= 1
        assert "link_down" not in seen and rig.box.alive()
