"""A Raspberry Pi Pico (no Wi-Fi) wired for gwbox, as the emulated RP2040 runs it (docs/chip.md).

The wiring of boards/pico_w (UART0 on GP0/GP1 to the modem, UART1 on GP4/GP5 to the
LAN-side serial device, DCD/DTR on GP2/GP3), with what the emulator cannot be trusted
with left out (shared/tools/rp2/README.md): the safe-mode button is a GPIO (GP22, to
ground, pulled up) instead of BOOTSEL, the LED is GP25 (a plain Pico's; no wireless
chip), and there is no UDP LAN side. `gwbox_tools.chip` drives GP2 (DCD) from the modem
emulator's carrier, watches GP3 (DTR) and holds GP22 high unless a test presses it.
The same file serves a real plain Pico wired so.
"""
BOARD = "pico_emu"
NAME = "box"
UART_ID = 0
BAUD = 9600
TX = 0
RX = 1
RXBUF = BAUD // 20  # half a second of line: twice the longest pass of the loop (250 ms, docs/crypto.md)
DCD = 2
DTR = 3
LED = 25  # a plain Pico's LED
SAFE_PIN = 22  # safe-mode button: GP22 to ground
WDT_MS = 8000  # RP2040 watchdog maximum is 8.3 s
GC_THRESHOLD = 16384  # collect every 16 KB allocated, not main.py's 2 KB: 200K+ free here (docs/chip.md)
AHEAD = True  # heap to spare: the next handshake's key and a failover's code made ahead (docs/chip.md)
POLICY = "gwbox.policy"
SAFE_WAIT_MS = 3000
LAN_UART = (1, 4, 5, 9600)


def safe_button():
    """GP22 held low at boot: safe mode. (rp2040js 1.4.1 reads BOOTSEL as pressed, so the
    emulated board must not use it; a GPIO behaves the same on the chip and in the emulator.)"""
    from machine import Pin
    return Pin(SAFE_PIN, Pin.IN, Pin.PULL_UP).value() == 0


def entropy():
    """Boot entropy (docs/crypto.md), as on boards/pico_w: 32 bytes of os.urandom (the
    RP2040's ring-oscillator bit) and the low bits of the temperature sensor's ADC readings.
    In the emulator both are fixed (the ADC reads 0), so an emulated box's keys are not
    secret: it is a test bench, never a box in service."""
    import os
    from machine import ADC
    adc = ADC(4)
    return os.urandom(32) + bytes(adc.read_u16() & 0xFF for _ in range(64))
