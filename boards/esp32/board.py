"""ESP32 DevKitC (classic ESP32, 4 MB flash, no PSRAM) wired for gwbox (boards/README.md).

UART2 to the modem through an RS-232 level shifter, UART1 to the LAN-side serial device
(policy: LanUart), DCD/DTR on GPIOs, the on-board LED, the BOOT button as safe-mode
button, the REPL on UART0 (the USB bridge) for the console.
"""
BOARD = "esp32"
NAME = "box"  # the `node` of every event line
UART_ID = 2
BAUD = 9600
TX = 17
RX = 16
RXBUF = BAUD // 20  # half a second of line: twice the longest pass of the loop (250 ms, docs/crypto.md)
DCD = 4  # modem carrier detect (active low after the level shifter)
DTR = 5
LED = 2  # on-board LED: lit while the protected link carries payload
WDT_MS = 30000
POLICY = "gwbox.policy"  # on the board's littlefs; P.bak, P.tmp and gwbox.boot beside it
SAFE_WAIT_MS = 3000  # a key on the console this long after boot: safe mode
LAN_UART = (1, 26, 27, 9600)  # (UART id, TX, RX, baud): the till / alarm panel / PLC side


def safe_button():
    """The BOOT button (GPIO0, pulled up, low while pressed) held at boot: safe mode."""
    from machine import Pin
    return Pin(0, Pin.IN, Pin.PULL_UP).value() == 0


def entropy():
    """Boot entropy for gwbox.crypto.entropy (docs/crypto.md): 32 bytes of the hardware RNG
    drawn while the radio is on, and the low bits of ADC noise on an unconnected pin.

    The ESP32's RNG mixes RF noise into its output only while Wi-Fi or Bluetooth runs (else
    it is a pseudo-random generator seeded at boot): switching the station interface on,
    unconnected, makes those 32 bytes true random numbers (Espressif TRM, Random Number
    Generator). 256 such bits are more than the pool needs; the ADC bits are a second,
    independent source. The interface goes back to how it was."""
    import os
    from machine import ADC, Pin
    import network
    w = network.WLAN(network.STA_IF)
    was = w.active()
    w.active(True)
    rf = os.urandom(32)
    if not was:
        w.active(False)
    adc = ADC(Pin(36))  # SENSOR_VP: not connected on the DevKitC
    noise = bytes(adc.read_u16() & 0xFF for _ in range(32))
    return rf + noise


def lan():
    """The UDP LAN side over Wi-Fi, once boot.py has joined a network; else none."""
    import network
    w = network.WLAN(network.STA_IF)
    if not (w.active() and w.isconnected()):
        return None
    from gwbox.port.udplan import UdpLan
    return UdpLan(5000)
