"""A BCn texture with its mip chain in GL: immutable storage of the block format, each level
uploaded (glCompressedTexSubImage2D, which moderngl does not wrap) from the blocks a DDSTexture
holds or from a GL buffer the GPU encoder filled, and a swizzle so that a 1- or 2-channel format
samples as its source did."""
from __future__ import annotations

import contextlib
import ctypes

from .. import layout
from ..decode.gl_context import (GL_ACTIVE_TEXTURE, GL_PIXEL_UNPACK_BUFFER,
                                 GL_PIXEL_UNPACK_BUFFER_BINDING, GL_TEXTURE0, GL_TEXTURE_2D,
                                 GL_TEXTURE_BINDING_2D, NTCGLError, RawGL)
from .dds import DDSTexture
from .formats import BCFormat

GL_TEXTURE_SWIZZLE_R = 0x8E42  # .. _G, _B, _A follow
GL_RED, GL_GREEN, GL_ONE = 0x1903, 0x1904, 1
GL_TEXTURE_MAX_LEVEL = 0x813D
# What the sampler returns for (r, g, b, a), by name.
SWIZZLES = {"rgba": None,
            "grey": (GL_RED, GL_RED, GL_RED, GL_ONE),        # BC4 of one grey channel
            "grey_alpha": (GL_RED, GL_RED, GL_RED, GL_GREEN)}  # BC5 of grey + alpha


class BCnTextureGL:
    """A GL_TEXTURE_2D of `fmt` with `levels` mips, made on the current context; `upload` writes
    a level's blocks, `from_dds` makes one holding a DDSTexture. `bytes` is the exact block
    bytes of every level; `use(unit)` binds it like a moderngl texture."""

    def __init__(self, fmt: BCFormat, srgb: bool, width: int, height: int, levels: int,
                 swizzle: str = "rgba", gl: RawGL | None = None):
        self.gl = gl or RawGL()
        self.format, self.srgb = fmt, srgb
        self.size = (width, height)
        self.levels = levels
        self.internal_format = fmt.gl_format(srgb)
        self.bytes = fmt.chain_bytes(width, height, levels)
        self.glo = 0
        gl = self.gl
        gl.glGetError()  # clear stale errors from earlier work on this context
        name = ctypes.c_uint(0)
        gl.glGenTextures(1, ctypes.byref(name))
        self.glo = name.value
        try:
            with self._bound():
                gl.glTexStorage2D(GL_TEXTURE_2D, levels, self.internal_format, width, height)
                gl.glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAX_LEVEL, levels - 1)
                for i, value in enumerate(SWIZZLES[swizzle] or ()):
                    gl.glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_SWIZZLE_R + i, value)
            self._check("allocating")
        except BaseException:
            self.release()
            raise

    @classmethod
    def from_dds(cls, dds: DDSTexture, swizzle: str = "rgba", gl: RawGL | None = None):
        tex = cls(dds.format, dds.srgb, dds.width, dds.height, len(dds.levels), swizzle, gl)
        try:
            for m, blocks in enumerate(dds.levels):
                tex.upload(m, blocks)
        except BaseException:
            tex.release()
            raise
        return tex

    def upload(self, level: int, blocks: bytes | None = None, buffer=None) -> None:
        """Write mip `level`'s blocks: `blocks` from memory, or the start of GL `buffer` (a
        moderngl Buffer the blocks were rendered into: they never leave the GPU)."""
        w, h = layout.mip_size(*self.size, level)
        size = self.format.level_bytes(w, h)
        if blocks is not None and len(blocks) != size:
            raise ValueError(f"mip {level}: {len(blocks)} bytes, expected {size}")
        with self._bound(buffer.glo if buffer is not None else 0):
            self.gl.glCompressedTexSubImage2D(GL_TEXTURE_2D, level, 0, 0, w, h,
                                              self.internal_format, size, blocks)
        self._check(f"uploading mip {level} of")

    @contextlib.contextmanager
    def _bound(self, unpack_buffer: int = 0):
        """This texture bound on unit 0 (and `unpack_buffer` as the pixel unpack buffer); the
        previous bindings after."""
        gl = self.gl
        unit = gl.get_int(GL_ACTIVE_TEXTURE)
        gl.glActiveTexture(GL_TEXTURE0)
        before, pbo = gl.get_int(GL_TEXTURE_BINDING_2D), gl.get_int(GL_PIXEL_UNPACK_BUFFER_BINDING)
        gl.glBindBuffer(GL_PIXEL_UNPACK_BUFFER, unpack_buffer)
        gl.glBindTexture(GL_TEXTURE_2D, self.glo)
        try:
            yield
        finally:
            gl.glBindTexture(GL_TEXTURE_2D, before)
            gl.glBindBuffer(GL_PIXEL_UNPACK_BUFFER, pbo)
            gl.glActiveTexture(unit)

    def _check(self, what: str) -> None:
        err = self.gl.glGetError()
        if err:
            w, h = self.size
            raise NTCGLError(f"{what} a {w}x{h} {self.format.name.upper()} texture failed (GL "
                             f"error 0x{err:04X}): the driver may lack that block format")

    def use(self, location: int = 0) -> None:
        self.gl.glActiveTexture(GL_TEXTURE0 + location)
        self.gl.glBindTexture(GL_TEXTURE_2D, self.glo)

    def release(self) -> None:
        if self.glo:
            name = ctypes.c_uint(self.glo)
            self.gl.glDeleteTextures(1, ctypes.byref(name))
            self.glo = 0
