"""A second thread for a training step's independent work. The fused step hands it what nothing
on the main thread's path waits for until the step's end: the weight gradients' multiplies, the
next batch's texel draw, half the latent rows' Adam. Every piece computes the same values in the
same order whichever thread runs it, so a run trains to the same bytes with or without the helper
(tests/test_fused_step.py); with it a step uses a second core (bench/choices.md).

`Inline` is the one-thread form: the same calls, run at once on the caller's thread."""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor


class Inline:
    """Runs each submitted call at once; returns its finished Future."""
    threaded = False

    def submit(self, fn, *args) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as e:   # re-raised by result(), where a threaded helper raises too
            done.set_exception(e)
        return done

    def close(self) -> None:
        pass


class Helper(Inline):
    """Runs submitted calls on one background thread, in the order submitted. torch's matrix
    multiplies and the C kernels (ctypes) release the GIL, so they run beside the main thread."""
    threaded = True

    def __init__(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ntc-step")

    def submit(self, fn, *args) -> Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def make_helper(threads: int) -> Inline:
    """A background helper for 2 threads or more, else the inline form."""
    return Helper() if threads >= 2 else Inline()
