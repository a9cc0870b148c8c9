"""Raspberry Pi Pico W wired for gwbox (boards/README.md).

UART0 (GP0/GP1) to the modem's level shifter, UART1 (GP4/GP5) to the LAN-side serial
device (policy: LanUart), DCD/DTR on GP2/GP3, the LED on the wireless chip, the BOOTSEL
button as safe-mode button, the REPL on USB (CDC) for the console.
"""
BOARD = "pico_w"
NAME = "box"
UART_ID = 0
BAUD = 9600
TX = 0
RX = 1
RXBUF = BAUD // 20  # half a second of line: twice the longest pass of the loop (250 ms, docs/crypto.md)
DCD = 2
DTR = 3
LED = "LED"  # the Pico W's LED hangs off the wireless chip
WDT_MS = 8000  # RP2040 watchdog maximum is 8.3 s
GC_THRESHOLD = 16384  # collect every 16 KB allocated, not main.py's 2 KB: 200K+ free here (docs/chip.md)
AHEAD = True  # heap to spare: the next handshake's key and a failover's code made ahead (docs/chip.md)
POLICY = "gwbox.policy"
SAFE_WAIT_MS = 3000
LAN_UART = (1, 4, 5, 9600)


def safe_button():
    """BOOTSEL held at boot (rp2.bootsel_button, MicroPython >= 1.20): safe mode."""
    import rp2
    return rp2.bootsel_button() == 1


def entropy():
    """Boot entropy (docs/crypto.md): the low bits of the temperature sensor's ADC readings
    (thermal noise) and 32 bytes of os.urandom (the RP2040's ring-oscillator bit)."""
    import os
    from machine import ADC
    adc = ADC(4)
    return os.urandom(32) + bytes(adc.read_u16() & 0xFF for _ in range(64))


def lan():
    """The UDP LAN side over Wi-Fi, once boot.py has joined a network; else none."""
    import network
    w = network.WLAN(network.STA_IF)
    if not (w.active() and w.isconnected()):
        return None
    from gwbox.port.udplan import UdpLan
    return UdpLan(5000)
