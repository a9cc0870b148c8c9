"""The whole box on its chip: main.py, boards/pico_emu and a policy on the emulated RP2040
(MicroPython v1.28.0, gwbox from the ROMFS partition, as CI runs it), against the virtual
head office in lockstep with the chip's clock (tests/host/chiprig.py, docs/chip.md).

One scenario, one boot (about 60 s of device time, a minute or two of host time): dial the
access server, handshakes with both clusters, 100 messages from the LAN-side serial device,
a console session over USB CDC, a fresh-key and a cached-key failover, heartbeats all along.
Everything asserted is device time or a count, never host time."""
import pytest

import chiprig
from chiprig import G1, G2, G3, G4
import leakcheck
from leakcheck import limit

nothing_leaks, time_limit = leakcheck.nothing_leaks, leakcheck.time_limit  # autouse: a limit, no leaks

TEST_LIMIT_S = 600
pytestmark = pytest.mark.xdist_group("cpu")  # CPU-bound: one such test at a time in `make test` (Makefile)


@limit(600)
def test_the_box_runs_its_job_on_the_chip():
    with chiprig.ChipRig(form="romfs") as rig:
        sc = chiprig.run_scenario(rig)
        # 0 messages lost: every byte the LAN device sent reached the target, in order, once
        assert len(sc.sent) == chiprig.MESSAGES * 6
        assert sc.stream == sc.sent
        # the watchdog runs and never fired; the UARTs dropped no byte
        assert sc.stats["wdtEnabled"] is True
        assert sc.stats["wdtResets"] == 0 and sc.stats["resets"] == 0
        assert sc.stats["overruns"] == [0, 0] and sc.stats["rxDropped"] == [0, 0]
        # nor did the box drop line bytes its UART could not take at once (the device port holds them)
        assert all(r["tx_dropped"] == 0 for _, r in rig.find("status"))
        # and every frame reached the head office whole (a UART write cut short broke frames)
        assert rig.sim.modem.framer.bad_fcs == 0 and rig.sim.modem.framer.bytes_discarded == 0
        assert len(rig.find("boot")) == 1 and not rig.find("crash") and not rig.find("out_of_memory")
        # the console over USB CDC, beside the running box
        assert sc.console["status"]["ok"] and sc.console["status"]["msg"] == "running"
        assert sc.console["status"]["status"]["line"] == "up"
        assert sc.console["show log"]["ok"]
        assert sc.console["login"]["ok"]
        assert sc.console["test link"]["ok"] and sc.console["test link"]["gateway"] == G1
        assert sc.console["logout"]["ok"]
        # both failovers, each through a gateway other than the frozen G1
        assert sc.failover["fresh"]["gateway"] in (G2, G3) and sc.failover["cached"]["gateway"] in (G2, G3)
        assert rig.find("gateway_in_use", how="cached_key", cluster="Cluster1")
        # G4 (never frozen) stays in use on heartbeats alone; those sent while the box ran a
        # handshake in Cluster1 are answered at their first sending, within the response time
        # (a loop that starved the UART during the key exchange would make them late). Outside
        # handshakes an answer can come late (docs/chip.md: console commands cost long passes).
        hbs = chiprig.heartbeats(rig, G4)
        assert len(hbs) >= 10
        hs = chiprig.handshakes(rig, (G1, G2, G3))
        assert len(hs) >= 3  # at boot, the fresh failover, the failback
        during = [h for h in hbs if any(a <= h[0] <= b for a, b in hs)]
        assert during, (hbs, hs)
        assert all(attempt == 1 and rtt is not None and rtt <= chiprig.RESPONSE_MS
                   for _, attempt, rtt in during), (during, hs)
        assert not rig.find("gateway_dead", gateway=G4)
