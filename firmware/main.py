"""Device entry point: build the node from the board file and the box settings, run it.

`board.py` (from boards/<board>/, frozen or copied to the device) names the pins;
`/gwbox.json` holds this box's settings: identity, the hex PSK, the gateway's identity
and dial target, and optional LinkConfig overrides. (The policy-file format of the
cluster work will replace this file.) Nothing secret is ever printed.
"""
import gc
import json

import machine

import board
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.link.modem import Modem
from gwbox.node import Node
from gwbox.port.device import DevicePort

gc.threshold(2048)  # collect early: see docs/memory.md

with open("/gwbox.json") as f:
    settings = json.load(f)
cfg = LinkConfig(**settings.get("link", {}))
endpoint = Endpoint(cfg, settings["identity"].encode(), psk=bytes.fromhex(settings["psk"]),
                    expect_peer=settings["gateway"].encode())
modem = Modem(dial_target=settings["dial"], baud=board.BAUD)
uart = machine.UART(board.UART_ID, baudrate=board.BAUD, tx=machine.Pin(board.TX), rx=machine.Pin(board.RX),
                    rxbuf=board.RXBUF)


def pin(name, mode):
    return None if name is None else machine.Pin(name, mode)


port = DevicePort(Node(endpoint, modem), uart, dcd=pin(board.DCD, machine.Pin.IN),
                  dtr=pin(board.DTR, machine.Pin.OUT), led=pin(board.LED, machine.Pin.OUT),
                  wdt=machine.WDT(timeout=board.WDT_MS) if board.WDT_MS else None, log=print)
port.run()
