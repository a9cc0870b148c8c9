"""Goodput and keepalive cost of the protected link, in real time through the modem emulator.

Set-up: the box is a Node (Modem + Framer + Endpoint) in a Runner on the emulator's box
pty, the gateway a modemless Node in a Runner on the emulator's gateway pty; the
emulator throttles each direction to baud/10 bytes/s (8N1), latency 10 ms, no faults.

- goodput_ratio_9600 / goodput_ratio_115200: random 1,024-byte payloads from box to
  gateway over the SA for DURATION_S (after WARMUP_S), the box's port kept just busy
  (its unwritten backlog below one payload); payload bytes delivered at the gateway
  after the first payload of the window, divided by the time from that first to the
  last delivery, divided by baud/10. Default LinkConfig.
- keepalive_wire_bytes: the link idle with the default LinkConfig, bytes that crossed the
  line (emulator counters, both directions, framing included) between one keepalive_ack
  at the box and the next, averaged over ROUNDS rounds: one request + its ack.
- idle_overhead_9600: those bytes per second over the same rounds divided by 960 bytes/s
  (one direction of a 9,600-baud line; request and ack are both counted, so this is the
  conservative reading; a round lasts keepalive_idle_ms + one round-trip).
Prints one JSON object.
"""
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

from gwbox.config import LinkConfig  # noqa: E402
from gwbox_tools.rig import LinkRig  # noqa: E402

PSK = bytes(range(32))
PAYLOAD = 1024
WARMUP_S = 1.5
DURATION_S = float(os.environ.get("GWBOX_GOODPUT_S", "10"))
ROUNDS = int(os.environ.get("GWBOX_KEEPALIVE_ROUNDS", "3"))


class Rig(LinkRig):
    """The shared rig, gateway on a pty, counting what reaches the gateway."""

    def __init__(self, baud, cfg):
        self.lock = threading.Lock()
        self.rx = []  # (monotonic s, bytes) at the gateway
        LinkRig.__init__(self, cfg, PSK, baud, gateway="pty", latency_ms=10,
                         gw_runner=dict(on_received=self._got, keep_events=10000),
                         box_runner=dict(keep_events=10000))
        try:
            if self.box.wait_event("sa_established", 20) is None:
                raise RuntimeError("no SA: %s" % [e["event"] for e in self.box.events])
        except BaseException:
            self.close()
            raise

    def _got(self, payload):
        with self.lock:
            self.rx.append((time.monotonic(), len(payload)))

    def line_bytes(self):
        c = self.emu.status()["counters"]
        return c["bytes_to_gw"] + c["bytes_to_box"]


def goodput(baud):
    rig = Rig(baud, LinkConfig())
    try:
        t0 = time.monotonic()
        end = t0 + WARMUP_S + DURATION_S + 0.5
        sent = 0
        while time.monotonic() < end:
            if rig.box.tx_backlog < PAYLOAD:
                if not rig.box.send(os.urandom(PAYLOAD), wait=True):
                    raise RuntimeError("box refused payload")
                sent += 1
            else:
                time.sleep(0.002)
        a, b = t0 + WARMUP_S, t0 + WARMUP_S + DURATION_S
        with rig.lock:
            window = [(t, n) for t, n in rig.rx if a <= t < b]
        assert not rig.gw.find_events("dropped") and not rig.box.find_events("peer_dead")
        if len(window) < 3:
            raise RuntimeError("too few payloads delivered: %d" % len(window))
        # Payloads delivered after the first one in the window, over the time they took:
        # steady state, no quantisation error from where the window edges fall.
        got = sum(n for _, n in window[1:])
        return got / (window[-1][0] - window[0][0]) / (baud / 10.0), len(window)
    finally:
        rig.close()


def keepalive_cost():
    cfg = LinkConfig()
    rig = Rig(9600, cfg)
    try:
        i = rig.box.event_count()
        first = rig.box.wait_event("keepalive_ack", cfg.keepalive_idle_ms / 1000.0 + 5, i)
        time.sleep(0.3)  # the ack's last bytes have reached the box
        b0, t0 = rig.line_bytes(), first["t_ms"]
        last = first
        for _ in range(ROUNDS):
            i = rig.box.event_count()
            last = rig.box.wait_event("keepalive_ack", cfg.keepalive_idle_ms / 1000.0 + 5, i)
            if last is None:
                raise RuntimeError("keepalive stopped")
        time.sleep(0.3)
        b1 = rig.line_bytes()
        secs = ((last["t_ms"] - t0) & ((1 << 30) - 1)) / 1000.0
        others = [e["event"] for e in rig.box.events + rig.gw.events
                  if e["event"] not in ("keepalive_sent", "keepalive_ack", "sa_established",
                                        "handshake_started", "modem_ready", "dialing", "link_up")]
        if others:
            raise RuntimeError("not idle: %s" % others)
        per_round = (b1 - b0) / float(ROUNDS)
        return per_round, (b1 - b0) / secs / 960.0, secs / ROUNDS
    finally:
        rig.close()


def main():
    g9600, n9600 = goodput(9600)
    g115200, n115200 = goodput(115200)
    ka, idle, period = keepalive_cost()
    print(json.dumps({
        "goodput_ratio_9600": round(g9600, 4),
        "goodput_ratio_115200": round(g115200, 4),
        "goodput_payload_bytes": PAYLOAD,
        "goodput_seconds": DURATION_S,
        "goodput_payloads_9600": n9600,
        "goodput_payloads_115200": n115200,
        "keepalive_wire_bytes_line": round(ka, 2),  # one round counted on the emulated line
        "idle_overhead_9600_line": round(idle, 5),
        "keepalive_period_ms": round(period * 1000),
    }))


if __name__ == "__main__":
    main()
