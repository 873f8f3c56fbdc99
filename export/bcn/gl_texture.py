"""A BCn texture with its mip chain in GL: immutable storage of the block format, every level
uploaded as the blocks a DDSTexture holds (glCompressedTexSubImage2D, which moderngl does not
wrap), and a swizzle so that a 1- or 2-channel format samples as its source did."""
from __future__ import annotations

import ctypes

from ..decode.gl_context import (GL_ACTIVE_TEXTURE, GL_PIXEL_UNPACK_BUFFER,
                                 GL_PIXEL_UNPACK_BUFFER_BINDING, GL_TEXTURE0, GL_TEXTURE_2D,
                                 GL_TEXTURE_BINDING_2D, NTCGLError, RawGL)
from .dds import DDSTexture

GL_TEXTURE_SWIZZLE_R = 0x8E42  # .. _G, _B, _A follow
GL_RED, GL_GREEN, GL_ONE = 0x1903, 0x1904, 1
GL_TEXTURE_MAX_LEVEL = 0x813D
# What the sampler returns for (r, g, b, a), by name.
SWIZZLES = {"rgba": None,
            "grey": (GL_RED, GL_RED, GL_RED, GL_ONE),        # BC4 of one grey channel
            "grey_alpha": (GL_RED, GL_RED, GL_RED, GL_GREEN)}  # BC5 of grey + alpha


class BCnTextureGL:
    """`dds` uploaded into a new GL_TEXTURE_2D on the current context. `bytes` is the exact
    block bytes of every level; `use(unit)` binds it like a moderngl texture."""

    def __init__(self, dds: DDSTexture, swizzle: str = "rgba", gl: RawGL | None = None):
        self.gl = gl or RawGL()
        self.format, self.srgb = dds.format, dds.srgb
        self.size = (dds.width, dds.height)
        self.levels = len(dds.levels)
        self.bytes = sum(len(b) for b in dds.levels)
        self.glo = 0
        gl = self.gl
        gl.glGetError()  # clear stale errors from earlier work on this context
        unit = gl.get_int(GL_ACTIVE_TEXTURE)
        gl.glActiveTexture(GL_TEXTURE0)
        before, pbo = gl.get_int(GL_TEXTURE_BINDING_2D), gl.get_int(GL_PIXEL_UNPACK_BUFFER_BINDING)
        name = ctypes.c_uint(0)
        gl.glGenTextures(1, ctypes.byref(name))
        self.glo = name.value
        try:
            gl.glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0)
            gl.glBindTexture(GL_TEXTURE_2D, self.glo)
            internal = dds.format.gl_format(dds.srgb)
            gl.glTexStorage2D(GL_TEXTURE_2D, self.levels, internal, dds.width, dds.height)
            for m, blocks in enumerate(dds.levels):
                w, h = max(1, dds.width >> m), max(1, dds.height >> m)
                gl.glCompressedTexSubImage2D(GL_TEXTURE_2D, m, 0, 0, w, h, internal,
                                             len(blocks), blocks)
            gl.glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAX_LEVEL, self.levels - 1)
            for i, value in enumerate(SWIZZLES[swizzle] or ()):
                gl.glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_SWIZZLE_R + i, value)
            err = gl.glGetError()
            if err:
                raise NTCGLError(f"uploading a {dds.width}x{dds.height} {dds.format.name.upper()}"
                                 f" texture failed (GL error 0x{err:04X}): the driver may lack "
                                 f"that block format")
        except BaseException:
            self.release()
            raise
        finally:
            gl.glBindTexture(GL_TEXTURE_2D, before)
            gl.glBindBuffer(GL_PIXEL_UNPACK_BUFFER, pbo)
            gl.glActiveTexture(unit)

    def use(self, location: int = 0) -> None:
        self.gl.glActiveTexture(GL_TEXTURE0 + location)
        self.gl.glBindTexture(GL_TEXTURE_2D, self.glo)

    def release(self) -> None:
        if self.glo:
            name = ctypes.c_uint(self.glo)
            self.gl.glDeleteTextures(1, ctypes.byref(name))
            self.glo = 0
