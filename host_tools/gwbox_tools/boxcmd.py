"""`gwbox config`, `gwbox console`, `gwbox monitor`, `gwbox console-password`: the work behind
the subcommands that talk to a box's console (docs/tools.md, docs/console.md).

Each `run_*` takes the parsed arguments and returns an exit status; problems the user can
fix are UserErrors that say what to do. The policy is checked here with the firmware's
own parser (gwbox.policy, run on CPython) before anything goes to the box.
"""
import getpass
import os
import sys
import time

from gwbox_tools.toolbase import EXIT_FAILED, UserError, check_serial_port
from gwbox_tools.devconsole import ITERATIONS, MIN_PASSWORD, ConsoleError, DeviceConsole, hash_password

PASSWORD_ENV = "GWBOX_CONSOLE_PASSWORD"


# --- the policy, locally ------------------------------------------------------------------

BOM = "\ufeff"


def read_policy(path):
    """The text of a policy file; UserError for a file that is missing, far too large or not UTF-8."""
    from gwbox import POLICY_MAX
    try:
        size = os.path.getsize(path)
        if size > 2 * POLICY_MAX + 64:  # too large even if every line end were CR LF: not read at all
            raise UserError("%s is %s bytes: a box takes a policy of at most %s bytes (docs/policy.md)"
                            % (path, format(size, ","), format(POLICY_MAX, ",")))
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError("policy file %s does not exist" % path)
    except IsADirectoryError:
        raise UserError("%s is a directory, not a policy file" % path)
    except OSError as e:
        raise UserError("cannot read %s: %s" % (path, e.strerror or e))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError("%s is not UTF-8 text (line %d): save it as UTF-8 and try again"
                        % (path, data.count(b"\n", 0, e.start) + 1))


def as_sent(text):
    """The text as `gwbox config push` sends it (devconsole.load): LF line ends, one at the end."""
    body = text.replace("\r\n", "\n")
    return body if body.endswith("\n") else body + "\n"


def file_problems(text):
    """[(line, message)] of what the box's parser does not look at but the box cannot take: a
    byte-order mark, lines ended by CR alone, lines longer than the console takes, more bytes
    than gwbox.POLICY_MAX. Line numbers as an editor shows them (a lone CR ends a line)."""
    from gwbox import POLICY_MAX
    from gwbox_tools.devconsole import LINE_MAX
    out = []
    if text.startswith(BOM):
        out.append((1, "the file starts with a UTF-8 byte-order mark (BOM), which the box does not take: "
                       "save it as UTF-8 without BOM"))
        text = text[1:]
    lone = [i for i in range(len(text)) if text[i] == "\r" and text[i + 1:i + 2] != "\n"]
    if lone:
        out.append((text.count("\n", 0, lone[0]) + 1,
                    "the line ends with CR alone (classic Mac OS line ends)%s: the box reads LF or CR LF "
                    "line ends; save the file with those" % (
                        "" if len(lone) == 1 else ", and %d more lines do" % (len(lone) - 1))))
    lines = as_sent(text.replace("\r", "\n") if lone else text).split("\n")[:-1]
    total = 0
    over = None
    for n, ln in enumerate(lines, 1):
        size = len(ln.encode())
        if size > LINE_MAX:
            out.append((n, "the line is %d bytes: the box's console takes lines of at most %d" % (size, LINE_MAX)))
        total += size + 1
        if over is None and total > POLICY_MAX:
            over = n
    if over is not None:
        out.append((over, "the policy is %s bytes, more than the %s a box takes (it passes the limit on this "
                          "line): shorten it; comments count too" % (format(total, ","), format(POLICY_MAX, ","))))
    return out


def check_policy(path, after=""):
    """(text, Policy) of a valid policy file, or UserError listing every error with its line:
    the parser's (the box's own) and what the box could not take as a file (file_problems)."""
    from gwbox.policy import PolicyError, parse
    text = read_policy(path)
    problems = [(n, "%s: line %d: %s" % (path, n, msg)) for n, msg in file_problems(text)]
    clean = text[1:] if text.startswith(BOM) else text
    clean = clean.replace("\r\n", "\n").replace("\r", "\n")
    p = None
    try:
        p = parse(clean)
    except PolicyError as e:
        problems += [(err[0], "%s: line %d: %s: %s" % ((path,) + err)) for err in e.errors]
    if problems:
        problems.sort(key=lambda x: x[0])
        lines = [m for _n, m in problems]
        raise UserError("%s has %d error%s%s:\n%s" % (
            path, len(lines), "" if len(lines) == 1 else "s", after, "\n".join(lines)))
    return text, p


def describe(p):
    return "identity %s, %d gateway%s, %d tunnel%s, checksum %s" % (
        p.identity.decode(), len(p.gateways), "" if len(p.gateways) == 1 else "s", len(p.tunnels),
        "" if len(p.tunnels) == 1 else "s", p.checksum)


NO_PASSWORD = ("note: the policy sets no ConsolePassword: the box's console will then change nothing outside "
               "safe mode (make one with `gwbox console-password`)")
EXAMPLES = ("boards/cluster-example.policy",)  # policies whose keys everyone has


def placeholder_keys(text):
    """[(line, field, example file)] of the [KEYS] entries of `text` whose key is one of the
    example policies' (placeholders: published with gwbox, so anyone has them)."""
    from gwbox.policy import PolicyError, parse
    from gwbox.policyvalue import psk, safe
    from gwbox_tools.toolbase import ROOT
    known = {}
    for rel in EXAMPLES:
        try:
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                ex = parse(f.read())
        except (OSError, PolicyError):
            continue  # no checkout beside the command: nothing to compare with
        for k in ex.keys.values():
            known[k] = rel
    out = []
    sec = None
    for n, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        ln = raw.split("#", 1)[0].strip()
        if ln.startswith("["):
            sec = ln.strip("[] ").upper()
        elif sec == "KEYS" and "=" in ln:
            name, v = (x.strip() for x in ln.split("=", 1))
            try:
                k = psk(v)
            except ValueError:
                continue
            if k in known:
                out.append((n, "[KEYS] " + name if safe(name) else "[KEYS]", known[k]))
    return out


def warn_placeholders(path, text):
    for n, field, rel in placeholder_keys(text):
        print("warning: %s: line %d: %s: this is the placeholder key of %s, which anyone can read: replace it "
              "with the output of `gwbox psk new` (and give the gateways the same key)" % (path, n, field, rel),
              file=sys.stderr)


def run_config_check(args):
    text, p = check_policy(args.file)
    print("%s: valid: %s" % (args.file, describe(p)))
    warn_placeholders(args.file, text)
    if p.console_password is None:
        print(NO_PASSWORD)
    return 0


# --- the box's console ----------------------------------------------------------------------

def connect(args):
    check_serial_port(args.port)
    try:
        c = DeviceConsole(args.port, baud=args.baud)
    except Exception as e:  # serial.SerialException and OSError: the port is busy or gone
        raise UserError("cannot open %s: %s (close any other program using it)" % (args.port, e), EXIT_FAILED)
    try:
        c.sync()
    except Exception:
        c.close()
        raise
    return c


def password(args, prompt="console password for the box: "):
    if getattr(args, "password_file", None):
        try:
            with open(args.password_file, encoding="utf-8") as f:
                pw = f.readline().rstrip("\r\n")
        except OSError as e:
            raise UserError("cannot read --password-file %s: %s" % (args.password_file, e.strerror or e))
        if not pw:
            raise UserError("--password-file %s holds no password on its first line" % args.password_file)
        return pw
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise UserError("the box needs its console password: give --password-file FILE or set %s" % PASSWORD_ENV)
    return getpass.getpass(prompt)


def _login_if_needed(c, args, st):
    """Log in when the box's policy sets a console password; the box's refusal as a UserError."""
    if not st.get("password"):
        if not (st.get("status") or {}).get("safe"):
            raise UserError("the box's policy sets no ConsolePassword, so its console changes nothing outside safe "
                            "mode: start it in safe mode (docs/console.md) and try again", EXIT_FAILED)
        return False
    try:
        c.login(password(args))
    except ConsoleError as e:
        raise UserError(str(e), EXIT_FAILED)
    return True


def _to_safe_mode(c, args):
    """`reboot safe` and wait until the box answers in safe mode (its heap is then free)."""
    c.command("reboot safe")
    end = time.monotonic() + 60
    while time.monotonic() < end:
        e = c.read_event(1.0)
        if e is not None and e.get("event") == "safe_mode":
            c.sync()
            return c.status()
    raise UserError("the box did not come back in safe mode within 60 s: see `gwbox console --port %s`"
                    % args.port, EXIT_FAILED)


def run_config_push(args):
    text, p = check_policy(args.file, "; nothing was sent to the box")
    print("%s: valid here: %s" % (args.file, describe(p)))
    warn_placeholders(args.file, text)
    if p.console_password is None:
        print(NO_PASSWORD)
    c = connect(args)
    try:
        try:
            st = c.status()
            logged_in = _login_if_needed(c, args, st)
            r = c.load(text)
            if not r.ok and "damaged" in r.msg:
                r = c.load(text)  # a byte lost on the way: once more
            reboot = args.reboot
            if not r.ok and r.msg.startswith("out of memory"):
                # The running box has no heap to spare for the policy parser: push in safe mode.
                print("the running box has no heap to spare for checking a policy: pushing in safe mode "
                      "(the box stops for a moment and reboots afterwards)")
                st = _to_safe_mode(c, args)
                logged_in = _login_if_needed(c, args, st)
                r = c.load(text)
                reboot = True
            if not r.ok:
                for ln in r.lines:
                    print("box: " + ln)
                raise UserError("the box rejected %s: %s" % (args.file, r.msg), EXIT_FAILED)
            r = c.command("save")
            if not r.ok:
                raise UserError("the box did not save it: " + r.msg, EXIT_FAILED)
            print("the box accepted %s (checksum %s) and saved it" % (args.file, p.checksum))
            if reboot:
                c.command("reboot")
                print("the box reboots with it")
            else:
                print("it takes effect when the box reboots (`reboot` in gwbox console, or push with --reboot)")
                if logged_in:
                    c.command("logout")
        except ConsoleError as e:
            raise UserError(str(e), EXIT_FAILED)
    finally:
        c.close()
    return 0


def run_config_pull(args):
    c = connect(args)
    try:
        try:
            r = c.command("show policy")
        except ConsoleError as e:
            raise UserError(str(e), EXIT_FAILED)
    finally:
        c.close()
    if not r.ok:
        raise UserError("the box says: " + r.msg, EXIT_FAILED)
    text = "# gwbox config pull from %s: %s, checksum %s (keys and the console password masked)\n%s\n" % (
        args.port, r.msg, r.final.get("checksum"), "\n".join(r.lines))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote %s (%d lines)" % (args.output, len(r.lines)))
    else:
        sys.stdout.write(text)
    return 0


def run_console_password(args):
    from gwbox.policyvalue import KDF_ITERATIONS
    lo, hi = KDF_ITERATIONS
    if not lo <= args.iterations <= hi:  # before the password is asked for: nothing typed in vain
        raise UserError("--iterations %d: must be from %s to %s, the range a policy's ConsolePassword takes "
                        "(default %d)" % (args.iterations, format(lo, ","), format(hi, ","), ITERATIONS))
    if args.stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise UserError("no terminal to ask for the password on: use --stdin to read it from standard input")
        pw = getpass.getpass("new console password: ")
        if getpass.getpass("again: ") != pw:
            raise UserError("the two passwords differ: nothing printed")
    if len(pw) < MIN_PASSWORD:
        raise UserError("the password is shorter than %d characters: choose a longer one" % MIN_PASSWORD)
    if any(ord(ch) < 32 for ch in pw):
        raise UserError("the password holds control characters: the console cannot take them")
    print("ConsolePassword = " + hash_password(pw, args.iterations))
    return 0


# --- console: an interactive terminal ---------------------------------------------------------

def render(e, verbose=True):
    """One event as a line for a person, or None to leave it out."""
    if e.get("event") == "console":
        if "note" in e:
            return "note: " + e["note"]
        if "line" in e:
            return "  " + e["line"]
        if "ok" in e:
            if e.get("cmd") == "status" and e.get("status"):
                return "%s: %s\n%s" % ("ok" if e["ok"] else "error", e.get("msg", ""), status_block(e["status"]))
            return "%s: %s" % ("ok" if e["ok"] else "error", e.get("msg", ""))
    if not verbose or e.get("event") == "status":
        return None
    fields = " ".join("%s=%s" % (k, v) for k, v in e.items() if k not in ("t_ms", "node", "event"))
    return "[%8.3f s] %s %s" % (e.get("t_ms", 0) / 1000.0, e.get("event"), fields)


def run_console(args):
    if args.raw:
        check_serial_port(args.port)
        from serial.tools import miniterm
        sys.argv = ["gwbox console --raw", "--raw", "--eol", "CR", "--rts", "0", "--dtr", "0", args.port, str(args.baud)]
        return miniterm.main()
    import json
    import threading
    c = connect(args)
    stop = threading.Event()
    replies = [0, 0]  # final replies seen, of which refusals (ok: false)

    def reader():
        while not stop.is_set():
            try:
                line = c.read_line(0.2)
            except Exception:
                return
            if line is None:
                continue
            try:
                e = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                e = None
            if isinstance(e, dict) and e.get("event") == "console" and "ok" in e:
                replies[0] += 1
                replies[1] += not e["ok"]
            out = render(e, not args.quiet) if isinstance(e, dict) and "event" in e else \
                line.decode("utf-8", "replace")
            if out is not None:
                print(out, flush=True)

    t = threading.Thread(target=reader, daemon=True)
    print("gwbox console on %s: `help` lists the box's commands; `login` asks for the password; "
          "`load FILE` pushes a policy file; Ctrl-D leaves" % args.port, flush=True)
    t.start()
    sent = 0
    try:
        while True:
            try:
                line = input()
            except EOFError:
                break
            s = line.strip()
            if not s:
                continue
            if s.lower() == "login":
                s = "login " + getpass.getpass("password: ")
            elif s.lower().startswith("load ") and len(s.split()) == 2:
                try:
                    text = read_policy(os.path.expanduser(s.split()[1]))
                except UserError as e:
                    print("error: %s" % e)
                    continue
                c.write_line("load")
                time.sleep(0.3)
                for ln in text.replace("\r\n", "\n").rstrip("\n").split("\n"):
                    c.ser.write(ln.encode() + b"\n")
                    time.sleep(0.002)
                s = "."
            elif s.lower() in ("exit", "quit"):
                break
            c.write_line(s)
            sent += 1
        # Input ended (a script, or Ctrl-D): the replies still on their way are shown first.
        end = time.monotonic() + 10
        while replies[0] < sent and time.monotonic() < end:
            time.sleep(0.05)
    except KeyboardInterrupt:
        sent = replies[0]  # left at once: replies still on their way are not waited for
    finally:
        stop.set()
        t.join(1)
        c.close()
    # A script learns from the status whether the box did everything it was asked.
    if replies[1]:
        print("gwbox console: the box refused %d of %d commands (error: above)" % (replies[1], sent), file=sys.stderr)
        return EXIT_FAILED
    if replies[0] < sent:
        print("gwbox console: %d of %d commands got no answer from the box" % (sent - replies[0], sent),
              file=sys.stderr)
        return EXIT_FAILED
    return 0


# --- monitor --------------------------------------------------------------------------------

def _secs(s):
    s = int(s or 0)
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)


def status_block(st):
    """The status view (gateway in use, SAs, last heartbeat, outbox, counters, uptime) in <= 24 lines."""
    out = ["uptime %s   line %s%s   calls %s%s" % (
        _secs(st.get("uptime_s")), st.get("line"), " (%s)" % st["number"] if st.get("number") else "",
        st.get("calls", 0), "   SAFE MODE: %s" % st["safe"] if st.get("safe") else "")]
    for cl in st.get("clusters", [])[:4]:
        out.append("%-10s in use %-15s %s%s" % (
            cl.get("name"), cl.get("in_use") or "-", "(verifying) " if cl.get("verifying") else "",
            "trying %s" % cl["trying"] if cl.get("trying") else ""))
    sas = st.get("sas", [])
    if sas:
        out.append("SA %-15s %8s  %-9s %14s  %s" % ("gateway", "age", "heartbeat", "last proof", "attempt"))
    for sa in sas[:6]:
        out.append("   %-15s %7ds  %-9s %12.1f s  %s" % (sa.get("peer"), sa.get("age_s", 0), sa.get("hb"),
                                                      sa.get("proof_ms", 0) / 1000.0, sa.get("attempt", 0)))
    out.append("outbox %s messages, %s bytes   accepted %s  confirmed %s  retransmitted %s  rerouted %s  "
               "refused %s" % tuple(st.get(k, 0) for k in ("outbox", "outbox_bytes", "accepted", "confirmed",
                                                            "retransmitted", "rerouted", "refused")))
    out.append("frames in %s  bad FCS %s   heap free %s   out of memory %s" % tuple(
        st.get(k, "-") for k in ("frames_in", "bad_fcs", "heap_free", "oom")))
    return "\n".join(out)


def status_line(st):
    """The status as one plain line (the monitor when stdout is not a terminal)."""
    gws = ",".join(cl.get("in_use") or "-" for cl in st.get("clusters", []))
    hb = min((sa.get("proof_ms", 0) for sa in st.get("sas", [])), default=None)
    return "uptime=%ss line=%s in_use=%s sas=%d last_proof_s=%s outbox=%s accepted=%s confirmed=%s " \
           "retransmitted=%s refused=%s heap_free=%s%s" % (
               st.get("uptime_s"), st.get("line"), gws, len(st.get("sas", [])),
               "-" if hb is None else "%.1f" % (hb / 1000.0), st.get("outbox"), st.get("accepted"),
               st.get("confirmed"), st.get("retransmitted"), st.get("refused"), st.get("heap_free"),
               " safe=%r" % st["safe"] if st.get("safe") else "")


def run_monitor(args):
    tty = sys.stdout.isatty() and not args.plain
    c = connect(args)
    shown = 0
    start = time.monotonic()
    try:
        asked = 0.0
        while args.count is None or shown < args.count:
            now = time.monotonic()
            if now - asked >= args.interval:
                c.write_line("status")
                asked = now
            e = c.read_event(0.2)
            if e is None:
                if not shown and now - start > max(15.0, 3 * args.interval):
                    raise UserError("no status from the box on %s within %d s: is the gwbox firmware running on it?"
                                    % (args.port, now - start), EXIT_FAILED)
                continue
            st = None
            if e.get("event") == "status":
                st = e
            elif e.get("event") == "console" and e.get("cmd") == "status" and isinstance(e.get("status"), dict):
                st = e["status"]
            if st is None:
                continue
            shown += 1
            if tty:
                sys.stdout.write("\x1b[H\x1b[J gwbox monitor  %s   %s\n\n%s\n\n(Ctrl-C leaves)\n" % (
                    args.port, time.strftime("%H:%M:%S"), status_block(st)))
                sys.stdout.flush()
            else:
                print(status_line(st), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    return 0
