"""gwbox_tools.demo without its rig: the status view wraps event lines (never cuts them at 80
columns) and the summary's account of duplicates. `make demo` itself runs the whole story."""
from gwbox_tools.demo import Demo


def test_the_status_view_wraps_long_event_lines_in_80_columns(tmp_path, capsys):
    demo = Demo(str(tmp_path), "110K", tty=True)
    line = ("  19.07 s  box   gateway_dead       unverified=False reason=peer_dead gateway=143.1.0.64 "
            "cluster=Cluster1")
    demo.say(line)
    demo.draw()
    rows = capsys.readouterr().out.replace("\x1b[H\x1b[2J", "").split("\n")
    assert all(len(r) <= 79 for r in rows), [r for r in rows if len(r) > 79]
    assert len(rows) <= 24
    shown = rows[rows.index("-" * 79, 2) + 1:]
    assert " ".join(w for r in shown for w in r.split()) == " ".join(line.split())  # every word, in order


def test_duplicates_are_accounted_to_the_gateway_that_froze(tmp_path):
    demo = Demo(str(tmp_path), "110K", tty=False)
    t0 = demo.t0
    demo.faults = [(t0 + 17, "freeze", "143.1.0.64"), (t0 + 29, "thaw", "143.1.0.64")]
    d = {1: [t0 + 2], 2: [t0 + 25, t0 + 29.2], 3: [t0 + 25.1, t0 + 29.3], 4: [t0 + 16.8, t0 + 24.5],
         5: [t0 + 40, t0 + 41]}
    assert demo.duplicates(d) == {2: "after", 3: "after", 4: "before", 5: "other"}
