"""A box and a gateway over the modem emulator, in real time: one rig for the demo, the
benchmarks and the end-to-end tests.

The box is a Node with a Modem on the emulator's modem pty and dials "gw1"; the gateway
is a modemless Node reached through the emulator either on its own pty or on a loopback
TCP port. Everything it starts, `close` stops (also on a failed start).
"""
from gwbox.endpoint import Endpoint
from gwbox.link.modem import Modem
from gwbox.node import Node
from gwbox_tools.modem_emu import ModemEmulator
from gwbox_tools.runner import Runner


class LinkRig:
    def __init__(self, cfg, psk, baud=9600, gateway="tcp", latency_ms=20, control=None, modem=None,
                 box_runner=None, gw_runner=None):
        """`modem`: extra Modem arguments; `box_runner`/`gw_runner`: extra Runner arguments
        (events, on_event, on_received, keep_events)."""
        self.cfg = cfg
        self.baud = baud
        self.emu = self.box = self.gw = None
        gw_node = Node(Endpoint(cfg, b"gw1", psks={b"box1": psk}))
        box_node = Node(Endpoint(cfg, b"box1", psk=psk, expect_peer=b"gw1"),
                        Modem(dial_target="gw1", baud=baud, **(modem or {})))
        try:
            if gateway == "pty":
                self.emu = ModemEmulator(baud=baud, gateways={"gw1": "pty"}, latency_ms=latency_ms,
                                         control=control).start()
                self.gw = Runner(gw_node, self.emu.gateway_paths["gw1"], "gw1", baud, **(gw_runner or {})).start()
            else:
                self.gw = Runner(gw_node, "listen:127.0.0.1:0", "gw1", baud, **(gw_runner or {})).start()
                self.emu = ModemEmulator(baud=baud, gateways={"gw1": self.gw.address[1]}, latency_ms=latency_ms,
                                         control=control).start()
            self.box = Runner(box_node, self.emu.box_path, "box1", baud, **(box_runner or {})).start()
        except BaseException:
            self.close()
            raise

    def close(self):
        """Stop both runners, then the emulator. Idempotent."""
        for r in (self.box, self.gw):
            if r is not None:
                r.stop()
        if self.emu is not None:
            self.emu.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
