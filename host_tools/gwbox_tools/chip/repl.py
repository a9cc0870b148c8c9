"""MicroPython's REPL on the chip's USB console: the prompt, and scripts through the raw REPL.

The raw REPL is what mpremote uses: Ctrl-A, the code, Ctrl-D; the board answers "OK",
the script's output, Ctrl-D, its exception text, Ctrl-D, ">". The device time between "OK"
and the first Ctrl-D is the script's run time on the chip.
"""
from gwbox_tools.chip.runner import ChipError

BOOT_LIMIT_MS = 5000


def wait_prompt(chip, limit_ms=BOOT_LIMIT_MS):
    """Wait for the USB console, interrupt whatever runs, and wait for the '>>> ' prompt."""
    chip.run_while(lambda: not chip.usb_up, limit_ms=limit_ms)
    start = len(chip.usb_out)
    chip.usb_write(b"\r\x03\x03")
    chip.run_while(lambda: b">>> " not in chip.usb_out[start:], limit_ms=limit_ms)


class Result:
    """A script's run: its output (bytes), its exception text (bytes, empty if none), and
    the device time it took (ms), from the board's "OK" to the end of its output."""

    def __init__(self, out, err, device_ms):
        self.out = out
        self.err = err
        self.device_ms = device_ms


def exec_raw(chip, code, limit_ms):
    """Run `code` (str or bytes) through the raw REPL; a Result. ChipError when the chip
    does not finish within limit_ms of device time."""
    if isinstance(code, str):
        code = code.encode()
    start = len(chip.usb_out)
    chip.usb_write(b"\x01")
    chip.run_while(lambda: not chip.usb_out[start:].endswith(b"raw REPL; CTRL-B to exit\r\n>"),
                   limit_ms=BOOT_LIMIT_MS)
    start = len(chip.usb_out)
    chip.usb_write(code + b"\x04")
    chip.run_while(lambda: b"OK" not in chip.usb_out[start:], step_ms=1.0, limit_ms=BOOT_LIMIT_MS + len(code))
    t0 = chip.us
    body = start + chip.usb_out.index(b"OK", start) + 2 - start
    chip.run_while(lambda: b"\x04" not in chip.usb_out[body:], step_ms=1.0, limit_ms=limit_ms)
    t1 = chip.us
    chip.run_while(lambda: chip.usb_out[body:].count(b"\x04") < 2 or not chip.usb_out.endswith(b">"),
                   step_ms=1.0, limit_ms=BOOT_LIMIT_MS)
    out, err = bytes(chip.usb_out[body:]).split(b"\x04")[:2]
    chip.usb_write(b"\x02")  # back to the friendly REPL
    return Result(out, err, (t1 - t0) / 1000.0)


def check_answer(result, what):
    if result.err:
        raise ChipError("%s failed on the chip:\n%s" % (what, result.err.decode(errors="replace")))
    return result
