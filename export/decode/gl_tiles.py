"""Feedback mode's tiles: a set's colour mips cut into NTC_TILE x NTC_TILE tiles, decoded on demand
by the load pass into slots of a pool texture, which shaders/ntc_feedback.slang filters.

    TileLayout(w, h, mips)        the tiles of every mip as entries (mip by mip, row-major), the
                                  page buffer's header, each entry's texel rectangle
    TilePool(ctx, slots, layers, fmt)
                                  the texture array the tiles end up in, NTC_POOL_ROW slots a
                                  row, each the tile and a border: RGBA8 (layer j: stored
                                  channels 4j..4j+3, exact 8-bit texels, one texel of border,
                                  decoded in place) or BC7 (layer j: channels 3j..3j+2 in rgb,
                                  two texels of border, whole blocks; decoded into RGBA8 staging
                                  a batch at a time, encoded on the GPU, the blocks copied into
                                  their slots)
    GLTileDecoder(tex, fmt)       the load pass of one NTCTextureGL (stored channels), one draw a
                                  tile into its slot: each texel what load mode decodes for it,
                                  the border's wrapped (repeat) or clamped to the mip

Which tiles are resident, and when they are decoded or evicted, is the caller's (viewer/
feedback_tiles.py).
"""
from __future__ import annotations

import ctypes

import numpy as np

from export import layout
from export.bcn.formats import FORMATS
from shaders import constants as C
from shaders.interface import new_block

from .gl_context import (GL_ACTIVE_TEXTURE, GL_CLAMP_TO_EDGE, GL_COLOR_ATTACHMENT0,
                         GL_FRAMEBUFFER, GL_FRAMEBUFFER_COMPLETE, GL_LINEAR,
                         GL_TEXTURE0, GL_TEXTURE_2D, GL_TEXTURE_2D_ARRAY,
                         GL_TEXTURE_BINDING_2D_ARRAY, GL_TEXTURE_MAG_FILTER,
                         GL_TEXTURE_MIN_FILTER, GL_TEXTURE_WRAP_S, GL_TEXTURE_WRAP_T, NTCGLError,
                         RawGL, exact_writes)
from .gl_load import GLLoadDecoder
from .gl_resources import PASS_BINDING

TRIPLE_FRAGMENT = "ntc_load_triples.frag.glsl"   # the load pass, three stored channels a target
TILE = C.NTC_TILE
# pool format: (texels of border around a tile, stored channels a layer); BC7 layers hold three
# in rgb (its opaque modes code them better than four: bench/choices.md)
POOL_FORMATS = {"bc7": (2, 3), "rgba8": (1, 4)}
STAGE_SLOTS = 32                        # a BC7 pool's tiles decoded (then encoded) at once
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

    def small_mip_entries(self, max_tiles: int) -> np.ndarray:
        """The entries of every mip of at most `max_tiles` tiles (the last mips, one tile each,
        whatever `max_tiles` >= 1)."""
        mips = [m for m, (gx, gy) in enumerate(self.grids) if gx * gy <= max(1, max_tiles)]
        return np.concatenate([np.arange(self.base[m], self.base[m + 1]) for m in mips]
                              ).astype(np.int64)


def pool_layers(stored_channels: int, fmt: str) -> int:
    """Layers a set of `stored_channels` fills in a pool of format `fmt`."""
    return -(-stored_channels // POOL_FORMATS[fmt][1])


class _LayerTarget:
    """RGBA8 layers (of a texture array, or 2D textures) and the raw GL framebuffer that renders
    into them, slots of `slot` texels `row` to a row: what GLTileDecoder.decode draws into."""

    def _framebuffer(self, attach) -> None:
        gl = self._gl
        name = ctypes.c_uint(0)
        gl.glGenFramebuffers(1, ctypes.byref(name))
        self.fbo = name.value
        home = self.ctx.fbo if self.ctx.fbo is not None else self.ctx.detect_framebuffer()
        gl.glBindFramebuffer(GL_FRAMEBUFFER, self.fbo)
        try:
            for j in range(self.layers):
                attach(j)
            self.draw_buffers(self.layers)
            status = gl.glCheckFramebufferStatus(GL_FRAMEBUFFER)
            if status != GL_FRAMEBUFFER_COMPLETE:
                raise NTCGLError(f"the driver cannot render into RGBA8 tile layers "
                                 f"(framebuffer status 0x{status:04X})")
        finally:
            home.use()

    def draw_buffers(self, layers: int) -> None:
        """Write the first `layers` layers (the framebuffer must be bound)."""
        bufs = (ctypes.c_uint * layers)(*(GL_COLOR_ATTACHMENT0 + j for j in range(layers)))
        self._gl.glDrawBuffers(layers, bufs)

    def origin(self, slot: int) -> tuple[int, int]:
        """The first texel of slot `slot` (its border's corner)."""
        return (slot % self.row) * self.slot, (slot // self.row) * self.slot

    def _release_fbo(self) -> None:
        if self.fbo:
            name = ctypes.c_uint(self.fbo)
            self._gl.glDeleteFramebuffers(1, ctypes.byref(name))
            self.fbo = 0


class TilePool(_LayerTarget):
    """`slots` tile slots (rounded up to whole rows, at most as many rows as the driver's largest
    texture holds) of `layers` layers in format `fmt`: "bc7" (one byte a texel; tiles decoded a
    batch at a time into RGBA8 staging, encoded on the GPU by shaders/bcn_encode.slang and moved
    into their slots, two texels of border so slots are whole blocks) or "rgba8" (four bytes a
    texel, exactly the decoded 8-bit values, decoded straight into the pool, one texel of border).
    A BC7 layer holds three stored channels (in rgb), an RGBA8 one four. `encoder`: the
    GLBCnEncoder a BC7 pool encodes with, kept by the caller (so a pool grown into a larger one
    does not build its programs again); None: one of its own.
    """

    def __init__(self, ctx, slots: int, layers: int, fmt: str = "rgba8", encoder=None):
        import moderngl
        if fmt not in POOL_FORMATS:
            raise ValueError(f"pool format '{fmt}': expected {', '.join(POOL_FORMATS)}")
        self.format = fmt
        self.border, self.channels = POOL_FORMATS[fmt]
        if not 1 <= layers <= pool_layers(4 * C.NTC_MAX_OUT_VEC4, fmt):
            raise ValueError(f"{layers} layers: 1..{pool_layers(4 * C.NTC_MAX_OUT_VEC4, fmt)}")
        self.slot = TILE + 2 * self.border
        self.row = POOL_ROW
        limit = int(ctx.info.get("GL_MAX_TEXTURE_SIZE", 16384))
        rows = min(-(-max(1, slots) // POOL_ROW), limit // self.slot)
        self.slots = rows * POOL_ROW
        self.layers = layers
        self.size = (POOL_ROW * self.slot, rows * self.slot)
        self.ctx = ctx
        self._gl = RawGL()
        self.fbo = 0
        self.texture = None
        self.stage = self.encoder = None
        self._own_encoder = encoder is None
        texels = self.size[0] * self.size[1] * layers
        try:
            if fmt == "rgba8":
                self.texture = ctx.texture_array((*self.size, layers), 4, dtype="f1")
                self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)   # bilinear in a slot
                self.texture.repeat_x = self.texture.repeat_y = False
                self.nbytes = texels * 4
                self._framebuffer(lambda j: self._gl.glFramebufferTextureLayer(
                    GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0 + j, self.texture.glo, 0, j))
            else:
                from .gl_transcode import GLBCnEncoder
                self.texture = _bc7_array(self._gl, self.size, layers)
                self.nbytes = texels
                self.stage = TileStage(ctx, layers, self.slot)
                self.encoder = GLBCnEncoder(ctx) if encoder is None else encoder
        except BaseException:
            self.release()
            raise

    def fill(self, decoder: "GLTileDecoder", tiles, repeat: tuple[bool, bool]) -> None:
        """Decode `tiles`, each (mip, x0, y0, width, height, slot), into their slots."""
        if self.format == "rgba8":
            decoder.decode(self, tiles, repeat)
            return
        gl, blocks = self._gl, self.slot // 4
        for first in range(0, len(tiles), self.stage.slots):
            batch = tiles[first:first + self.stage.slots]
            decoder.decode(self.stage, [(*tile[:5], i) for i, tile in enumerate(batch)], repeat)
            for j in range(decoder.targets):   # the set's layers (the pool may have more)
                encoded = self.encoder.encode(self.stage.textures[j], 0, "bc7",
                                              alpha=self.channels == 4)
                try:
                    for i, tile in enumerate(batch):
                        x, y = self.origin(tile[5])
                        gl.glCopyImageSubData(encoded.glo, GL_TEXTURE_2D, 0, i * blocks, 0, 0,
                                              self.texture, GL_TEXTURE_2D_ARRAY, 0, x, y, j,
                                              blocks, blocks, 1)
                finally:
                    encoded.release()
        err = self.ctx.error
        if err != "GL_NO_ERROR":
            raise NTCGLError(f"moving BC7 tiles into the pool failed: {err}")

    @property
    def vram_bytes(self) -> int:
        """The pool's texels and, for BC7, its RGBA8 staging."""
        stage = 0 if self.stage is None else sum(t.width * t.height * 4
                                                 for t in self.stage.textures)
        return self.nbytes + stage

    @property
    def name(self) -> int:
        """The pool texture's GL name."""
        return self.texture.glo if self.format == "rgba8" else self.texture

    def copy_from(self, other: "TilePool") -> None:
        """Every slot of `other`, a smaller pool of the same format and layers, into the same
        slot here (slot k lies at the same place in any pool: whole rows of POOL_ROW slots)."""
        if (other.format, other.layers, other.slot) != (self.format, self.layers, self.slot) \
                or other.slots > self.slots:
            raise ValueError(f"a {other.format} pool of {other.slots} slots, {other.layers} layers "
                             f"does not fit a {self.format} one of {self.slots}, {self.layers}")
        self._gl.glGetError()   # the check below is about this copy only
        self._gl.glCopyImageSubData(other.name, GL_TEXTURE_2D_ARRAY, 0, 0, 0, 0,
                                    self.name, GL_TEXTURE_2D_ARRAY, 0, 0, 0, 0,
                                    other.size[0], other.size[1], other.layers)
        err = self.ctx.error
        if err != "GL_NO_ERROR":
            raise NTCGLError(f"copying the tile pool into a larger one failed: {err}")

    def read(self) -> np.ndarray:
        """An RGBA8 pool as uint8 [layers, height, width, 4] (tests)."""
        if self.format != "rgba8":
            raise ValueError("read() reads an RGBA8 pool; read_blocks() a BC7 one")
        data = np.frombuffer(self.texture.read(), np.uint8)
        return data.reshape(self.layers, self.size[1], self.size[0], 4)

    def read_blocks(self) -> bytes:
        """A BC7 pool's blocks, layer after layer, rows of blocks bottom to top (tests)."""
        gl = self._gl
        prev = gl.get_int(GL_TEXTURE_BINDING_2D_ARRAY)
        buf = ctypes.create_string_buffer(self.nbytes)
        gl.glBindTexture(GL_TEXTURE_2D_ARRAY, self.texture)
        try:
            gl.glGetCompressedTexImage(GL_TEXTURE_2D_ARRAY, 0, buf)
        finally:
            gl.glBindTexture(GL_TEXTURE_2D_ARRAY, prev)
        return buf.raw

    def bind(self) -> None:
        if self.format == "rgba8":
            self.texture.use(POOL_UNIT)
            return
        gl = self._gl
        gl.glActiveTexture(GL_TEXTURE0 + POOL_UNIT)
        gl.glBindTexture(GL_TEXTURE_2D_ARRAY, self.texture)

    def release(self) -> None:
        self._release_fbo()
        for obj in (self.stage, self.encoder if self._own_encoder else None):
            if obj is not None:
                obj.release()
        self.stage = self.encoder = None
        if self.texture is None:
            return
        if self.format == "rgba8":
            self.texture.release()
        else:
            name = ctypes.c_uint(self.texture)
            self._gl.glDeleteTextures(1, ctypes.byref(name))
        self.texture = None


def _bc7_array(gl: RawGL, size: tuple[int, int], layers: int) -> int:
    """A BC7 (BPTC UNORM) texture array, one level, GL_LINEAR, clamped: its GL name."""
    name = ctypes.c_uint(0)
    gl.glGenTextures(1, ctypes.byref(name))
    prev_unit = gl.get_int(GL_ACTIVE_TEXTURE)
    gl.glActiveTexture(GL_TEXTURE0 + POOL_UNIT)
    prev = gl.get_int(GL_TEXTURE_BINDING_2D_ARRAY)
    gl.glBindTexture(GL_TEXTURE_2D_ARRAY, name.value)
    try:
        gl.glGetError()
        gl.glTexStorage3D(GL_TEXTURE_2D_ARRAY, 1, FORMATS["bc7"].gl_unorm, size[0], size[1],
                          layers)
        gl.check(f"a {size[0]}x{size[1]}x{layers} BC7 texture array")
        for pname, value in ((GL_TEXTURE_MIN_FILTER, GL_LINEAR), (GL_TEXTURE_MAG_FILTER, GL_LINEAR),
                             (GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE),
                             (GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE)):
            gl.glTexParameteri(GL_TEXTURE_2D_ARRAY, pname, value)
    except BaseException:
        gl.glDeleteTextures(1, ctypes.byref(name))
        raise
    finally:
        gl.glBindTexture(GL_TEXTURE_2D_ARRAY, prev)
        gl.glActiveTexture(prev_unit)
    return name.value


class TileStage(_LayerTarget):
    """A BC7 pool's staging: one row of STAGE_SLOTS slots as `layers` RGBA8 2D textures (the
    encoder reads 2D textures), decoded into, then encoded."""
    slots = STAGE_SLOTS

    def __init__(self, ctx, layers: int, slot: int):
        self.ctx, self._gl, self.layers, self.slot, self.row = ctx, RawGL(), layers, slot, \
            STAGE_SLOTS
        self.fbo = 0
        self.textures = [ctx.texture((STAGE_SLOTS * slot, slot), 4, dtype="f1")
                         for _ in range(layers)]
        try:
            self._framebuffer(lambda j: self._gl.glFramebufferTexture(
                GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0 + j, self.textures[j].glo, 0))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        self._release_fbo()
        for tex in self.textures:
            tex.release()
        self.textures = []


class GLTileDecoder(GLLoadDecoder):
    """The load pass of one set, decoding tiles into the slots of a pool of format `fmt`: four
    stored channels to a layer (RGBA8), or three (BC7: ntc_load.slang's tripleMain)."""

    def __init__(self, tex, fmt: str = "rgba8"):
        if POOL_FORMATS[fmt][1] == 3:
            self.fragment = TRIPLE_FRAGMENT
        super().__init__(tex)
        self.targets = pool_layers(tex.model.stored_channels, fmt)

    def decode(self, target, tiles, repeat: tuple[bool, bool] = (False, False)) -> None:
        """Decode `tiles`, each (mip, x0, y0, width, height, slot), into the slots of `target`
        (an RGBA8 TilePool or a TileStage), every texel of each slot: the tile, its border and
        beyond (an edge tile's slot runs past the mip), per axis wrapped around the mip where
        `repeat` says so, else clamped to it."""
        if self.targets > target.layers:
            raise ValueError(f"the set has {self.targets} layers, the target {target.layers}")
        gl, model = self.tex._gl, self.tex.model
        gl.glGetError()   # the check below is about this pass only
        block = new_block("NtcPass")
        border, side = (target.slot - TILE) // 2, target.slot
        with exact_writes(gl):
            gl.glBindFramebuffer(GL_FRAMEBUFFER, target.fbo)
            target.draw_buffers(self.targets)
            try:
                self.pass_ubo.bind_to_uniform_block(PASS_BINDING)
                self.tex.bind()
                for mip, x0, y0, _, _, slot in tiles:
                    sx, sy = target.origin(slot)
                    gl.glViewport(sx, sy, side, side)
                    mw, mh = layout.mip_size(model.width, model.height, mip)
                    block["ntcPass"] = (mip, mw, mh, 0)
                    block["ntcOrigin"] = (x0 - border - sx, y0 - border - sy, int(repeat[0]),
                                          int(repeat[1]))
                    self.pass_ubo.write(block.tobytes())
                    self.triangle.render()
            finally:
                target.draw_buffers(target.layers)
                self._home.use()
        err = self.tex.ctx.error
        if err != "GL_NO_ERROR":
            raise NTCGLError(f"feedback-mode tile decode failed: {err}")
