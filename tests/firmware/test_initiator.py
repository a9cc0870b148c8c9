"""gwbox.initiator computes X25519 a slice per tick (docs/crypto.md): the box's other traffic
flows between the slices, each tick runs at most one slice of a handshake, a handshake
aborted mid-computation leaves nothing behind, and a MemoryError in a slice is survived."""
# mp-heap: 256K  (a box and two gateways in one interpreter)
from gwbox import ticks
from gwbox.config import LinkConfig
from gwbox.crypto import x25519
from gwbox.endpoint import Endpoint

PSK = b"\x11" * 32
NOW = ticks.PERIOD - 5000
_SLICE = x25519.SLICE if x25519._native is None else x25519.NATIVE_SLICE  # the ladder this interpreter runs
STEPS = (255 + _SLICE - 1) // _SLICE + 1  # Ladder steps of one X25519
SPARE_STEPS = (255 + x25519.SLICE - 1) // x25519.SLICE + 1  # a spare key's: 32-bit slices, whatever the ladder


def box_and_gateways(*names):
    box = Endpoint(LinkConfig(), b"box1", psks=dict((n, PSK) for n in names), initiator=True)
    return box, dict((n, Endpoint(LinkConfig(), n, psks={b"box1": PSK})) for n in names)


def exchange(box, gws, now):
    """Everything pending, both ways, delivered at `now`; what the gateways received as payload."""
    got = []
    moved = True
    while moved:
        moved = False
        for link, p in box.take_output():
            gws[link].receive(p, now, b"box1")
            moved = True
        for name, gw in gws.items():
            for _l, p in gw.take_output():
                box.receive(p, now, name)
                moved = True
            got += gw.take_received()
    return got


class StepCounter:
    """Counts Ladder.step calls (and can make one of them raise MemoryError). It patches the
    X25519 module loaded now: the endpoint drops and reloads the key exchange's code between
    exchanges (endpoint._unload_key_exchange), so not the one this module imported first."""

    def __init__(self, fail_at=None):
        self.calls = 0
        self.fail_at = fail_at

    def __enter__(self):
        from gwbox.crypto import x25519 as loaded
        self.cls = loaded.Ladder
        self.real = real = loaded.Ladder.step
        me = self

        def step(ladder, bits=0):
            me.calls += 1
            if me.calls == me.fail_at:
                raise MemoryError
            return real(ladder, bits)

        self.cls.step = step
        return self

    def __exit__(self, *exc):
        self.cls.step = self.real


def handshake(box, gws, name, now, limit=100):
    """Tick and deliver until the box has a session with `name`; the ticks it took."""
    box.connect(now, name, name)
    for n in range(limit):
        exchange(box, gws, now)
        if box.session(name) is not None:
            return n
        assert ticks.reached(now, box.next_deadline()), "the box waits although it has work"
        box.tick(now)
    assert False, "no session after %d ticks" % limit


def test_a_handshake_takes_a_slice_per_tick_and_other_traffic_flows_between():
    box, gws = box_and_gateways(b"gw1", b"gw2")
    handshake(box, gws, b"gw1", NOW)
    with StepCounter() as steps:
        box.connect(NOW, b"gw2", b"gw2")
        assert box.take_output() == []  # msg1 waits for the public key
        sent, got, ticked = 0, [], 0
        while box.session(b"gw2") is None:
            assert ticks.reached(NOW, box.next_deadline())  # work pending: "now"
            before = steps.calls
            box.tick(NOW)
            ticked += 1
            assert steps.calls - before == 1  # one slice per tick
            box.send(b"m%d" % sent, NOW, b"gw1")  # the session with gw1 carries on meanwhile
            sent += 1
            got += exchange(box, gws, NOW)
            assert ticked < 50
    assert ticked == 2 * STEPS  # the public key, then the shared secret
    assert got == [(b"box1", b"m%d" % i) for i in range(sent)]  # every one delivered at once
    assert gws[b"gw2"].session() is not None


def test_handshakes_in_parallel_take_one_slice_per_tick_between_them_the_first_started_first():
    """A cluster keys several gateways at once (docs/cluster.md, the race): the loop-pass
    bound holds only if a pass never runs two ladder slices, however many handshakes run."""
    box, gws = box_and_gateways(b"gw1", b"gw2")
    with StepCounter() as steps:
        box.connect(NOW, b"gw1", b"gw1")
        box.connect(NOW, b"gw2", b"gw2")
        out = []
        for n in range(2 * STEPS):
            before = steps.calls
            box.tick(NOW)
            assert steps.calls - before == 1
            out += [(n, link) for link, _p in box.take_output()]
    assert out == [(STEPS - 1, b"gw1"), (2 * STEPS - 1, b"gw2")]  # the earlier one's msg1 first


def _secret_started(box, gws):
    """Connect to gw1 and run until msg2 is in and the box's shared secret has started."""
    box.connect(NOW, b"gw1", b"gw1")
    while box.initiators[0].msg1 is None:
        box.tick(NOW)
    hs = box.initiators[0]
    exchange(box, gws, NOW)  # msg1 out, msg2 in: the shared secret starts
    assert hs.candidates and hs.candidates[0].job is not None
    return hs


def test_a_handshake_aborted_mid_computation_leaves_nothing():
    box, gws = box_and_gateways(b"gw1")
    box.connect(NOW, b"gw1", b"gw1")
    for _ in range(min(3, STEPS - 1)):  # part of the public key
        box.tick(NOW)
    assert box.abort_handshakes(NOW) == [b"gw1"]
    assert box.next_deadline() is None and box.take_output() == []
    box.tick(NOW)
    assert box.take_output() == [] and box.session() is None
    # mid shared secret: msg2 is in, msg3 not yet out
    _secret_started(box, gws)
    box.tick(NOW)
    assert box.abort_handshakes(NOW) == [b"gw1"]
    assert box.next_deadline() is None and box.take_output() == []
    box.tick(NOW)
    assert box.take_output() == [] and box.session() is None
    assert "sa_established" not in [e.name for e in box.take_events()]
    # the line is back: a new handshake completes
    assert handshake(box, gws, b"gw1", NOW) > 0


def test_a_memory_error_in_a_slice_is_survived():
    # The device port catches a MemoryError out of the box's tick and polls again later;
    # the slice it interrupted is done again, and the handshake completes.
    box, gws = box_and_gateways(b"gw1")
    errors = 0
    fail_at = min(4, STEPS - 1)  # a step of the box's public key, not its last
    with StepCounter(fail_at=fail_at) as steps:
        box.connect(NOW, b"gw1", b"gw1")
        for _ in range(100):
            exchange(box, gws, NOW)
            if box.session() is not None:
                break
            try:
                box.tick(NOW)
            except MemoryError:
                errors += 1
    assert steps.calls > fail_at and errors == 1  # that step (the box's public key) raised
    assert box.session() is not None and gws[b"gw1"].session() is not None


def test_nothing_goes_again_while_a_response_is_being_answered():
    # On the chip an X25519 takes several passes of the loop: msg1's retransmission timer ran
    # out while the box computed the secret for msg2, msg1 went again (90 bytes of a 9,600-
    # baud line in front of msg3) and the gateway's second msg2 came down, only to be dropped.
    box, gws = box_and_gateways(b"gw1")
    _secret_started(box, gws)
    t = NOW
    sent = []
    per = LinkConfig().handshake_retry_ms * 6 // 5 // STEPS  # 400 ms with 9 steps, 1.2 s with 3
    while box.session(b"gw1") is None:
        t = ticks.add(t, per)  # each slice a slow pass: the timer runs out meanwhile
        assert ticks.reached(t, box.next_deadline())
        box.tick(t)
        out = box.take_output()
        sent += [p[0] for _l, p in out]
        for _l, p in out:
            gws[b"gw1"].receive(p, t, b"box1")
        for _l, p in gws[b"gw1"].take_output():
            box.receive(p, t, b"gw1")
        assert len(sent) < 3
    assert ticks.diff(t, NOW) > LinkConfig().handshake_retry_ms  # the timer did run out
    assert len(sent) == 1 and sent[0] != 0  # msg3 only (protected), no second msg1 (cleartext: 0)


def test_the_next_handshake_key_is_made_ahead_in_passes_no_handshake_uses():
    # A failover's msg1 waited for an X25519 (about half a second of passes on the chip).
    # From the pass after a handshake of ours succeeded (not the one that opens the session:
    # that one sends the new gateway's first messages), the box makes the next one's key a
    # slice per tick, then drops the key exchange's code; the next connect sends msg1 at
    # once, and each key serves one handshake.
    import sys
    box, gws = box_and_gateways(b"gw1", b"gw2", b"gw3")
    handshake(box, gws, b"gw1", NOW)
    later = ticks.add(NOW, 1)
    assert box.next_deadline() == later  # nothing to do in this pass
    box.tick(NOW)
    assert box.spare == [ticks.add(NOW, 1), None, None]
    with StepCounter() as steps:
        ticked = 0
        while ticks.reached(later, box.next_deadline()):
            before = steps.calls
            box.tick(later)
            ticked += 1
            assert steps.calls - before <= 1  # one slice per tick at most
            box.send(b"meanwhile %d" % ticked, later, b"gw1")
            assert exchange(box, gws, later) == [(b"box1", b"meanwhile %d" % ticked)]
            assert ticked <= SPARE_STEPS + 1
    assert ticked == SPARE_STEPS + 1 and steps.calls == SPARE_STEPS  # the first tick starts it
    assert "gwbox.crypto.x25519" not in sys.modules and "gwbox.initiator" not in sys.modules  # dropped again
    box.connect(later, b"gw2", b"gw2")
    out = box.take_output()
    assert len(out) == 1 and out[0][0] == b"gw2" and out[0][1][0] == 0  # msg1 (cleartext) at once
    gws[b"gw2"].receive(out[0][1], later, b"box1")
    key2 = box.initiators[0]._offer.payloads[1]
    assert handshake(box, gws, b"gw2", later) == STEPS  # the shared secret only
    assert box.session(b"gw2") is not None and gws[b"gw2"].session() is not None
    # the spare made after gw2 is another key; a connect before it is finished continues it
    later = ticks.add(later, 1)
    box.tick(later)  # its Ladder
    box.tick(later)  # and one slice
    box.connect(later, b"gw3", b"gw3")
    assert box.take_output() == []  # its public key is not there yet
    key3 = box.initiators[0]._offer
    # one slice (32 bits) of its key was done ahead; the handshake goes on with its own slices
    assert handshake(box, gws, b"gw3", later) == (255 - x25519.SLICE + _SLICE - 1) // _SLICE + 1 + STEPS
    assert box.session(b"gw3") is not None and gws[b"gw3"].session() is not None
    assert key3.payloads[1] != key2  # a key of its own
