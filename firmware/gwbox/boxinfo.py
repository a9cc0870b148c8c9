"""The box's rarely run views and actions (status lines, the console's `test link`, the
outbox report before a restart): apart from gwbox.box so that their code leaves the heap
between calls. A 32-bit board's heap has little to spare (docs/memory.md: the mp32 96K
config-push test), and the recovery race (docs/cluster.md) took some of it.
"""
from gwbox import ticks
from gwbox.link.line import UP


def probe(self, now):
    """Ask the gateway in use for proof of life now, whatever the heartbeat mode (the
    console's `test link`): (gateway, ms its answer may take), or None if no gateway is
    in use on a call. The answer is a `heartbeat_ack`; none ends as `gateway_dead`."""
    if self.line.state != UP:
        return None
    for gw in self._in_use():
        s = self.endpoint.session(gw)
        if s is not None:
            hb = s.heartbeat
            hb.force(now)
            self._pump(now)
            return gw, hb.response_ms * (hb.retries + 1)
    return None

def shutdown(self, now):
    """The box is about to restart (a deliberate reset, a crash caught): the outbox lives in
    RAM, so what it still holds is lost; say so (`outbox_lost`), never silently. After the
    restart the box numbers from 1 again under a new boot epoch (docs/cluster.md). A
    power cut or a watchdog reset gives no such chance: the outbox is not kept in flash."""
    for c in self.clusters:
        n, size, first, last = self.outbox.held(c.space)
        if n:
            self._event("outbox_lost", cluster=c.name, space=c.space, count=n, bytes=size,
                        first=first, last=last)


def status(self, now):
    """What the monitor shows: gateway in use per cluster, SAs, heartbeats, outbox, counters."""
    ob = self.outbox
    sas = []
    for s in self.endpoint.sessions:
        hb = s.heartbeat
        sas.append({"peer": s.peer_id, "age_s": ticks.diff(now, s.current.created) // 1000,
                    "hb": hb.mode, "proof_ms": ticks.diff(now, hb.proven), "attempt": hb.attempt})
    return {"uptime_s": ticks.diff(now, self.started) // 1000, "line": self.line.state,
            "number": self.line.number, "calls": self.line.calls,
            "clusters": [{"name": c.name, "in_use": c.in_use, "verifying": c.verifying,
                          "trying": c.racing[0] if c.racing else None} for c in self.clusters],
            "sas": sas, "outbox": ob.depth(), "outbox_bytes": ob.used, "accepted": ob.accepted,
            "confirmed": ob.confirmed, "retransmitted": ob.retransmitted, "rerouted": ob.rerouted,
            "refused": self.lan_refused, "frames_in": self.line.framer.frames_in,
            "bad_fcs": self.line.framer.bad_fcs}

