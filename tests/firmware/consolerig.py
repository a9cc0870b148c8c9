"""A device port in safe mode or without a box, its console fed from a fake input, its
files on a fake file system (fakefs), virtual time: for the console tests."""
import json
import sys

from fakefs import FakeFs
from fakeio import FakeUart
from gwbox.port.device import DevicePort

P = "gwbox.policy"
PASSWORD = "correct horse 7"
SALT = b"0123456789abcdef"
ITER = 1000
# hashlib.pbkdf2_hmac("sha256", PASSWORD, SALT, ITER): what `gwbox console-password` stores.
# (Not computed here: holding gwbox.console from a test would keep a second copy of it on
# the heap once the port has dropped and re-imported it.)
HASH_HEX = "f4c2d595b47742de110e9d9292f5a512c95ead124f3801f9a22acd13b8e14096"
HASH = bytes.fromhex(HASH_HEX)
KEY = "5a" * 32
PW_LINE = "ConsolePassword = pbkdf2$%d$%s$%s" % (ITER, "".join("%02x" % b for b in SALT), HASH_HEX)
POLICY = """[GENERAL]
Identity = branch-7
Dial = ras
%s
[CLUSTER]
Cluster1 = 143.1.0.64 143.1.1.157
[TUNNEL]
Tunnel1 = 10.0.0.1 - 10.0.0.9 Cluster 1
[KEYS]
Default = hex:%s
""" % (PW_LINE, KEY)


def store(fs):
    """A Store on `fs`. Imported here only when used, like the firmware does: a module-level
    import would keep a second copy of gwbox.store alive after the console drops and
    re-imports it, and the test's heap is a device's."""
    from gwbox.store import Store
    return Store(P, fs)


class Rig:
    def __init__(self, policy=POLICY, password=True, safe=None, port=None):
        self.t = 5000
        self.fs = FakeFs()
        if policy:
            store(self.fs).save(policy)
        self.evs = []  # every event line, parsed, each checked for secrets as it is printed
        self.cin = FakeUart()  # the console's input: rx
        self.resets = 0
        self.port = port or DevicePort(None, None, log=self.log, clock=lambda: self.t, console=self.cin,
                                       policy_path=P, password=(ITER, SALT, HASH) if password else None,
                                       safe=safe, reset=self.reset, fs=self.fs)

    def log(self, line):
        assert PASSWORD not in line and HASH_HEX not in line and KEY not in line, line
        e = json.loads(line)
        if e["event"] in ("console", "console_error"):  # only these: the heap is a device's
            self.evs.append(e)

    def reset(self):
        self.resets += 1
        self.console_at_reset = "gwbox.console" in sys.modules

    def send(self, data):
        self.cin.rx.extend(data)

    def run(self, ms):
        end = self.t + ms
        while self.t < end:
            self.t += max(1, self.port.step())

    def finals(self, since=0):
        return [e for e in self.evs[since:] if e["event"] == "console" and "ok" in e]

    def cmd(self, line, ms=2000):
        """Send one line; (its final reply, [its 'line' texts]) once the reply came."""
        since = len(self.evs)
        self.send(line.encode() + b"\r\n")
        end = self.t + ms
        while self.t < end:
            self.t += max(1, self.port.step())
            for i in range(since, len(self.evs)):
                e = self.evs[i]
                if e["event"] == "console" and "ok" in e:
                    return e, [x["line"] for x in self.evs[since:i] if x["event"] == "console" and "line" in x]
        raise AssertionError("no reply to %r: %s" % (line, [e.get("event") for e in self.evs[since:]][-5:]))

    def stored(self):
        return store(self.fs).load()[0]
