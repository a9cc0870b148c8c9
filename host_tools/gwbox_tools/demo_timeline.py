"""The demo's timeline picture (build/demo/timeline.png), from its events.jsonl rows.

One lane for the box and one per gateway: the keys (SAs) the box holds, the gateway
carrying its traffic, heartbeats, messages handed on, the faults (frozen spans, the
box's power cut), and a marker per change of gateway that says which it was (failover 1
with a fresh key, the failback, failover 2 with a cached key, the gateway after the
reboot). Where two markers fall on one moment (a cached-key failover takes over in the
millisecond its gateway is declared dead) they are drawn as one line with both labels;
the legend lists only what the picture shows.

`plot(rows, path)` takes the rows of events.jsonl (dicts with t_ms since the start, node:
"box", a gateway, "ras" or "demo" for the faults the demo caused) and returns what it drew
(lines, labels, legend entries), which the tests read.
"""

from gwbox_tools.cluster_rig import GATEWAYS

SAME_MOMENT_S = 0.3  # markers closer than this are one line
FIG_W, DPI, AXES_PX = 13, 110, 1150  # the picture's width (inches), resolution, and about its plot's pixels
CHAR_PX = 6.2  # about the width of a character at fontsize 8


class Labels:
    """Marker labels in rows (0 nearest the edge), each in the first row where it overlaps none;
    a label that would run off the plot goes on the marker's other side."""

    def __init__(self, xlim):
        self.xlim = xlim
        self.s_per_px = (xlim[1] - xlim[0]) / AXES_PX
        self.rows = []  # per row: [(x0, x1)]

    def place(self, t, text, right):
        """(row, right): where the label of the marker at `t` goes, and on which side."""
        w = (len(text) * CHAR_PX + 6) * self.s_per_px
        if right and t - w < self.xlim[0] or not right and t + w > self.xlim[1]:
            right = not right
        x0, x1 = (t - w, t) if right else (t, t + w)
        for k, taken in enumerate(self.rows):
            if all(x1 < a or x0 > b for a, b in taken):
                taken.append((x0, x1))
                return k, right
        self.rows.append([(x0, x1)])
        return len(self.rows) - 1, right


def transitions(box_ev):
    """[(t, boot, gateway, label)] for each gateway_in_use: which change it was."""
    out = []
    failovers = 0
    last_boot = None
    for t, e in box_ev:
        if e["event"] != "gateway_in_use":
            continue
        boot, how, g = e.get("boot"), e.get("how"), e.get("gateway")
        if boot != last_boot:
            label = "%s %s" % ("start:" if last_boot is None else "after the reboot:", g)
        elif how == "failback":
            label = "failback to %s" % g
        else:
            failovers += 1
            label = "failover %d (%s) to %s" % (failovers, "cached key" if how == "cached_key" else "fresh key", g)
        last_boot = boot
        out.append((t, boot, g, label))
    return out


def plot(rows, path):
    """Draw the timeline of events.jsonl's `rows` into `path` (a PNG); what was drawn:
    {"lines": [(t, kind)], "labels": [text], "placed": [(text, row, side)], "legend": [text]}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn = {"lines": [], "labels": [], "placed": [], "legend": []}
    lanes = ["box"] + list(GATEWAYS)
    y = {n: len(lanes) - 1 - i for i, n in enumerate(lanes)}
    fig, ax = plt.subplots(figsize=(FIG_W, 5.4))
    box_ev = [(e["t_ms"] / 1000.0, e) for e in rows if e["node"] == "box"]
    faults = [(e["t_ms"] / 1000.0, e["event"], e.get("gateway")) for e in rows if e["node"] == "demo"]
    end = max([e["t_ms"] / 1000.0 for e in rows] + [1.0])
    xlim = (-0.02 * end, 1.02 * end)
    top, bottom = Labels(xlim), Labels(xlim)
    legend = []

    def vline(t, kind, **style):
        ax.axvline(t, **style)
        drawn["lines"].append((t, kind))

    def put_label(rows, y0, dy, t, text, color, right):
        drawn["labels"].append(text)
        k, right = rows.place(t, text, right)
        drawn["placed"].append((text, k, "left" if right else "right"))  # the side of the marker it is on
        ax.annotate(text, (t, y0 + dy * k), fontsize=8, color=color, ha="right" if right else "left",
                    textcoords="offset points", xytext=(-3 if right else 3, 0))

    def label_top(t, text, color, right):
        put_label(top, len(lanes) - 0.45, -0.2, t, text, color, right)

    def label_bottom(t, text, color):
        put_label(bottom, -0.75, 0.2, t, text, color, False)

    def once(handle):
        if handle.get_label() not in [h.get_label() for h in legend]:
            legend.append(handle)

    # the box's power cuts: the box is off, boots, dials and keys until a gateway is in use again
    cuts = [(t, what) for t, what, _g in faults if what.startswith("power cut")]
    uses = transitions(box_ev)
    for tc, _what in cuts:
        back = [t for t, _b, _g, _l in uses if t > tc]
        t1 = back[0] if back else end
        ax.broken_barh([(tc, t1 - tc)], (y["box"] - 0.3, 0.6), color="0.5", alpha=0.25)
        vline(tc, "power cut", color="black", ls="-", lw=1.2)
        label_top(tc, "power cut: the box reboots", "black", False)
        once(Patch(color="0.5", alpha=0.25, label="box rebooting: boots, dials, keys"))
    cut_times = [tc for tc, _w in cuts]
    # SA spans, seen from the box, on each gateway's lane; a power cut ends them all
    open_sa = {}

    def sa_span(peer, s0, s1):
        ax.broken_barh([(s0, s1 - s0)], (y[peer] - 0.12, 0.24), color="tab:purple", alpha=0.35)
        once(Patch(color="tab:purple", alpha=0.35, label="SA (key) held by the box"))

    pending = list(cut_times)
    for t, e in box_ev:
        ev, peer = e["event"], e.get("peer") or e.get("gateway")
        while pending and pending[0] < t:
            tc = pending.pop(0)
            for p, s0 in open_sa.items():
                sa_span(p, s0, tc)
            open_sa = {}
        if ev == "sa_established" and peer in y:
            open_sa[peer] = t
        elif ev == "sa_deleted" and peer in open_sa:
            sa_span(peer, open_sa.pop(peer), t)
    for peer, s0 in open_sa.items():
        sa_span(peer, s0, end)
    # which gateway carries the traffic: a thick bar, until the next change, its death or a power cut
    deads = [(t, e.get("gateway")) for t, e in box_ev if e["event"] == "gateway_dead"]
    for k, (t, _boot, g, _label) in enumerate(uses):
        stop = [d for d, dg in deads if dg == g and d > t] + [tc for tc in cut_times if tc > t]
        nxt = [u for u, _b, _g, _l in uses[k + 1:]]
        t1 = min(stop + nxt + [end])
        ax.broken_barh([(t, t1 - t)], (y[g] - 0.05, 0.1), color="tab:blue")
        once(Line2D([], [], color="tab:blue", lw=4, label="gateway in use"))
    # heartbeats: answered (green) vs never answered (red x); acks on the box lane
    acked = set((e.get("peer"), e.get("id"), e.get("boot")) for t, e in box_ev if e["event"] == "heartbeat_ack")
    for t, e in box_ev:
        if e["event"] == "heartbeat_sent":
            ok = (e.get("peer"), e.get("id"), e.get("boot")) in acked
            ax.plot([t], [y["box"] + 0.18], "o" if ok else "x", ms=5 if ok else 7, color="tab:green" if ok else "tab:red")
            once(Line2D([], [], marker="o", ls="", color="tab:green", label="heartbeat answered") if ok else
                 Line2D([], [], marker="x", ls="", color="tab:red", label="heartbeat never answered"))
    # messages handed on by each gateway
    for g in GATEWAYS:
        xs = [e["t_ms"] / 1000.0 for e in rows if e["node"] == g and e["event"] == "handed_on"]
        if xs:
            ax.plot(xs, [y[g] + 0.25] * len(xs), "|", ms=4, color="tab:gray")
            once(Line2D([], [], marker="|", ls="", color="tab:gray", label="message handed on"))
    # faults: frozen spans
    frz = {}
    for t, what, g in faults:
        if what == "freeze":
            frz[g] = t
        elif what == "thaw" and g in frz:
            s0 = frz.pop(g)
            ax.axvspan(s0, t, ymin=(y[g] + 0.1) / len(lanes), ymax=(y[g] + 0.9) / len(lanes),
                       color="tab:red", alpha=0.15, hatch="//")
            once(Patch(color="tab:red", alpha=0.15, hatch="//", label="gateway frozen (carrier up)"))
    # markers: a gateway declared dead (top label), each change of gateway (bottom label, which one)
    changes = [(t, label) for t, _b, _g, label in uses[1:]]
    joined = set()
    for t, g in deads:
        same = [c for c in changes if abs(c[0] - t) < SAME_MOMENT_S]
        vline(t, "dead and change" if same else "dead", color="tab:purple" if same else "tab:red",
              ls="-." if same else "--", lw=1)
        label_top(t, "%s declared dead" % g, "tab:red", True)
        joined.update(same)
    for t, label in changes:
        if (t, label) not in joined:
            vline(t, "change", color="tab:blue", ls=":", lw=1)
        label_bottom(t, label, "tab:blue")
    ax.set_yticks([y[n] for n in lanes])
    ax.set_yticklabels(["box (MicroPython)"] + ["gateway %s" % g for g in GATEWAYS])
    ax.set_ylim(-1, len(lanes) - 0.3)
    ax.set_xlim(*xlim)
    ax.set_xlabel("seconds since start")
    ax.set_title("gwbox: a box reboot and heartbeat failover across a gateway cluster (9,600 baud, embedded defaults)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8)
    drawn["legend"] = [h.get_label() for h in legend]
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return drawn
