"""Where each running task of ntc-library is: a small Ray actor the tasks report to (node, preset,
step, PSNR estimate), and the status line the driver shows under its progress bar."""
from __future__ import annotations

import time


class Board:
    """The latest report of each running task, by task name (a Ray actor in a run)."""

    def __init__(self):
        self.running: dict[str, dict] = {}

    def update(self, name: str, node: str, phase: str, step: int = 0, steps: int = 0,
               psnr: float | None = None) -> None:
        self.running[name] = {"node": node, "phase": phase, "step": step, "steps": steps,
                              "psnr": psnr, "since": self.running.get(name, {}).get(
                                  "since", time.time())}

    def finish(self, name: str) -> None:
        """Forget `name` and the set tasks of it (a scene's, named 'NAME [set k/n]')."""
        for key in [k for k in self.running if k == name or k.startswith(name + " [")]:
            del self.running[key]

    def snapshot(self) -> dict[str, dict]:
        return dict(self.running)


def reporter(board, name: str, node: str, every: float = 1.0):
    """compress()'s on_step for task `name`: tells the board (a Ray actor handle) where the task
    is, at most every `every` seconds and at each preset's last step; says it started at once."""
    board.update.remote(name, node, "starting")
    last: list[float | None] = [None]   # not 0: the monotonic clock starts near boot

    def on_step(desc: str, step: int, steps: int, psnr: float) -> None:
        now = time.monotonic()
        if step == steps or last[0] is None or now - last[0] >= every:
            last[0] = now
            board.update.remote(name, node, desc.split(" ")[0], step, steps, psnr)
    return on_step


def running_line(snapshot: dict[str, dict], width: int = 160) -> str:
    """'running 2: rocks/granite on vm/1ab4aba0 p4 12000/40000 31.2 dB | ...', cut to `width`."""
    if not snapshot:
        return "running: none"
    parts = []
    for name, r in sorted(snapshot.items(), key=lambda kv: kv[1]["since"]):
        where = f"{name} on {r['node']}" if r["node"] else name
        if r["steps"]:
            psnr = f" {r['psnr']:.1f} dB" if r["psnr"] is not None else ""
            where += f" {r['phase']} {r['step']}/{r['steps']}{psnr}"
        else:
            where += f" {r['phase']}"
        parts.append(where)
    line = f"running {len(parts)}: " + " | ".join(parts)
    return line if len(line) <= width else line[:width - 1] + "…"
