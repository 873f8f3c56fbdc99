"""Feedback mode's tiles: a set's colour mips cut into NTC_TILE x NTC_TILE tiles, decoded on demand
by the load pass into slots of a pool texture, which shaders/ntc_feedback.slang filters.

    TileLayout(w, h, mips)        the tiles of every mip as entries (mip by mip, row-major), the
                                  page buffer's header, each entry's texel rectangle
    TilePool(ctx, slots, layers)  the RGBA8 texture array the tiles are decoded into (layer j:
                                  stored channels 4j..4j+3), NTC_POOL_ROW slots a row, each
                                  NTC_SLOT texels a side: the tile and a one-texel border
    GLTileDecoder(tex)            the load pass of one NTCTextureGL (stored channels), one draw a
                                  tile into its slot: each texel what load mode decodes for it,
                                  the border's wrapped (repeat) or clamped to the mip

Which tiles are resident, and when they are decoded or evicted, is the caller's (viewer/
feedback_tiles.py).
"""
from __future__ import annotations

import ctypes

import numpy as np

from export import layout
from shaders import constants as C

from .gl_context import (GL_COLOR_ATTACHMENT0, GL_FRAMEBUFFER, GL_FRAMEBUFFER_COMPLETE,
                         GL_SCISSOR_TEST, NTCGLError, RawGL, exact_writes)
from .gl_load import GLLoadDecoder
from .gl_resources import PASS_BINDING
from shaders.interface import new_block

TILE = C.NTC_TILE
SLOT = C.NTC_SLOT
POOL_ROW = C.NTC_POOL_ROW
PAGE_HEADER = C.NTC_PAGE_HEADER
POOL_UNIT = C.BINDINGS["ntcPool"]
PAGES_BINDING = C.BINDINGS["ntcPages"]
REQUESTS_BINDING = C.BINDINGS["ntcRequests"]


class TileLayout:
    """The tiles of a set's colour mips: entry = base[mip] + row * tiles_x[mip] + column."""

    def __init__(self, width: int, height: int, mips: int):
        if not 1 <= mips <= PAGE_HEADER:
            raise ValueError(f"{mips} mips: feedback mode takes 1..{PAGE_HEADER}")
        self.sizes = [layout.mip_size(width, height, m) for m in range(mips)]
        self.grids = [(-(-w // TILE), -(-h // TILE)) for w, h in self.sizes]
        counts = [gx * gy for gx, gy in self.grids]
        self.base = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.count = int(self.base[-1])
        self.mip = np.repeat(np.arange(mips), counts)   # each entry's mip

    def header(self) -> np.ndarray:
        """The page buffer's first PAGE_HEADER ints: each mip's first entry (then zeros)."""
        out = np.zeros(PAGE_HEADER, np.int32)
        out[:len(self.sizes)] = self.base[:-1]
        return out

    def rect(self, entry: int) -> tuple[int, int, int, int, int]:
        """(mip, x0, y0, width, height) of the texels tile `entry` holds (edge tiles are cut)."""
        m = int(self.mip[entry])
        gx, _ = self.grids[m]
        row, col = divmod(entry - int(self.base[m]), gx)
        w, h = self.sizes[m]
        x0, y0 = col * TILE, row * TILE
        return m, x0, y0, min(TILE, w - x0), min(TILE, h - y0)

    def entries(self, mip: int, texels: np.ndarray) -> np.ndarray:
        """Entries of the tiles holding texels [N, 2] (x, y, already wrapped) of `mip`."""
        t = np.asarray(texels, np.int64) // TILE
        return self.base[mip] + t[:, 1] * self.grids[mip][0] + t[:, 0]

    def single_tile_entries(self) -> np.ndarray:
        """The entries of the mips that are one tile (the fallback that is always resident)."""
        return np.array([int(self.base[m]) for m, g in enumerate(self.grids) if g == (1, 1)],
                        np.int64)


class TilePool:
    """`slots` tile slots (rounded up to whole rows, at most as many rows as the driver's largest
    texture holds) of `layers` RGBA8 layers, and the raw GL framebuffer that renders into them
    (every layer attached)."""

    def __init__(self, ctx, slots: int, layers: int):
        import moderngl
        if not 1 <= layers <= C.NTC_MAX_OUT_VEC4:
            raise ValueError(f"{layers} layers: 1..{C.NTC_MAX_OUT_VEC4}")
        limit = int(ctx.info.get("GL_MAX_TEXTURE_SIZE", 16384))
        rows = min(-(-max(1, slots) // POOL_ROW), limit // SLOT)
        self.slots = rows * POOL_ROW
        self.layers = layers
        self.size = (POOL_ROW * SLOT, rows * SLOT)
        self.ctx = ctx
        self._gl = RawGL()
        self.fbo = 0
        self.texture = ctx.texture_array((*self.size, layers), 4, dtype="f1")
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)   # bilinear in a slot
        self.texture.repeat_x = self.texture.repeat_y = False
        self.nbytes = self.size[0] * self.size[1] * layers * 4
        try:
            self._framebuffer()
        except BaseException:
            self.release()
            raise

    def _framebuffer(self) -> None:
        gl = self._gl
        name = ctypes.c_uint(0)
        gl.glGenFramebuffers(1, ctypes.byref(name))
        self.fbo = name.value
        home = self.ctx.fbo if self.ctx.fbo is not None else self.ctx.detect_framebuffer()
        gl.glBindFramebuffer(GL_FRAMEBUFFER, self.fbo)
        try:
            for j in range(self.layers):
                gl.glFramebufferTextureLayer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0 + j,
                                             self.texture.glo, 0, j)
            self.draw_buffers(self.layers)
            status = gl.glCheckFramebufferStatus(GL_FRAMEBUFFER)
            if status != GL_FRAMEBUFFER_COMPLETE:
                raise NTCGLError(f"the driver cannot render into an RGBA8 texture array "
                                 f"(framebuffer status 0x{status:04X})")
        finally:
            home.use()

    def draw_buffers(self, layers: int) -> None:
        """Write the first `layers` layers (the framebuffer must be bound)."""
        bufs = (ctypes.c_uint * layers)(*(GL_COLOR_ATTACHMENT0 + j for j in range(layers)))
        self._gl.glDrawBuffers(layers, bufs)

    def origin(self, slot: int) -> tuple[int, int]:
        """The first texel of slot `slot` in the pool (its border's corner)."""
        return (slot % POOL_ROW) * SLOT, (slot // POOL_ROW) * SLOT

    def read(self) -> np.ndarray:
        """The pool as uint8 [layers, height, width, 4] (tests)."""
        data = np.frombuffer(self.texture.read(), np.uint8)
        return data.reshape(self.layers, self.size[1], self.size[0], 4)

    def bind(self) -> None:
        self.texture.use(POOL_UNIT)

    def release(self) -> None:
        if self.fbo:
            name = ctypes.c_uint(self.fbo)
            self._gl.glDeleteFramebuffers(1, ctypes.byref(name))
            self.fbo = 0
        if self.texture is not None:
            self.texture.release()
            self.texture = None


class GLTileDecoder(GLLoadDecoder):
    """The load pass of one set, decoding tiles into pool slots."""

    def decode(self, pool: TilePool, tiles, repeat: tuple[bool, bool] = (False, False)) -> None:
        """Decode `tiles`, each (mip, x0, y0, width, height, slot), into `pool` with their
        borders: per axis wrapped around the mip where `repeat` says so, else clamped to it."""
        if self.targets > pool.layers:
            raise ValueError(f"the set has {self.targets} layers, the pool {pool.layers}")
        gl, model = self.tex._gl, self.tex.model
        block = new_block("NtcPass")
        with exact_writes(gl):
            gl.glBindFramebuffer(GL_FRAMEBUFFER, pool.fbo)
            pool.draw_buffers(self.targets)
            gl.glEnable(GL_SCISSOR_TEST)
            try:
                self.pass_ubo.bind_to_uniform_block(PASS_BINDING)
                self.tex.bind()
                for mip, x0, y0, w, h, slot in tiles:
                    sx, sy = pool.origin(slot)
                    gl.glViewport(sx, sy, SLOT, SLOT)
                    gl.glScissor(sx, sy, w + 2, h + 2)
                    mw, mh = layout.mip_size(model.width, model.height, mip)
                    block["ntcPass"] = (mip, mw, mh, 0)
                    block["ntcOrigin"] = (x0 - 1 - sx, y0 - 1 - sy, int(repeat[0]), int(repeat[1]))
                    self.pass_ubo.write(block.tobytes())
                    self.triangle.render()
            finally:
                gl.glDisable(GL_SCISSOR_TEST)
                pool.draw_buffers(pool.layers)
                self._home.use()
        err = self.tex.ctx.error
        if err != "GL_NO_ERROR":
            raise NTCGLError(f"feedback-mode tile decode failed: {err}")
