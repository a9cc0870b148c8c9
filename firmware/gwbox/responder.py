"""Handshake, responder role (the gateway): answers msg1 at once, completes on msg3."""
import struct

from gwbox import message, ticks, wire
from gwbox.crypto.mac import ct_equal
from gwbox.errors import ProtocolError
from gwbox.handshake import ROLE_I, ROLE_R, answer, auth_mac
from gwbox.message import Message


_NO_KEY = bytes(32)  # stands in for the PSK of an unknown identity (its MAC never matches: psk is None)


class ResponderHandshake:
    def __init__(self, cfg, identity, psk_for, raw1, msg1, now, taken=()):
        self.cfg = cfg
        self.identity = identity
        self.psk_for = psk_for  # identity bytes -> psk bytes or None
        self.spi_i = msg1.spi_i
        self.raw1 = bytes(raw1)  # msg1 as AUTH covers it (without a cookie)
        self.wire1 = self.raw1  # msg1 as it arrived (the endpoint sets it when a cookie was in it)
        self.out = []
        self.failed = None
        self.done = False
        self.peer_id = None
        self.sas = None
        self.response = None  # cached msg4 (protected) for a retransmitted msg3
        self.epoch = None  # the box's boot epoch from msg3 (N_EPOCH), if it told one
        self.deadline = ticks.add(now, cfg.handshake_retry_ms * (cfg.handshake_retries + 1))
        if msg1.exch != wire.EXCH_SA_INIT or msg1.is_response() or msg1.msg_id != 0 or msg1.spi_r != 0:
            raise ProtocolError("not an SA_INIT request")
        if message.decode_sa(msg1.require(wire.PL_SA))[0] != msg1.spi_i:
            raise ProtocolError("SA payload SPI differs from header")
        payloads, self.sas = answer(msg1, taken, now)
        if payloads is None:
            payloads = [(wire.PL_NOTIFY, message.encode_notify(wire.N_NO_PROPOSAL_CHOSEN))]
            self.failed = "no_proposal_chosen"
            self.spi_r = 0
        else:
            self.spi_r = self.sas.ctl_in.spi
        self.msg2 = message.encode(Message(
            wire.EXCH_SA_INIT, wire.FLAG_RESPONSE, 0, payloads, msg1.spi_i, self.spi_r), True)
        self.out.append(self.msg2)

    def on_msg1_again(self, raw):
        """A retransmitted msg1 (our msg2 was lost): send the same msg2 again."""
        if bytes(raw) == self.wire1 and not self.done:
            self.out.append(self.msg2)
            return True
        return False

    def on_msg3(self, packet, now):
        """Protected AUTH request. Raises ProtocolError to drop; sets done or failed."""
        msg = message.decode(self.sas.ctl_in.unprotect(packet), False)
        if msg.exch != wire.EXCH_AUTH or msg.is_response() or msg.msg_id != 1:
            raise ProtocolError("unexpected message during AUTH")
        id_body = msg.require(wire.PL_ID)
        peer = message.untag(id_body, wire.ID_KEY_ID)
        mac = message.untag(msg.require(wire.PL_AUTH), wire.AUTH_PSK_MAC, 32)
        psk = self.psk_for(peer)
        # Unknown identity and wrong PSK look the same to the peer, in content and in time
        # (the MAC is computed either way): no oracle for valid names.
        good = ct_equal(mac, auth_mac(psk if psk is not None else _NO_KEY, ROLE_I, self.raw1, self.msg2, id_body))
        if psk is None or not good:
            self.out.append(self.sas.ctl_out.protect(message.encode(Message(
                wire.EXCH_AUTH, wire.FLAG_RESPONSE, 1,
                [(wire.PL_NOTIFY, message.encode_notify(wire.N_AUTHENTICATION_FAILED))]), False)))
            self.failed = "authentication_failed" if psk is not None else "unknown_identity"
            self.peer_id = peer
            self.deadline = None
            return
        my_id = message.tagged(wire.ID_KEY_ID, self.identity)
        my_mac = auth_mac(psk, ROLE_R, self.raw1, self.msg2, my_id)
        self.response = self.sas.ctl_out.protect(message.encode(Message(
            wire.EXCH_AUTH, wire.FLAG_RESPONSE, 1, [(wire.PL_ID, my_id), (wire.PL_AUTH, message.tagged(wire.AUTH_PSK_MAC, my_mac))]), False))
        self.out.append(self.response)
        self.epoch = _epoch(msg)
        self.peer_id = peer
        self.done = True
        self.deadline = None

    def poll(self, now):
        if ticks.reached(now, self.deadline):
            self.failed = "timeout"
            self.deadline = None


def _epoch(msg):
    """The boot epoch a box put in its (authenticated) msg3, or None."""
    for t, body in msg.payloads:
        if t == wire.PL_NOTIFY:
            ntype, data = message.decode_notify(body)
            if ntype == wire.N_EPOCH and len(data) == 4:
                return struct.unpack(">I", data)[0]
    return None
