"""Outbox: LAN payload the box owns until a gateway confirms it was handed on (sans-I/O).

Each message gets a number in its cluster's number space (`space`), is sent through the
gateway in use, and stays here until that gateway confirms it; unconfirmed messages are
sent again after a retransmission timeout, and after a failover every unconfirmed
message of that cluster goes out again through the new gateway, in order. Delivery is
at least once: a gateway hands each number on once (it remembers them per box), so a
duplicate can only come from a message whose confirmation died with a gateway; those are
counted (`maybe_duplicated`). The outbox is bounded in bytes of heap: each message counts
its payload plus ENTRY_BYTES of bookkeeping, so many tiny (or empty) datagrams cannot fill
the heap while the payload bound looks far away. A message that does not fit is refused
(put returns None), never dropped silently later.

A confirmation also proves the gateway alive, but only as of when the box first sent the
message through it: a confirmation that an attacker held back proves nothing newer.

The window is counted in numbers from the oldest unconfirmed message of a space, never in
messages: the gateway hands on numbers up to 63 below the highest it has seen and confirms
the highest and the 32 below it, so a number more than WINDOW - 1 above the oldest one the
box still holds could push that oldest one out of what the gateway can take or confirm
(one lost message then jammed the outbox for good). When the gateway answers something
sent after a message that it has not confirmed, that message was lost on the way (the line
keeps order) or not handed on: it goes again at once (`answered`) and counts a loss; the
box reports a message that keeps being lost (`message_stuck`) and, after a bound, counts it
as a failure of that gateway.
"""
from gwbox import const, ticks
from gwbox.tunnel import named

WINDOW = const(32)  # numbers in flight per cluster, from the oldest unconfirmed: the confirmation
# bitmap covers 32 below top (and two messages at least, however big, within them: the line
# never idles waiting for a confirmation)
LINE_OVERHEAD = const(42)  # line bytes a message costs besides its payload (headers, ICV, framing)
ENTRY_BYTES = const(96)  # heap a message costs besides its payload (32-bit: its list, the bytes header)

# entry fields (a list per message: compact on a device heap)
_SPACE = const(0)
_NUM = const(1)
_DST = const(2)
_PORT = const(3)
_PAYLOAD = const(4)
_GW = const(5)  # gateway it was last sent through, or None (not sent through the one in use)
_FIRST = const(6)  # tick of the first send through _GW
_DUE = const(7)  # tick of the next retransmission
_TRIES = const(8)
_LEFT = const(9)  # tick its last byte was expected to leave the box, first send through _GW
_LAST = const(10)  # tick of its last send through _GW
_LOSSES = const(11)  # times _GW answered something sent after it, and not it


class Outbox:
    def __init__(self, max_bytes, rto_ms, inflight_bytes=2048):
        self.max_bytes = max_bytes
        self.rto_ms = rto_ms
        # Line bytes in flight per cluster: the box sets it to about half a response time
        # of line, so neither a confirmation nor a heartbeat waits behind more than
        # that of our own data (a busy line must not look like a dead gateway).
        self.inflight_bytes = inflight_bytes
        self.used = 0
        self.entries = []
        self._next = {}
        self.accepted = 0
        self.refused = 0
        self.confirmed = 0
        self.retransmitted = 0
        self.rerouted = 0
        self.maybe_duplicated = 0

    def put(self, space, dst, port, payload):
        """Take a message; its number, or None if it does not fit (the caller reports it)."""
        cost = len(payload) + ENTRY_BYTES
        if self.used + cost > self.max_bytes:
            self.refused += 1
            return None
        num = self._next.get(space, 1)
        self._next[space] = num + 1 if num < 0xFFFFFFFF else 1
        self.entries.append([space, num, dst, port, bytes(payload), None, None, None, 0, None, None, 0])
        self.used += cost
        self.accepted += 1
        return num

    def pending(self, space):
        for e in self.entries:
            if e[_SPACE] == space:
                return True
        return False

    def depth(self):
        return len(self.entries)

    def held(self, space):
        """(count, payload bytes, first number, last number) of the messages of `space` it holds."""
        n = size = 0
        first = last = None
        for e in self.entries:
            if e[_SPACE] == space:
                n += 1
                size += len(e[_PAYLOAD])
                if first is None:
                    first = e[_NUM]
                last = e[_NUM]
        return n, size, first, last

    def due(self, space, gw, now):
        """Messages of `space` to send through `gw` now, oldest first, within the window.
        One still in flight through another (live) gateway waits until it is due again."""
        out = []
        count = 0
        size = 0
        base = None
        for e in self.entries:
            if e[_SPACE] != space:
                continue
            if base is None:
                base = e[_NUM]
            count += 1
            size += len(e[_PAYLOAD]) + LINE_OVERHEAD
            if (e[_NUM] - base) & 0xFFFFFFFF >= WINDOW or (size > self.inflight_bytes and count > 2):
                break
            if e[_GW] is None or ticks.reached(now, e[_DUE]):
                out.append(e)  # never sent, rerouted, or due again (through whichever is in use)
        return out

    def sent(self, e, gw, now, left=None):
        """Record a (re)transmission of entry `e` through `gw`; `left`: when its last byte
        should have left the box (the line may be busy with what was sent before)."""
        if e[_GW] != gw:
            e[_GW] = gw
            e[_FIRST] = now
            e[_LEFT] = now if left is None else left
            e[_TRIES] = 0
            e[_LOSSES] = 0
        else:
            self.retransmitted += 1
        e[_LAST] = now
        e[_TRIES] += 1
        backoff = self.rto_ms << min(e[_TRIES] - 1, 4)
        e[_DUE] = ticks.add(now if left is None else left, backoff)  # counted from when it left the box

    def confirm(self, gw, space, top, bits):
        """Drop every message `gw` confirms; returns the tick of the latest first send through
        `gw` among them (proof of life as of then), or None."""
        proof = None
        keep = []
        for e in self.entries:
            if e[_SPACE] == space and named(e[_NUM], top, bits):
                self.used -= len(e[_PAYLOAD]) + ENTRY_BYTES
                self.confirmed += 1
                if e[_GW] == gw and (proof is None or ticks.diff(e[_FIRST], proof) > 0):
                    proof = e[_FIRST]
            else:
                keep.append(e)
        self.entries = keep
        return proof

    def answered(self, space, gw, t):
        """`gw` answered something sent at tick `t` (a confirmation, a heartbeat): a message of
        `space` sent through it before then and not confirmed was lost on the way or not
        handed on. Each goes again at once and counts a loss, once per sending: the answers
        to several later messages, read together (a slow loop, a busy line), are one loss of
        it, not one each; returns (number, losses) of the one lost most often among those
        counted now, or None."""
        worst = None
        for e in self.entries:
            if e[_SPACE] == space and e[_GW] == gw and e[_TRIES] and ticks.diff(t, e[_LAST]) > 0:
                e[_DUE] = e[_LAST]  # due now
                e[_TRIES] = 0  # and no back-off after it: the gateway is there, the line is not busy
                # (0 also marks this sending as counted lost, until it goes again)
                e[_LOSSES] += 1
                if worst is None or e[_LOSSES] > worst[1]:
                    worst = (e[_NUM], e[_LOSSES])
        return worst

    def reroute(self, space, gw):
        """`gw` is gone: its unconfirmed messages of `space` go out again through the next one."""
        for e in self.entries:
            if e[_SPACE] == space and e[_GW] == gw:
                e[_GW] = None
                self.rerouted += 1
                self.maybe_duplicated += 1  # it may have been handed on, its confirmation lost

    def next_deadline(self, space, gw):
        """When the next message of `space` in flight through `gw` is due again, or None."""
        best = None
        base = None
        for e in self.entries:
            if e[_SPACE] != space:
                continue
            if base is None:
                base = e[_NUM]
            if (e[_NUM] - base) & 0xFFFFFFFF >= WINDOW:
                break
            if e[_GW] == gw:
                best = ticks.earliest(best, e[_DUE])
        return best

    def awaiting(self, space, gw):
        """(tick sent, tick it left the box) of the oldest message in flight through `gw`, or None."""
        for e in self.entries:
            if e[_SPACE] == space and e[_GW] == gw:
                return e[_FIRST], e[_LEFT]
        return None

