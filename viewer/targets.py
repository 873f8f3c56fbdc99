"""Offscreen render targets of the window's size (scene, reference, accumulation, display), each
entered in the VramLedger with its exact bytes."""
from __future__ import annotations

import numpy as np

from .frame_stats import VramLedger

GL_NEAREST = 0x2600


class RenderTarget:
    """RGBA8 (or RGBA32F: `float_colour`) colour texture (+ depth) framebuffer of the window's
    size."""

    def __init__(self, ctx, size: tuple[int, int], ledger: VramLedger, label: str,
                 depth: bool = True, float_colour: bool = False):
        self.size = size
        self.ledger = ledger
        self.colour = ctx.texture(size, 4, dtype="f4" if float_colour else "f1")
        self.colour.filter = (GL_NEAREST, GL_NEAREST)
        self.depth = ctx.depth_texture(size) if depth else None
        self.fbo = ctx.framebuffer([self.colour], self.depth)
        w, h = size
        ledger.add("framebuffers", self.colour, w * h * (16 if float_colour else 4),
                   f"{label} colour{' RGBA32F' if float_colour else ''}")
        if self.depth is not None:
            ledger.add("framebuffers", self.depth, w * h * 4, f"{label} depth")

    def read(self) -> np.ndarray:
        """uint8 [h, w, 3], row 0 = top of the picture."""
        w, h = self.size
        data = np.frombuffer(self.fbo.read(components=3, alignment=1), np.uint8)
        return np.ascontiguousarray(data.reshape(h, w, 3)[::-1])

    def release(self) -> None:
        self.fbo.release()
        for t in (self.colour, self.depth):
            if t is not None:
                self.ledger.remove(t)
                t.release()
