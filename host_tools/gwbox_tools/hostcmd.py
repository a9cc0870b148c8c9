"""`gwbox gateway` and `gwbox emulate`: the head office and the host emulation from the one
command (docs/tools.md). Thin wrappers: gwbox_tools.gateway and gwbox_tools.cluster_rig do
the work."""
import os
import signal
import sys
import tempfile
import time

from gwbox_tools.cli import EXIT_FAILED, UserError, check_serial_port


def run_gateway(args):
    from gwbox_tools import gateway
    from gwbox_tools.lan import LanMap, bind_udp
    if not os.path.isfile(args.psk_file):
        raise UserError("--psk-file %s does not exist (one '<box identity> <key>' per line; keys from "
                        "`gwbox psk new`)" % args.psk_file)
    if args.serial:
        check_serial_port(args.serial)
    argv = ["--address", args.address, "--psk-file", args.psk_file]
    tmp = sock = None
    try:
        if args.lan_map:
            argv += ["--lan-map", args.lan_map]
        else:  # no head-office LAN: the gateway's own LAN socket on a free loopback port
            sock = bind_udp(("127.0.0.1", 0))
            fd, tmp = tempfile.mkstemp(prefix="gwbox-lan-", suffix=".json")
            os.close(fd)
            with open(tmp, "w") as f:
                f.write(LanMap({args.address: ("127.0.0.1", sock.getsockname()[1])}).to_json())
            argv += ["--lan-map", tmp, "--lan-fd", str(sock.fileno())]
        if args.serial:
            argv += ["--serial", args.serial, "--baud", str(args.baud)]
        else:
            argv += ["--tcp", args.tcp]
        if args.heartbeat:
            argv += ["--heartbeat", args.heartbeat]
        if args.events:
            argv += ["--events", args.events]
        status = gateway.main(argv)
    finally:
        if tmp:
            os.unlink(tmp)
    if status == 2:
        raise UserError("the gateway did not start (its message is above): check --address, --psk-file and the "
                        "port", EXIT_FAILED)
    return status


def run_emulate(args):
    from gwbox_tools.cluster_rig import GATEWAYS, TARGETS, ClusterRig
    from gwbox_tools.devconsole import hash_password
    from gwbox_tools.mp_box import MpBox
    password = os.urandom(6).hex()
    general = "StatusInterval = 5\nConsolePassword = %s" % hash_password(password)
    rig = None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        try:
            rig = ClusterRig(general=general, heap=args.heap, baud=args.baud, start_box=False,
                             micropython=args.micropython)
            rig.box = MpBox(rig.emu.box_path, rig.policy_path, heap=args.heap, baud=args.baud, console=True,
                            micropython=args.micropython, safe_wait_ms=args.safe_wait)
        except (OSError, RuntimeError) as e:
            raise UserError("the emulation did not start: %s" % e, EXIT_FAILED)
        box = rig.box
        print("gwbox emulate: a box (whole firmware under MicroPython, %s heap) and its head office are up; "
              "Ctrl-C stops everything" % args.heap)
        print("  box console  %s   (gwbox console|monitor|config --port %s)" % (box.console_path, box.console_path))
        print("  password     %s   (its console password; the policy holds only its hash)" % password)
        print("  box policy   %s" % rig.policy_path)
        print("  box LAN      udp 127.0.0.1:%d  (a datagram: 4-byte target address, 2-byte port, payload)" % box.lan_port)
        print("  targets      %s (in Tunnel1)" % " ".join(TARGETS))
        print("  gateways     %s, Cluster1 behind the access server 'ras'" % " ".join(GATEWAYS))
        print("  modem line   %d baud, the box's UART on %s" % (args.baud, rig.emu.box_path))
        sys.stdout.flush()
        while box.alive():
            time.sleep(0.5)
        print("gwbox emulate: the box stopped (exit status %s): %s" % (box.exit_code, "\n".join(box.stderr[-10:])),
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\ngwbox emulate: stopped; everything it started is gone")
        return 0
    finally:
        if rig is not None:
            rig.close()
        signal.signal(signal.SIGTERM, old)
