"""gwbox_tools.devconsole against a scripted box: the serial object answers each command line
with the box's JSON reply lines (the console's protocol, docs/console.md)."""
import json

import pytest

from gwbox_tools import devconsole
from gwbox_tools.devconsole import ConsoleError, DeviceConsole

OOM = "out of memory: nothing changed; `reboot safe`, then try again"


class ScriptedBox:
    """A serial port whose box answers `status` from a list of replies, one per asking."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.asked = 0
        self.out = b""

    def write(self, data):
        assert data == b"status\r"
        self.asked += 1
        ok, msg = self.replies.pop(0)
        e = {"event": "console", "cmd": "status", "ok": ok, "msg": msg}
        if ok:
            e["status"] = {"line": "up"}
        self.out += json.dumps(e).encode() + b"\r\n"

    def flush(self):
        pass

    def read(self, n):
        data, self.out = self.out[:n], self.out[n:]
        return data

    def close(self):
        pass


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(devconsole.time, "sleep", lambda s: None)


def test_status_answered_out_of_memory_is_asked_again():
    box = ScriptedBox([(False, OOM), (True, "running")])
    st = DeviceConsole("scripted", timeout=2, ser=box).status()
    assert st["msg"] == "running" and st["status"]["line"] == "up"
    assert box.asked == 2


def test_status_out_of_memory_every_time_is_an_error_after_the_last_try():
    box = ScriptedBox([(False, OOM)] * devconsole.STATUS_TRIES)
    with pytest.raises(ConsoleError) as e:
        DeviceConsole("scripted", timeout=2, ser=box).status()
    assert str(e.value) == "status: " + OOM
    assert box.asked == devconsole.STATUS_TRIES and not box.replies


def test_status_refused_for_another_reason_is_not_asked_again():
    box = ScriptedBox([(False, "locked for 30 s"), (True, "running")])
    with pytest.raises(ConsoleError, match="locked for 30 s"):
        DeviceConsole("scripted", timeout=2, ser=box).status()
    assert box.asked == 1
