"""Device entry point: board.py + the stored policy -> the box, or safe mode (docs/console.md).

`board.py` (boards/<board>/, frozen or copied to the device) names the pins, the policy
file and the safe-mode button; the policy (docs/policy.md) says everything else.
gwbox.start does the boot and is dropped, with the policy parser, before the box runs.
A crash is reported and the board reset; CRASH_LIMIT boots in a row that end within a
minute start it in safe mode instead of a reset loop. Nothing secret is ever printed.
"""
import gc

gc.threshold(2048)  # collect early: see docs/memory.md

import sys  # noqa: E402

import board  # noqa: E402
import machine  # noqa: E402

gc.threshold(getattr(board, "GC_THRESHOLD", 2048))  # a board with heap to spare collects less often


def main():
    port = None
    try:
        import gwbox.start
        port = gwbox.start.boot(board, machine)
        del sys.modules["gwbox.start"]
        del gwbox.start
        gc.collect()
        port.run()  # returns only in safe mode, for the REPL
    except Exception as e:  # the box must come back, whatever went wrong
        try:
            from gwbox.events import json_line
            print(json_line(-1, getattr(board, "NAME", "box"), "crash", {"error": type(e).__name__}))
        except Exception:
            pass
        sys.print_exception(e)
        import time
        time.sleep_ms(1000)
        try:
            if port is not None:
                port.restart()  # what the outbox held is reported lost, then the reset
        except Exception:
            pass
        machine.reset()


main()
