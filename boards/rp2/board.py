"""Raspberry Pi Pico W wiring for gwbox: UART0 on GP0/GP1 to the modem's level shifter."""
UART_ID = 0
BAUD = 9600
TX = 0
RX = 1
RXBUF = 1024
DCD = 2
DTR = 3
LED = "LED"  # the Pico W's LED hangs off the wireless chip
WDT_MS = 8000  # RP2040 watchdog maximum is 8.3 s
