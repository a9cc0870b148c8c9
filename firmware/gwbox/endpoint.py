"""Endpoint: one node's protocol engine, box or gateway alike (sans-I/O).

Owns every SA. Routes each incoming packet to a handshake in progress or an established
session by its SPI, runs timers, and collects what the layers want sent. Every output
packet is tagged with the link it belongs to (a gateway serves many boxes, a box talks to
several gateways), every problem with an input becomes a `dropped` event: nothing an
attacker or line noise sends can raise out of `receive`.

A box (initiator) holds one session per gateway it has a key with: the cluster logic above
decides which one carries payload. A gateway (responder) replaces the older session of an
identity that authenticates again (EP 0 999 673 [0035]: a dead box must be able to log in
again at once), and remembers per box which tunnel message numbers it has handed on.
"""
from gwbox import forget, ticks, wire
from gwbox.config import SPI_ECHO
from gwbox.crypto.entropy import random_bytes
from gwbox.errors import ProtocolError
from gwbox.events import Event


class Endpoint:
    spare = None  # a box: its next handshake's key made ahead (gwbox.initiator.spare_tick)
    lean = False  # a box short of heap: nothing made or imported ahead any more (`shed`)

    def __init__(self, cfg, identity, psk=None, psks=None, expect_peer=None, initiator=None):
        """A box: `psks` {gateway identity: psk} (or the one `psk` for `expect_peer`), initiator.
        A gateway: `psks` {box identity: psk}, answers handshakes."""
        self.cfg = cfg
        self.identity = identity
        self._psks = dict(psks or {})
        if psk is not None:
            self._psks[expect_peer] = psk
        self.expect_peer = expect_peer
        self.is_initiator = psk is not None if initiator is None else initiator
        self.initiators = []  # InitiatorHandshake in progress, each with .link
        self.half_open = {}  # ResponderHandshake -> its link, oldest first (gwbox.admission)
        self.sessions = []
        # Per packet O(1) whatever the number of peers: inbound SPI -> the session or
        # handshake it belongs to, peer identity -> session, and the sessions and half-open
        # handshakes a call touched (only those are settled, see _collect).
        self._spis = {}
        self._peers = {}
        self._touched = []
        self._due = None  # a gateway's deadlines (gwbox.deadlines); a box asks its few sessions
        self.keep_code = False  # a gateway serving many boxes keeps the key-exchange code loaded
        self.warm = False  # a box keeps it loaded too while a failover may come (`cool`, gwbox.box)
        if not self.is_initiator:
            from gwbox.admission import init
            init(self)  # what only a gateway holds: admission state, counters, the deadlines
        # A box: its boot epoch, told to every gateway at login (msg3): message numbers start
        # at 1 again after a reboot, and a gateway that learns a new epoch forgets the old ones.
        self.epoch = None
        if self.is_initiator:
            self.epoch = int.from_bytes(random_bytes(4), "big") or 1
        self._boxes = {}  # gateway: box identity -> [epoch, {space: ReplayWindow of message numbers}]
        self._out = []
        self._events = []
        self._received = []
        self._messages = []

    # --- public API ------------------------------------------------------------------

    def connect(self, now, peer=None, link=None, rto_ms=None):
        """Start a handshake toward `peer` (default: the one expected gateway) on `link`;
        its first retransmission after `rto_ms` (None: cfg.handshake_retry_ms). A box's
        code: gwbox.initiator.connect (a gateway never holds it)."""
        from gwbox.initiator import connect
        connect(self, now, self.expect_peer if peer is None else peer, link, rto_ms)
        self._collect(now)

    def load_step(self):
        """Import the next module a handshake of ours needs that is not loaded (in dependency
        order: the session's code if no session ever ran, X25519 with its native code, the
        message codec, the shared handshake, the initiator); True once all are. A box calls this, one module per pass
        of its loop, before `connect`, so no pass imports them all (docs/chip.md)."""
        import sys
        for name in _SESSION_CODE + _INITIATOR_CODE:
            if name not in sys.modules:
                __import__(name)
                return False
        return True

    def cool(self):
        """A box's failover did not come (its gateway answered again, or a key it held was
        taken): `warm` is off, and the key exchange's code goes if no exchange needs it."""
        self.warm = False
        if self._code_idle():
            _unload_key_exchange()

    def shed(self):
        """A box that runs out of heap again and again gives up, for the rest of its boot,
        what only makes a failover quicker: the key made ahead and the code imported ahead.
        Its failovers then import and compute at the time (docs/chip.md: about 0.4 s more on
        an RP2040); nothing that carries payload is dropped."""
        self.lean = True
        self.spare = None
        self.cool()

    def handshaking(self, peer):
        for hs in self.initiators:
            if hs.expect_peer == peer:
                return True
        return False

    def receive(self, packet, now, link=None):
        """One frame's payload from `link`. Never raises for bad input. Returns the identity
        of the peer whose key authenticated the packet, else None."""
        peer = None
        try:
            if packet and packet[0] == wire.MARKER:
                self._on_cleartext(packet, now, link)
            else:
                peer = self._on_protected(packet, now, link)
        except ProtocolError as e:
            self._event("dropped", reason=str(e), bytes=len(packet))
        self._collect(now)
        return peer

    def abort_handshakes(self, now):
        """The line they ran on is gone: drop our handshakes in progress without a verdict.
        Returns the peers they were for."""
        peers = []
        for hs in self.initiators:
            peers.append(hs.expect_peer)
            self._unmap(hs, (hs.spi_i, hs.data_spi_i))
        self.initiators = []
        if self._code_idle():
            _unload_key_exchange()
        return peers

    def send(self, payload, now, peer=None):
        """Protect raw `payload` (NH_DATA) on the data SA toward `peer` (default: our only session)."""
        return self.send_plain(bytes([wire.NH_DATA]) + payload, now, peer)

    def send_plain(self, plaintext, now, peer=None):
        """Protect a data-SA plaintext (next header first) toward `peer`. False (and an
        event) if it cannot go: no SA, or one that may not protect any more. Never raises."""
        s = self.session(peer)
        try:
            if s is None:
                raise ProtocolError("no security association")
            self._touched.append(s)
            s.send_plain(plaintext, now)
            ok = True
        except ProtocolError as e:
            self._event("send_failed", reason=str(e), peer=peer, bytes=len(plaintext))
            ok = False
        self._collect(now)
        return ok

    def tick(self, now):
        work = True  # one X25519 slice per pass, whatever runs in parallel (docs/cluster.md)
        for hs in self.initiators:  # in the order they started: the cluster's order
            busy = work and hs.busy()
            hs.poll(now, busy)
            if busy:
                work = False
        if work and self.spare.__class__ is list and ticks.reached(now, self.spare[0]) and self._no_rekey():
            from gwbox.initiator import spare_tick  # (a rekey's slices too go first: one a pass)
            if spare_tick(self, now) and self._code_idle():
                _unload_key_exchange()
        if self._due is None:
            due = list(self.half_open) + self.sessions
        else:
            due = self._due.due(now)  # only what is due: a gateway may hold thousands
        if due:
            from gwbox.session import Session  # (a box idle dialing has never loaded it)
        for o in due:
            self._touched.append(o)
            if o.__class__ is not Session:
                o.poll(now)  # a half-open handshake
                continue
            try:
                o.tick(now)
            except ProtocolError as e:  # a state no input should reach: reported, the SA ended
                self._event("session_error", reason=str(e), peer=o.peer_id)
                o.close("error", now, notify=False)
        self._collect(now)

    def next_deadline(self):
        ds = [hs.deadline for hs in self.initiators]
        if self.spare.__class__ is list:
            ds.append(self.spare[0])
        if self._due is None:
            ds += [s.next_deadline() for s in self.sessions]
            ds += [r.deadline for r in self.half_open]
        else:
            ds.append(self._due.next())
        return ticks.earliest(*ds)

    def session(self, peer=None):
        if peer is None:
            return self.sessions[0] if self.sessions else None
        return self._peers.get(peer)

    def close(self, now, reason="closed", peer=None, notify=True):
        for s in (list(self.sessions) if peer is None else [self._peers.get(peer)]):
            if s is not None:
                self._touched.append(s)
                s.close(reason, now, notify)
        self._collect(now)

    def take_output(self):
        """[(link, packet bytes)] to transmit, in order."""
        out, self._out = self._out, []
        return out

    def take_events(self):
        ev, self._events = self._events, []
        return ev

    def take_received(self):
        """[(peer identity, payload)] of raw (NH_DATA) payload, in order."""
        r, self._received = self._received, []
        return r

    def take_messages(self):
        """[(peer identity, next header, body)] of tunnel traffic, in order: an NH_MSG decoded
        (gwbox.tunnel.decode_msg), an NH_CONFIRM or NH_REPLY as its plaintext (decoded by the
        box). An NH_MSG comes up until it was handed on: then the gateway calls
        `handed_on`, which confirms it to the box."""
        m, self._messages = self._messages, []
        return m

    def handed_on(self, peer, space, num, now):
        """Gateway: message `num` of `space` from box `peer` reached its target host."""
        s = self.session(peer)
        if s is not None:
            self._touched.append(s)
            s.handed_on(space, num)
            self._collect(now)

    def release(self, link, now):
        """The link is gone (a call ended): its half-open handshakes go with it."""
        if not self.is_initiator:
            from gwbox.admission import release
            release(self, link)
        self._collect(now)

    # --- internals -----------------------------------------------------------------------

    def _event(self, name, **fields):
        self._events.append(Event(name, **fields))

    def _no_rekey(self):
        for s in self.sessions:
            if s.rekey is not None:
                return False
        return True

    def _code_idle(self):
        """True if no exchange needs the key exchange's code now: no handshake of either
        role, no rekey, no spare key being made, no reason to keep it (a gateway, a box
        that may fail over soon)."""
        if self.initiators or self.half_open or self.keep_code or self.warm or self.spare.__class__ is list:
            return False
        return self._no_rekey()

    def _psk_for(self, identity):
        return self._psks.get(identity)

    def _window(self, peer, epoch):
        """The windows of box `peer` (fn(space) -> ReplayWindow), kept across its SAs while its
        boot epoch stays the same; a new epoch (the box rebooted, numbering from 1 again)
        starts them afresh, so its new messages are never taken for replays."""
        box = self._boxes.get(peer)
        if box is None:
            box = self._boxes[peer] = [epoch, {}]
        elif box[0] != epoch:
            box[0] = epoch
            box[1].clear()
            self._event("windows_reset", peer=peer, epoch=epoch)
        spaces = box[1]

        def window(space):
            w = spaces.get(space)
            if w is None:
                from gwbox.sa import ReplayWindow
                w = spaces[space] = ReplayWindow()
            return w
        return window

    def _unmap(self, owner, spis):
        for x in spis:
            if self._spis.get(x) is owner:
                del self._spis[x]

    def _on_cleartext(self, packet, now, link):
        from gwbox import message  # handshakes only
        msg = message.decode(packet, True)
        if msg.is_response():
            for hs in self.initiators:
                if hs.spi_i == msg.spi_i:
                    hs.on_msg2(packet, msg, now)
                    return
            raise ProtocolError("unexpected SA_INIT response")
        if self.is_initiator:
            raise ProtocolError("not accepting handshakes")
        from gwbox.admission import accept  # a gateway's code: a box never loads it
        accept(self, message, msg, packet, now, link)

    def _on_protected(self, packet, now, link):
        if len(packet) == 8 and packet[:4] == b"\xff\xff\xff\xff":
            self._on_echo(packet, now, link)
            return
        from gwbox.sa import packet_spi
        spi = packet_spi(packet)
        o = self._spis.get(spi)
        if o is not None:
            from gwbox.session import Session
            if o.__class__ is Session:
                self._touched.append(o)
                o.receive(packet, now, link)
                return o.peer_id
            if o in self.half_open:
                if spi == o.sas.ctl_in.spi:  # its msg3
                    self._touched.append(o)
                    o.on_msg3(packet, now)
                    return o.peer_id if o.done else None
            elif o in self.initiators and o.owns(spi):
                o.on_msg4(packet, now)
                return o.expect_peer if o.done else None
        raise ProtocolError("unknown SPI %08x" % spi)

    def _on_echo(self, packet, now, link):
        """GB 2 363 548's unprotected heartbeat (compatibility option, off by default)."""
        if self.cfg.heartbeat_form != SPI_ECHO:
            raise ProtocolError("SPI echo not enabled")
        if not self.is_initiator:
            self._out.append((link, bytes(packet)))  # the gateway echoes it unchanged
            return
        for s in self.sessions:
            if s.link == link or link is None:
                s.on_echo(packet[4:], now)

    def _collect(self, now):
        """Move outputs and results of every layer up, finish or drop handshakes. Only what
        this call touched is looked at (and a box's handshakes): O(1) per packet."""
        ended = False
        keep_i = []
        for hs in self.initiators:
            for p in hs.out:
                self._out.append((hs.link, p))
            hs.out = []
            if hs.done or hs.failed is not None:
                self._unmap(hs, (hs.spi_i, hs.data_spi_i))
                ended = True
                if hs.done:
                    self._open(hs.peer_id, hs.sas, True, now, hs.link, rtt=hs.rtt)
                    if self.spare is None and not self.lean:
                        self.spare = [ticks.add(now, 1), None, None]
                else:
                    self._event("handshake_failed", role="initiator", peer=hs.expect_peer, reason=hs.failed)
            else:
                keep_i.append(hs)
        self.initiators = keep_i
        while self._touched:
            from gwbox.session import Session
            touched, self._touched = self._touched, []
            for o in touched:
                if o.__class__ is Session:
                    ended = self._settle(o, now) or ended
                else:
                    from gwbox.admission import settle
                    ended = settle(self, o, now) or ended
        if ended and self._code_idle():
            _unload_key_exchange()  # only when an exchange just ended: not per packet

    def _open(self, peer, sas, initiator, now, link, cached=None, dedup=None, rtt=None):
        """A new session with `peer`: it replaces the one we had (EP 0 999 673 [0035])."""
        old = self._peers.get(peer)
        if old is not None:
            old.close("replaced", now, notify=False)
            self._settle(old, now)
        from gwbox.session import Session
        s = Session(self.cfg, peer, sas, initiator, now, link, cached, dedup)
        self.sessions.append(s)
        self._peers[peer] = s
        if rtt is None:
            self._event("sa_established", peer=peer, ctl_spi=sas.ctl_in.spi, data_spi=sas.data_in.spi)
        else:  # the box's handshake: its SA_INIT round trip sizes the next first retransmissions
            self._event("sa_established", peer=peer, ctl_spi=sas.ctl_in.spi, data_spi=sas.data_in.spi, rtt_ms=rtt)
        self._settle(s, now)

    def _settle(self, s, now):
        """Move a session's output and results up; keep the SPI and peer maps and its
        deadline in step (a rekey changes its SPIs). True if an exchange ended or it closed."""
        self._drain(s)
        spis = () if s.closed else s.taken_spis()
        if spis != s.spis:
            self._unmap(s, s.spis)
            for x in spis:
                self._spis[x] = s
            s.spis = spis
        ended = s.exchange_ended
        s.exchange_ended = False
        if s.closed:
            if self._peers.get(s.peer_id) is s:
                del self._peers[s.peer_id]
                self.sessions.remove(s)
                if self._due is not None:
                    self._due.drop(s)
            return True  # its DELETE loaded the control channel: a failover's handshake needs the room
        if self._due is not None:
            self._due.set(s, s.next_deadline(), now)
        return ended

    def _drain(self, s):
        for p in s.out:
            self._out.append((s.link, p))
        s.out = []
        self._events.extend(s.events)
        s.events = []
        for d in s.received:
            self._received.append((s.peer_id, d))
        s.received = []
        for m in s.messages:
            self._messages.append((s.peer_id, m[0], m[1]))
        s.messages = []


# What a handshake of a box needs, in dependency order: the session's code, loaded at the
# first handshake and kept (a box that has never reached a gateway, idle dialing, holds none
# of it: ~16 KB of a 32-bit heap), then the key exchange's, dropped again after each
# exchange (_unload_key_exchange).
_SESSION_CODE = ("gwbox.crypto.mac", "gwbox.crypto.aes", "gwbox.sa", "gwbox.heartbeat", "gwbox.session")
_INITIATOR_CODE = ("gwbox.crypto.x25519", "gwbox.message", "gwbox.keyschedule", "gwbox.handshake", "gwbox.initiator")


def _unload_key_exchange():
    """Drop the key-exchange code once no exchange runs: the first-handshake roles
    (initiator.py, responder.py), the rekey exchange and what only an exchange needs
    (handshake.py, keyschedule.py, X25519, the message codec, the control channel).

    An established session never needs them between exchanges (its SAs are in sa.py), and
    a device heap is better spent on payload: they are about 10 KB on a 32-bit board
    (docs/memory.md); X25519's native code, loaded from a file or a ROMFS image on an RP2040,
    about 20 KB more. The next connect, SA_INIT or rekey imports them again; frozen into
    flash, that costs no RAM at all. gwbox.crypto.entropy stays: it holds the entropy pool.
    """
    forget("gwbox.initiator", "gwbox.responder", "gwbox.admission", "gwbox.rekey", "gwbox.handshake", "gwbox.keyschedule",
           "gwbox.crypto.x25519", "gwbox.crypto.x25519_viper", "gwbox.message", "gwbox.control")
