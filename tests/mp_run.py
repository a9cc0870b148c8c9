"""Runner for the dual-runtime firmware suite (tests/firmware/test_*.py).

Runs under the real `micropython` unix binary (and CPython): imports each test
module, calls every `test_*` function, reports failures with their traceback and
ends with the line `N passed, N failed`. Exit status 1 if anything failed.

    micropython -X heapsize=64K tests/mp_run.py [test_module.py ...]
"""
import sys
import gc

if hasattr(gc, "threshold"):
    # Collect early, as a device's main.py does (firmware/gwbox/port/pipe.py too), so
    # garbage does not fragment a small heap into holes too small for the next packet.
    gc.threshold(2048)


def _dirname(p):
    i = p.rfind("/")
    return p[:i] if i > 0 else "."


HERE = _dirname(__file__)
ROOT = _dirname(HERE) if HERE != "." else ".."
# Prefer the .mpy build (what a device loads; tests/mp_suite.py makes it) over source.
for p in (ROOT + "/firmware", HERE + "/firmware", ROOT + "/build/mpy/lib", ROOT + "/build/mpy/tests"):
    if p not in sys.path:
        sys.path.insert(0, p)


def _print_exc(e):
    if hasattr(sys, "print_exception"):
        sys.print_exception(e)
    else:
        import traceback
        traceback.print_exception(type(e), e, e.__traceback__)


def _modules(argv):
    import os
    if argv:
        names = [a.split("/")[-1] for a in argv]
    else:
        names = sorted(n for n in os.listdir(HERE + "/firmware")
                       if n.startswith("test_") and n.endswith(".py"))
    return [n[:-3] if n.endswith(".py") else n for n in names]


def run_module(name):
    passed = failed = 0
    before = set(sys.modules)
    try:
        mod = __import__(name)
    except Exception as e:
        print("FAIL %s (import)" % name)
        _print_exc(e)
        return 0, 1
    tests = sorted(k for k in dir(mod) if k.startswith("test_"))
    for t in tests:
        fn = getattr(mod, t)
        try:
            fn()
            passed += 1
            print("ok   %s.%s" % (name, t))
        except Exception as e:
            failed += 1
            print("FAIL %s.%s" % (name, t))
            _print_exc(e)
        gc.collect()
    for m in list(sys.modules):
        if m not in before:
            del sys.modules[m]
    gc.collect()
    return passed, failed


def main(argv):
    total_p = total_f = 0
    for name in _modules(argv):
        p, f = run_module(name)
        total_p += p
        total_f += f
    impl = sys.implementation.name
    print("%s: %d passed, %d failed" % (impl, total_p, total_f))
    return 1 if total_f or not total_p else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
