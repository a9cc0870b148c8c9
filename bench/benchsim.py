"""The bench's virtual head office: the default policy on the clustersim of the tests.

One place for the set-up of the virtual-time benchmarks (protocol_bytes, false_teardowns):
a box with the embedded defaults of every timer (only the topology and keys are given:
three gateways behind one access server) against tests/firmware/clustersim.py.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware")]

import clustersim  # noqa: E402
from gwbox.port import host_aes  # noqa: E402

host_aes.install()
from gwbox.box import Box  # noqa: E402
from gwbox.link.modem import Modem  # noqa: E402
from gwbox.policy import parse  # noqa: E402

GATEWAYS = ("143.1.0.64", "143.1.1.157", "143.1.0.63")
PSK = bytes(range(32))
DST = (10 << 24) | 5
POLICY = """[GENERAL]
Identity = branch-7
Dial = ras
[CLUSTER]
Cluster1 = %s
[TUNNEL]
Tunnel1 = 10.0.0.1 - 10.0.0.9 Cluster 1
[KEYS]
Default = hex:%s
""" % (" ".join(GATEWAYS), PSK.hex())


def sim(loss=0.0, seed=1, text=POLICY):
    pol = parse(text)

    def factory(now):
        return Box(pol, Modem(baud=9600, max_attempts=2), rand_bytes=clustersim.Rand(seed).bytes, start=now)

    return clustersim.Sim(factory, {g: PSK for g in GATEWAYS}, {"ras": "ras"}, loss=loss, seed=seed), pol
