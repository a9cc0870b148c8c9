"""`gwbox gateway` and `gwbox emulate`: the head office and the host emulation from the one
command (docs/tools.md). Thin wrappers: gwbox_tools.gateway and gwbox_tools.cluster_rig do
the work."""
import os
import signal
import sys
import tempfile
import time

from gwbox_tools.toolbase import EXIT_FAILED, EXIT_REFUSED, UserError, check_serial_port


def run_gateway(args):
    from gwbox_tools import gateway
    from gwbox_tools.lan import LanMap, bind_udp, parse_hostport
    try:
        args.address = gateway.check_address(args.address)
    except ValueError as e:
        raise UserError(str(e))
    if args.tcp is not None:
        try:
            parse_hostport(args.tcp)
        except ValueError as e:
            raise UserError("--tcp: %s (e.g. 127.0.0.1:7001, or 7001)" % e)
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
                        "port", EXIT_REFUSED)
    return status


# Box events `gwbox emulate` shows after its banner: the call, the gateway in use, trouble.
EMULATE_SHOWN = ("dialing", "link_up", "link_down", "gateway_in_use", "gateway_dead", "failback",
                 "key_request_rejected", "handshake_failed", "lan_refused", "out_of_memory", "safe_mode", "crash")


def _emulate_line(e, t0):
    """A box event as one line of `gwbox emulate`'s output (None: not shown)."""
    name = e.get("event") if isinstance(e, dict) and "mono" in e else None
    if name not in EMULATE_SHOWN:
        return None
    fields = " ".join("%s=%s" % (k, v) for k, v in e.items() if k not in ("t_ms", "node", "event", "mono", "boot"))
    line = "  %7.1f s  box %s %s" % (e["mono"] - t0, name, fields)
    if name == "gateway_in_use":
        line += "\n  %7.1f s  the box is connected: gateway %s carries its LAN traffic" % (e["mono"] - t0,
                                                                                      e.get("gateway"))
    return line


def run_emulate(args):
    import queue
    from gwbox_tools.cluster_rig import GATEWAYS, TARGETS, ClusterRig
    from gwbox_tools.devconsole import hash_password
    from gwbox_tools.mp_box import MpBox
    from gwbox_tools.mpy_build import device_interpreter
    exe, heap, what = device_interpreter(args.heap, args.micropython)
    password = os.urandom(6).hex()
    general = "StatusInterval = 5\nConsolePassword = %s" % hash_password(password)
    rig = None
    shown = queue.Queue()  # box events, printed by the main thread after the banner

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops everything even where SIGINT came ignored (a job started with `&` from a
    # script): Python then leaves it ignored, while the box, in the same process group, dies of it.
    old_int = signal.signal(signal.SIGINT, on_term)
    try:
        t0 = time.monotonic()
        try:
            rig = ClusterRig(general=general, heap=heap, baud=args.baud, start_box=False, micropython=exe)
            rig.box = MpBox(rig.emu.box_path, rig.policy_path, heap=heap, baud=args.baud, console=True,
                            micropython=exe, safe_wait_ms=args.safe_wait, on_event=shown.put)
        except (OSError, RuntimeError) as e:
            raise UserError("the emulation did not start: %s" % e, EXIT_FAILED)
        box = rig.box
        print("gwbox emulate: a box (whole firmware under %s) and its head office are up; "
              "Ctrl-C stops everything" % what)
        print("  box console  %s   (gwbox console|monitor|config --port %s)" % (box.console_path, box.console_path))
        print("  password     %s   (its console password; the policy holds only its hash)" % password)
        print("  box policy   %s" % rig.policy_path)
        print("  box LAN      udp 127.0.0.1:%d  (a datagram: 4-byte target address, 2-byte port, payload)" % box.lan_port)
        print("  targets      %s (in Tunnel1)" % " ".join(TARGETS))
        print("  gateways     %s, Cluster1 behind the access server 'ras'" % " ".join(GATEWAYS))
        print("  modem line   %d baud, the box's UART on %s" % (args.baud, rig.emu.box_path))
        print("what the box does (seconds since start; `gwbox console` shows every event):")
        sys.stdout.flush()
        while box.alive():
            try:
                e = shown.get(timeout=0.5)
            except queue.Empty:
                continue
            line = _emulate_line(e, t0)
            if line:
                print(line, flush=True)
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
        signal.signal(signal.SIGINT, old_int)
