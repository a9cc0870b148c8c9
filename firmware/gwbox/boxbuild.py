"""Building a Box from the policy's values (gwbox.box calls it from Box.__init__).

Boot-time code: it runs once, when the box is built, and is dropped right after, so a
device heap does not keep its bytecode beside the running box (docs/memory.md).
"""
from gwbox import ipv4
from gwbox.cluster import Cluster, gateway_order
from gwbox.config import LinkConfig
from gwbox.crypto.entropy import random_bytes
from gwbox.endpoint import Endpoint
from gwbox.link.line import Line
from gwbox.outbox import Outbox


def build(box, policy, modem, framer, rand_bytes, start):
    p = policy  # not kept: its class would keep the parser's code on the heap (main.py drops it)
    box.mode = p.heartbeat
    box.idle_hangup_ms = p.idle_hangup_ms
    box.response_ms = p.response_ms
    box.started = start
    box.cfg = LinkConfig(defer_ms=p.defer_ms, response_ms=p.response_ms, retries=p.retries,
                         heartbeat=p.heartbeat, heartbeat_form=p.form, rekey_ms=p.rekey_ms,
                         rekey_bytes=p.rekey_bytes, handshake_retry_ms=p.handshake_retry_ms,
                         handshake_retries=p.handshake_retries)
    box._addr = {}  # gateway identity (bytes) -> IPv4 address int
    box._number = {}  # gateway identity -> dial number
    psks = {}
    for gw in p.gateways:
        g = gw.encode()
        box._addr[g] = ipv4.ip_to_int(gw)
        box._number[g] = p.dial_numbers[gw]
        psks[g] = p.keys[gw]
    box.endpoint = Endpoint(box.cfg, p.identity, psks=psks, initiator=True)
    box.line = Line(modem, framer, p.retry_ms, p.retry_max_ms)
    # Sending this long with nothing authenticated coming back is a dead call: as long as
    # the heartbeat takes to give up on the gateway in use plus two whole handshakes with others.
    cfg = box.cfg
    box.line.dead_call_ms = cfg.detect_bound_ms() + 2 * cfg.handshake_retry_ms * (cfg.handshake_retries + 1)
    # An in-band NO CARRIER must be disproved by an answer to a heartbeat sent at once,
    # well before that heartbeat's own retries could end in a verdict on the gateway.
    modem.doubt_ms = min(modem.doubt_ms, max(200, p.response_ms * (p.retries + 1) // 2))
    box.outbox = Outbox(p.outbox_bytes, 2 * p.response_ms)
    rand = rand_bytes or random_bytes
    box.clusters = []
    by_nr = {}
    for nr in sorted(p.clusters):
        ids = [g.encode() for g in p.clusters[nr]]
        pref = p.preferred.get(nr)
        by_nr[nr] = _cluster(box, p, "Cluster%d" % nr, gateway_order(ids, pref.encode() if pref else None,
                                                                  p.randomize, rand), pref, rand)
    single = {}
    box._routes = []  # (start, end, cluster), policy order
    for _nr, start_ip, end_ip, kind, target in p.tunnels:
        if kind == "auto":
            kind, target = _redirect(p, p.access_server)
        if kind == "cluster":
            c = by_nr[target]
        else:
            c = single.get(target)
            if c is None:
                c = single[target] = _cluster(box, p, target, [target.encode()], None, rand)
        box._routes.append((start_ip, end_ip, c))
    box._pending = []  # gateways to start a handshake with once the call reaches them
    box._start_at = None  # the tick at which a pending handshake found ready starts (Box.tick)
    box._starting = False  # Box.tick is starting them now
    box._suspect = False  # a gateway in use left a heartbeat unanswered (Box._plan)
    box._more = None  # payload waits for the next call (Box._send_outbox): its tick
    box._room = 0  # ms of line time this call may still fill with payload (Box._pump)
    box._warming = None  # since when the key exchange's code is imported ahead of a failover (Box.tick)
    box._verify = []  # gateways whose cached key must answer before it is trusted
    box._lan_out = []
    box._events = []
    box._idle_since = start  # DEFERRED: since when nothing needed the line
    box.lan_refused = 0
    box._srtt = None  # smoothed round trip to the gateways, ms (heartbeats, SA_INITs)


def _cluster(box, p, name, order, preferred, rand):
    c = Cluster(name, len(box.clusters) + 1, order, preferred.encode() if preferred else None, box,
                p.retry_ms, p.retry_max_ms, p.failback_ms, rand, p.handshake_retry_ms)
    box.clusters.append(c)
    return c


def _redirect(p, server):
    for _nr, srv, kind, target in p.redirects:
        if srv == server:
            return kind, target
    raise ValueError("AUTO tunnel without a redirect")  # the policy parser refuses this
