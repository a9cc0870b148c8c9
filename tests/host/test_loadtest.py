"""gwbox_tools.loadtest / loadgen: real boxes (the firmware Box, its modem driver, a modem
line each) against real access server and gateway processes, and a gateway killed under
them: the storm, small enough for `make test`."""
import leakcheck
from leakcheck import limit
from gwbox_tools.loadtest import LoadTest

nothing_leaks, time_limit = leakcheck.nothing_leaks, leakcheck.time_limit  # autouse: a limit, no leaks


@limit(150)
def test_200_boxes_3_gateways_one_killed_every_box_carries_again_and_nothing_is_lost():
    """200 boxes log in over 2 s through two access servers, send a message every 3 s each;
    the first gateway is killed: every box that was on it carries payload again through
    another gateway (a fresh handshake: no key was cached), and every message any box
    accepted reaches a target host."""
    lines = []
    with LoadTest(200, 3, interval_s=3.0, start_s=2.0, access_servers=2, progress=lines.append) as lt:
        lt.login(timeout=60)
        r = lt.storm(steady_s=3.0, timeout=60)
        lt.drain(timeout=30)
    assert r["boxes"] == 200 and r["storm_boxes_on_victim"] >= 60, r
    assert r["storm_recovered"] == r["storm_boxes_on_victim"], r
    assert r["storm_authenticated_boxes"] == r["storm_boxes_on_victim"], r  # no cached key: all fresh
    assert r["storm_all_ms_max"] < 30000, r
    assert r["messages_accepted"] > 200 and r["messages_lost"] == 0, r
    assert r["worker_errors"] == 0, r
    assert set(r["storm_admission"]) == {"143.1.1.157", "143.1.0.63"}
    assert sum(a["sessions"] for a in r["storm_admission"].values()) == 200, r["storm_admission"]
    assert any("storm" in ln for ln in lines)  # progress while it ran
