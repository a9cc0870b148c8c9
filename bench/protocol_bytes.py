"""Bytes the protocol emits: full handshake, one keepalive round, and on the serial line.

Counts what the endpoints hand to the link (before framing) in a virtual-time run with
the default LinkConfig, then frames the keepalive pair with the RFC 1662 framer to get
the bytes that cross the serial line, averaged over ROUNDS idle keepalive rounds (a
ciphertext byte that happens to be a flag or escape costs one more byte on the line).
Prints one JSON object.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware")]

import netsim  # noqa: E402
from gwbox.config import LinkConfig  # noqa: E402
from gwbox.link.framing import Framer  # noqa: E402


ROUNDS = 200


def main():
    cfg = LinkConfig()
    n = netsim.pair(cfg)
    n.connect()
    handshake = [len(p) for _, p in n.tap]
    framer = Framer()
    seen = {"line": 0, "packets": 0, "first": []}

    def count(src, p):  # sees every packet put on the wire; drops none
        seen["line"] += len(framer.encode(p))
        seen["packets"] += 1
        if len(seen["first"]) < 2:
            seen["first"].append(p)
        return False

    n.drop = count
    while n.names(n.a).count("keepalive_ack") < ROUNDS:
        n.run_for(1000)
    n.run_for(100)
    assert seen["packets"] == 2 * ROUNDS and "dropped" not in n.names(n.a) + n.names(n.b)
    pair = [(None, p) for p in seen["first"]]
    wire = seen["line"] / float(ROUNDS)
    per_second = 960.0  # 9,600 baud, 8N1
    print(json.dumps({
        "handshake_bytes": sum(handshake),
        "handshake_messages": handshake,
        "keepalive_bytes": sum(len(p) for _, p in pair),
        "keepalive_wire_bytes": round(wire, 2),
        "idle_overhead_9600": round(wire / (per_second * cfg.keepalive_idle_ms / 1000.0), 5),
        "keepalive_idle_ms": cfg.keepalive_idle_ms,
    }))


if __name__ == "__main__":
    main()
