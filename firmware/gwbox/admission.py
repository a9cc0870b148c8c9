"""A gateway's admission of new SA_INIT requests: cheap stateless checks, cookies, bounded
half-open state (docs/protocol.md). Split from gwbox.endpoint because a box, the initiator,
never answers an SA_INIT: it never loads this code; a gateway loads it with the
responder's and drops it with the rest of the key exchange. The state (cookie secrets,
the half-open table, counters) stays on the endpoint `ep`.
"""
from gwbox import const, ticks, wire
from gwbox.crypto.mac import ct_equal, hmac_digest, hmac_key
from gwbox.errors import ProtocolError

_HALF_OPEN_PER_LINK = const(2)  # handshakes in progress per link (a box has one at a time)
_COOKIE_SECRET_MS = const(60000)  # the cookie secret changes this often (the last one still counts)


def init(ep):
    """A gateway endpoint's own state (a box's never has it): the half-open handshakes per
    link, the SA_INITs that became sessions, cookie secrets, counters, and the heap of
    deadlines that keeps a gateway's ticks O(1) per due session."""
    from gwbox.deadlines import Deadlines
    ep._due = Deadlines()
    ep._by_link = {}  # link -> [its half-open handshakes], oldest first
    ep._inits = {}  # initiator's SPI of an SA_INIT that became a session -> that session
    ep._secret = ep._old_secret = None  # cookie secrets: current and the one before
    ep._secret_at = 0
    ep.cookies_sent = 0  # counters of what unauthenticated SA_INITs cost (nothing more)
    ep.refused = 0
    ep.evicted = 0
    ep.turned_away = 0  # SA_INITs dropped because the half-open table was full


def accept(ep, message, msg, packet, now, link):
    """A new SA_INIT request: the cheap checks first, statelessly; state and an X25519
    computation only for one that passes them (RFC 7296 §2.6, WireGuard's cookie reply).

    A COOKIE (an HMAC of the link, SPI and nonce under a rotating secret) is demanded, and
    only a msg1 that returns it is taken, when the link already has a handshake in
    progress or when the gateway's *total* half-open count has reached
    `cfg.cookie_threshold` (IKEv2's rule: under load every source must prove it receives
    our answers first). Half-open state is bounded per link (2) and overall
    (`cfg.half_open_max`): a link at its bound makes room by dropping its own oldest entry,
    never another link's, so a flood cannot push out a real box's handshake; with the
    whole table full a new SA_INIT is turned away (counted) and its box tries again at its
    next retransmission. All of a link's state goes with it (`release`)."""
    mine = ep._by_link.get(link)
    if mine:
        for r in mine:
            if r.spi_i == msg.spi_i and r.on_msg1_again(packet):
                ep._touched.append(r)  # our msg2 was lost: the same again
                return
    if msg.exch != wire.EXCH_SA_INIT or msg.msg_id != 0 or msg.spi_r != 0:
        raise ProtocolError("not an SA_INIT request")
    s = ep._inits.get(msg.spi_i)
    if s is not None and not s.closed:
        raise ProtocolError("SA_INIT for an established SA")  # a late copy of its msg1
    cookie = None
    payloads = msg.payloads
    if payloads and payloads[0][0] == wire.PL_NOTIFY:
        ntype, cookie = message.decode_notify(payloads[0][1])
        if ntype != wire.N_COOKIE:
            raise ProtocolError("unexpected notify %d in SA_INIT" % ntype)
        msg.payloads = payloads = payloads[1:]  # the transcript is msg1 without it
    ctl, _data, props = message.decode_sa(msg.require(wire.PL_SA))
    if ctl != msg.spi_i:
        raise ProtocolError("SA payload SPI differs from header")
    nonce = msg.require(wire.PL_NONCE)
    if message.choose_proposal(props) is None:
        ep.refused += 1  # answered statelessly: no state, no key, no responder code
        ep._out.append((link, message.encode(message.Message(
            wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
            [(wire.PL_NOTIFY, message.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))], msg.spi_i, 0), True)))
        return
    busy = len(ep.half_open) >= ep.cfg.cookie_threshold
    if (mine or busy) and not _cookie_ok(ep, cookie, link, msg.spi_i, nonce, now):
        ep.cookies_sent += 1
        ep._out.append((link, message.encode(message.Message(
            wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
            [(wire.PL_NOTIFY, message.encode_notify(wire.N_COOKIE, _cookie(ep, link, msg.spi_i, nonce, now)))],
            msg.spi_i, 0), True)))
        return
    from gwbox.crypto.x25519 import low_order
    if low_order(message.untag(msg.require(wire.PL_KE), wire.DH_X25519, wire.KE_LEN)):
        raise ProtocolError("low-order public key")
    if mine and len(mine) >= _HALF_OPEN_PER_LINK:
        ep.evicted += 1
        _drop(ep, mine[0])  # this link's own oldest: never another link's
    elif len(ep.half_open) >= ep.cfg.half_open_max:
        ep.turned_away += 1
        return
    from gwbox.responder import ResponderHandshake
    transcript = message.encode(msg, True) if cookie is not None else packet
    r = ResponderHandshake(ep.cfg, ep.identity, ep._psk_for, transcript, msg, now, ep._spis)
    r.link = link
    r.wire1 = bytes(packet)
    ep.half_open[r] = link
    if link in ep._by_link:
        ep._by_link[link].append(r)
    else:
        ep._by_link[link] = [r]
    if r.sas is not None:
        for x in r.sas.inbound_spis():
            ep._spis[x] = r
    ep._touched.append(r)  # settle sends msg2 and schedules its deadline
    ep._event("handshake_started", role="responder", spi=msg.spi_i)


def settle(ep, r, now):
    """Move a half-open handshake's output up; once it is done (a session) or failed, its
    state goes. True if it ended."""
    for p in r.out:
        ep._out.append((r.link, p))
    r.out = []
    if r not in ep.half_open:
        return False  # evicted or released meanwhile
    if r.done:
        _drop(ep, r)
        ep._open(r.peer_id, r.sas, False, now, r.link, (1, r.response), ep._window(r.peer_id, r.epoch))
        s = ep._peers[r.peer_id]
        s.endpoint_spis = ep._spis  # a rekey's new SPIs avoid every box's (gwbox.rekey)
        inits = ep._inits
        inits[r.spi_i] = s
        if len(inits) > 2 * len(ep.sessions) + 64:  # closed sessions' entries go in bulk: O(1) each
            ep._inits = dict((k, v) for k, v in inits.items() if not v.closed)
        return True
    if r.failed is not None:
        _drop(ep, r)
        ep._event("handshake_failed", role="responder", reason=r.failed)
        return True
    if ep._due is not None:
        ep._due.set(r, r.deadline, now)
    return False


def release(ep, link):
    """The link is gone: so are its half-open handshakes."""
    for r in list(ep._by_link.get(link, ())):
        _drop(ep, r)


def _drop(ep, r):
    del ep.half_open[r]
    mine = ep._by_link[r.link]
    mine.remove(r)
    if not mine:
        del ep._by_link[r.link]
    if r.sas is not None:
        ep._unmap(r, r.sas.inbound_spis())
    if ep._due is not None:
        ep._due.drop(r)


def _cookie(ep, link, spi, nonce, now, previous=False):
    if ep._secret is None or ticks.diff(now, ep._secret_at) >= _COOKIE_SECRET_MS:
        ep._old_secret = ep._secret
        from gwbox.crypto.entropy import random_bytes
        ep._secret = random_bytes(16)
        ep._secret_at = now
    key = ep._old_secret if previous else ep._secret
    if key is None:
        return None
    return hmac_digest(hmac_key(key), repr(link).encode(), spi.to_bytes(4, "big"), nonce)[:16]


def _cookie_ok(ep, cookie, link, spi, nonce, now):
    if cookie is None or len(cookie) != 16:
        return False
    return ct_equal(cookie, _cookie(ep, link, spi, nonce, now)) or \
        ct_equal(cookie, _cookie(ep, link, spi, nonce, now, True) or b"")
