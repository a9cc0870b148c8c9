"""Handshake, initiator role (the box): sends msg1, answers msg2 with msg3, completes on msg4."""
from gwbox import ticks, wire
from gwbox.crypto.mac import ct_equal
from gwbox.errors import ProtocolError
from gwbox.handshake import ROLE_I, ROLE_R, Offer, auth_mac, complete
from gwbox.wire import Message


class InitiatorHandshake:
    def __init__(self, cfg, identity, psk, now, expect_peer=None, taken=()):
        self.cfg = cfg
        self.identity = identity
        self.psk = psk
        self.expect_peer = expect_peer
        self._offer = Offer(taken)
        self.spi_i = self._offer.ctl_spi
        self.data_spi_i = self._offer.data_spi
        self.msg1 = wire.encode(Message(
            wire.EXCH_SA_INIT, wire.FLAG_INITIATOR, 0, self._offer.payloads, self.spi_i, 0), True)
        self.state = "sa_init"
        self.out = [self.msg1]
        self.attempts = 1
        self.deadline = ticks.add(now, cfg.handshake_retry_ms)
        self.sas = None  # SASet once msg2 is processed
        self.peer_id = None
        self.failed = None
        self.done = False

    def _fail(self, reason):
        self.failed = reason
        self.state = "failed"
        self.deadline = None
        self._offer = None

    def on_msg2(self, raw, msg, now):
        """Cleartext SA_INIT response. Raises ProtocolError for a message to drop."""
        if self.state != "sa_init" or msg.exch != wire.EXCH_SA_INIT or not msg.is_response():
            raise ProtocolError("unexpected SA_INIT")
        if msg.spi_i != self.spi_i or msg.msg_id != 0:
            raise ProtocolError("SA_INIT response for another exchange")
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            ntype, _ = wire.decode_notify(notify)
            if ntype == wire.N_NO_PROPOSAL_CHOSEN:
                self._fail("no_proposal_chosen")
                return
            raise ProtocolError("unexpected notify %d" % ntype)
        if wire.decode_sa(msg.require(wire.PL_SA))[0] != msg.spi_r:
            raise ProtocolError("SA payload SPI differs from header")
        self.sas = complete(self._offer, msg, now)
        self._msg2 = bytes(raw)
        id_body = wire.tagged(wire.ID_KEY_ID, self.identity)
        mac = auth_mac(self.psk, ROLE_I, self.msg1, self._msg2, id_body)
        self._msg3_inner = wire.encode(Message(
            wire.EXCH_AUTH, wire.FLAG_INITIATOR, 1, [(wire.PL_ID, id_body), (wire.PL_AUTH, wire.tagged(wire.AUTH_PSK_MAC, mac))]), False)
        self.state = "auth"
        self.attempts = 1
        self.out.append(self.sas.ctl_out.protect(self._msg3_inner))
        self.deadline = ticks.add(now, self.cfg.handshake_retry_ms)

    def on_msg4(self, packet, now):
        """Protected AUTH response on our new control SA. Raises ProtocolError to drop."""
        if self.state != "auth":
            raise ProtocolError("unexpected AUTH response")
        msg = wire.decode(self.sas.ctl_in.unprotect(packet), False)
        if msg.exch != wire.EXCH_AUTH or not msg.is_response() or msg.msg_id != 1:
            raise ProtocolError("unexpected message during AUTH")
        notify = msg.find(wire.PL_NOTIFY)
        if notify is not None:
            ntype, _ = wire.decode_notify(notify)
            self._fail("authentication_failed" if ntype == wire.N_AUTHENTICATION_FAILED else "notify_%d" % ntype)
            return
        id_body = msg.require(wire.PL_ID)
        peer = wire.untag(id_body, wire.ID_KEY_ID)
        mac = wire.untag(msg.require(wire.PL_AUTH), wire.AUTH_PSK_MAC, 32)
        if not ct_equal(mac, auth_mac(self.psk, ROLE_R, self.msg1, self._msg2, id_body)):
            self._fail("authentication_failed")
            return
        if self.expect_peer is not None and peer != self.expect_peer:
            self._fail("wrong_peer_identity")
            return
        self.peer_id = peer
        self.state = "done"
        self.done = True
        self.deadline = None

    def poll(self, now):
        """Retransmit the unanswered message, or give up."""
        if not ticks.reached(now, self.deadline):
            return
        if self.attempts > self.cfg.handshake_retries:
            self._fail("timeout")
            return
        self.attempts += 1
        if self.state == "sa_init":
            self.out.append(self.msg1)
        else:  # AUTH: re-protected with a fresh sequence number, same message id
            self.out.append(self.sas.ctl_out.protect(self._msg3_inner))
        self.deadline = ticks.add(now, self.cfg.handshake_retry_ms)
