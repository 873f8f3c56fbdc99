"""Which clock a bench's ratios rest on, decided once for the decode and viewer benches."""
from __future__ import annotations


def clock_of(rows: list[dict]) -> tuple[str, str]:
    """(row key, name) of the clock every comparison uses: the GL timer where it covers every
    row's work, else the wall clock (llvmpipe's timer misses draws it rasterises at the flush)."""
    if all(r["timer_covers_work"] for r in rows):
        return "gpu_ms", "GL timer"
    return "wall_ms", "wall clock"


def cpu_is_work(device: str) -> bool:
    """A software renderer: the process's CPU time is the rendering work itself, and unlike the
    wall clock it does not grow when other load on the machine takes the cores."""
    dev = device.lower()
    return any(name in dev for name in ("llvmpipe", "softpipe", "swrast"))
