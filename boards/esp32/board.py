"""ESP32 DevKitC wiring for gwbox: UART2 to the modem through an RS-232 level shifter."""
UART_ID = 2
BAUD = 9600
TX = 17
RX = 16
RXBUF = 1024  # > 20 ms of 115,200 baud; the node polls every 20 ms
DCD = 4  # modem carrier detect (active low after the level shifter)
DTR = 5
LED = 2  # on-board LED: lit while the protected link carries payload
WDT_MS = 30000
