"""The unix MicroPython port as a board: host stand-ins for the box firmware (tests, demo).

The UART is a pty (the modem emulator's box side), named by GWBOX_UART; the LAN side is a
UDP port on loopback (GWBOX_LAN_PORT); the policy file is GWBOX_POLICY. No DCD, DTR, LED
or watchdog: a pty has no modem lines, carrier loss arrives in band (NO CARRIER).
Used with boards/unix/machine.py, which stands in for the `machine` module.
"""
import os

UART_ID = os.getenv("GWBOX_UART")
BAUD = int(os.getenv("GWBOX_BAUD") or 9600)
TX = None
RX = None
RXBUF = 4096
DCD = None
DTR = None
LED = None
WDT_MS = 0
POLICY = os.getenv("GWBOX_POLICY") or "gwbox.policy"
NAME = os.getenv("GWBOX_NAME") or "box"


def lan():
    port = os.getenv("GWBOX_LAN_PORT")
    if not port:
        return None
    from gwbox.port.udplan import UdpLan
    return UdpLan(int(port), "127.0.0.1")
