"""False teardowns under 5% random packet loss over 24 h of virtual time (default policy).

Both directions lose each packet independently with probability 5% (fixed seed). A
teardown is false because the peer is alive all along; after one, the box reconnects,
as the node would. Prints one JSON object.
"""
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware")]

import netsim  # noqa: E402
from gwbox.config import LinkConfig  # noqa: E402

HOURS = 24
LOSS = 0.05


def main(seed=1):
    rng = random.Random(seed)
    cfg = LinkConfig()
    n = netsim.pair(cfg)
    n.connect()
    n.drop = lambda src, p: rng.random() < LOSS
    teardowns = 0
    rounds = 0
    for _minute in range(HOURS * 60):
        n.run_for(60000)
        names = n.names(n.a)
        teardowns += names.count("peer_dead")
        rounds += names.count("keepalive_sent")
        n.events[id(n.a)] = []
        n.events[id(n.b)] = []
        if n.a.session() is None and n.a.initiator is None:
            n.a.connect(n.now)
    print(json.dumps({"false_teardowns_5pct_loss": teardowns, "keepalive_requests_24h": rounds,
                      "virtual_hours": HOURS, "loss": LOSS}))


if __name__ == "__main__":
    main()
