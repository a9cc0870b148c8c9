"""Boot: the board file and the stored policy -> a running DevicePort, or safe mode.

    boot record (gwbox.store) -> policy (last good one if need be) -> start-up banner
    -> a key on the console within SAFE_WAIT_MS? -> safe mode, or the box and its watchdog

Safe mode (docs/console.md) runs the console alone: no node, no watchdog, Ctrl-C gives
the MicroPython REPL. It is entered when the board's safe button is held at boot, when a
key arrives on the console within the board's SAFE_WAIT_MS, after `reboot safe`, when no
policy can be loaded, or after CRASH_LIMIT boots in a row that did not stay up a minute
(then the box tries a normal boot again after _SAFE_RETRY_MS without console input).

main.py calls boot() and then drops this module: the parser, the store and this code
leave the heap before the box runs; the box gets a plain copy of the policy's values.
"""
import gc
import time

from gwbox import VERSION, const, forget, ticks

_SAFE_RETRY_MS = const(600000)


class _Values:
    """The parsed policy's values without its class (which would keep the parser alive)."""


def _load(store):
    """(values, shown, where, notes): the first stored policy that parses, and its masked text
    for `show policy` (rendered now, while the parser is loaded anyway); or (None, None, None, notes)."""
    got = []

    def check(text):
        from gwbox.policy import parse
        got.append(parse(text))

    _text, where, notes = store.load(check)
    v = shown = None
    if got:
        p = got[-1]
        v = _Values()
        d = p.__dict__
        for k in d:
            setattr(v, k, d[k])
        shown = p.masked()
        p = d = None
    got = None
    _drop("gwbox.policy", "gwbox.policyvalue")
    return v, shown, where, notes


def _drop(*names):
    forget(*names)
    gc.collect()


def _pin(machine, name, mode):
    return None if name is None else machine.Pin(name, mode)


def boot(board, machine, log=print, fs=None, console=None, clock=None):
    """The DevicePort to run: the box, or safe mode. `fs`, `console` and `clock` are for tests
    (a fake file system, console input and clock); a board uses its own."""
    from gwbox.port.device import DevicePort, StdinConsole
    from gwbox.store import CRASH_LIMIT, Store
    path = board.POLICY
    if fs is None and hasattr(board, "fs"):
        fs = board.fs()  # a board's own file system wrapper (boards/unix: power cuts for tests)
    store = Store(path, fs)
    count, requested = store.boot_record()
    store.write_boot_record(count + 1)  # counts as a crash unless the loop stays up a minute
    p, shown, where, notes = _load(store)
    store = None
    _drop("gwbox.store")
    safe = None
    button = getattr(board, "safe_button", None)
    if button is not None and button():
        safe = "safe button held at boot"
    elif requested:
        safe = "requested by `reboot safe`"
    elif p is None:
        safe = "no policy can be loaded"
    elif count >= CRASH_LIMIT:
        safe = "%d boots in a row ended within a minute" % count
    cin = console or StdinConsole()
    wait = getattr(board, "SAFE_WAIT_MS", 0) if safe is None else 0
    name = getattr(board, "NAME", "box")
    port = DevicePort(None, None, led=_pin(machine, board.LED, machine.Pin.OUT), log=log, name=name, clock=clock,
                      console=cin, policy_path=path, password=p.console_password if p else None,
                      reset=machine.reset, safe=safe, entropy=getattr(board, "entropy", None), fs=fs)
    if p is not None:
        port.shown = (shown, where, p.checksum)
    port.event("boot", {
        "version": VERSION, "board": getattr(board, "BOARD", "?"), "identity": p.identity if p else None,
        "gateways": p.gateways if p else [], "policy": p.checksum if p else None, "policy_file": where,
        "notes": notes, "boots": count + 1, "safe": safe, "safe_key_ms": wait})
    if wait:
        # Any key within the window: safe mode. (Ctrl-C still interrupts here: the REPL.)
        end = ticks.add(port.now(), wait)
        while not ticks.reached(port.now(), end):
            if cin.read():
                safe = "console key at boot"
                break
            time.sleep_ms(20) if hasattr(time, "sleep_ms") else time.sleep(0.02)
    if safe is not None:
        port.safe = safe
        port.box = None
        if p is not None and count >= CRASH_LIMIT and safe.endswith("minute"):
            port.retry_ms = _SAFE_RETRY_MS
        port.event("safe_mode", {"reason": safe, "retry_s": port.retry_ms // 1000,
                                 "help": "the box is stopped, the console answers (help); Ctrl-C or `repl` "
                                         "for the MicroPython REPL; `reboot` to start the box"})
        return port
    try:
        import micropython
        micropython.kbd_intr(-1)  # Ctrl-C is a console key now, not a way around the console's password
    except (ImportError, AttributeError):
        pass
    from gwbox.box import Box
    from gwbox.link.modem import Modem
    uart = machine.UART(board.UART_ID, baudrate=board.BAUD, tx=_pin(machine, board.TX, machine.Pin.OUT),
                        rx=_pin(machine, board.RX, machine.Pin.IN), rxbuf=board.RXBUF)
    dtr = _pin(machine, board.DTR, machine.Pin.OUT)
    modem = Modem(init=p.modem_init, baud=board.BAUD, max_attempts=2, use_dtr=dtr is not None)
    lan = _lan(board, machine, p, port.clock)
    port.box = Box(p, modem, start=port.now())
    if not getattr(board, "AHEAD", False):
        port.box.shed()  # no heap to spare for a failover's key and code made ahead (boards/README.md)
    port.uart = uart
    port.dcd = _pin(machine, board.DCD, machine.Pin.IN)
    port.dtr = dtr
    port.lan = lan
    port.status_ms = p.status_ms
    port.stable_ms = 60000
    port.wdt = machine.WDT(timeout=board.WDT_MS) if board.WDT_MS else None
    if dtr is not None:
        dtr.value(1)
    return port


def _lan(board, machine, p, clock):
    """The LAN side: the board's UDP side (Wi-Fi), the LAN UART (LanUart), both, or None."""
    udp = board.lan() if hasattr(board, "lan") else None
    spec = getattr(board, "LAN_UART", None)
    if p.lan_uart is None or spec is None:
        return udp
    from gwbox.ipv4 import ip_to_int
    from gwbox.port.uartlan import Lans, UartLan
    baud = spec[3] if len(spec) > 3 else 9600
    # half a second of line (twice the loop's longest pass, docs/crypto.md), at least 512
    uart = machine.UART(spec[0], baudrate=baud, tx=_pin(machine, spec[1], machine.Pin.OUT),
                        rx=_pin(machine, spec[2], machine.Pin.IN), rxbuf=max(512, baud // 20))
    u = UartLan(uart, ip_to_int(p.lan_uart[0]), p.lan_uart[1], clock)
    return u if udp is None else Lans(u, udp)
