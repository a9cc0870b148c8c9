"""The control channel of a session (EP 0 999 673 claim 5): requests and responses on the
control SA. Loaded only while a control message is built or handled; a session's steady
traffic (heartbeats, tunnel payload) never needs it, and the endpoint drops it again with
the key-exchange code.

    requests:  INFO (empty, or DELETE), QUICK (the seed's probe form), REKEY (rekey.py)
    responses: to our probe, our rekey request, our DELETE after a rekey
A retransmitted request gets the same answer again (the session's `cached` response).
Every function takes the session `s` whose state it works on; anything malformed raises
ProtocolError, which the endpoint turns into a `dropped` event.
"""
from gwbox import const, message, ticks, wire
from gwbox.errors import ProtocolError

# The seed's probe (claim 14): a quick-mode proposal nobody can accept
# (proposal 1, one transform: TF_ENCR with the unassigned id 0xFF).
_INVALID_PROPOSAL = const(b"\x01\x01\x01\xff")


def send(s, exch, flags, msg_id, payloads, sas=None):
    """Protect one control message on `sas` (default: the set we send on) and queue it."""
    pkt = (sas or s.out_sas).ctl_out.protect(message.encode(message.Message(exch, s.flags | flags, msg_id, payloads),
                                                             False))
    s.out.append(pkt)
    return pkt


def send_delete(s, msg_id, sas):
    """DELETE naming the inbound SPIs of `sas` (ours), as request `msg_id`."""
    send(s, wire.EXCH_INFO, 0, msg_id, [(wire.PL_DELETE, message.encode_delete(wire.PROTO_CONTROL, sas.inbound_spis()))])


def send_probe(s):
    """The probe-form heartbeat (claim 14): returns its message id, which the answer names."""
    msg_id = s._new_msg_id()
    send(s, wire.EXCH_QUICK, 0, msg_id, [(wire.PL_SA, message.encode_sa(0x01000000, 0x01000000, [_INVALID_PROPOSAL]))])
    return msg_id


def receive(s, plaintext, sas, link, now):
    """An authenticated control message on `sas`."""
    s.exchange_ended = True  # whatever it was: once it is handled, this code may go again
    msg = message.decode(plaintext, False)
    s._authenticated(sas, link, now, not msg.is_response())
    if msg.is_response():
        _on_response(s, msg, now)
        return
    if s.cached is not None and msg.msg_id == s.cached[0]:
        s.out.append(s.cached[1])  # a retransmitted request: same answer again
        return
    if msg.exch == wire.EXCH_INFO:
        deleted = msg.find(wire.PL_DELETE)
        if deleted is not None and _on_delete(s, deleted, now):
            return  # the peer already dropped this SA: an answer could not be read
        send(s, wire.EXCH_INFO, wire.FLAG_RESPONSE, msg.msg_id, [])
    elif msg.exch == wire.EXCH_QUICK:
        _, _, props = message.decode_sa(msg.require(wire.PL_SA))
        if message.choose_proposal(props) is not None:
            raise ProtocolError("quick mode child SAs are not supported")
        send(s, wire.EXCH_QUICK, wire.FLAG_RESPONSE, msg.msg_id,
             [(wire.PL_NOTIFY, message.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))])
    elif msg.exch == wire.EXCH_REKEY:
        s.answer_rekey(msg, now)
    else:
        raise ProtocolError("unexpected request exchange %d" % msg.exch)


def _on_response(s, msg, now):
    if msg.exch == wire.EXCH_QUICK:
        ntype, _ = message.decode_notify(msg.require(wire.PL_NOTIFY))
        if ntype != wire.N_NO_PROPOSAL_CHOSEN:
            raise ProtocolError("probe answered with notify %d" % ntype)
        s.on_heartbeat_answer(msg.msg_id, now)
        return
    rk = s.rekey
    if msg.exch == wire.EXCH_REKEY and rk is not None and msg.msg_id == rk.msg_id:
        s.heartbeat.proof(rk.sent, now)
        rk.on_response(s, msg, now)
        return
    dp = s.delete_pending
    if msg.exch == wire.EXCH_INFO and dp is not None and msg.msg_id == dp[0]:
        s.delete_pending = None
        s.heartbeat.proof(dp[1], now)
        s.previous_until = ticks.add(now, s.cfg.rekey_grace_ms())
        return
    raise ProtocolError("stale or unexpected response id %d" % msg.msg_id)


def _on_delete(s, body, now):
    """True if the DELETE named our current SAs and the session is now closed."""
    _, spis = message.decode_delete(body)
    prev = s.previous
    if prev is not None and prev.ctl_out.spi in spis:
        return False  # the initiator retired the superseded SAs; grace timer drops them
    if s.current.ctl_out.spi in spis or s.current.data_out.spi in spis:
        s.close("peer_deleted", now, notify=False)
        return True
    raise ProtocolError("DELETE names no SA of ours")
