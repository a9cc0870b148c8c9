"""The least `-X heapsize` at which a scenario passes every run: shared by mp_heap.py (two
protocol nodes) and mp_box_heap.py (the whole box).

Key material is random, so heap use varies from run to run: the search bisects in 1K
steps between a floor that must fail (checked, so the range reaches well below the
answer) and a heap that passes (64K, doubled until one does), with `bisect_runs` runs per
step, then needs `confirm_runs` (20) passing runs at the answer, stepping up 1K until all
of them pass. Runs go `parallel` at a time, each in its own processes.
"""
import os
import subprocess
import sys
import threading

from gwbox_tools import mpy_build

BISECT_RUNS = int(os.environ.get("GWBOX_HEAP_BISECT_RUNS", "3"))
CONFIRM_RUNS = int(os.environ.get("GWBOX_HEAP_CONFIRM_RUNS", "20"))


class HeapSearch:
    """`scenario(exe, heap_k)` returns None when a run passed, else why it did not."""

    def __init__(self, tag, scenario, low_k, parallel, bisect_runs=BISECT_RUNS, confirm_runs=CONFIRM_RUNS):
        self.tag = tag
        self.scenario = scenario
        self.low_k = low_k
        self.parallel = parallel
        self.bisect_runs = bisect_runs
        self.confirm_runs = confirm_runs

    def runs_pass(self, exe, heap_k, n, log):
        """n runs at heap_k; True if every one passed (stops after the first batch with a failure)."""
        done = 0
        while done < n:
            batch = min(self.parallel, n - done)
            results = [None] * batch
            threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, self.scenario(exe, heap_k)))
                       for k in range(batch)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done += batch
            fails = [r for r in results if r is not None]
            log.append({"heap_k": heap_k, "runs": batch, "failed": len(fails), "why": fails[:2]})
            print("%s: %s %dK: %d/%d passed%s" % (self.tag, os.path.basename(exe), heap_k, batch - len(fails),
                                                 batch, (" (" + fails[0] + ")") if fails else ""),
                  file=sys.stderr, flush=True)
            if fails:
                return False
        return True

    def least_heap(self, exe, log):
        hi = 64
        while not self.runs_pass(exe, hi, self.bisect_runs, log):  # a heap that passes
            hi *= 2
            if hi > 1024:
                raise SystemExit("%s: the scenario fails even at 1024K (%s)" % (self.tag, exe))
        lo = self.low_k
        if self.runs_pass(exe, lo, 1, log):
            raise SystemExit("%s: the scenario passes at the search floor %dK: lower it" % (self.tag, lo))
        while hi - lo > 1:  # lo fails, hi passes
            mid = (lo + hi) // 2
            if self.runs_pass(exe, mid, self.bisect_runs, log):
                hi = mid
            else:
                lo = mid
        while not self.runs_pass(exe, hi, self.confirm_runs, log):  # all confirm runs at the answer, else +1K
            hi += 1
        return hi


def mp_run(tag, exe, code, cwd, path, heap="256K", env=None):
    """Run `code` under `exe` (MICROPYPATH=path, and `env`) and return its output's words."""
    env = dict(os.environ, **(env or {}))
    env["MICROPYPATH"] = path
    r = subprocess.run([exe, "-X", "heapsize=" + heap, "-c", code], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit("%s: %s failed: %s%s" % (tag, exe, r.stdout, r.stderr))
    return r.stdout.split()


def word_bits(tag, exe, cwd):
    """struct.calcsize("P") * 8 of the interpreter: 32 on a board, 64 for the pip one."""
    return int(mp_run(tag, exe, "import struct\nprint(struct.calcsize('P') * 8)", cwd, "")[-1])


def interpreters(notes, keys):
    """[(key prefix, interpreter)]: the .venv one ("mp", 64-bit) and the 32-bit one ("mp32")
    where there is one; without it, a note that the `keys` were not measured."""
    exes = [("mp", mpy_build.micropython_binary())]
    exe32 = mpy_build.micropython32_binary()
    if exe32:
        exes.append(("mp32", exe32))
    else:
        notes.append("no 32-bit interpreter (MICROPYTHON32 or ../shared/tools/micropython32/micropython): "
                     "%s keys not measured" % keys)
    return exes
