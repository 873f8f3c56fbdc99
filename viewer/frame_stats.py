"""What a frame costs: the exact VRAM ledger of every GL object the viewer makes, GPU and CPU frame
times, and the driver's own memory figure where it has one.

The ledger's categories (bytes exact, all mip levels):

    textures      reference images (+ the 1x1 white texture bound to empty slots)
    decoded       load-mode textures
    latents       sample-mode latent texture arrays (feedback mode's too)
    weights       sample-mode MLP uniform blocks (and feedback mode's, which decode its tiles)
    tiles         feedback mode's tile pool, page tables and request bits
    geometry      vertex and index buffers
    framebuffers  render targets (colour RGBA8 4 B/px, depth D24 counted as 4 B/px: drivers store
                  it in 32 bits)
    uniforms      per-frame / per-draw / remap / screen-pass uniform buffers, fullscreen triangle
    environment   the ambient light table (RGBA32F)
    overlay       font atlas and text vertex buffer
"""
from __future__ import annotations

import ctypes

import numpy as np

from export.decode.gl_context import RawGL

CATEGORIES = ("textures", "decoded", "latents", "weights", "tiles", "geometry", "framebuffers",
              "uniforms", "environment", "overlay")
GL_TIME_ELAPSED = 0x88BF
GL_QUERY_RESULT = 0x8866
GL_GPU_MEM_TOTAL_AVAILABLE_NVX = 0x9048
GL_GPU_MEM_CURRENT_AVAILABLE_NVX = 0x9049


class VramLedger:
    """Exact bytes of every live GL object the renderer created, by category."""

    def __init__(self):
        self._items: dict[int, tuple[object, str, int, str]] = {}

    def add(self, category: str, obj, nbytes: int, label: str = "") -> None:
        if category not in CATEGORIES:
            raise ValueError(f"unknown VRAM category {category}")
        self._items[id(obj)] = (obj, category, int(nbytes), label)

    def remove(self, obj) -> None:
        self._items.pop(id(obj), None)

    def by_category(self) -> dict[str, int]:
        out = {c: 0 for c in CATEGORIES}
        for _, cat, n, _ in self._items.values():
            out[cat] += n
        return out

    def total(self) -> int:
        return sum(n for _, _, n, _ in self._items.values())

    def entries(self) -> list[tuple[str, str, int]]:
        return [(cat, label, n) for _, cat, n, label in self._items.values()]


def mip_chain_texels(w: int, h: int) -> int:
    total = 0
    while True:
        total += w * h
        if w == 1 and h == 1:
            return total
        w, h = max(w // 2, 1), max(h // 2, 1)


def format_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    if n < 1024:
        return f"{n} B"
    if n < 1024 ** 2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 ** 2:.2f} MiB"


class FrameTimer:
    """GPU time by GL_TIME_ELAPSED queries (a ring, read `latency` frames later so that reading
    does not stall; 64-bit results, raw GL: moderngl reads them as 32 bits, which wraps at 4.3 s)
    and CPU time of building and submitting the frame; statistics over the last `window`."""

    def __init__(self, gl: RawGL, latency: int = 2, window: int = 120):
        self.gl = gl
        self.latency = max(0, latency)
        self.window = window
        self._free: list[int] = []
        self._all: list[int] = []
        self._pending: list[int] = []
        self._open: int | None = None
        self.gpu_ms: list[float] = []
        self.cpu_ms: list[float] = []
        # llvmpipe (Mesa 22) answers the first time-elapsed query of a context with garbage
        # (hours); the first frame also compiles every program, so it is dropped anyway.
        self._skip = 1

    def begin(self) -> None:
        if self._free:
            q = self._free.pop()
        else:
            name = ctypes.c_uint(0)
            self.gl.glGenQueries(1, ctypes.byref(name))
            q = name.value
            self._all.append(q)
        self.gl.glBeginQuery(GL_TIME_ELAPSED, q)
        self._open = q

    def end(self, cpu_ms: float) -> None:
        self.gl.glEndQuery(GL_TIME_ELAPSED)
        self._pending.append(self._open)
        self._open = None
        self.cpu_ms.append(cpu_ms)
        del self.cpu_ms[:-self.window]
        while len(self._pending) > self.latency:
            self._collect()

    def _collect(self) -> None:
        q = self._pending.pop(0)
        ns = ctypes.c_uint64(0)
        self.gl.glGetQueryObjectui64v(q, GL_QUERY_RESULT, ctypes.byref(ns))
        self._free.append(q)
        if self._skip:
            self._skip -= 1
            return
        self.gpu_ms.append(ns.value / 1e6)
        del self.gpu_ms[:-self.window]

    def flush(self) -> None:
        while self._pending:
            self._collect()

    def reset(self) -> None:
        self.flush()
        self.gpu_ms.clear()
        self.cpu_ms.clear()

    @staticmethod
    def summary(values: list[float]) -> dict | None:
        if not values:
            return None
        a = np.asarray(values, np.float64)
        return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95))}

    def release(self) -> None:
        self.flush()
        for q in self._all:
            name = ctypes.c_uint(q)
            self.gl.glDeleteQueries(1, ctypes.byref(name))
        self._all.clear()
        self._free.clear()


def driver_vram_bytes(ctx, gl: RawGL) -> int | None:
    """Dedicated video memory in use per GL_NVX_gpu_memory_info (total available - currently
    available; the whole GPU, not only this process), None without the extension."""
    if "GL_NVX_gpu_memory_info" not in ctx.extensions:
        return None
    total = gl.get_int(GL_GPU_MEM_TOTAL_AVAILABLE_NVX)
    free = gl.get_int(GL_GPU_MEM_CURRENT_AVAILABLE_NVX)
    gl.glGetError()
    return max(0, total - free) * 1024
