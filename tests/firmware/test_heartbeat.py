"""gwbox.heartbeat: modes, retry and dead verdicts, proof of life, in virtual time across the tick wrap."""
from gwbox import ticks
from gwbox.heartbeat import DEAD, SEND, Heartbeat

T0 = ticks.PERIOD - 1500


def at(ms):
    return ticks.add(T0, ms)


def test_instant_probe_after_defer_then_dead_after_retries():
    hb = Heartbeat("INSTANT", 1000, 300, 2, T0)
    assert hb.poll(at(999)) is None and hb.next_deadline() == at(1000)
    t = at(1000)
    assert hb.poll(t) == SEND
    hb.sent(hb.new_id(), t)
    for _ in range(2):
        assert hb.poll(ticks.add(t, 299)) is None
        t = ticks.add(t, 300)
        assert hb.poll(t) == SEND
        hb.sent(hb.new_id(), t)  # every heartbeat carries its own id
    assert hb.attempt == 3 and len(set(i for i, _ in hb.sent_ids)) == 3
    assert hb.poll(ticks.add(t, 299)) is None
    assert hb.poll(ticks.add(t, 300)) == DEAD
    assert ticks.diff(ticks.add(t, 300), T0) == 1000 + 3 * 300  # defer + (retries+1) * response


def test_an_answer_to_any_heartbeat_of_the_round_is_proof_as_of_its_sending():
    hb = Heartbeat("INSTANT", 1000, 300, 2, T0)
    hb.poll(at(1000))
    hb.sent(7, at(1000))
    hb.poll(at(1300))
    hb.sent(8, at(1300))
    assert hb.acked(9, at(1350)) is None  # never sent: stale or forged
    assert hb.acked(7, at(1350)) is True  # the first one's answer came late: still counts
    assert hb.proven == at(1000) and hb.attempt == 0 and hb.rtt == 350
    assert hb.next_deadline() == at(2000)
    assert hb.acked(8, at(1360)) is False  # same round, ended: no news
    assert hb.proven == at(1000)


def test_proof_moves_only_forward_and_ends_the_round_only_if_it_is_recent():
    hb = Heartbeat("INSTANT", 1000, 300, 3, T0)
    hb.poll(at(1000))
    hb.sent(1, at(1000))
    hb.proof(at(-500), at(1100))  # older than what we know: nothing
    assert hb.proven == T0 and hb.attempt == 1
    hb.proof(at(50), at(1100))  # newer, but still more than defer ago: the round goes on
    assert hb.proven == at(50) and hb.attempt == 1
    hb.proof(at(900), at(1100))  # recent enough: the round ends
    assert hb.attempt == 0 and hb.next_deadline() == at(1900)


def test_deferred_probes_only_while_payload_waits():
    hb = Heartbeat("DEFERRED", 1000, 300, 1, T0)
    assert hb.poll(at(5000)) is None and hb.next_deadline() is None
    hb.set_payload(True, at(5000))
    assert hb.poll(at(5000)) == SEND  # proof is long overdue and payload waits: at once
    hb.sent(1, at(5000))
    hb.acked(1, at(5100))
    hb.set_payload(False, at(5200))
    assert hb.poll(at(9000)) is None


def test_none_never_probes_and_a_cached_key_is_checked_when_taken_into_use():
    hb = Heartbeat("NONE", 1000, 300, 1, T0)
    assert hb.poll(at(100000)) is None and hb.next_deadline() is None
    hb.set_mode("INSTANT", at(100000))
    hb.check_now(at(100000))
    assert hb.poll(at(100000)) == SEND


def test_age_never_wraps_however_long_a_key_sits_unused():
    hb = Heartbeat("NONE", 1000, 300, 1, T0)
    later = ticks.add(T0, (1 << 29) + 12345)  # longer than half the tick period
    hb.set_mode("INSTANT", later)
    assert hb.poll(later) == SEND
    assert ticks.diff(hb.next_deadline() or later, later) <= 1000


def test_payload_left_unanswered_starts_the_round_without_waiting_for_defer():
    hb = Heartbeat("INSTANT", 5000, 300, 2, T0)
    hb.expect((at(1000), at(1000)))  # payload sent (and on the line) at +1 s, proof dates from T0
    assert hb.next_deadline() == at(1300)
    assert hb.poll(at(1299)) is None
    assert hb.poll(at(1300)) == SEND
    hb.sent(1, at(1300))
    hb.proof(at(1000), at(1350))  # the payload was confirmed after all
    assert hb.attempt == 0 and hb.next_deadline() == at(6000)
    hb.expect((at(900), at(900)))  # something older than the last proof awaits nothing new
    assert hb.next_deadline() == at(6000)
    hb.expect((at(1500), at(2500)))  # sent at 1.5 s behind a busy line: it left the box at 2.5 s
    assert hb.next_deadline() == at(2800)


def test_a_forced_round_runs_whatever_the_mode_and_ends_like_any_other():
    hb = Heartbeat("NONE", 1000, 300, 1, T0)
    hb.force(at(10))
    assert hb.poll(at(10)) == SEND
    hb.sent(1, at(10))
    assert hb.acked(1, at(40)) is True
    assert hb.poll(at(5000)) is None and hb.next_deadline() is None  # back to NONE
