"""One gateway Endpoint with many boxes, in process: what a packet, an unknown SPI, a
handshake and a box cost it (CPython, one core, the gateway's crypto backends installed).

    python bench/gateway_scale.py [BOXES ...]        (default 1000 10000)

For each size N: N box identities and keys; N firmware box Endpoints log in to one
gateway Endpoint (the real four-message handshake, packets handed across in process).
Only the gateway's calls are timed, in CPU time of this process (time.process_time around
Endpoint.receive and the drain that follows: the machine is shared, so wall time would
count other processes' turns), so the boxes' own work is not counted either:
  gw_handshakes_per_s   N / the gateway's time for all msg1 + msg3 (cookies not needed:
                        one at a time, like boxes whose logins are spread)
  gw_packet_us          median over 20 batches of 1,000 of receive() of a protected
                        heartbeat from a random box (verify, decrypt, answer: encrypt, MAC)
  gw_message_us         the same for a tunnel message (NH_MSG): receive, handed_on (the
                        confirmation), drain
  gw_unknown_spi_us     receive() of a protected-looking packet whose SPI nobody has
  gw_bytes_per_box      tracemalloc: the gateway's heap growth for N logged-in boxes / N
                        (the boxes are freed before it is read)
Keys without a suffix are for the largest N (10,000 by default, `gw_boxes`); every size's
figures are also given with `_<N>` (e.g. gw_packet_us_1000), so O(1) shows as equal
numbers. Prints one JSON object.
"""
import gc
import json
import os
import random
import statistics
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox import tunnel, wire  # noqa: E402
from gwbox.config import LinkConfig  # noqa: E402
from gwbox.endpoint import Endpoint  # noqa: E402
from gwbox.port import host_aes, host_x25519  # noqa: E402

NOW = 1000
GW = b"143.1.0.64"


def sent(ep):
    """What a box endpoint sends now, once the X25519 work it does a slice per tick is done."""
    out = ep.take_output()
    for _ in range(1000):
        if out:
            break
        ep.tick(NOW)
        out = ep.take_output()
    return [p for _, p in out]


def build(n, cfg, measure_memory=False):
    """A gateway with n boxes logged in: (gateway, boxes, gateway seconds of handshakes, bytes)."""
    keys = dict((b"box-%05d" % i, os.urandom(32)) for i in range(n))
    if measure_memory:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    gw = Endpoint(cfg, GW, psks=keys)
    gw.keep_code = True
    boxes = []
    spent = 0.0
    for ident, key in keys.items():
        b = Endpoint(cfg, ident, psk=key, expect_peer=GW)
        b.keep_code = True  # (a device drops the key-exchange code; here it would be imported 2N times)
        b.connect(NOW, link="gw")
        for _ in range(2):  # msg1 -> msg2, msg3 -> msg4
            (pkt,) = sent(b)
            t = time.process_time()
            gw.receive(pkt, NOW, ident)
            out = gw.take_output()
            spent += time.process_time() - t
            gw.take_events()
            for _, p in out:
                b.receive(p, NOW)
        assert b.session() is not None, ident
        b.take_events()
        boxes.append(b)
    assert len(gw.sessions) == n
    per_box = None
    if measure_memory:
        del boxes
        gc.collect()
        per_box = (tracemalloc.get_traced_memory()[0] - base) / n
        tracemalloc.stop()
        boxes = None
    return gw, boxes, spent, per_box


def timed(gw, packets, after=None):
    """Median µs per packet over batches of 1,000."""
    per = []
    for i in range(0, len(packets), 1000):
        batch = packets[i:i + 1000]
        t = time.process_time()
        for link, pkt in batch:
            peer = gw.receive(pkt, NOW, link)
            if after is not None:
                after(peer)
            gw.take_output()
            gw.take_events()
        per.append((time.process_time() - t) * 1e6 / len(batch))
    return round(statistics.median(per), 1)


def one_size(n, cfg, rng):
    gw, boxes, spent, _ = build(n, cfg)
    out = {"gw_handshakes_per_s_%d" % n: round(n / spent)}
    hb = []
    msgs = []
    for k in range(20000):
        b = boxes[rng.randrange(n)]
        b.send_plain(bytes([wire.NH_HB, k & 0xFF]), NOW)
        hb.append((b.identity, b.take_output()[0][1]))
    out["gw_packet_us_%d" % n] = timed(gw, hb)
    seq = {}
    for k in range(20000):
        b = boxes[rng.randrange(n)]
        num = seq[b.identity] = seq.get(b.identity, 0) + 1
        b.send_plain(tunnel.encode_msg(1, num, 0x0A000005, 5000, b"payload %d" % k), NOW)
        msgs.append((b.identity, b.take_output()[0][1]))

    def hand_on(peer):
        for p, nh, body in gw.take_messages():
            gw.handed_on(p, body[0], body[1], NOW)
    out["gw_message_us_%d" % n] = timed(gw, msgs, hand_on)
    junk = [(b"x", bytes([0x80 | rng.randrange(128)]) + os.urandom(3) + bytes(4) + os.urandom(33))
            for _ in range(20000)]
    out["gw_unknown_spi_us_%d" % n] = timed(gw, junk)
    _, _, _, per_box = build(min(n, 2000), cfg, measure_memory=True)
    out["gw_bytes_per_box_%d" % min(n, 2000)] = round(per_box)
    return out


def main():
    host_aes.install()  # the gateway's crypto backends, as gwbox_tools.gateway runs with them
    host_x25519.install()
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    cfg = LinkConfig()
    rng = random.Random(1)
    out = {}
    for n in sizes:
        out.update(one_size(n, cfg, rng))
    n = max(sizes)
    out["gw_boxes"] = n
    for k in ("gw_handshakes_per_s", "gw_packet_us", "gw_message_us", "gw_unknown_spi_us"):
        out[k] = out["%s_%d" % (k, n)]
    out["gw_bytes_per_box"] = out["gw_bytes_per_box_%d" % min(n, 2000)]
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
