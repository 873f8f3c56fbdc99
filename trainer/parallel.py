"""Several texture sets compressed at once on this machine: a scene's materials (ntc-compress,
ntc-view), the presets of a --target-psnr round, bench.rate_distortion's runs. One spawned process
per set, each training on the settings' threads (one by default), as many at a time as --jobs says
(default: one per CPU core on the CPU, one on CUDA) and the memory allows. A set writes the same
bytes whichever process trains it. ntc-library does the same across machines on Ray."""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from export.errors import NTCError

from .library.progress import Board, running_line
from .textures import ConstantSetError

# Peak memory of one compression per texel x channel of mip 0 (2.2 GB for a 2048x2048 set of 12
# channels, the figure ntc-compress --max-size quotes), plus the process itself (torch loaded).
BYTES_PER_TEXEL_CHANNEL = 44
PROCESS_BYTES = 400 << 20


class WorkerLost(NTCError, RuntimeError):
    """A compression process ended without a result (killed, e.g. for memory)."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes; None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def set_bytes(tset) -> int:
    """Estimated peak memory of compressing `tset` in a process of its own."""
    w, h = tset.size
    channels = sum(t.channels for t in tset.textures)
    return BYTES_PER_TEXEL_CHANNEL * w * h * channels + PROCESS_BYTES


def default_jobs(threads: int, on_cuda: bool) -> int:
    """--jobs when not given: one per core on the CPU (each training on `threads`), one on CUDA
    (the sets would share one GPU)."""
    return 1 if on_cuda else max(1, usable_cores() // max(1, threads))


class _Stopped(Exception):
    """Raised in a worker's training loop once the parent asks the workers to stop."""


_progress_queue = _stop = None


def _init_worker(progress_queue, stop) -> None:
    global _progress_queue, _stop
    _progress_queue, _stop = progress_queue, stop
    # Ctrl-C reaches the whole process group: the parent stops the workers and says so once
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _compress_in_worker(compress, label: str, tset, settings):
    """One set in a worker process: its CompressResult, the NTCError it raised, or None when the
    parent stopped it."""
    last = [0.0]

    def on_step(desc: str, step: int, steps: int, psnr: float) -> None:
        if _stop.is_set():
            raise _Stopped
        now = time.monotonic()
        if step == steps or now - last[0] >= 1.0:
            last[0] = now
            _progress_queue.put((label, desc.split(" ")[0], step, steps, psnr))
    try:
        return compress(tset, settings, lambda *a, **k: None, on_step)
    except NTCError as e:
        return e
    except _Stopped:
        return None


class SetCompressor:
    """Compresses the sets handed to `submit` and gives every result back from `results()`:
    {key: CompressResult, or the NTCError compressing it raised}. jobs == 1, or a single set:
    in this process (with the settings' progress bar). Otherwise worker processes; `submit` waits
    while `jobs` sets (or as many as the available memory holds, at least one) are in flight, so
    no more than that are in memory at once. Use it as a context manager: leaving it
    early (an error, Ctrl-C) stops the workers. `compress`: trainer.compress.compress, handed in
    (that module's --target-psnr search uses this one); `on_done(key, result)` as each ends;
    `on_step`: compress()'s progress callback for the sets trained in this process."""

    def __init__(self, compress, settings, jobs: int, log=print, on_done=None, on_step=None):
        self.compress, self.settings, self.jobs, self.log = compress, settings, max(1, jobs), log
        self.on_done = on_done or (lambda key, result: None)
        self.on_step = on_step           # compress()'s, for the sets trained in this process
        self.done: dict[str, object] = {}
        self.running: dict = {}          # future -> (key, label, bytes, start time)
        self.pool = self.queue = self.stop = self.budget = self.sigint = None
        self.interrupted = False
        self.first = None                # the first set, held until a second one comes
        self.board = Board()
        self.status_at = 0.0

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.close(abort=kind is not None)
        return False

    def submit(self, key: str, tset, label: str, settings=None) -> None:
        """Compress `tset` (with `settings`, default the compressor's) as `key`."""
        settings = settings or self.settings
        if key in self.done or (self.first and self.first[0] == key) or \
                any(k == key for k, *_ in self.running.values()):
            return
        if self.jobs == 1:
            self._here(key, tset, settings)
            return
        if self.pool is None:
            if self.first is None:   # one set alone trains here, without a process to start
                self.first = (key, tset, label, settings)
                return
            (first, self.first) = (self.first, None)
            self._start(*first)
        self._start(key, tset, label, settings)

    def _here(self, key: str, tset, settings) -> None:
        try:
            self.done[key] = self.compress(tset, settings, self.log, self.on_step)
        except NTCError as e:
            self.done[key] = e
        self.on_done(key, self.done[key])

    def _start(self, key: str, tset, label: str, settings) -> None:
        need = set_bytes(tset)
        if self.pool is None:
            if threading.current_thread() is threading.main_thread():
                # Ctrl-C while the pool's threads and queues are mid-operation can deadlock its
                # shutdown; take it as a flag that _wait_one turns into KeyboardInterrupt
                self.sigint = signal.signal(signal.SIGINT, self._on_sigint)
            self.budget = available_memory()
            ctx = multiprocessing.get_context("spawn")
            self.queue, self.stop = ctx.Queue(), ctx.Event()
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_init_worker,
                                            initargs=(self.queue, self.stop))
        while self.running and (len(self.running) >= self.jobs or not self._fits(need)):
            self._wait_one()
        # one at a time inside a worker (a --target-psnr search too), without a progress bar
        quiet = replace(settings, jobs=1, train=replace(settings.train, progress=False))
        future = self.pool.submit(_compress_in_worker, self.compress, label, tset, quiet)
        self.running[future] = (key, label, need, time.monotonic())
        self.board.update(label, "", "starting")

    def failure(self) -> tuple[str, NTCError] | None:
        """(key, error) of a finished set that failed for another reason than being constant: a
        caller that gives up on any failure need not wait for the other sets."""
        return next(((k, r) for k, r in self.done.items()
                     if isinstance(r, NTCError) and not isinstance(r, ConstantSetError)), None)

    def results(self) -> dict:
        if self.first is not None:
            (key, tset, _, settings), self.first = self.first, None
            self._here(key, tset, settings)
        while self.running:
            self._wait_one()
        return self.done

    def close(self, abort: bool = False) -> None:
        if self.pool is None:
            return
        if abort:   # running sets stop within 10 training steps
            self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.queue.close()
        self.queue.join_thread()
        self.pool = self.queue = None
        if self.sigint is not None:
            signal.signal(signal.SIGINT, self.sigint)
            self.sigint = None

    def _on_sigint(self, signum, frame) -> None:
        self.interrupted = True

    def _fits(self, need: int) -> bool:
        """Whether `need` fits beside the running sets in the memory available at the start."""
        return self.budget is None or need + sum(r[2] for r in self.running.values()) <= \
            self.budget

    def _wait_one(self) -> None:
        """Wait until a running set finishes; show where the others are meanwhile."""
        while True:
            finished, _ = wait(list(self.running), timeout=0.5, return_when=FIRST_COMPLETED)
            if self.interrupted:
                raise KeyboardInterrupt
            self._drain_progress()
            if finished:
                break
        for future in finished:
            key, label, _, start = self.running.pop(future)
            self.board.finish(label)
            try:
                result = future.result()
            except BrokenProcessPool:
                raise WorkerLost(f"{label}: its compression process ended without a result "
                                 f"(out of memory? try --jobs 1)") from None
            if result is None:   # stopped (close(abort=True)); not kept
                continue
            self.done[key] = result
            self.on_done(key, result)
            if isinstance(result, NTCError):
                continue
            rep = result.report
            self.log(f"{label}: done, {rep['preset']} {rep['bpp']:.2f} bpp, set PSNR "
                     f"{rep['psnr_set']:.2f} dB, {time.monotonic() - start:.0f} s")

    def _drain_progress(self) -> None:
        while True:
            try:
                label, phase, step, steps, psnr = self.queue.get_nowait()
            except queue.Empty:
                break
            if label in self.board.running:
                self.board.update(label, "", phase, step, steps, psnr)
        now = time.monotonic()
        if self.settings.train.progress and now - self.status_at >= 30:
            self.status_at = now
            self.log(running_line(self.board.snapshot()))


class BatchedCompressor:
    """SetCompressor's interface over a hook that compresses a list of sets at once
    (compress_sets([(key, TextureSet)], settings) -> {key: result}: ntc-library's Ray tasks)."""

    def __init__(self, compress_sets, settings):
        self.compress_sets, self.settings, self.items = compress_sets, settings, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, key: str, tset, label: str) -> None:
        self.items.append((key, tset))

    def failure(self) -> None:
        return None   # nothing is compressed before results()

    def results(self) -> dict:
        return self.compress_sets(self.items, self.settings) if self.items else {}
