"""gwbox.outbox: bounded, numbered, confirmed, retransmitted and rerouted LAN payload."""
from gwbox import ticks
from gwbox.outbox import ENTRY_BYTES, WINDOW, Outbox

T0 = ticks.PERIOD - 1000
A, B = b"gw-a", b"gw-b"


def at(ms):
    return ticks.add(T0, ms)


def test_numbers_per_space_and_the_byte_bound_refuses_without_dropping():
    ob = Outbox(100 + 3 * ENTRY_BYTES, 1000)  # each message counts its payload + ENTRY_BYTES
    assert ob.put(1, 10, 5, b"x" * 40) == 1
    assert ob.put(2, 10, 5, b"y" * 40) == 1  # each cluster has its own number space
    assert ob.put(1, 10, 5, b"z" * 40) is None  # 120 > 100 payload bytes: refused, the others stay
    assert ob.put(1, 10, 5, b"z" * 20) == 2
    assert (ob.used, ob.depth(), ob.refused, ob.accepted) == (100 + 3 * ENTRY_BYTES, 3, 1, 3)
    ob.confirm(A, 1, 2, 1)  # never sent through A: confirmed all the same, and its bytes come back
    assert (ob.used, ob.depth()) == (40 + ENTRY_BYTES, 1)


def test_empty_and_tiny_messages_are_bounded_too():
    # Payload bytes alone would let empty datagrams pile up until the heap ran out.
    ob = Outbox(10 * ENTRY_BYTES, 1000)
    assert all(ob.put(1, 10, 5, b"") == i for i in range(1, 11))
    assert ob.put(1, 10, 5, b"") is None and ob.put(1, 10, 5, b"x") is None
    assert (ob.depth(), ob.refused) == (10, 2)


def test_due_sends_in_order_then_retransmits_after_the_timeout_with_back_off():
    ob = Outbox(4096, 1000)
    for i in range(3):
        ob.put(1, 10, 5, b"m%d" % i)
    due = ob.due(1, A, T0)
    assert [e[1] for e in due] == [1, 2, 3]
    for e in due:
        ob.sent(e, A, T0)
    assert ob.due(1, A, at(999)) == [] and ob.next_deadline(1, A) == at(1000)
    again = ob.due(1, A, at(1000))
    assert [e[1] for e in again] == [1, 2, 3]
    for e in again:
        ob.sent(e, A, at(1000))
    assert ob.next_deadline(1, A) == at(3000) and ob.retransmitted == 3


def test_two_big_messages_may_be_in_flight_whatever_the_byte_bound():
    ob = Outbox(65536, 1000, inflight_bytes=256)
    for i in range(4):
        ob.put(1, 10, 5, b"x" * 1000)
    assert [e[1] for e in ob.due(1, A, T0)] == [1, 2]


def test_window_limits_messages_in_flight():
    ob = Outbox(65536, 1000)
    for i in range(WINDOW + 5):
        ob.put(1, 10, 5, b"m")
    due = ob.due(1, A, T0)
    assert len(due) == WINDOW
    for e in due:
        ob.sent(e, A, T0)
    proof = ob.confirm(A, 1, 3, 0b11)  # 3, 2 and 1 handed on
    assert proof == T0 and ob.depth() == WINDOW + 2
    assert [e[1] for e in ob.due(1, A, at(10))] == [WINDOW + 1, WINDOW + 2, WINDOW + 3]


def test_confirm_bitmap_and_proof_from_the_first_sending_through_that_gateway():
    ob = Outbox(4096, 1000)
    for i in range(5):
        ob.put(1, 10, 5, b"m")
    for e in ob.due(1, A, T0):
        ob.sent(e, A, T0)
    for e in ob.due(1, A, at(1000)):
        ob.sent(e, A, at(1000))  # retransmitted: the answer may be to either copy
    assert ob.confirm(A, 1, 5, 0b0101) == T0  # 5, 4 and 2
    assert [e[1] for e in ob.entries] == [1, 3]
    assert ob.confirm(B, 1, 3, 0) is None  # B never had it: no proof for B, but it is done
    assert ob.confirm(A, 2, 1, 0) is None  # another space
    assert [e[1] for e in ob.entries] == [1]


def test_reroute_after_a_failover_resends_everything_unconfirmed_in_order_and_counts():
    ob = Outbox(4096, 1000)
    for i in range(4):
        ob.put(1, 10, 5, b"m%d" % i)
    for e in ob.due(1, A, T0):
        ob.sent(e, A, T0)
    ob.confirm(A, 1, 2, 0)
    ob.reroute(1, A)
    assert ob.maybe_duplicated == 3 and ob.rerouted == 3
    due = ob.due(1, B, at(5))
    assert [e[1] for e in due] == [1, 3, 4]
    for e in due:
        ob.sent(e, B, at(5))
    assert ob.confirm(B, 1, 4, 0b101) == at(5)  # proof dates from the first send through B
    assert ob.depth() == 0 and ob.used == 0


def test_messages_in_flight_through_a_live_gateway_wait_their_turn_after_a_switch():
    # A failback from A to P: what A has in flight is A's to confirm until it is due again.
    ob = Outbox(4096, 1000)
    ob.put(1, 10, 5, b"a")
    for e in ob.due(1, A, T0):
        ob.sent(e, A, T0)
    ob.put(1, 10, 5, b"b")
    assert [e[1] for e in ob.due(1, B, at(10))] == [2]
    assert [e[1] for e in ob.due(1, B, at(1000))] == [1, 2]


def test_the_window_counts_numbers_from_the_oldest_unconfirmed_message():
    # The gateway takes numbers up to 63 below the highest it saw and confirms 32 below it:
    # with one old message unconfirmed, later ones may not run further ahead than that,
    # however many of them were confirmed meanwhile (else the old one could never be).
    ob = Outbox(65536, 1000)
    for i in range(WINDOW + 10):
        ob.put(1, 10, 5, b"m")
    for e in ob.due(1, A, T0):
        ob.sent(e, A, T0)
    bits = (1 << (WINDOW - 2)) - 1  # WINDOW-1 ... 2 handed on; 1 was lost
    ob.confirm(A, 1, WINDOW, bits)
    assert [e[1] for e in ob.entries[:2]] == [1, WINDOW + 1] and ob.depth() == 11
    assert ob.due(1, A, at(10)) == []  # WINDOW + 1 is WINDOW above 1: it waits
    assert ob.next_deadline(1, A) == at(1000)  # for message 1's retransmission
    ob.confirm(A, 1, WINDOW, bits | (1 << (WINDOW - 2)))  # 1 arrived after all
    assert [e[1] for e in ob.due(1, A, at(10))] == list(range(WINDOW + 1, WINDOW + 11))


def test_what_the_gateway_answered_around_goes_again_at_once_without_back_off():
    ob = Outbox(4096, 1000)
    for i in range(3):
        ob.put(1, 10, 5, b"m%d" % i)
    for k, e in enumerate(ob.due(1, A, T0)):
        ob.sent(e, A, at(k))  # 1 at T0, 2 at +1, 3 at +2
    for e in ob.due(1, A, at(1002)):
        ob.sent(e, A, at(1002))  # nothing answered: each goes again, its timeout doubles
    assert ob.next_deadline(1, A) == at(3002)
    proof = ob.confirm(A, 1, 3, 0)  # 3 (first sent at +2) arrived, 1 and 2 did not
    assert proof == at(2)
    assert ob.answered(1, A, proof) is None  # 1 and 2 went again at 1002, after that sending
    assert ob.answered(1, A, at(1500)) == (1, 1)  # a heartbeat sent at 1500 was answered: lost
    assert [e[1] for e in ob.due(1, A, at(1600))] == [1, 2]  # at once
    for e in ob.due(1, A, at(1600)):
        ob.sent(e, A, at(1600))
    assert ob.next_deadline(1, A) == at(2600)  # one timeout, no back-off: the gateway is there
    assert ob.answered(1, B, at(5000)) is None  # another gateway's answer says nothing of these
    assert ob.answered(1, A, at(5000)) == (1, 2)  # losses count per message
    assert ob.answered(1, A, at(5001)) is None  # ... and per sending: not again before it went again
    assert ob.answered(1, A, at(5002)) is None and ob.entries[0][11] == 2  # _LOSSES
    for e in ob.due(1, A, at(5003)):
        ob.sent(e, A, at(5003))
    assert ob.answered(1, A, at(5004)) == (1, 3)  # lost again after it went again
