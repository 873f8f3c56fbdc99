"""Feedback mode's GL objects of one neural set (viewer/feedback_tiles.py keeps their residency):
its request bits, read a few frames after the frame that wrote them (RequestBits), and its
latents, weights, tile decoder, remap block and page table (FeedbackSet)."""
from __future__ import annotations

import numpy as np

from export.decode.gl_resources import NTCTextureGL, REMAP_BINDING, remap_block
from export.decode.gl_tiles import (PAGES_BINDING, REQUESTS_BINDING,
                                    GLTileDecoder, TileLayout, TilePool, pool_layers)

from .frame_stats import VramLedger

POOL_FORMAT = "rgba8"         # the pool's texels: "rgba8" or "bc7" (gl_tiles.POOL_FORMATS)
READBACK_LAG = 1              # request bits read this many frames after the frame wrote them
READBACK_LAGS = (0, 1, 2)     # the lags a FeedbackConfig takes


class RequestBits:
    """A set's request bits (a bit a tile) in `lag` + 1 buffers taken in turn: frame k writes
    buffer k mod (lag + 1), and after it `take` reads (and clears) frame k - lag's, the one
    frame k + 1 writes next. With lag 0 that read waits for the frame just drawn; with lag 1 it
    reads a frame the GPU finished while the CPU was giving it the next."""

    def __init__(self, ctx, tiles: int, lag: int):
        self.tiles = tiles
        self.lag = lag
        self.words = -(-tiles // 32)
        self.frames = 0      # frames taken (drawn and followed by take)
        self.buffers = []
        try:
            for _ in range(lag + 1):
                self.buffers.append(ctx.buffer(reserve=4 * self.words))
                self.buffers[-1].clear()
        except BaseException:
            self.release()
            raise

    @property
    def nbytes(self) -> int:
        return sum(b.size for b in self.buffers)

    @property
    def writing(self):
        """The buffer the next frame writes (and, with lag 0, the next take reads)."""
        return self.buffers[self.frames % len(self.buffers)]

    def bind(self) -> None:
        self.writing.bind_to_storage_buffer(REQUESTS_BINDING)

    def take(self) -> np.ndarray | None:
        """After a frame: the tiles frame k - lag touched, or None while no frame that old
        exists (its buffer cleared for the next frame to write)."""
        self.frames += 1
        if self.frames <= self.lag:
            return None
        buf = self.writing
        bits = np.frombuffer(buf.read(), np.uint8)
        buf.clear()
        return np.flatnonzero(np.unpackbits(bits, bitorder="little")[:self.tiles])

    def restart(self) -> None:
        """Forget every frame written so far (a view left and come back to): the next take
        after `lag` + 1 new frames is the first to read."""
        for b in self.buffers:
            b.clear()
        self.frames = 0

    def release(self) -> None:
        for b in self.buffers:
            b.release()
        self.buffers.clear()


def layers_of(model, fmt: str = POOL_FORMAT) -> int:
    """Pool layers a set fills in a pool of format `fmt`."""
    return pool_layers(model.stored_channels, fmt)


class FeedbackSet:
    """One .ntc in feedback mode: the latents and weights that decode its tiles, the load pass,
    its remap block, page buffer (header + slot per tile) and request bits."""

    def __init__(self, ctx, model, ledger: VramLedger, label: str,
                 repeat: tuple[bool, bool] = (True, True), fmt: str = POOL_FORMAT,
                 lag: int = READBACK_LAG):
        self.ledger = ledger
        self.model = model
        self.repeat = repeat   # per axis: tile borders wrapped (repeat) or clamped
        self.format = fmt      # the pool's, which sets how many stored channels a layer holds
        self.layout = TileLayout(model.width, model.height, model.mips)
        self.layers = layers_of(model, fmt)
        self.slot = np.full(self.layout.count, -1, np.int32)
        self.pool: TilePool | None = None   # set by TileCache.add
        self.tex = NTCTextureGL(model, ctx)
        self.decoder = self.remap = self.pages = self.requests = None
        try:
            self.decoder = GLTileDecoder(self.tex, fmt)
            self.remap = ctx.buffer(remap_block(model))
            self.pages = ctx.buffer(reserve=4 * (len(self.layout.header()) + self.layout.count))
            self.requests = RequestBits(ctx, self.layout.count, lag)
        except BaseException:
            self.release()
            raise
        self.write_pages()
        sizes = self.tex.vram_bytes()
        ledger.add("latents", self.tex, sizes["latents"], f"{label} latents")
        ledger.add("weights", self.tex.weights, sizes["weights"], f"{label} MLP (fp32)")
        ledger.add("uniforms", self.remap, self.remap.size, f"{label} remap")
        ledger.add("tiles", self.pages, self.pages.size + self.requests.nbytes,
                   f"{label} page table + request bits ({len(self.requests.buffers)} frames)")

    def write_pages(self) -> None:
        self.pages.write(np.concatenate([self.layout.header(), self.slot]).astype(np.int32))

    def bind(self) -> None:
        """Everything the feedback program reads of this set, and the pool (once added)."""
        self.remap.bind_to_uniform_block(REMAP_BINDING)
        self.pages.bind_to_storage_buffer(PAGES_BINDING)
        self.requests.bind()
        self.pool.bind()

    def release(self) -> None:
        for obj in (self.tex, self.tex.weights, self.remap, self.pages):
            self.ledger.remove(obj)
        if self.decoder is not None:
            self.decoder.release()
        for obj in (self.remap, self.pages, self.requests):
            if obj is not None:
                obj.release()
        self.tex.release()
