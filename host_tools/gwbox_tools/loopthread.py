"""Calls from any thread, run on one selector-loop thread.

The modem emulator and the tests' line attacker each own a loop thread that serves ptys
and sockets, and the test (or tool) thread drives them through method calls. Those calls
must run on the loop thread, never beside it: they are queued here and the loop is woken
through a pipe. A mixin, so both keep their own loop and selector.
"""
import os
import queue
import threading

CALL_TIMEOUT_S = 10.0


class LoopCalls:
    """Mixin. The class names its loop in LOOP_NAME, runs it in self._run (which ends once
    self._stopping is set, keeps what killed it in self._crash, calls _on_wake() when
    self._wake_r is readable and _run_queued() once it has ended: nobody waits forever on
    a dead loop), calls _init_calls() in __init__, _open_wake() before _start_loop(), and
    _stop_loop() before it closes its fds."""

    LOOP_NAME = "loop"

    def _init_calls(self):
        self._calls = queue.SimpleQueue()
        self._wake_r = self._wake_w = None
        self._thread = None
        self._stopping = False
        self._crash = None

    def _start_loop(self):
        self._thread = threading.Thread(target=self._run, name=self.LOOP_NAME.replace(" ", "-"), daemon=True)
        self._thread.start()

    def _stop_loop(self, timeout=10.0):
        t = self._thread
        if t is not None and t.is_alive():
            self._stopping = True
            self._wake()
            t.join(timeout)

    def _open_wake(self):
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def _wake(self):
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, TypeError, OSError):
            pass

    def _in_loop(self, fn, *args):
        """Run fn on the loop thread (or directly when it is not running) and return its
        result; an exception it raised is raised here, in the caller's thread."""
        t = self._thread
        if t is None or not t.is_alive() or threading.current_thread() is t:
            if self._crash is not None:
                raise RuntimeError("%s thread died: %r" % (self.LOOP_NAME, self._crash))
            return fn(*args)
        done = threading.Event()
        box = [None, None]
        self._calls.put((fn, args, done, box))
        self._wake()
        if not done.wait(CALL_TIMEOUT_S):
            raise RuntimeError("%s thread did not answer" % self.LOOP_NAME)
        if box[1] is not None:
            raise box[1]
        return box[0]

    def _on_wake(self, mask=None):
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
        self._run_queued()

    def _run_queued(self):
        while True:
            try:
                fn, args, done, box = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                box[0] = fn(*args)
            except BaseException as e:  # handed back to the caller's thread
                box[1] = e
            done.set()
