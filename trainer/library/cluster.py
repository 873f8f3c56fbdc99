"""Running a library's jobs on Ray: one task per material (a texture folder, or each distinct
texture set of a scene, the scene's own task assembling them), embedded on this machine (sized to
its cores) or on a running cluster (--address), with a progress bar, retries and failures
isolated.

A task that raises (a worker lost, out of memory, a bug) is retried by Ray up to `retries` times;
a material whose input is bad comes back as a 'failed' record at once (jobs.run), not retried.
Either way the other materials go on, and the run ends with every material's record.
"""
from __future__ import annotations

import os
import sys

from export.errors import NTCError, one_line


class ClusterError(NTCError):
    """Ray cannot be started or reached."""


def start(address: str | None, cpus: int | None = None):
    """Ray, embedded (address None or 'local': this machine, `cpus` or its cores) or joined."""
    import logging

    import ray
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)   # Ray's start-up notices, not ours
    try:
        if address in (None, "local"):
            ray.init(num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as e:  # noqa: BLE001 - any failure to start or join is one line for the user
        hint = "" if address in (None, "local") or os.environ.get("RAY_AUTH_MODE") else \
            " (a cluster started with token authentication, Ray's default, needs " \
            "RAY_AUTH_MODE=token and its token in ~/.ray/auth_token: see ntc-library --help)"
        raise ClusterError(f"cannot {'start' if address in (None, 'local') else 'join'} Ray"
                           f"{'' if address in (None, 'local') else ' at ' + address}: "
                           f"{one_line(e)}{hint}") from None
    return ray


def _compress_set(tset, settings, board=None, name=""):
    """One texture set of a scene (a task of its own): its CompressResult, or the NTCError."""
    from ..compress import compress
    from .progress import reporter
    on_step = reporter(board, name, _node()) if board is not None else None
    try:
        return compress(tset, settings, lambda *a, **k: None, on_step)
    except NTCError as e:
        return e
    finally:
        if board is not None:
            board.finish.remote(name)


def _compress_sets(items, settings, board=None, scene="") -> dict:
    """A scene's distinct sets, one Ray task each (its scene task waits, lending its CPU)."""
    import ray
    task = ray.remote(_compress_set)
    if board is not None:
        board.update.remote(scene, _node(), f"waiting on {len(items)} texture sets")
    refs = [task.remote(tset, settings, board, f"{scene} [set {i}/{len(items)}]")
            for i, (_, tset) in enumerate(items, 1)]
    return {key: result for (key, _), result in zip(items, ray.get(refs))}


def _node() -> str:
    """Where this task runs: host name / Ray node id (8 hex digits)."""
    import socket

    import ray
    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"


def _job(mat, out_root, settings, key, board=None):
    """The task body: one torch thread (the settings' default), then jobs.run; a scene's
    materials become tasks of their own. Reports where it is to `board` (a progress.Board)."""
    from functools import partial

    from .jobs import run
    from .progress import reporter
    node = _node()
    on_step = reporter(board, mat.rel, node) if board is not None else None
    return run(mat, out_root, settings, key, node, partial(_compress_sets, board=board,
                                                           scene=mat.rel), on_step)


def _summary(record: dict) -> str:
    """One line for a finished material: what it came to, how long, where."""
    where = f" on {record['node']}" if record.get("node") else ""
    secs = f", {record['seconds']:.0f} s" if record.get("seconds") is not None else ""
    if record["status"] == "failed":
        return f"failed {record['material']}: {record.get('reason')}{where}"
    quality = f": {record['bpp']:.2f} bpp, {record['psnr_set']:.2f} dB" \
        if record.get("psnr_set") is not None else f": {len(record.get('materials', []))} materials"
    return f"done {record['material']}{quality}{secs}{where}"


def run_all(ray, jobs, out_root, settings, cpus_per_task: float = 1, gpus_per_task: float = 0,
            retries: int = 1, progress: bool = True, on_record=None, poll: float = 0.5) -> list[dict]:
    """Run (material, key) `jobs`; records in job order. `on_record(record)` as each ends. With
    `progress`: a bar (done / failed / total, rate, ETA), a status line naming every running task,
    its node and training step (refreshed every `poll` s), and a line per finished material."""
    from tqdm import tqdm

    from .progress import Board, running_line
    board = ray.remote(Board).options(num_cpus=0).remote() if progress else None
    task = ray.remote(_job).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task,
                                    max_retries=retries, retry_exceptions=True)
    refs = {task.remote(mat, out_root, settings, key, board): i
            for i, (mat, key) in enumerate(jobs)}
    records: list[dict | None] = [None] * len(jobs)
    failed = 0
    with tqdm(total=len(jobs), desc="materials", unit="material", disable=not progress,
              dynamic_ncols=True) as bar, \
            tqdm(total=0, bar_format="{desc}", position=1, disable=not progress,
                 dynamic_ncols=True) as status:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=poll if progress else None)
            if not ready:
                status.set_description_str(running_line(ray.get(board.snapshot.remote()),
                                                        max(40, (status.ncols or 160) - 1)))
                continue
            i = refs[ready[0]]
            mat = jobs[i][0]
            try:
                record = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - a task that failed after its retries
                record = {"material": mat.rel, "kind": mat.kind, "status": "failed",
                          "reason": one_line(getattr(e, "cause", None) or e), "seconds": None,
                          "node": None}
            if board is not None:
                board.finish.remote(mat.rel)
            records[i] = record
            failed += record["status"] == "failed"
            bar.set_postfix(failed=failed, refresh=False)
            if progress:
                bar.write(_summary(record), file=sys.stderr)
            bar.update(1)
            if on_record is not None:
                on_record(record)
    return records
