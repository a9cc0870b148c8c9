"""Bytes the protocol emits: full handshake, one heartbeat round, and on the serial line.

A box with the default policy (embedded defaults for every timer) against the virtual
head office of the tests (bench/benchsim.py): it dials the access server and keys with a
gateway; every packet either side hands to its link is counted (before framing and outer
address). Then the line idles for ROUNDS heartbeat rounds, and the bytes that crossed the
serial line in data mode, both directions (RFC 1662 framing and the box's 1-byte outer
address included), are divided by the rounds: `keepalive_wire_bytes`. A ciphertext byte
that happens to be a flag or escape costs one more byte on the line. `idle_overhead_9600`
is those bytes per round period over 960 bytes/s. Prints one JSON object.
"""
import json

import benchsim
from gwbox import ticks

ROUNDS = 200


def tap(ep, log):
    real = ep.take_output

    def take():
        out = real()
        log.extend(len(p) for _, p in out)
        return out

    ep.take_output = take


def main():
    s, pol = benchsim.sim()
    box_out, gw_out = [], []
    tap(s.box.endpoint, box_out)
    for g in s.gateways.values():
        tap(g.ep, gw_out)
    s.run_until_event("gateway_in_use", 10000)
    s.run(100)
    handshake = [box_out[0], gw_out[0], box_out[1], gw_out[1]]
    assert len(box_out) == len(gw_out) == 2, (box_out, gw_out)
    m = s.modem
    up0, down0 = m.bytes_up, m.bytes_down
    mark = len(s.events)
    while len(s.find("heartbeat_ack", mark)) < ROUNDS:
        s.run(1000)
    acks = [t for t, e in s.events[mark:] if e.name == "heartbeat_ack"]
    rounds = len(acks)
    wire = (m.bytes_up - up0 + m.bytes_down - down0) / float(rounds)
    period = ticks.diff(acks[-1], acks[0]) / float(rounds - 1)
    hb = box_out[2:4] + gw_out[2:4]
    assert len(s.find("heartbeat_sent", mark)) == rounds and "dropped" not in s.names(mark)
    print(json.dumps({
        "handshake_bytes": sum(handshake),
        "handshake_messages": handshake,
        "heartbeat_request_bytes": box_out[2],
        "heartbeat_answer_bytes": gw_out[2],
        "keepalive_bytes": box_out[2] + gw_out[2],
        "keepalive_wire_bytes": round(wire, 2),
        "heartbeat_period_ms": round(period),
        "idle_overhead_9600": round(wire / (960.0 * period / 1000.0), 5),
        "heartbeat_defer_ms": pol.defer_ms,
        "heartbeat_sizes_seen": sorted(set(hb)),
    }))


if __name__ == "__main__":
    main()
