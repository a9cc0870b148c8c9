"""MicroPython CPU time of one handshake and one heartbeat round trip (both sides).

Runs under the micropython binary (firmware as .mpy): two endpoints in one interpreter,
packets handed across directly, time.ticks_us around the protocol work only.
Median of RUNS. Prints one JSON object.
"""
import json
import sys
import time

RUNS = 7


def _setup():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    root = here.rsplit("/", 1)[0] if "/" in here else ".."
    sys.path.insert(0, root + "/build/mpy/lib")


_setup()

from gwbox import ticks  # noqa: E402
from gwbox.config import LinkConfig  # noqa: E402
from gwbox.endpoint import Endpoint  # noqa: E402

PSK = b"\x11" * 32


def pump(a, b, now):
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            for _link, p in src.take_output():
                moved = True
                dst.receive(p, now)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    hs, ka = [], []
    for _ in range(RUNS):
        cfg = LinkConfig()
        a = Endpoint(cfg, b"box1", psk=PSK, expect_peer=b"gw1")
        b = Endpoint(cfg, b"gw1", psks={b"box1": PSK})
        now = ticks.PERIOD - 5000
        t0 = time.ticks_us()
        a.connect(now)
        pump(a, b, now)
        hs.append(time.ticks_diff(time.ticks_us(), t0) / 1000.0)
        assert a.session() is not None
        now = ticks.add(now, cfg.defer_ms)
        t0 = time.ticks_us()
        a.tick(now)
        pump(a, b, now)
        ka.append(time.ticks_diff(time.ticks_us(), t0) / 1000.0)
        assert [e.name for e in a.take_events()][-1] == "heartbeat_ack"
    print(json.dumps({"mp_handshake_ms": median(hs), "mp_keepalive_ms": median(ka),
                      "mp_handshake_ms_runs": hs, "mp_keepalive_ms_runs": ka}))


main()
