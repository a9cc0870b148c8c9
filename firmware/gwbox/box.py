"""Box: the whole branch box as one sans-I/O object, built from its policy.

    LAN datagram -> [TUNNEL] route -> cluster -> outbox -> session of the gateway in use
                 -> line (outer address, framing, modem) -> UART
and back. Who owns what (docs/cluster.md): the clusters decide which gateway is in use;
the endpoint owns every SA; the line owns the call; the outbox owns LAN payload until a
gateway confirms it. The box glues them: it turns their events into each other's inputs,
picks the dial number the clusters need, and keeps heartbeats to the gateways in use
running only while a call reaches them.

The port feeds UART bytes (`feed`) and LAN datagrams (`lan_send`), writes `take_uart()`
and `take_lan()`, and calls `tick` at `next_deadline()`. Nothing here reads a clock.
"""
from gwbox import const, forget, ticks, tunnel, wire
from gwbox.config import DEFERRED, NONE
from gwbox.errors import ProtocolError
from gwbox.events import Event
from gwbox.link.line import DOWN, UP
from gwbox.outbox import LINE_OVERHEAD


_INFLIGHT_MIN = const(256)  # line bytes of messages in flight at least, however slow the line
_STUCK_NOTICE = const(3)  # losses of one message (its gateway answered later sendings) before `message_stuck`
_SA_INIT_LINE_BYTES = const(200)  # msg1 and msg2 on the line (90 + 90, outer address and framing)
_HS_RTO_MIN_MS = const(500)  # a handshake's first retransmission never comes sooner
_AHEAD_MS = const(100)  # line time of payload protected per call of the box: the rest in the next


class Box:
    def __init__(self, policy, modem, framer=None, rand_bytes=None, start=0):
        """Built from the policy's values by gwbox.boxbuild: boot-time code, dropped again (with
        the address parser, which the running box never needs), so it does not sit in a device
        heap beside the running box."""
        from gwbox.boxbuild import build
        build(self, policy, modem, framer, rand_bytes, start)
        forget("gwbox.boxbuild", "gwbox.ipv4")

    # --- the port's API ------------------------------------------------------------------

    def start(self, now):
        if self.mode != DEFERRED:  # DEFERRED: nothing happens before payload does
            for c in self.clusters:
                c.begin(now)
        self._pump(now)

    def feed(self, data, now):
        """UART bytes in. Bad frames are counted by the framer, bad packets are `dropped` events."""
        line = self.line
        pkts = line.feed(data, now)
        stale = line.stale  # packets from before an in-band NO CARRIER: no proof of the carrier
        for i, pkt in enumerate(pkts):
            peer = self.endpoint.receive(pkt, now)
            if peer is not None:
                line.authenticated(self._addr[peer], now, i >= stale)
        self._pump(now)

    def lan_send(self, dst, port, payload, now):
        """A LAN datagram for target `dst` (IPv4 int): True if the outbox took it."""
        c = self.route(dst)
        if c is None:
            self.lan_refused += 1
            self._event("lan_refused", reason="no_tunnel", dst=dst, bytes=len(payload))
            return False
        if self.outbox.put(c.space, dst, port, payload) is None:
            self.lan_refused += 1
            self._event("lan_refused", reason="outbox_full", dst=dst, bytes=len(payload),
                        queued=self.outbox.used)
            return False
        c.begin(now)  # dial on demand (DEFERRED), or nothing: the cluster is busy already
        self._pump(now)
        return True

    def take_lan(self):
        """[(source IPv4 int, port, payload)] from target hosts, in order."""
        out, self._lan_out = self._lan_out, []
        return out

    def tick(self, now):
        if self._start_at is not None:
            # Handshakes found ready to start by an earlier call start in calls of their own:
            # first the key exchange's code is imported, a module a call, then they start. On
            # a device each call is a pass of the loop (at most one expensive step per pass:
            # from littlefs the initiator's imports take 125 ms and more, docs/chip.md); the
            # rest of this tick is the next call's, what was due is due still.
            if self.endpoint.load_step():
                self._start_at = None
                self._starting = True
                try:
                    self._pump(now)
                finally:
                    self._starting = False
            return
        self._more = None  # (if payload still waits, _send_outbox sets it again)
        if self._warming is not None and self.endpoint.load_step():
            self._warming = None  # all there (a module a call, beside the rest of the tick)
        self.line.tick(now)
        self.endpoint.tick(now)
        for c in self.clusters:
            c.tick(now)
        self._pump(now)

    def next_deadline(self):
        line = self.line
        ds = [line.next_deadline(), self.endpoint.next_deadline()]
        for c in self.clusters:
            ds.append(c.next_deadline())
            gw = c.in_use
            if gw is not None and line.state == UP and self._number[gw] == line.number:
                ds.append(self.outbox.next_deadline(c.space, gw))  # else nothing can go: no spinning
        if self.mode == DEFERRED and self.line.wanted and self.idle_hangup_ms:
            ds.append(ticks.add(self._idle_since, self.idle_hangup_ms))
        ds.append(self._start_at)
        ds.append(self._warming)
        ds.append(self._more)
        return ticks.earliest(*ds)

    def carrier(self, up, now):
        """DCD from the port (where the board wires it)."""
        self.line.carrier(up, now)
        self._pump(now)

    def probe(self, now):
        """Ask the gateway in use for proof of life now, whatever the heartbeat mode (the
        console's `test link`): (gateway, ms its answer may take), or None (gwbox.boxinfo)."""
        from gwbox import boxinfo
        r = boxinfo.probe(self, now)
        forget("gwbox.boxinfo")
        return r

    def shutdown(self, now):
        """The box is about to restart: report what the outbox held (gwbox.boxinfo)."""
        from gwbox import boxinfo
        boxinfo.shutdown(self, now)
        forget("gwbox.boxinfo")

    def hurry(self):
        """True while a handshake of ours runs: the port then leaves what can wait (its status
        line) for later."""
        return bool(self.endpoint.initiators)

    def carrying(self):
        """True while payload can flow: a call up and a confirmed gateway in use."""
        if self.line.state != UP:
            return False
        for c in self.clusters:
            if c.in_use is not None and not c.verifying:
                return True
        return False

    def take_uart(self):
        return self.line.take_uart()

    def take_events(self):
        ev, self._events = self._events, []
        return ev

    def route(self, dst):
        for start_ip, end_ip, c in self._routes:
            if start_ip <= dst <= end_ip:
                return c
        return None

    def status(self, now):
        """What the monitor shows (gwbox.boxinfo: its code leaves the heap between calls)."""
        from gwbox import boxinfo
        r = boxinfo.status(self, now)
        forget("gwbox.boxinfo")
        return r

    # --- the clusters' driver (gwbox.cluster) ---------------------------------------------

    def has_key(self, gw):
        return self.endpoint.session(gw) is not None

    def connect(self, gw, now):
        if gw not in self._pending:
            self._pending.append(gw)

    def use(self, gw, now, verify):
        if verify:
            # a cached key taken into use: nothing went through its context for a while
            self.line.unbind(self._addr[gw])
            if gw not in self._verify:
                self._verify.append(gw)

    def abandon(self, gws, now):
        for gw in self.endpoint.abort_handshakes(now):  # (the others' start again)
            if gw not in gws and gw not in self._pending:
                self._pending.append(gw)
        for gw in gws:
            if gw in self._pending:
                self._pending.remove(gw)

    def together(self, gw, other):
        return self._number[gw] == self._number[other]

    def answering(self, gw):
        """Our handshake with `gw`: None if it has not started (no call reaches it yet), True
        if it looks alive (its SA_INIT was answered, unauthenticated; or our key is still
        being computed: nothing to judge), False if it is sending into silence."""
        if gw in self._pending:
            return None
        for hs in self.endpoint.initiators:
            if hs.expect_peer == gw:
                return bool(hs.candidates) or hs.msg1 is None or hs._cookies > 0  # a cookie: it is there
        return False


    def drop(self, gw, now):
        for c in self.clusters:
            if gw in c.order:
                self.outbox.reroute(c.space, gw)
        if self.endpoint.session(gw) is not None:
            self.endpoint.close(now, "gateway_dead", peer=gw)

    def event(self, name, **fields):
        self._event(name, **fields)

    # --- internals -------------------------------------------------------------------

    def _event(self, name, **fields):
        self._events.append(Event(name, **fields))

    def _in_use(self):
        return [c.in_use for c in self.clusters if c.in_use is not None]

    def _clusters_of(self, gw):
        return [c for c in self.clusters if gw in c.order]

    def _pump(self, now):
        """Move every layer's output down and its events up, until all is quiet."""
        ep = self.endpoint
        line = self.line
        self._room = _AHEAD_MS
        for _ in range(16):
            self._plan(now)
            busy = False
            for link, pkt in ep.take_output():
                busy = True
                line.send(self._addr[link], pkt, now)
            for peer, nh, body in ep.take_messages():
                busy = True  # a confirmation opens the window: plan again, or the line idles
                self._on_message(peer, nh, body, now)
            for _peer, payload in ep.take_received():
                self._lan_out.append((0, 0, payload))
            evs = line.take_events() + ep.take_events()
            for e in evs:
                self._events.append(e)
                self._react(e, now)
            if not busy and not evs:
                break
        # once all is quiet: a death decides on its handshake first (gwbox.cluster)
        warm = (self._suspect or self._start_at is not None) and not self.endpoint.lean
        if warm != self.endpoint.warm:
            self._warm(warm, now)

    def _on_message(self, peer, nh, body, now):
        try:
            body = tunnel.decode_confirm(body) if nh == wire.NH_CONFIRM else tunnel.decode_reply(body)
        except ProtocolError as e:
            self._event("dropped", reason=str(e), bytes=len(body), peer=peer)
            return
        if nh == wire.NH_CONFIRM:
            s = self.endpoint.session(peer)
            if s is not None and s.tunnel is not None:
                s.tunnel.confirmed(body[0], body[1], body[2])  # contexts bound, the top it saw
            proof = self.outbox.confirm(peer, body[0], body[1], body[2])
            if proof is not None:
                self.line.proven(self._addr[peer], proof)  # answers what was sent then
                s = self.endpoint.session(peer)
                if s is not None:
                    s.heartbeat.proof(proof, now)
                for c in self._clusters_of(peer):
                    c.verified(peer, now)
                    if c.space == body[0]:
                        self._answered(c, peer, proof, now)
        elif nh == wire.NH_REPLY:
            self._lan_out.append(body)

    def _react(self, e, now):
        n = e.name
        if n == "sa_established":
            rtt = e.get("rtt_ms")
            if rtt is not None:
                self.hs_rto(-rtt)
            self.line.proven(self._addr[e.get("peer")], now)  # msg4 answered msg3 (long form)
            for c in self._clusters_of(e.get("peer")):
                c.established(e.get("peer"), now)
        elif n == "handshake_failed" and e.get("role") == "initiator":
            self.line.unbind(self._addr.get(e.get("peer")))
            for c in self._clusters_of(e.get("peer")):
                c.failed(e.get("peer"), now)
        elif n == "sa_deleted" and e.get("reason") != "replaced":
            self.line.unbind(self._addr.get(e.get("peer")))
            for c in self._clusters_of(e.get("peer")):
                c.dead(e.get("peer"), now, e.get("reason"))
        elif n == "heartbeat_ack":
            gw = e.get("peer")
            rtt = e.get("rtt_ms")
            if rtt is not None:
                self.hs_rto(rtt)
                self.line.proven(self._addr[gw], ticks.add(now, -rtt))  # dated by its heartbeat
            for c in self._clusters_of(gw):
                c.verified(gw, now)
                if rtt is not None:
                    self._answered(c, gw, ticks.add(now, -rtt), now)
        elif n == "link_up":
            for c in self.clusters:
                c.resume(now)
        elif n == "link_down" or n == "line_switch":
            for gw in self.endpoint.abort_handshakes(now):
                if gw not in self._pending:
                    self._pending.append(gw)  # keyed again once a call reaches it
            if n == "line_switch":
                # The call goes to another number: what gateways on the old one had in
                # flight may have been handed on, its confirmations die with the call.
                old = e.get("old")
                for c in self.clusters:
                    for gw in c.order:
                        if self._number[gw] == old:
                            self.outbox.reroute(c.space, gw)
        elif n == "call_failed":
            self._call_failed(e.get("number"), now)
        elif n == "carrier_doubt":
            for gw in self._in_use():  # ask at once: an answer disproves a forged NO CARRIER
                if gw not in self._verify:
                    self._verify.append(gw)

    def hs_rto(self, sample=None):
        """A handshake's first retransmission: twice the measured round trip plus the line
        time of msg1 and msg2, at least _HS_RTO_MIN_MS (the initiator caps it at
        HandshakeRetryTime and doubles it per resend). A dead gateway costs that, not
        HandshakeRetryTime, before the first resend; a lost msg1 likewise. Before anything
        was measured (a box that just booted): HandshakeRetryTime, as configured.
        `sample`: a round trip measured (ms, SA_INIT's with the line time of msg1 and msg2
        in it: negative), smoothed 1/8 into the estimate instead."""
        m = self.line.modem
        xfer = _SA_INIT_LINE_BYTES * 10000 // (m.rate or m.baud or 9600)
        srtt = self._srtt
        if sample is not None:
            sample = sample if sample >= 0 else max(0, -sample - xfer)
            self._srtt = sample if srtt is None else (7 * srtt + sample) // 8
        elif srtt is None:
            return self.cfg.handshake_retry_ms
        else:
            return max(_HS_RTO_MIN_MS, 2 * srtt + xfer)

    def _answered(self, c, gw, t, now):
        """`gw` answered what we sent at `t`: what it left unconfirmed from before then goes
        again; a message it keeps leaving unconfirmed is reported, then counts as its failure."""
        worst = self.outbox.answered(c.space, gw, t)
        if worst is None or c.in_use != gw:
            return
        num, losses = worst
        if losses == _STUCK_NOTICE:
            self._event("message_stuck", cluster=c.name, gateway=gw, space=c.space, number=num, losses=losses)
        if losses >= max(_STUCK_NOTICE, self.cfg.retries + 1):
            c.dead(gw, now, "message_stuck")  # it answers, but not this: fail over, never jam

    def _call_failed(self, number, now):
        """A dial failed. It is a gateway's failure only where another number could do better:
        a gateway being keyed there, or in use there, with a colleague on another number, is
        given up (refused, or dead as `unreachable`). Where one number reaches the whole
        cluster (an access server), the next gateways in order are behind the same failed
        dial: the line just dials again and the order stands (a box booted into a call left
        up from before must not leave its preferred gateway for a modem hiccup)."""
        for c in self.clusters:
            gw = c.wants()
            if gw is None or self._number[gw] != number:
                continue
            elsewhere = False
            for other in c.order:
                if self._number[other] != number:
                    elsewhere = True
                    break
            if not elsewhere:
                continue
            if gw in c.racing or (c.fb_trying and gw == c.preferred):
                if gw in self._pending:
                    self._pending.remove(gw)
                c.failed(gw, now)
            elif gw == c.in_use:
                c.dead(gw, now, "unreachable")

    def _needed(self):
        """[(cluster, gateway)] the clusters need a call for now."""
        need = []
        deferred = self.mode == DEFERRED
        for c in self.clusters:
            gw = c.wants()
            if gw is None:
                continue
            if deferred and not self.outbox.pending(c.space) and (gw == c.in_use or self.line.state == DOWN):
                continue  # dial on demand: without payload no call is placed
            need.append((c, gw))
        return need

    def _plan(self, now):
        """Pick the call the clusters need, then let whatever that call reaches run."""
        line = self.line
        need = self._needed()
        number = None
        for _c, gw in need:
            if line.state != DOWN and self._number[gw] == line.number:
                number = line.number
                break
        if number is None and need:
            number = self._number[need[0][1]]
        if need:
            self._idle_since = now
        if number is not None:
            line.want(number, now)
        elif line.wanted:
            if self.mode != DEFERRED:
                line.want(line.number, now)
            elif self.idle_hangup_ms and ticks.diff(now, self._idle_since) >= self.idle_hangup_ms:
                self._event("idle_hangup", idle_ms=self.idle_hangup_ms)
                line.release(now)
        up = line.state == UP
        on_call = line.number
        ep = self.endpoint
        for gw in list(self._pending):
            if up and self._number[gw] == on_call:
                if not self._starting:
                    # not in the call that found it ready (a failover, the call coming up, a
                    # handshake's end), which may have been a long pass already: from tick()
                    if self._start_at is None:
                        self._start_at = now
                    continue
                self._pending.remove(gw)
                if not ep.handshaking(gw):
                    line.unbind(self._addr[gw])  # a handshake goes in long form: never misdirected
                    ep.connect(now, gw, gw, self.hs_rto())
                    for c in self._clusters_of(gw):
                        c.started(gw, now)
        mode = self.mode
        suspect = False
        for s in ep.sessions:
            gw = s.peer_id
            in_use = False
            for c in self.clusters:
                if c.in_use == gw:
                    in_use = True
                    if up and self._number[gw] == on_call:
                        self._send_outbox(c, gw, now)
            reach = in_use and up and self._number[gw] == on_call
            hb = s.heartbeat
            want = mode if reach else NONE
            if hb.mode != want:
                hb.set_mode(want, now)
            if reach and gw in self._verify:
                self._verify.remove(gw)
                hb.check_now(now)
            if want == DEFERRED:
                hb.set_payload(self._payload_for(gw), now)
            hb.expect(self._awaiting(gw) if reach else None)
            if reach:
                self._binding(gw, hb, now)
                if hb.attempt > hb.retries:  # its last heartbeat is out: no answer, and it is dead
                    suspect = True
        self._suspect = suspect

    def shed(self):
        """Heap ran out again and again (the device port says so): nothing made or imported
        ahead of a failover any more this boot (Endpoint.shed)."""
        self._warming = None
        self.endpoint.shed()

    def _warm(self, warm, now):
        """A failover may come: a gateway in use has the last heartbeat of its round out (no
        answer within the response time, and it is dead), or a handshake is about to start.
        The key exchange's code is imported ahead, a module each tick, and stays
        (`Endpoint.warm`) until that is over: a fresh-key failover's msg1 then leaves in the
        pass after the one that found the gateway dead (on an RP2040 the imports took 5
        passes, about 150 ms from ROMFS, before msg1 could go; docs/chip.md). Not sooner in
        the round: the code (12-30 KB) would sit beside an outbox that grows while the
        gateway is silent (a `make demo` box at 110K ran out of heap). If no failover comes,
        or a cached key is taken, the code goes again."""
        ep = self.endpoint
        if warm:
            ep.warm = True
            self._warming = now
        else:
            self._warming = None
            ep.cool()

    def _binding(self, gw, hb, now):
        """The outer address towards `gw`: while an answer is overdue (payload unanswered a
        response time after it left the box, whatever the heartbeat mode, or a heartbeat),
        its context may have been re-pointed at another gateway by an injected long-form
        frame: long form again until `gw` answers one."""
        a = hb.awaiting
        if hb.attempt >= 2 or (a is not None and ticks.diff(a[0], hb.proven) > 0
                               and ticks.reached(now, ticks.add(a[1], self.response_ms))):
            self.line.unbind(self._addr[gw])

    def _awaiting(self, gw):
        for c in self.clusters:
            if c.in_use == gw:
                t = self.outbox.awaiting(c.space, gw)
                if t is not None:
                    return t
        return None

    def _payload_for(self, gw):
        for c in self.clusters:
            if c.in_use == gw and self.outbox.pending(c.space):
                return True
        return False

    def _send_outbox(self, c, gw, now):
        ob = self.outbox
        m = self.line.modem
        rate = m.rate or m.baud or 9600
        ob.inflight_bytes = max(_INFLIGHT_MIN, rate // 10 * self.response_ms // 2000)
        ep = self.endpoint
        s = ep.session(gw)
        cp = s.tunnel
        if cp is None:
            cp = s.tunnel = tunnel.Compactor()  # the session's: a new one starts afresh
        left = m.tx_done(now)  # the line may still be busy with what went before
        for e in ob.due(c.space, gw, now):
            ms = (len(e[4]) + LINE_OVERHEAD) * 10000 // rate
            if ms > self._room and self._room < _AHEAD_MS:  # not the call's first, and no room for it
                # Protecting and framing a message costs 5-10 ms on an RP2040: after a failover
                # ten rerouted ones held the first back by 100 ms (it left when the pass ended).
                # A call protects what the line carries in _AHEAD_MS, the next call (the next
                # pass, at once) the rest (docs/chip.md).
                self._more = now
                break
            # compact (2 header bytes, not 12) only on a first sending through this gateway
            ep.send_plain(cp.encode(c.space, e[1], e[2], e[3], e[4], e[5] != gw), now, gw)
            self._room -= ms
            left = ticks.add(left, ms)
            ob.sent(e, gw, now, left)
