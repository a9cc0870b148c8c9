"""Pipe port: one node run by a host driver over stdin/stdout, in the driver's time.

The host emulation uses it to run the firmware inside the real MicroPython
interpreter at device heap size, one process per node, while the driver owns the
(virtual) clock and the wire. One command per line in, replies then "." out:

    init <identity> <psk hex|-> <expect peer|-> [<peer>=<psk hex> ...] [k=v settings]
    connect <now>      rx <now> <hex>      tx <now> <hex>      tick <now>      close <now>
replies:  out <hex> | ev <json line> | got <hex> | mem <alloc> <free> | st <has session> <deadline|->
Events are gwbox.events.json_line, the one line format of every port.
"""
import gc
import sys

# Collect early and often, as a device's main.py does, from before the first import:
# garbage is reclaimed before it fragments the heap into holes too small for the next
# packet (docs/memory.md).
gc.threshold(2048)

from gwbox.config import LinkConfig  # noqa: E402
from gwbox.endpoint import Endpoint  # noqa: E402
from gwbox.events import json_line  # noqa: E402


def _setting(v):
    return int(v) if v.isdigit() else v


def _init(args):
    identity = args[0].encode()
    psk = None if args[1] == "-" else bytes.fromhex(args[1])
    expect = None if args[2] == "-" else args[2].encode()
    psks = {}
    settings = {}
    for a in args[3:]:
        k, v = a.split("=", 1)
        if k.startswith("peer:"):
            psks[k[5:].encode()] = bytes.fromhex(v)
        else:
            settings[k] = _setting(v)
    return Endpoint(LinkConfig(**settings), identity, psk=psk, psks=psks, expect_peer=expect)


def _field(v):
    return str(v).replace(" ", "_")


def _report(ep, w, now):
    for _link, p in ep.take_output():
        w("out " + p.hex() + "\n")
    for e in ep.take_events():
        w("ev " + json_line(now, "node", e.name, e.fields) + "\n")
    for _peer, d in ep.take_received():
        w("got " + d.hex() + "\n")
    dl = ep.next_deadline()
    w("st %d %s\n" % (1 if ep.session() is not None else 0, "-" if dl is None else dl))


def main():
    w = sys.stdout.write
    ep = None
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        args = line.split()
        cmd = args[0] if args else ""
        try:
            if cmd == "init":
                ep = _init(args[1:])
            elif cmd == "connect":
                ep.connect(int(args[1]))
            elif cmd == "rx":
                ep.receive(bytes.fromhex(args[2]), int(args[1]))
            elif cmd == "tx":
                ep.send(bytes.fromhex(args[2]), int(args[1]))
            elif cmd == "tick":
                ep.tick(int(args[1]))
            elif cmd == "close":
                ep.close(int(args[1]))
            elif cmd == "mem":
                gc.collect()
                w("mem %d %d\n" % (gc.mem_alloc(), gc.mem_free()))
            if ep is not None and cmd != "mem":
                _report(ep, w, int(args[1]) if len(args) > 1 and args[1].isdigit() else 0)
        except Exception as e:  # report, keep serving: the driver decides what is fatal
            w("err %s %s\n" % (type(e).__name__, _field(str(e))))
        w(".\n")
        if hasattr(sys.stdout, "flush"):
            sys.stdout.flush()


if __name__ == "__main__":
    main()
