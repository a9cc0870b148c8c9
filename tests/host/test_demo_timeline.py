"""The demo's timeline picture (gwbox_tools.demo_timeline) from events.jsonl rows: every change
of gateway says which it was, a cached-key failover's two markers are one line, the reboot is
marked, and the legend lists only what was drawn."""
import os

from gwbox_tools.cluster_rig import GATEWAYS
from gwbox_tools.demo_timeline import plot, transitions

G1, G2, G3 = GATEWAYS


def row(t_s, node, event, **fields):
    return dict(fields, t_ms=int(t_s * 1000), node=node, event=event)


def box(t_s, event, boot=1, **fields):
    return row(t_s, "box", event, boot=boot, **fields)


def story():
    """The demo's story, as events.jsonl has it, without heartbeats."""
    rows = [box(0.5, "boot"), box(1.0, "sa_established", peer=G1),
            box(1.0, "gateway_in_use", gateway=G1, how="authenticated"),
            row(1.5, G1, "handed_on", num=1), row(7.0, "demo", "power cut and back: the box reboots"),
            box(7.1, "boot", boot=2), box(13.0, "sa_established", boot=2, peer=G1),
            box(13.0, "gateway_in_use", boot=2, gateway=G1, how="authenticated"),
            row(17.0, "demo", "freeze", gateway=G1),
            box(24.2, "gateway_dead", boot=2, gateway=G1, reason="peer_dead", unverified=False),
            box(24.2, "sa_deleted", boot=2, peer=G1), box(25.0, "sa_established", boot=2, peer=G3),
            box(25.0, "gateway_in_use", boot=2, gateway=G3, how="authenticated"),
            row(25.1, G3, "handed_on", num=30), row(29.0, "demo", "thaw", gateway=G1),
            box(55.0, "sa_established", boot=2, peer=G1),
            box(55.0, "gateway_in_use", boot=2, gateway=G1, how="failback"),
            row(61.0, "demo", "freeze", gateway=G1),
            box(68.2, "gateway_dead", boot=2, gateway=G1, reason="peer_dead", unverified=False),
            box(68.2, "gateway_in_use", boot=2, gateway=G3, how="cached_key"),
            row(71.0, "demo", "thaw", gateway=G1), row(74.0, "demo", "traffic stops")]
    return rows


def test_each_change_of_gateway_says_which_it_was():
    rows = story()
    box_ev = [(r["t_ms"] / 1000.0, r) for r in rows if r["node"] == "box"]
    assert [label for _t, _b, _g, label in transitions(box_ev)] == [
        "start: %s" % G1, "after the reboot: %s" % G1, "failover 1 (fresh key) to %s" % G3,
        "failback to %s" % G1, "failover 2 (cached key) to %s" % G3]


def test_the_picture_marks_the_reboot_and_each_failover_once(tmp_path):
    path = str(tmp_path / "timeline.png")
    drawn = plot(story(), path)
    assert os.path.getsize(path) > 10000
    assert drawn["labels"] == ["power cut: the box reboots", "%s declared dead" % G1, "%s declared dead" % G1,
                               "after the reboot: %s" % G1, "failover 1 (fresh key) to %s" % G3,
                               "failback to %s" % G1, "failover 2 (cached key) to %s" % G3]
    # the cached-key failover happens in the millisecond its gateway is declared dead: one line
    assert sorted(drawn["lines"]) == [(7.0, "power cut"), (13.0, "change"), (24.2, "dead"), (25.0, "change"),
                                      (55.0, "change"), (68.2, "dead and change")]
    times = [t for t, _kind in drawn["lines"]]
    assert len(times) == len(set(times))  # no two lines at one moment
    # labels that would overlap take another row; one that would run off the plot its marker's left
    placed = {text: (row, side) for text, row, side in drawn["placed"]}
    assert placed["power cut: the box reboots"] == (0, "right")
    assert placed["%s declared dead" % G1][0] in (0, 1)
    assert placed["failover 1 (fresh key) to %s" % G3] != placed["after the reboot: %s" % G1]
    assert placed["failover 2 (cached key) to %s" % G3][1] == "left"


def test_the_legend_lists_only_what_was_drawn(tmp_path):
    drawn = plot(story(), str(tmp_path / "a.png"))
    assert drawn["legend"] == ["box rebooting: boots, dials, keys", "SA (key) held by the box", "gateway in use",
                               "message handed on", "gateway frozen (carrier up)"]  # no heartbeats in this story
    rows = story() + [box(30.0, "heartbeat_sent", boot=2, peer=G3, id=1),
                      box(30.1, "heartbeat_ack", boot=2, peer=G3, id=1),
                      box(31.0, "heartbeat_sent", boot=2, peer=G3, id=2)]
    drawn = plot(rows, str(tmp_path / "b.png"))
    assert "heartbeat answered" in drawn["legend"] and "heartbeat never answered" in drawn["legend"]
    quiet = [r for r in story() if r["node"] != "demo" and r["event"] != "handed_on"]
    drawn = plot(quiet, str(tmp_path / "c.png"))
    assert drawn["legend"] == ["SA (key) held by the box", "gateway in use"]
