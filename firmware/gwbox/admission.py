"""A gateway's admission of new SA_INIT requests: cheap stateless checks, cookies, bounded
half-open state (docs/protocol.md). Split from gwbox.endpoint because a box, the initiator,
never answers an SA_INIT: it never loads this code; a gateway loads it with the
responder's and drops it with the rest of the key exchange. The state (cookie secrets,
the half-open table, counters) stays on the endpoint `ep`.
"""
from gwbox import const, ticks, wire
from gwbox import events as ev
from gwbox.crypto.mac import ct_equal, hmac_digest, hmac_key
from gwbox.errors import ProtocolError

_HALF_OPEN_PER_LINK = const(2)  # handshakes in progress per link (a box has one at a time)
_COOKIE_SECRET_MS = const(60000)  # the cookie secret changes this often (the last one still counts)


def accept(ep, message, msg, packet, now, link):
    """A new SA_INIT request: the cheap checks first, statelessly; state and an X25519
    computation only for one that passes them (RFC 7296 §2.6, WireGuard's cookie reply).

    A link with a handshake in progress must prove it receives our answers: it gets a
    COOKIE (an HMAC of its link, SPI and nonce under a rotating secret) and only a
    msg1 that returns it is taken. Half-open state is bounded per link and overall;
    a full table makes room by dropping the oldest entry of that link (else overall),
    so a flood cannot lock a real box out, and all of a link's state goes with it."""
    if msg.exch != wire.EXCH_SA_INIT or msg.msg_id != 0 or msg.spi_r != 0:
        raise ProtocolError("not an SA_INIT request")
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
    mine = [r for r in ep.half_open if r.link == link]
    if mine and not _cookie_ok(ep, cookie, link, msg.spi_i, nonce, now):
        ep.cookies_sent += 1
        ep._out.append((link, message.encode(message.Message(
            wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0,
            [(wire.PL_NOTIFY, message.encode_notify(wire.N_COOKIE, _cookie(ep, link, msg.spi_i, nonce, now)))],
            msg.spi_i, 0), True)))
        return
    from gwbox.crypto.x25519 import low_order
    if low_order(message.untag(msg.require(wire.PL_KE), wire.DH_X25519, wire.KE_LEN)):
        raise ProtocolError("low-order public key")
    if len(mine) >= _HALF_OPEN_PER_LINK or len(ep.half_open) >= ep.cfg.half_open_max:
        ep.evicted += 1
        ep.half_open.remove(mine[0] if mine else ep.half_open[0])
    from gwbox.responder import ResponderHandshake
    transcript = message.encode(msg, True) if cookie is not None else packet
    r = ResponderHandshake(ep.cfg, ep.identity, ep._psk_for, transcript, msg, now, ep._taken())
    r.link = link
    r.wire1 = bytes(packet)
    ep.half_open.append(r)
    ep._event(ev.HANDSHAKE_STARTED, role="responder", spi=msg.spi_i)


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
