"""The unix MicroPython port as a board: host stand-ins for the box firmware (tests, demo).

The UART is a pty (the modem emulator's box side), named by GWBOX_UART; the console is
the interpreter's stdin/stdout (gwbox_tools.mp_box puts a pty behind them, as a board's
USB serial); the LAN side is a UDP port on loopback (GWBOX_LAN_PORT) and, with
GWBOX_LAN_UART, a second "UART" on another pty; the policy file is GWBOX_POLICY and the
box's other files go beside it. No DCD, DTR, LED or watchdog: a pty has no modem lines,
carrier loss arrives in band (NO CARRIER). GWBOX_SAFE_WAIT_MS opens the boot window for a
safe-mode key (0, none, unless set); GWBOX_SAFE_BUTTON=1 is the safe button held at boot;
GWBOX_POWER_CUT_AT=n cuts the power at the n-th file system step (powercut.py);
GWBOX_ROMFS=image mounts a ROMFS image at /rom, as a board with a ROMFS partition (romfs.py).
Used with boards/unix/machine.py, which stands in for the `machine` module.
"""
import os
import sys

if os.getenv("GWBOX_ROMFS"):  # the firmware from a ROMFS image, as a board with a ROMFS partition
    import romfs
    romfs.mount(os.getenv("GWBOX_ROMFS"))
    del romfs, sys.modules["romfs"]

BOARD = "unix"
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
SAFE_WAIT_MS = int(os.getenv("GWBOX_SAFE_WAIT_MS") or 0)
LAN_UART = (os.getenv("GWBOX_LAN_UART"), None, None) if os.getenv("GWBOX_LAN_UART") else None


def fs():
    """The box's files on the host; with GWBOX_POWER_CUT_AT=n the power fails at the n-th step
    of a write (boards/unix/powercut.py)."""
    if not os.getenv("GWBOX_POWER_CUT_AT"):
        return None
    from powercut import CutFs
    return CutFs(int(os.getenv("GWBOX_POWER_CUT_AT")))


def safe_button():
    return os.getenv("GWBOX_SAFE_BUTTON") == "1"


def lan():
    port = os.getenv("GWBOX_LAN_PORT")
    if not port:
        return None
    from gwbox.port.udplan import UdpLan
    return UdpLan(int(port), "127.0.0.1")
