"""gwbox_tools.mp_box: a power cut in the middle of traffic (power_cycle) and the box back on
the same files, UART and LAN port, as the demo's reboot needs it; what it takes afterwards is
delivered (the per-boot epoch)."""
import time

import pytest

from gwbox_tools.cluster_rig import GATEWAYS, ClusterRig
from gwbox_tools.mpy_build import device_interpreter

pytestmark = pytest.mark.timeout(180)


def test_power_cycle_mid_traffic_starts_the_box_again_on_the_same_port_and_files():
    exe, heap, _what = device_interpreter()
    with ClusterRig(heap=heap, micropython=exe) as rig:
        box = rig.box
        rig.wait_box("gateway_in_use", 60, gateway=GATEWAYS[0])
        with rig.traffic(rate=8, count=12) as tr:
            tr.join(30)
        assert rig.wait_delivered(range(1, 13), 20), sorted(rig.delivered())
        before = box.count()
        port, pid = box.lan_port, box.proc.pid
        assert box.power_cycle() == 2 and box.boots == 2
        assert box.proc.pid != pid and box.lan_port == port
        run = box.running(30)
        assert run is not None and run["boot"] == 2, box.stderr[-10:]
        boot = box.find("boot", before)
        assert [e["boot"] for e in boot] == [2] and boot[0]["boots"] == 2, boot  # the boot record counted it
        # the new box takes LAN payload at once (its outbox holds it while it dials and keys)
        for i in range(13, 21):
            rig.send(i)
            time.sleep(0.1)
        use = rig.wait_box("gateway_in_use", 60, before)
        # G1, the preferred gateway, alive and behind the same access server as the others:
        # nothing the box lived through (a call left up by the power cut, whose far end
        # answers its first ATZ with frames) is a reason to key another one.
        assert use["boot"] == 2 and use["gateway"] == GATEWAYS[0], (
            use, [(e["event"], e.get("gateway") or e.get("reason") or e.get("result"))
                  for e in box.events[before:] if e["event"] != "status"])
        st = box.wait_event(lambda e: e["event"] == "status" and e["boot"] == 2 and e.get("outbox") == 0, 30)
        assert st is not None and st["accepted"] == 8, st  # taken, sent and confirmed: nothing left in RAM
        # numbered from 1 again, under a new boot epoch: handed on, not taken for replays
        assert rig.wait_delivered(range(13, 21), 20), sorted(rig.delivered())
        assert all(len(ts) == 1 for ts in rig.delivered().values())
        assert box.alive() and box.exit_code is None
        assert all(e["boot"] == 1 for e in box.events[:before])
