"""Delivery that survives reboots, jams and forged bindings (issue 19, review items 1-3).

Virtual time (`benchsim.py`: the default policy, every timer at its embedded default,
OutboxBytes 8,192, preferred gateway G1, against the tests' virtual head office: a byte
fake of the Hayes modem, the access server binding contexts, three firmware gateways).
Prints one JSON object; keys:

  payload_lost_reboot
      messages lost without a word across box reboots, summed over two runs (BEFORE = 40
      and 200 messages before the reboot, one every 100 ms but the last BURST (5) at once;
      the reboot 10 ms later, with those still unconfirmed; then AFTER = 100 more, one every
      100 ms):
      taken before the reboot and neither handed on to a target nor reported in the box's
      `outbox_lost` (a deliberate restart: `Box.shutdown`, then a new Box on the same
      policy), plus taken after it and confirmed but never handed on, or never handed on.
      Must be 0. Also payload_reported_lost_reboot (what `outbox_lost` reported) and
      payload_after_reboot_delivered (of 2 x AFTER).
  outbox_jam_delivered
      of the next JAM_AFTER (300) messages (100 bytes, one every 100 ms, each offered once:
      one the box refuses, its outbox full, is gone) on a clean line, how many reached a
      target within 60 s of the last: before them, ten messages (one every 200 ms) of which two
      are 200 bytes, and every frame bigger than 200 bytes (those two, each copy) dropped
      by an attacker for 30 s. Also outbox_jam_refused (how many of those 300 the box refused),
      outbox_jam_stuck (message_stuck events), outbox_jam_failovers (gateway_dead reason
      message_stuck).
  rebind_lockout_ms
      an attacker injects one long-form frame (12 bytes) re-pointing the context of the
      gateway in use (G1, preferred) at G2 while a message goes every 200 ms: ms from the
      injection to the first message G1 hands on after it. Median of REBIND_RUNS runs, the
      injection at phases spread over one message period (rebind_lockout_max_ms: the
      largest). rebind_lockout_idle_ms: the same with the link idle, the next message 10 s
      after the injection (the context heals at the first unanswered heartbeat; the time
      counted from that message). rebind_three_delivered: the issue's 36 bytes (each of
      the three contexts re-pointed at another gateway, keys cached with all three), then
      20 messages one every 500 ms: how many G1 (still in use) handed on within 10 s of the last.
"""
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchsim  # noqa: E402
from gwbox import ticks, tunnel  # noqa: E402
from gwbox.link.framing import Framer  # noqa: E402

G1, G2, G3 = benchsim.GATEWAYS
DST = benchsim.DST
POLICY = benchsim.POLICY.replace("[TUNNEL]", "Preferred1 = %s\n[TUNNEL]" % G1)
BEFORE = (40, 200)
AFTER = 100
BURST = 5  # the last messages before the reboot go at once, so some are still held
JAM_AFTER = 300
REBIND_RUNS = 5


def sim(seed=1):
    s, _pol = benchsim.sim(seed=seed, text=POLICY)
    s.run_until_event("gateway_in_use", 10000)
    s.run(500)
    return s


def handed_on(s):
    return [m[4] for g in s.gateways.values() for m in g.handed_on]


def reboot(before):
    s = sim()
    for i in range(before - BURST):
        assert s.box.lan_send(DST, 5000, b"old %d" % i, s.now)
        s.run(100)
    for i in range(before - BURST, before):  # the last ones at once: unconfirmed at the restart
        assert s.box.lan_send(DST, 5000, b"old %d" % i, s.now)
    s.run(10)
    held = set(e[4] for e in s.box.outbox.entries)  # what the outbox holds at the restart
    s.box.shutdown(s.now)
    s.settle()
    reported = sum(e.get("count") for e in s.find("outbox_lost"))
    s.reboot_box()
    s.run_until_event("gateway_in_use", 15000)
    for i in range(AFTER):
        s.box.lan_send(DST, 5000, b"new %d" % i, s.now)
        s.run(100)
    s.run(5000)
    got = set(handed_on(s))
    old = set(b"old %d" % i for i in range(before))
    silent_old = len(old - got - held)
    new = set(b"new %d" % i for i in range(AFTER))
    undelivered_new = len(new - got)
    confirmed_never = max(0, s.box.outbox.confirmed - len(new & got))
    return silent_old + undelivered_new + confirmed_never, reported, len(new & got), len(held)


def jam():
    s = sim()
    s.drop_up = lambda frame: len(frame) > 200
    for i in range(10):
        size = 200 if i in (3, 4) else 100
        head = b"m%d|" % i
        assert s.box.lan_send(DST, 5000, head + b"." * (size - len(head)), s.now)
        s.run(200)
    s.run(30000)
    s.drop_up = None
    mark = len(s.events)
    refused = 0
    for i in range(JAM_AFTER):
        head = b"clean %d|" % i
        if not s.box.lan_send(DST, 5000, head + b"." * (100 - len(head)), s.now):
            refused += 1  # a LAN datagram the box refused is gone (its sender was told)
        s.run(100)
    s.run(60000)
    got = set(p.split(b"|")[0] for p in handed_on(s))
    delivered = len([i for i in range(JAM_AFTER) if b"clean %d" % i in got])
    return (delivered, refused, len(s.find("message_stuck")),
            len([e for e in s.find("gateway_dead") if e.get("reason") == "message_stuck"]), mark)


def _addr(gw):
    a, b, c, d = [int(x) for x in gw.split(".")]
    return (a << 24) | (b << 16) | (c << 8) | d


def inject(s, gw_from, gw_to):
    ctx = s.box.line._ctx[_addr(gw_from)]  # what an attacker reads off the line (the short frames)
    s.modem._to_far_end(Framer().encode(tunnel.encode_outer(ctx, _addr(gw_to)) + b"\x01\x02\x03"))


def rebind(phase_ms, idle):
    s = sim()
    n = 0
    for _ in range(10):
        s.box.lan_send(DST, 5000, b"warm %d" % n, s.now)
        n += 1
        s.run(200)
    s.run(phase_ms)
    g1 = s.gateways[G1]
    mark = len(g1.handed_on)
    inject(s, G1, G2)
    t0 = s.now
    if idle:
        s.run(10000)
        t0 = s.now
    for _ in range(200):
        s.box.lan_send(DST, 5000, b"after %d" % n, s.now)
        n += 1
        for _ in range(20):
            s.run(10)
            if len(g1.handed_on) > mark:
                return ticks.diff(s.now, t0)
    return None


def rebind_three():
    s = sim()
    for gw in (G2, G3):
        s.box.connect(gw.encode(), s.now)  # keys cached with them too (as after failovers)
    s.box.tick(s.now)
    s.run(3000)
    assert s.box.has_key(G2.encode()) and s.box.has_key(G3.encode())
    inject(s, G1, G2)
    inject(s, G2, G3)
    inject(s, G3, G1)
    mark = len(s.gateways[G1].handed_on)
    for i in range(20):
        s.box.lan_send(DST, 5000, b"three %d" % i, s.now)
        s.run(500)
    s.run(10000)
    return len(s.gateways[G1].handed_on) - mark, len(s.find("gateway_dead")), len(s.find("handshake_failed"))


def main():
    lost = reported = after = 0
    for before in BEFORE:
        lo, rep, aft, _held = reboot(before)
        lost += lo
        reported += rep
        after += aft
    delivered, refused, stuck, failovers, _ = jam()
    phases = [k * 200 // REBIND_RUNS for k in range(REBIND_RUNS)]
    busy = [rebind(p, False) for p in phases]
    idle = [rebind(p, True) for p in phases]
    if None in busy or None in idle:
        raise SystemExit("delivery bench: the box never reached G1 again after an injected binding")
    three, three_dead, three_failed = rebind_three()
    print(json.dumps({
        "payload_lost_reboot": lost,
        "payload_reported_lost_reboot": reported,
        "payload_after_reboot_delivered": after,
        "outbox_jam_delivered": delivered,
        "outbox_jam_refused": refused,
        "outbox_jam_stuck": stuck,
        "outbox_jam_failovers": failovers,
        "rebind_lockout_ms": round(statistics.median(busy)),
        "rebind_lockout_max_ms": max(busy),
        "rebind_lockout_idle_ms": round(statistics.median(idle)),
        "rebind_lockout_samples_ms": busy,
        "rebind_three_delivered": three,
        "rebind_three_gateway_dead": three_dead,
        "rebind_three_handshakes_failed": three_failed,
    }))


if __name__ == "__main__":
    main()
