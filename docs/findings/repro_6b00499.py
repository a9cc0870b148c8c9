"""Reproduce the nine findings of issue 8 against the code at commit 6b00499.

Why this exists: it is the evidence of the state *before* the issue-8 work. Each
finding of the security review is driven through the old firmware's own API
(Endpoint, LinkConfig, Session, the modem driver, Node, and the virtual-time netsim
of tests/firmware) in plain CPython, and what happens is printed, one line per finding:

    F<n> REPRODUCED: <what was observed, with numbers>
    F<n> NOT REPRODUCED: <why>

Nothing here is asserted or hard-coded: every number is measured in the run. The
after-state (each finding fixed) is covered by tests/host/test_attacks.py and the
firmware tests; this script is only meant for the old tree.

Usage:  python docs/findings/repro_6b00499.py /path/to/checkout-of-6b00499

It runs in virtual time on one core, and every finding is guarded (try/except, an
iteration cap where the old code spins, and a SIGALRM timeout), so it always ends
within about two minutes and exits 0. It writes no bytecode into the checkout.
"""
import os
import signal
import statistics
import struct
import sys
import time
import traceback

sys.dont_write_bytecode = True

if len(sys.argv) != 2 or not os.path.isdir(os.path.join(sys.argv[1], "firmware", "gwbox")):
    sys.exit("usage: %s <checkout of 6b00499>" % sys.argv[0])
BASE = os.path.abspath(sys.argv[1])
for sub in ("host_tools", "tests/firmware", "firmware"):
    sys.path.insert(0, os.path.join(BASE, sub))

try:  # the old tree's API; a later tree moved some of it, and this script is not for that
    import netsim  # tests/firmware of the old tree
    from gwbox import handshake, ticks, wire
    from gwbox.config import LinkConfig
    from gwbox.crypto import x25519
    from gwbox.endpoint import Endpoint
    from gwbox.link.framing import Framer
    from gwbox.link.modem import Modem
    from gwbox.node import Node
    from gwbox.sa import packet_spi
    from gwbox.wire import Message
except ImportError as e:
    sys.exit("%s does not have the API of 6b00499 (%s)" % (BASE, e))

PSK = netsim.PSK
NO_CARRIER = b"\r\nNO CARRIER\r\n"


class Timeout(Exception):
    pass


class Spin(Exception):
    """Raised by an iteration cap: the old code would have gone on for ever."""


# --- helpers --------------------------------------------------------------------------

def dropped_reasons(events):
    return [e.get("reason") for e in events if e.name == "dropped"]


def sa_init_request(proposal=None, ke=None):
    """A well-formed, unauthenticated SA_INIT as anybody on the line can make one."""
    offer = handshake.Offer((), proposal)
    payloads = offer.payloads
    if ke is not None:
        payloads = [payloads[0], (wire.PL_KE, wire.tagged(wire.DH_X25519, ke)), payloads[2]]
    return wire.encode(Message(wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0, payloads, offer.ctl_spi, 0), True)


def count_x25519():
    """Wrap the X25519 scalar multiplication; returns (counter dict, undo)."""
    real = x25519.x25519
    box = {"n": 0}

    def counted(k, u):
        box["n"] += 1
        return real(k, u)
    x25519.x25519 = counted

    def undo():
        x25519.x25519 = real
    return box, undo


def cap_ticks(ep, limit):
    """Make `ep.tick` raise Spin after `limit` calls; returns the call log [now, ...]."""
    calls = []
    real = ep.tick

    def tick(now):
        calls.append(now)
        if len(calls) >= limit:
            raise Spin()
        real(now)
    ep.tick = tick
    return calls


def first_sa_init_from(net, src="a"):
    for s, p in net.tap:
        if s == src and p[0] == wire.MARKER:
            return p
    return None


# --- the findings -----------------------------------------------------------------------

def f1():
    cfg = LinkConfig()
    # (a) eight well-formed SA_INITs from an attacker fill half_open_max; the box is refused
    net = netsim.pair(cfg)
    box, gw = net.a, net.b
    for _ in range(cfg.half_open_max):
        net.inject(gw, sa_init_request())
    slots = len(gw.half_open)
    net.a.connect(net.now)
    net.run_for(cfg.handshake_retry_ms * (cfg.handshake_retries + 1) + 500)
    refused = dropped_reasons(net.events[id(gw)]).count("too many handshakes in progress")
    failed = net.first(box, "handshake_failed")
    locked_out = slots == cfg.half_open_max and refused >= 1 and failed is not None and box.session() is None
    # (b) X25519 computations per SA_INIT, counted at the scalar multiplication
    gw2 = Endpoint(cfg, b"gw1", psks={b"box1": PSK})
    pkt_ok = sa_init_request()
    pkt_low = sa_init_request(ke=bytes(32))  # u = 0: a low-order point
    counter, undo = count_x25519()
    try:
        t0 = time.perf_counter()
        gw2.receive(pkt_ok, 0)
        t_ok = time.perf_counter() - t0
        n_ok = counter["n"]
        slots_after_ok = len(gw2.half_open)
        counter["n"] = 0
        t0 = time.perf_counter()
        gw2.receive(pkt_low, 0)
        t_low = time.perf_counter() - t0
        n_low = counter["n"]
        slots_after_low = len(gw2.half_open)
    finally:
        undo()
    if not locked_out:
        return False, ("8 SA_INITs took %d slot(s); genuine SA_INIT refused %d time(s); box handshake %s"
                       % (slots, refused, "failed" if failed else "not failed"))
    return True, ("%d forged SA_INITs filled half_open_max=%d; the box's SA_INIT and all %d retransmissions "
                  "were refused (%d x 'too many handshakes in progress'), box handshake_failed reason=%s, "
                  "no session after %d ms; one SA_INIT costs the responder %d X25519 computations (%.1f ms "
                  "CPython) and takes a slot (half_open=%d), one with a low-order key %d X25519 (%.1f ms) "
                  "and no slot (half_open still %d)"
                  % (cfg.half_open_max, cfg.half_open_max, cfg.handshake_retries, refused, failed.get("reason"),
                     cfg.handshake_retry_ms * (cfg.handshake_retries + 1) + 500, n_ok, t_ok * 1e3,
                     slots_after_ok, n_low, t_low * 1e3, slots_after_low))


def f2():
    results = []
    # (a) forged cleartext NO_PROPOSAL_CHOSEN with the right SPI, injected before the real answer
    net = netsim.pair()
    box = net.a
    box.connect(net.now)
    net._collect()
    msg1 = wire.decode(first_sa_init_from(net), True)
    forged = wire.encode(Message(wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
                                 [(wire.PL_NOTIFY, wire.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))],
                                 msg1.spi_i, 0), True)
    net.inject(box, forged)
    fail = net.first(box, "handshake_failed")  # already there: before the genuine answer arrives
    net.run_for(2000)
    late = dropped_reasons(net.events[id(box)]).count("unexpected SA_INIT response")
    ok_a = fail is not None and fail.get("reason") == "no_proposal_chosen" and box.session() is None
    results.append("(a) %d-byte forged NO_PROPOSAL_CHOSEN -> box handshake_failed reason=%s at once, "
                   "genuine response %d ms later dropped %d x ('unexpected SA_INIT response'), session=%s"
                   % (len(forged), fail.get("reason") if fail else None, 2 * net.delay, late,
                      box.session() is not None))
    # (b) forged SA_INIT response carrying the attacker's own key
    cfg = LinkConfig()
    net = netsim.pair(cfg)
    box = net.a
    box.connect(net.now)
    net._collect()
    msg1 = wire.decode(first_sa_init_from(net), True)
    evil = handshake.Offer(())
    forged = wire.encode(Message(wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0, evil.payloads,
                                 msg1.spi_i, evil.ctl_spi), True)
    net.inject(box, forged)
    net.run_for(cfg.handshake_retry_ms * (cfg.handshake_retries + 1) + 500)
    fail_b = net.first(box, "handshake_failed")
    late_b = dropped_reasons(net.events[id(box)]).count("unexpected SA_INIT response")
    ok_b = fail_b is not None and box.session() is None and late_b >= 1
    results.append("(b) forged response with the attacker's key -> genuine response dropped %d x, box "
                   "handshake_failed reason=%s, session=%s"
                   % (late_b, fail_b.get("reason") if fail_b else None, box.session() is not None))
    return ok_a and ok_b, "; ".join(results)


def f3():
    net = netsim.pair()
    net.connect()
    box, gw = net.a, net.b
    s = gw.session()
    # one genuine packet from the box arrives on line A: the session is bound to it
    box.send(b"hello", net.now)
    for _link, p in box.take_output():
        gw.receive(p, net.now, link="line-A")
    gw.take_received()
    before = s.link
    # an attacker on line B sends 32 bytes naming the session's data SPI, with a junk ICV
    forged = struct.pack(">II", s.current.data_in.spi, 0x7FFFFFFF) + bytes(8) + b"\xAA" * 16
    gw.receive(forged, net.now, link="line-B")
    why = dropped_reasons(gw.take_events())
    after = s.link
    gw.send(b"reply", net.now)
    out_links = [link for link, _p in gw.take_output()]
    if after == before:
        return False, "session link stayed %r after the forged packet (%s)" % (after, why)
    return True, ("a %d-byte packet with a bad ICV (dropped: %s) on line-B re-pointed the session's link "
                  "%r -> %r; the next payload to the box went out on %s"
                  % (len(forged), why, before, after, out_links))


def f4():
    # (a) the driver alone: online, DCD reported high, then 14 bytes in the data stream
    m = Modem(dial_target="5551234")
    now = 0
    m.request_link(now)
    for reply in (b"\r\nOK\r\n", b"\r\nOK\r\n", b"\r\nCONNECT 9600\r\n"):
        m.take_output()
        m.receive(reply, now)
    m.set_dcd(True, now)
    m.take_events()
    state0 = m.state
    payload = m.receive(b"abc" + NO_CARRIER + b"def", now)
    ev = [(e.name, e.get("reason")) for e in m.take_events()]
    ok_a = state0 == "data" and m.state != "data" and ("link_down", "no carrier") in ev and m.dcd is True
    # (b) a box node with an SA up over the modem: the marker inside an injected frame
    cfg = LinkConfig()
    boxn = Node(Endpoint(cfg, b"box1", psk=PSK, expect_peer=b"gw1"), modem=Modem(dial_target="1"))
    gwn = Node(Endpoint(cfg, b"gw1", psks={b"box1": PSK}))
    now = 0
    gwn.start(now)
    boxn.start(now)
    for reply in (b"\r\nOK\r\n", b"\r\nOK\r\n", b"\r\nCONNECT 9600\r\n"):
        boxn.take_uart()
        boxn.feed(reply, now)
    boxn.carrier(True, now)
    for _ in range(10):
        now += 50
        gwn.feed(boxn.take_uart(), now)
        boxn.feed(gwn.take_uart(), now)
        if boxn.state == "up" and gwn.endpoint.session() is not None:
            break
    up = boxn.state == "up" and boxn.endpoint.session() is not None
    boxn.take_events()
    frame = Framer().encode(b"\x01\x02" + NO_CARRIER + b"\x03")
    boxn.feed(frame, now + 10)
    ev_b = [(e.name, e.get("reason")) for e in boxn.take_events()]
    ok_b = up and boxn.endpoint.session() is None and any(n == "sa_deleted" for n, _ in ev_b)
    detail = ("(a) driver in data mode with DCD high: 3+14+3 bytes -> state %s->%s, events %s, payload %r, "
              "dcd still %r; (b) box node with SA up (%s): one %d-byte frame containing the marker -> "
              "events %s, node %s, SA %s"
              % (state0, m.state, ev, payload, m.dcd, up, len(frame), ev_b, boxn.state,
                 "gone" if boxn.endpoint.session() is None else "still up"))
    return ok_a and ok_b, detail


def f5():
    parts = []
    # (a) default rekey_ms (8 h): an attacker drops every box->gw control packet longer than 60
    # bytes (REKEY requests; keepalives are 31 bytes). Nothing bounds the SA's life.
    cfg = LinkConfig()
    net = netsim.pair(cfg)
    net.keep_payloads = False
    net.connect()
    rekey_drops = [0]

    def drop(src, p):
        if src == "a" and p[0] != wire.MARKER and len(p) > 60:
            rekey_drops[0] += 1
            return True
        return False
    net.drop = drop
    s = net.a.session()
    created = s.current.created
    hours = 9
    t0 = time.perf_counter()
    for _ in range(hours * 6):
        net.run_for(600000)
    cpu = time.perf_counter() - t0
    age = ticks.diff(net.now, created)
    started = net.names(net.a).count("rekey_started")
    failed = net.names(net.a).count("rekey_failed")
    still = net.a.session() is s and s.current.created == created
    ok_a = still and started >= 2 and failed >= 1 and age > cfg.rekey_ms
    parts.append("(a) rekey_ms=%d, REKEY frames dropped (%d): after %d h virtual (%.1f s CPU) the same SA is "
                 "up, age %d ms = %.2f x rekey_ms, %d rekey_started / %d rekey_failed, no lifetime limit hit"
                 % (cfg.rekey_ms, rekey_drops[0], hours, cpu, age, age / cfg.rekey_ms, started, failed))
    # (b) the same run continued to 2^29 ms of SA age. Simulating the remaining ~6 days would
    # take minutes of CPU, so the SA's creation stamp is moved back to where it would be
    # (its only use is the age); everything after that is the old code running.
    s.current.created = ticks.add(net.now, -((1 << 29) - 60000))
    calls = cap_ticks(net.a, 20000)
    t_start = net.now
    try:
        for _ in range(30):
            net.run_for(10000)
        spun = False
    except Spin:
        spun = True
    stuck = calls[-50:]
    d = net.a.next_deadline()
    age_now = ticks.diff(net.now, s.current.created)
    ok_b = spun and len(set(stuck)) == 1
    parts.append("(b) SA age brought to 2^29-60000 ms, then run_for(10000) x30: %s after %d tick calls; "
                 "ticks.diff(now, created)=%d (negative), next_deadline - now = %s ms, the last 50 ticks at "
                 "%d distinct instant(s), %d ms after the run started"
                 % ("spun, stopped by the cap" if spun else "returned normally", len(calls), age_now,
                    ticks.diff(d, net.now) if d is not None else None, len(set(stuck)),
                    ticks.diff(stuck[-1], t_start) if stuck else 0))
    # (c) LinkConfig accepts rekey_ms above 2^29 (here a week). Once the rekey deadline,
    # taken modulo the tick period, lies before the keepalive deadline the loop spins at
    # once; just above 2^29 it does not yet, so both are shown.
    ok_c = False
    for label, ms in (("7 days", 7 * 24 * 3600 * 1000), ("2^29+1000", (1 << 29) + 1000)):
        try:
            big = LinkConfig(rekey_ms=ms)
        except ValueError as e:
            parts.append("(c) LinkConfig refused rekey_ms=%d (%s): %s" % (ms, label, e))
            continue
        net = netsim.pair(big)
        net.keep_payloads = False
        calls = cap_ticks(net.a, 20000)
        t_connect = net.now
        try:
            net.connect()
            spun = False
        except Spin:
            spun = True
        d = net.a.next_deadline()
        sess = net.a.session()
        rekey_rel = ticks.diff(ticks.add(sess.current.created, ms), sess.current.created) if sess else None
        if label == "7 days":
            ok_c = spun
        parts.append("(c) LinkConfig(rekey_ms=%d, %s) accepted; connect()'s run_for(1000) %s after %d "
                     "tick calls, next_deadline - now = %s ms, virtual clock at %+d ms from the connect "
                     "(created + rekey_ms reads as %s ms from created)"
                     % (ms, label, "spun, stopped by the cap" if spun else "returned", len(calls),
                        ticks.diff(d, net.now) if d is not None else None, ticks.diff(net.now, t_connect),
                        rekey_rel))
    return ok_a and ok_b and ok_c, "; ".join(parts)


REKEY_MS_F6 = 10000


def _delete_loss(lose_delete):
    cfg = LinkConfig(rekey_ms=REKEY_MS_F6)
    net = netsim.pair(cfg)
    net.keep_payloads = False
    net.connect()
    box, gw = net.a, net.b
    lost = []

    def drop(src, p):
        if not lose_delete or lost or src != "a" or p[0] == wire.MARKER:
            return False
        s = box.session()
        if s is not None and s.previous is not None and s.delete_pending is not None \
                and packet_spi(p) == s.current.ctl_out.spi:
            lost.append(p)  # the box's DELETE(old SAs), first packet on its new control SA
            return True
        return False
    net.drop = drop
    sent = refused = 0
    for i in range(400):  # the gateway streams 400 payloads, one per 50 ms, the box is quiet
        try:
            gw.send(b"gw->box %04d" % i, net.now)
            sent += 1
        except Exception:
            refused += 1
        net.run_for(50)
    net.run_for(3000)
    got = net.count[id(box)]
    drops = len(dropped_reasons(net.events[id(box)]))
    return sent, refused, got, drops, len(lost), net.names(box).count("rekeyed")


def f6():
    c_sent, c_ref, c_got, _c_drops, _, c_rk = _delete_loss(False)
    sent, refused, got, drops, lost, rk = _delete_loss(True)
    ok = lost == 1 and got < sent
    return ok, ("rekey_ms=%d, gateway streams 400 payloads at 50 ms while the box is quiet; one DELETE lost "
                "(%d) -> %d sent, %d received by the box (%d lost), %d frames dropped at the box, %d sends "
                "refused after the gateway declared the peer dead; control run without the loss: %d sent, "
                "%d received, %d refused (%d rekeys)"
                % (REKEY_MS_F6, lost, sent, got, sent - got, drops, refused, c_sent, c_got, c_ref, c_rk))


def f7():
    net = netsim.pair()
    net.connect()
    box = net.a
    s = box.session()
    # (a) data SA three packets from its sequence limit: Endpoint.send
    s.out_sas.data_out.seq = 0xFFFFFFFF - 3
    results = []
    for i in range(5):
        try:
            box.send(b"x", net.now)
            results.append("ok")
        except Exception as e:
            results.append("%s(%s)" % (type(e).__name__, e))
    due = s.rekey_due(net.now)
    rk = net.names(box).count("rekey_started")
    raised_a = any(r != "ok" for r in results)
    # (b) control SA at its limit: the next keepalive, sent from tick, raises through run_for
    s.out_sas.ctl_out.seq = 0xFFFFFFFF
    where = None
    try:
        net.run_for(LinkConfig.keepalive_idle_ms + 1000)
    except Exception as e:
        frames = [f.name for f in traceback.extract_tb(e.__traceback__)]
        where = "%s(%s) via %s" % (type(e).__name__, e, " > ".join(frames[-6:]))
    ok = raised_a and where is not None and "tick" in where
    return ok, ("Endpoint.send x5 with data seq at 2^32-4: %s; rekey_due=%s, rekey_started=%d (no packet-count "
                "trigger); control seq at 2^32-1, run_for(11000): raised %s"
                % (results, due, rk, where))


class CatchingEndpoint:
    """What the pipe port / MpNode driver does: an exception in tick is reported, not fatal."""

    def __init__(self, ep):
        self.ep = ep
        self.errors = []

    def tick(self, now):
        try:
            self.ep.tick(now)
        except MemoryError as e:
            self.errors.append((now, e))

    def __getattr__(self, name):
        return getattr(self.ep, name)


def f8():
    net = netsim.pair()
    net.connect()
    s = net.a.session()

    def no_heap(plaintext):
        raise MemoryError("memory allocation failed, allocating 320 bytes")
    s.current.ctl_out.protect = no_heap  # the box's next keepalive packet cannot be allocated
    wrapped = CatchingEndpoint(net.a)
    net.a = wrapped
    net.events[id(wrapped)] = net.events[id(wrapped.ep)]
    net.count[id(wrapped)] = 0
    net.stream[id(wrapped)] = net.stream[id(wrapped.ep)]
    net.got[id(wrapped)] = []
    calls = cap_ticks(wrapped, 5000)
    t_before = net.now
    d_before = ticks.diff(wrapped.next_deadline(), t_before)
    try:
        net.run_for(30000)
        spun = False
    except Spin:
        spun = True
    errs = wrapped.errors
    times = sorted(set(ticks.diff(t, t_before) for t, _ in errs))
    d_after = ticks.diff(wrapped.next_deadline(), t_before)
    ok = spun and len(errs) >= 1000 and len(times) == 1 and d_after == d_before
    return ok, ("the box's keepalive packet cannot be allocated (MemoryError in tick); run_for(30000) %s after "
                "%d tick calls: %d MemoryErrors at %d distinct instant(s) %s ms after the run started, "
                "next_deadline at +%d ms before the run and +%d ms after it"
                % ("spun, stopped by the cap" if spun else "returned", len(calls), len(errs), len(times),
                   times[:5], d_before, d_after))


class ImportCounter:
    """A meta path finder that only counts how often `name` is really imported."""

    def __init__(self, name):
        self.name = name
        self.n = 0

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            self.n += 1
        return None


def f9():
    cfg = LinkConfig()
    n = 200
    bad_prop = bytes([1, 1, wire.TF_ENCR, 0xFF])  # one transform nobody supports
    # (a) unsupported-only SA_INIT to an idle gateway: import + unload responder.py each time
    gw = Endpoint(cfg, b"gw1", psks={b"box1": PSK})
    pkts = [sa_init_request(bad_prop) for _ in range(n)]
    counter = ImportCounter("gwbox.responder")
    sys.meta_path.insert(0, counter)
    try:
        t_idle = []
        for p in pkts:
            t0 = time.perf_counter()
            gw.receive(p, 0)
            t_idle.append(time.perf_counter() - t0)
        imports_idle = counter.n
        # the same packets while a genuine half-open handshake keeps responder.py loaded
        gw2 = Endpoint(cfg, b"gw1", psks={b"box1": PSK})
        gw2.receive(sa_init_request(), 0)
        counter.n = 0
        t_held = []
        for p in [sa_init_request(bad_prop) for _ in range(n)]:
            t0 = time.perf_counter()
            gw2.receive(p, 0)
            t_held.append(time.perf_counter() - t0)
        imports_held = counter.n
    finally:
        sys.meta_path.remove(counter)
    m_idle = statistics.median(t_idle) * 1e6
    m_held = statistics.median(t_held) * 1e6
    ok_a = imports_idle >= n - 1 and imports_held == 0
    part_a = ("(a) %d SA_INITs with only unsupported transforms: responder.py imported %d times "
              "(median %.0f us each, CPython, compiled from source); with responder.py held loaded %d imports, "
              "median %.0f us" % (n, imports_idle, m_idle, imports_held, m_held))
    # (b) timing: unknown identity vs wrong AUTH (a known identity with the wrong PSK)
    from gwbox.initiator import InitiatorHandshake
    from gwbox.responder import ResponderHandshake
    psks = {b"box1": PSK}

    def pair_for(identity, psk):
        i = InitiatorHandshake(cfg, identity, psk, 0)
        raw1 = i.msg1
        r = ResponderHandshake(cfg, b"gw1", psks.get, raw1, wire.decode(raw1, True), 0)
        i.on_msg2(r.msg2, wire.decode(r.msg2, True), 0)
        return i, r

    unknown = pair_for(b"mallory", PSK)
    wrong = pair_for(b"box1", b"\x22" * 32)
    reps = 300
    t_unknown, t_wrong = [], []
    outcomes = set()
    for k in range(reps):
        order = [(unknown, t_unknown), (wrong, t_wrong)]
        if k % 2:
            order.reverse()  # alternate which case goes first
        for (i, r), acc in order:
            pkt = i.sas.ctl_out.protect(i._msg3_inner)
            r.out = []
            t0 = time.perf_counter()
            r.on_msg3(pkt, 0)
            acc.append(time.perf_counter() - t0)
            outcomes.add((r.failed, len(r.out)))
    mu = statistics.median(t_unknown) * 1e6
    mw = statistics.median(t_wrong) * 1e6
    faster = sum(1 for a, b in zip(t_unknown, t_wrong) if a < b)
    # a sign test over interleaved pairs: a real difference shows in nearly every pair
    ok_b = faster >= 0.9 * reps
    part_b = ("(b) responder answering AUTH over %d interleaved pairs (both answered with one "
              "AUTHENTICATION_FAILED packet, reasons %s): median unknown identity %.1f us, wrong AUTH %.1f us "
              "(+%.1f us); unknown was faster in %d of %d pairs"
              % (reps, sorted(f for f, _ in outcomes), mu, mw, mw - mu, faster, reps))
    return ok_a and ok_b, part_a + "; " + part_b


FINDINGS = [(1, f1, 40), (2, f2, 30), (3, f3, 20), (4, f4, 20), (5, f5, 60), (6, f6, 30),
            (7, f7, 20), (8, f8, 30), (9, f9, 40)]


def _alarm(signum, frame):
    raise Timeout()


def main():
    signal.signal(signal.SIGALRM, _alarm)
    print("findings of issue 8 against %s" % BASE)
    for n, fn, limit in FINDINGS:
        signal.alarm(limit)
        try:
            ok, detail = fn()
            verdict = "REPRODUCED" if ok else "NOT REPRODUCED"
        except Timeout:
            verdict, detail = "NOT REPRODUCED", "no result within %d s (timeout)" % limit
        except Exception as e:
            verdict, detail = "NOT REPRODUCED", "the repro itself failed: %s: %s" % (type(e).__name__, e)
        finally:
            signal.alarm(0)
        print("F%d %s: %s" % (n, verdict, detail), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
