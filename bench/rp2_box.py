"""The whole box on the emulated RP2040: the chip scenario of tests/host/test_chip_box.py
(tests/host/chiprig.py: main.py, boards/pico_emu, the head office in lockstep with the chip's
clock), measured in device time, once per shipping form.

Forms run by default (the images in shared/tools/rp2, so CI can run them):
  romfs            gwbox in the ROMFS partition of RPI_PICO_ROMFS256K (as `gwbox deploy --romfs`)
  littlefs         gwbox as .mpy files on littlefs, stock RPI_PICO
  littlefs_pico_w  the same on a stock RPI_PICO_W (200K free after boot instead of 240K)
`--form frozen --image X.uf2` runs the image X with gwbox frozen in instead (built outside
the project, boards/README.md); `--form F --image I` any other pair. Keys (device time):
  rp2_loop_max_ms              the longest pass of the box's loop during its handshakes (goal
                               <= 250), from the ROMFS run: the device port's pass_recent_ms
                               (the longest pass since the status line before) of the status
                               intervals (1 s) that overlap a handshake
  rp2_loop_max_any_ms          the longest pass since boot, whatever it did (pass_max_ms of the
                               last status line: boot, console commands included)
  rp2_failover_fresh_ms        G1 frozen -> the first message handed on by another gateway,
                               which the box keyed anew; rp2_failover_fresh_detect_ms: -> the
                               box's gateway_dead
  rp2_failover_cached_ms       the same with the key of a gateway used before (cached)
  rp2_box_min_free_bytes_<form>  the least gc.mem_free() of the status lines (after a collection)
  rp2_uart_overruns            bytes lost to a full RX FIFO, both UARTs, every run: 0
  rp2_wdt_resets               watchdog resets, every run: 0
  rp2_scenario_device_ms       device time of the ROMFS run
    python bench/rp2_box.py [--form F --image I]    (prints one JSON object)
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, p) for p in ("firmware", "tests/firmware", "tests/host", "host_tools")]

from gwbox.port import host_aes  # noqa: E402

host_aes.install()
import chiprig  # noqa: E402

DEFAULT_RUNS = (("romfs", "romfs", None), ("littlefs", "littlefs", "pico"), ("littlefs_pico_w", "littlefs", "pico_w"))


def one(form, image):
    t0 = time.monotonic()
    with chiprig.ChipRig(form=form, image=image) as rig:
        sc = chiprig.run_scenario(rig)
        if sc.stream != sc.sent:
            raise SystemExit("rp2_box: messages lost in the %s form" % form)
        status = [r for _, r in rig.records if r.get("event") == "status"]
        hs = chiprig.handshakes(rig, (chiprig.G1, chiprig.G2, chiprig.G3, chiprig.G4))
        # pass_recent_ms: the longest pass since the status line before (the intervals that
        # overlap a handshake; the status line's own pass counts in the next one)
        during = [0]
        prev_t = 0
        for r in status:
            if any(a <= r["t_ms"] and b >= prev_t for a, b in hs):
                during.append(r["pass_recent_ms"])
            prev_t = r["t_ms"]
        return {
            "loop_max_ms": max(during), "loop_max_any_ms": status[-1]["pass_max_ms"],
            "min_free": min(r["heap_free"] for r in status),
            "fresh": sc.failover["fresh"], "cached": sc.failover["cached"],
            "overruns": sum(sc.stats["overruns"]), "wdt_resets": sc.stats["wdtResets"],
            "device_ms": sc.end_ms, "host_s": round(time.monotonic() - t0, 1), "handshakes": len(hs),
        }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--form", choices=("romfs", "littlefs", "frozen"))
    ap.add_argument("--image", help="an image name of gwbox_tools.chip.images or a .uf2[.gz] path")
    args = ap.parse_args(argv)
    if args.form:
        name = args.form if args.form != "littlefs" or args.image in (None, "pico") else "littlefs_" + args.image
        runs = ((name, args.form, args.image),)
    else:
        runs = DEFAULT_RUNS
    out = {}
    detail = {}
    for name, form, image in runs:
        r = one(form, image)
        detail[name] = r
        out["rp2_box_min_free_bytes_" + name] = r["min_free"]
    main_run = detail[runs[0][0]]
    out.update({
        "rp2_loop_max_ms": main_run["loop_max_ms"],
        "rp2_loop_max_any_ms": main_run["loop_max_any_ms"],
        "rp2_failover_fresh_ms": main_run["fresh"]["ms"],
        "rp2_failover_fresh_detect_ms": main_run["fresh"]["detect_ms"],
        "rp2_failover_cached_ms": main_run["cached"]["ms"],
        "rp2_failover_cached_detect_ms": main_run["cached"]["detect_ms"],
        "rp2_uart_overruns": sum(r["overruns"] for r in detail.values()),
        "rp2_wdt_resets": sum(r["wdt_resets"] for r in detail.values()),
        "rp2_scenario_device_ms": main_run["device_ms"],
    })
    if runs is not DEFAULT_RUNS:
        # another form's run (e.g. frozen): its own suffix, so it merges beside the CI forms' keys
        out = {k if k.startswith("rp2_box_min_free") else k + "_" + runs[0][0]: v for k, v in out.items()}
    out["rp2_box_detail"] = detail
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
