"""False teardowns under 5% random frame loss over 24 h of virtual time (default policy).

A box with the embedded defaults of every timer (bench/benchsim.py) against three live
gateways behind the access server; every frame on the line is lost with probability 5%
in each direction (fixed seed). The gateways never fail, so every `gateway_dead` is a
false teardown; the box fails over on its own and the count goes on. Prints one JSON object.
"""
import json

import benchsim

HOURS = 24
LOSS = 0.05


def main(seed=1):
    s, pol = benchsim.sim(loss=LOSS, seed=seed)
    s.run_until_event("gateway_in_use", 60000)
    teardowns = rounds = failed_rounds = 0
    for _minute in range(HOURS * 60):
        mark = len(s.events)
        s.run(60000)
        names = s.names(mark)
        teardowns += names.count("gateway_dead")
        rounds += sum(1 for _, e in s.events[mark:] if e.name == "heartbeat_sent" and e.get("attempt") == 1)
        failed_rounds += sum(1 for _, e in s.events[mark:] if e.name == "heartbeat_sent" and e.get("attempt") == 2)
        del s.events[:]  # keep memory flat over 24 h
    print(json.dumps({"false_teardowns_5pct_loss": teardowns, "heartbeat_rounds_24h": rounds,
                      "heartbeat_rounds_retried_24h": failed_rounds, "frames_lost_24h": s.lost,
                      "virtual_hours": HOURS, "loss": LOSS, "heartbeat_retries": pol.retries}))


if __name__ == "__main__":
    main()
