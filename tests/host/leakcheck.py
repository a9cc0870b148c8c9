"""Fixtures for tests that start processes, threads, ptys or sockets: each test has a time
limit and fails rather than hangs, and nothing it started may outlive it.

A test module takes them with `from leakcheck import nothing_leaks, time_limit  # noqa: F401`
(both autouse). The time limit is the test's `@limit(seconds)`, else the module's
TEST_LIMIT_S, else 60 s."""
import os
import signal
import threading
import time

import pytest


def child_pids():
    """Processes whose parent is this one (zombies included), from /proc."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        if int(s[s.rfind(")") + 2:].split()[1]) == me:
            out.append(int(d))
    return out


def open_fds():
    return set(os.listdir("/proc/self/fd"))


class TimeLimitExceeded(Exception):
    pass


def limit(seconds):
    """Decorator: this test's time limit."""
    def mark(fn):
        fn.time_limit_s = seconds
        return fn
    return mark


@pytest.fixture(autouse=True)
def time_limit(request):
    seconds = getattr(request.function, "time_limit_s", getattr(request.module, "TEST_LIMIT_S", 60))

    def on_alarm(signum, frame):
        raise TimeLimitExceeded("test ran longer than %d s" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def nothing_leaks():
    """No thread, fd or child process the test started is left once the test's own clean-up
    has had 3 s."""
    threads, fds = set(threading.enumerate()), open_fds()
    assert child_pids() == []
    yield
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and (set(threading.enumerate()) - threads or open_fds() - fds
                                           or child_pids()):
        time.sleep(0.02)
    assert set(threading.enumerate()) - threads == set(), "leaked threads"
    assert open_fds() - fds == set(), "leaked fds"
    assert child_pids() == [], "leaked child processes"
