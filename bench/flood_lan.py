"""A box's login while forged SA_INITs flood the gateway from changing head-office LAN sources.

    python bench/flood_lan.py

Real processes (gwbox_tools.headoffice: the access server on its own loopback host, one
gateway G1), the modem emulator at 9,600 baud (20 ms each way), and a box played by a
firmware Endpoint over the emulator's pty (tests/host/test_headoffice.Box). A login is
`connect` -> `sa_established` at the box (a new key with G1 on the same call each time).

A flooder process sends forged SA_INITs (well-formed, each with its own SPI and X25519
key) to G1's LAN socket at FLOOD_RATE a second, every datagram from another source: a
pool of 512 UDP sockets on 127.0.0.1, used in turn.
  flood_login_ms_lan_quiet   median of RUNS logins without a flood
  flood_login_ms_lan         median of RUNS logins under the flood (goal: <= 3 x quiet)
  flood_lan_rate             forged SA_INITs per second the flooder achieved
  flood_lan_refused          of them, refused by G1 as not from the LAN map (lan_refused)
The same flood from the access server's own host (127.0.0.2, so it passes the LAN filter
and reaches admission: cookies past the half-open threshold, eviction per source):
  flood_login_ms_lan_ras_host, flood_lan_ras_host_rate, flood_lan_ras_host_cookies
Prints one JSON object.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools"), os.path.join(ROOT, "tests", "host")]

import serial  # noqa: E402

from gwbox_tools.headoffice import HeadOffice  # noqa: E402
from gwbox_tools.modem_emu import ModemEmulator  # noqa: E402
from test_headoffice import BOX, KEY, Box, dial  # noqa: E402

G1 = "143.1.0.64"
RUNS = 5
FLOOD_RATE = 1000
FLOODER = r"""
import os, socket, sys, time
sys.path[:0] = [%(fw)r, %(ht)r]
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint
from gwbox.port import host_x25519
import gwbox_tools
host_x25519.install()
host, port, rate, src_host = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
msgs = []
for i in range(256):
    e = Endpoint(LinkConfig(), b"atk%%d" %% i, psk=os.urandom(32), expect_peer=b"gw")
    e.connect(0)
    out = e.take_output()
    while not out:  # its X25519 key is computed a slice per tick first
        e.tick(0)
        out = e.take_output()
    msgs.append(out[0][1])
socks = []
for i in range(512):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src_host, 0))
    s.setblocking(False)
    socks.append(s)
sys.stdout.write("ready\n"); sys.stdout.flush()
sent = 0
t0 = nxt = time.monotonic()
while True:
    try:
        socks[sent %% 512].sendto(msgs[sent %% 256], (host, port))
    except OSError:
        pass
    sent += 1
    if sent %% 100 == 0:
        sys.stdout.write("%%d %%.3f\n" %% (sent, time.monotonic() - t0)); sys.stdout.flush()
    nxt += 1.0 / rate
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
"""


class Flood:
    def __init__(self, addr, src_host):
        code = FLOODER % {"fw": os.path.join(ROOT, "firmware"), "ht": os.path.join(ROOT, "host_tools")}
        self.p = subprocess.Popen([sys.executable, "-c", code, addr[0], str(addr[1]), str(FLOOD_RATE), src_host],
                                  stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"
        self.t0 = time.monotonic()

    def stop(self):
        """Stop it; (datagrams sent, seconds) from its last progress line."""
        self.p.kill()
        out = self.p.stdout.read().split()
        self.p.wait()
        self.p.stdout.close()
        return (int(out[-2]), float(out[-1])) if len(out) >= 2 else (0, 1.0)


def login(box):
    t = time.monotonic()
    box.handshake(G1)
    return (time.monotonic() - t) * 1000.0


def logins(box, n):
    return [login(box) for _ in range(n)]


def stats(ho, key):
    return [e.get(key, 0) for e in ho.events(G1) if e["event"] == "gateway_stats"]


def main():
    out = {}
    with HeadOffice({BOX: KEY}, gateways=[G1], targets=["10.0.0.5"], gateway_args=["--stats-ms", "500"]) as ho:
        with ModemEmulator(baud=9600, gateways=ho.dial_targets(), latency_ms=20, connect_delay_ms=50) as emu:
            ser = serial.Serial(emu.box_path, 9600, timeout=0.1)
            try:
                dial(ser, "ras")
                box = Box(ser=ser, psks={G1.encode(): KEY})
                login(box)  # warm: the call's context is bound, the gateway's code loaded
                out["flood_login_ms_lan_quiet"] = round(statistics.median(logins(box, RUNS)), 1)
                for key, src in (("flood_login_ms_lan", "127.0.0.1"),
                                 ("flood_login_ms_lan_ras_host", ho.lan.access_servers()["143.1.2.1"])):
                    r0 = (stats(ho, "lan_refused") or [0])[-1]
                    c0 = (stats(ho, "cookies_sent") or [0])[-1]
                    fl = Flood(ho.lan[G1], src)
                    try:
                        time.sleep(2.0)  # the flood is on before the box starts
                        ms = logins(box, RUNS)
                    finally:
                        sent, secs = fl.stop()
                    time.sleep(1.2)  # one more stats line
                    out[key] = round(statistics.median(ms), 1)
                    out[key + "_runs"] = [round(x, 1) for x in ms]
                    tag = "flood_lan" if src == "127.0.0.1" else "flood_lan_ras_host"
                    out[tag + "_rate"] = round(sent / secs, 1)
                    out[tag + "_refused"] = stats(ho, "lan_refused")[-1] - r0
                    out[tag + "_cookies"] = stats(ho, "cookies_sent")[-1] - c0
            finally:
                ser.close()
    out["flood_login_lan_ratio"] = round(out["flood_login_ms_lan"] / out["flood_login_ms_lan_quiet"], 2)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
