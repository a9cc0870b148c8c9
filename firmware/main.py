"""Device entry point: the policy file -> a box on the board's UART (gwbox.port.device).

`board.py` (boards/<board>/, frozen or copied to the device) names the pins and where the
policy file lives; the policy (docs/policy.md) says everything else. The parser is needed
once: it leaves the heap before the box is built. Nothing secret is ever printed.
"""
import gc

gc.threshold(2048)  # collect early: see docs/memory.md

import sys  # noqa: E402

import board  # noqa: E402
import machine  # noqa: E402


def load_policy(path):
    from gwbox.policy import parse
    with open(path) as f:
        text = f.read()
    p = parse(text)
    sys.modules.pop("gwbox.policy", None)
    gc.collect()
    return p


def pin(name, mode):
    return None if name is None else machine.Pin(name, mode)


def main():
    policy = load_policy(board.POLICY)
    from gwbox.box import Box
    from gwbox.link.modem import Modem
    from gwbox.port.device import DevicePort
    import time
    uart = machine.UART(board.UART_ID, baudrate=board.BAUD, tx=pin(board.TX, machine.Pin.OUT),
                        rx=pin(board.RX, machine.Pin.IN), rxbuf=board.RXBUF)
    modem = Modem(init=policy.modem_init, baud=board.BAUD, max_attempts=2, use_dtr=board.DTR is not None)
    box = Box(policy, modem, start=time.ticks_ms() & 0x3FFFFFFF)
    lan = board.lan() if hasattr(board, "lan") else None
    port = DevicePort(box, uart, dcd=pin(board.DCD, machine.Pin.IN), dtr=pin(board.DTR, machine.Pin.OUT),
                      led=pin(board.LED, machine.Pin.OUT), lan=lan, log=print,
                      wdt=machine.WDT(timeout=board.WDT_MS) if board.WDT_MS else None,
                      name=getattr(board, "NAME", "box"), status_ms=policy.status_ms)
    port.run()


main()
