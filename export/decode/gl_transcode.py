"""Inference on load into BCn: the decoded texture levels encoded into BC4 / BC5 / BC7 (and, for
the benches, BC1) blocks on the GPU by shaders/bcn_encode.slang (held to its NumPy twin,
export/bcn/twin.py), never leaving it.

    GLBCnEncoder(ctx)               the encoder programs; for one source texture level:
      .encode(source, level, fmt)   its blocks, rendered into an RG32UI / RGBA32UI target of one
                                    texel per block (the caller releases it)
      .encode_into(..., dest)       the same moved into mip `level` of a BCnTextureGL through a
                                    GL buffer (pixel pack, then compressed unpack: the blocks
                                    stay on the GPU; glCopyImageSubData would be one call, but
                                    Mesa refuses it for levels that are not whole blocks)
      .encode_bytes(...)            the same read back, for tests and benches
    decode_to_bcn(tex)              a whole set: decoded (gl_load, sRGB kept as its bytes), each
                                    texture transcoded into the format an engine ships it in
                                    (export.bcn.formats.format_for), the decoded textures released
    read_blocks(texture)            a BCnTextureGL's blocks back (glGetCompressedTexImage): DDS out

Formats: BC4 from R, BC5 from R and G (normals: X, Y; Z is rebuilt where sampled), BC7 (modes 1
and 6) from RGBA, spending nothing on alpha when the texture has none. No swizzle: a transcoded
texture samples as the decoded one does (R8 as R, 0, 0, 1).
"""
from __future__ import annotations

import ctypes
import struct

from export import layout
from export.bcn.dds import DDSTexture
from export.bcn.formats import BLOCK, FORMATS, BCFormat, format_for
from export.bcn.gl_texture import BCnTextureGL
from shaders import constants as C

from .gl_context import (GL_TEXTURE_2D, FullscreenTriangle, NTCGLError, RawGL, build_program,
                         check_context, exact_writes)
from .gl_resources import NTCTextureGL

VERTEX = "bcn_encode.vert.glsl"
FRAGMENTS = {name: f"bcn_encode_{name}.frag.glsl" for name in ("bc1", "bc4", "bc5", "bc7")}
SOURCE_UNIT = C.BINDINGS["bcnSource"]
PASS_BINDING = C.BINDINGS["BcnPass"]


class GLBCnEncoder:
    def __init__(self, ctx):
        check_context(ctx)
        self.ctx = ctx
        self.gl = RawGL()
        self._programs: dict[str, tuple] = {}
        self.pass_ubo = ctx.buffer(reserve=16)
        self._buffer = None   # the blocks between the integer target and the compressed level
        self._home = ctx.fbo if ctx.fbo is not None else ctx.detect_framebuffer()

    def _program(self, fmt: BCFormat):
        if fmt.name not in FRAGMENTS:
            raise NTCGLError(f"the GPU encoder writes BC1, BC4, BC5 and BC7, not "
                             f"{fmt.name.upper()}")
        if fmt.name not in self._programs:
            from shaders import glsl
            vert, frag = glsl.load_generated(VERTEX), glsl.load_generated(FRAGMENTS[fmt.name])
            program = build_program(self.ctx, vert, frag, f"{fmt.name.upper()} encoder")
            self._programs[fmt.name] = (program, FullscreenTriangle(self.ctx, program))
        return self._programs[fmt.name]

    def encode(self, source, level: int, fmt: BCFormat | str, alpha: bool = True):
        """Blocks of `level` of moderngl texture `source` (8-bit values, or 16-bit rounded to 8)
        in an integer texture of one texel per block (64-bit RG32UI or 128-bit RGBA32UI).
        alpha False: the source has no alpha (BC7 spends nothing on it)."""
        fmt = FORMATS[fmt] if isinstance(fmt, str) else fmt
        program, triangle = self._program(fmt)
        w, h = layout.mip_size(*source.size, level)
        bw, bh = -(-w // BLOCK), -(-h // BLOCK)
        ctx, gl = self.ctx, self.gl
        target = ctx.texture((bw, bh), fmt.block_bytes // 4, dtype="u4")
        fbo = ctx.framebuffer(color_attachments=[target])
        try:
            with exact_writes(gl):
                fbo.use()
                ctx.viewport = (0, 0, bw, bh)
                self.pass_ubo.write(struct.pack("<4i", level, w, h, int(alpha)))
                self.pass_ubo.bind_to_uniform_block(PASS_BINDING)
                source.use(SOURCE_UNIT)
                triangle.render()
        except BaseException:
            target.release()
            raise
        finally:
            fbo.release()
            self._home.use()
        err = ctx.error
        if err != "GL_NO_ERROR":
            target.release()
            raise NTCGLError(f"{fmt.name.upper()} encoding of a {w}x{h} level failed: {err}")
        return target

    def encode_bytes(self, source, level: int, fmt: BCFormat | str, alpha: bool = True) -> bytes:
        target = self.encode(source, level, fmt, alpha)
        try:
            return target.read()
        finally:
            target.release()

    def encode_into(self, source, level: int, dest: BCnTextureGL, alpha: bool = True) -> None:
        target = self.encode(source, level, dest.format, alpha)
        try:
            size = dest.format.level_bytes(*layout.mip_size(*dest.size, level))
            if self._buffer is None or self._buffer.size < size:
                if self._buffer is not None:
                    self._buffer.release()
                self._buffer = self.ctx.buffer(reserve=size)
            target.read_into(self._buffer)            # GPU to GPU: a pixel pack buffer ...
            dest.upload(level, buffer=self._buffer)   # ... unpacked into the compressed level
        finally:
            target.release()

    def release(self) -> None:
        for program, triangle in self._programs.values():
            triangle.release()
            program.release()
        self._programs.clear()
        self.pass_ubo.release()
        if self._buffer is not None:
            self._buffer.release()


def transcode(encoder: GLBCnEncoder, decoded, info) -> BCnTextureGL:
    """One decoded texture (gl_resources.DecodedTexture of export.model.TextureInfo `info`)
    into a new BCnTextureGL with every level."""
    fmt, srgb = format_for(len(info.channels), info.role == "normal", info.colorspace == "srgb")
    w, h = decoded.texture.size
    out = BCnTextureGL(fmt, srgb, w, h, decoded.levels, gl=encoder.gl)
    alpha = len(info.channels) in (2, 4)   # grey + alpha, RGBA: the last channel is alpha
    try:
        for level in range(decoded.levels):
            encoder.encode_into(decoded.texture, level, out, alpha)
    except BaseException:
        out.release()
        raise
    return out


def transcode_all(encoder: GLBCnEncoder, decoded, infos) -> list[BCnTextureGL]:
    """Decoded textures (with their TextureInfos) transcoded into new BCnTextureGLs."""
    out: list[BCnTextureGL] = []
    try:
        for d, info in zip(decoded, infos):
            out.append(transcode(encoder, d, info))
    except BaseException:
        for t in out:
            t.release()
        raise
    return out


def decode_to_bcn(tex: NTCTextureGL) -> list[BCnTextureGL]:
    """Every texture of the set in `tex` decoded and transcoded to BCn (full mip chains); only
    the BCn textures stay on the GPU (the caller releases them)."""
    from .gl_load import decode_to_textures
    decoded = decode_to_textures(tex, srgb_bytes=True)
    encoder = GLBCnEncoder(tex.ctx)
    try:
        return transcode_all(encoder, decoded, tex.model.textures)
    finally:
        encoder.release()
        for d in decoded:
            d.release()


def read_blocks(texture: BCnTextureGL) -> DDSTexture:
    """The blocks of every level of `texture`, read back from the GPU."""
    levels = []
    with texture._bound():
        for m in range(texture.levels):
            n = texture.format.level_bytes(*layout.mip_size(*texture.size, m))
            buf = ctypes.create_string_buffer(n)
            texture.gl.glGetCompressedTexImage(GL_TEXTURE_2D, m, buf)
            levels.append(buf.raw)
    texture._check("reading back")
    return DDSTexture(texture.format, texture.srgb, *texture.size, levels)


def transcode_file_gl(model, first_mip: int = 0, ctx=None) -> list[DDSTexture]:
    """Every texture of `model` decoded and transcoded on the GPU, as DDSTextures holding mips
    first_mip.. (ntc-decode --format dds --backend gl)."""
    from .gl_context import create_context
    own = ctx is None
    ctx = create_context() if own else ctx
    try:
        with NTCTextureGL(model, ctx) as tex:
            textures = decode_to_bcn(tex)
        try:
            out = []
            for t in textures:
                full = read_blocks(t)
                w, h = layout.mip_size(full.width, full.height, first_mip)
                out.append(DDSTexture(full.format, full.srgb, w, h, full.levels[first_mip:]))
            return out
        finally:
            for t in textures:
                t.release()
    finally:
        if own:
            ctx.release()
