"""Load mode: decode a whole texture set on the GPU once, with the generated decoder shader.

Into ordinary GL textures, for rendering (shaders/ntc_load.slang: textureMain):

    decode_to_textures(tex)      one DecodedTexture per source texture (export/decode/gl_resources.py:
                                 texel_format picks SRGB8_ALPHA8 / R8..RGBA8 / R16..RGBA16), every
                                 mip level written by the decoder, then sampled with hardware
                                 trilinear / anisotropic filtering
    load_ntc_textures(path, ctx) the same from a file (validated before any GL object exists);
                                 the latents and weights are released once decoded

Each colour mip is one draw into that level of up to 8 textures at once (MRT), so the MLP runs
once per texel for the whole set; the remap (ntc_remap.slang) runs per texture and the fixed-
function output quantises to the texture's format. With GL_FRAMEBUFFER_SRGB off the sRGB textures
receive the sRGB-encoded values as they are: stored bytes == export.decode.reference.to_uint(value, 8). On
llvmpipe the float -> UNORM conversion rounds half to even, like to_uint's np.round.

Into float arrays, exact (fragmentMain: ceil(stored / 4) RGBA32F targets; `reconstruct` then turns
the stored channels into the source textures exactly as the PyTorch path does):

    decode_file_gl(model, mip)   == export.decode.reference.FileDecoder.from_model(model).textures_mip(mip)
    decode_ntc_gl(path, mip)     the same from a file: the reader validates it (NTCFormatError)
                                 before any GL object exists

Latent fetch: by default the exact path (NTC_HW_FILTER = 0: 4 texelFetch per layer and level, the
lerps in float32 as decoder.py does), which matches the PyTorch decoder to float rounding.
`hw_filter=True` uses GL_LINEAR filtering instead (1 fetch per layer and level); GPUs quantize
bilinear weights (llvmpipe and desktop GPUs to 8 bits), which on llvmpipe costs up to ~1e-2 on the
stored channels of files with 2-bit latents (PSNR still >= 50 dB against PyTorch; ~1-2 % of 8-bit
values off by 1-2). Decoding once on load is MLP-bound, so exactness costs no measurable time there.
"""
from __future__ import annotations

import ctypes

import numpy as np

from export import layout
from export.decode.reference import reconstruct
from export.format import read_ntc
from export.model import NTCModel
from shaders.interface import block_dtype, new_block

from .gl_context import (GL_COLOR_ATTACHMENT0, GL_FRAMEBUFFER, GL_FRAMEBUFFER_COMPLETE,
                         NTCGLError, build_program, FullscreenTriangle, check_context,
                         create_context, exact_writes, render_float_targets)
from .gl_resources import (PASS_BINDING, REMAP_BINDING, DecodedTexture, NTCTextureGL,
                           allocate_decoded, decoder_shaders, remap_block)

VERTEX = "ntc_load.vert.glsl"
FRAGMENT = "ntc_load.frag.glsl"
TEXTURE_FRAGMENT = "ntc_load_textures.frag.glsl"
TARGETS_PER_DRAW = 8  # SV_Target0..7 of textureMain; GL 4.5 guarantees 8 draw buffers


def load_shaders(model: NTCModel, hw_filter: bool = False, fragment: str = FRAGMENT
                 ) -> tuple[str, str]:
    """(vertex, fragment) GLSL of the load pass, specialised for `model`."""
    return decoder_shaders(model, VERTEX, fragment, hw_filter)


class GLLoadDecoder:
    """The load pass for one NTCTextureGL: program, fullscreen triangle, pass uniform block.
    `stored_mip` reads back the stored channels as floats."""
    fragment = FRAGMENT

    def __init__(self, tex: NTCTextureGL, hw_filter: bool = False):
        if tex.precision.half:  # its weights block is halves, which only sample mode reads
            raise NTCGLError("load mode decodes with 32-bit arithmetic: upload the set with "
                             "the fp32 precision")
        self.tex = tex
        ctx = tex.ctx
        vert, frag = load_shaders(tex.model, hw_filter, self.fragment)
        self.program = build_program(ctx, vert, frag, "load-mode decoder")
        self.triangle = FullscreenTriangle(ctx, self.program)
        self.pass_ubo = ctx.buffer(reserve=block_dtype("NtcPass").itemsize)
        self.targets = (tex.model.stored_channels + 3) // 4
        # Framebuffer to rebind after each pass: moderngl rebinds "the current" framebuffer when it
        # creates the next one, which must not be a released one.
        self._home = ctx.fbo if ctx.fbo is not None else ctx.detect_framebuffer()

    def stored_mip(self, mip: int) -> np.ndarray:
        """[h, w, stored] float32 stored channels of colour mip `mip` (unclamped MLP outputs)."""
        model, ctx = self.tex.model, self.tex.ctx
        if not 0 <= mip < model.mips:
            raise ValueError(f"mip {mip}: the file has mips 0..{model.mips - 1}")
        w, h = layout.mip_size(model.width, model.height, mip)
        out = render_float_targets(ctx, self._home, (w, h), self.targets,
                                   lambda: self._draw(mip, w, h), f"load-mode decode of mip {mip}")
        return out[:, :, :model.stored_channels]

    def _draw(self, mip: int, w: int, h: int, first_texture: int = 0) -> None:
        block = new_block("NtcPass")
        block["ntcPass"] = (mip, w, h, first_texture)
        self.pass_ubo.write(block.tobytes())
        self.pass_ubo.bind_to_uniform_block(PASS_BINDING)
        self.tex.bind()
        self.triangle.render()

    def vram_bytes(self) -> dict[str, int]:
        """Bytes of the pass's own GL objects (render targets are transient, per mip)."""
        return {"load_pass_buffers": self.triangle.nbytes + self.pass_ubo.size}

    def release(self) -> None:
        self.triangle.release()
        for obj in (self.pass_ubo, self.program):
            obj.release()


class GLTextureDecoder(GLLoadDecoder):
    """The load pass that writes the source textures (textureMain) into GL texture levels."""
    fragment = TEXTURE_FRAGMENT

    def __init__(self, tex: NTCTextureGL, hw_filter: bool = False):
        self.remap_ubo = tex.ctx.buffer(remap_block(tex.model))  # NTCGLError on > 16 textures
        try:
            super().__init__(tex, hw_filter)
        except BaseException:
            self.remap_ubo.release()
            raise
        # moderngl attaches only level 0 of a texture, so the framebuffer is a raw GL one.
        gl = tex._gl
        name = ctypes.c_uint(0)
        gl.glGenFramebuffers(1, ctypes.byref(name))
        self.fbo = name.value

    def allocate(self, srgb_bytes: bool = False) -> list[DecodedTexture]:
        """Empty textures (full mip chains) for every texture of the set (gl_resources.
        allocate_decoded)."""
        return allocate_decoded(self.tex.ctx, self.tex.model, srgb_bytes)

    def decode_into(self, textures: list[DecodedTexture], mips=None) -> None:
        """Decode colour mips `mips` (default: all) of every texture into `textures` (from
        `allocate`): one draw per mip and group of 8 textures."""
        gl, model, ctx = self.tex._gl, self.tex.model, self.tex.ctx
        if len(textures) != len(model.textures):
            raise ValueError(f"{len(textures)} textures for a set of {len(model.textures)}")
        self.remap_ubo.bind_to_uniform_block(REMAP_BINDING)
        with exact_writes(gl):
            gl.glBindFramebuffer(GL_FRAMEBUFFER, self.fbo)
            try:
                for mip in range(model.mips) if mips is None else mips:
                    w, h = layout.mip_size(model.width, model.height, mip)
                    gl.glViewport(0, 0, w, h)
                    for first in range(0, len(textures), TARGETS_PER_DRAW):
                        group = textures[first:first + TARGETS_PER_DRAW]
                        self._attach(group, mip)
                        self._draw(mip, w, h, first)
            finally:
                self._attach([], 0)
                self._home.use()
        err = ctx.error
        if err != "GL_NO_ERROR":
            raise NTCGLError(f"load-mode decode into textures failed: {err}")

    def _attach(self, group: list[DecodedTexture], mip: int) -> None:
        gl = self.tex._gl
        for i in range(TARGETS_PER_DRAW):
            glo = group[i].texture.glo if i < len(group) else 0
            gl.glFramebufferTexture(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0 + i, glo, mip)
        if not group:
            return
        bufs = (ctypes.c_uint * len(group))(*(GL_COLOR_ATTACHMENT0 + i for i in range(len(group))))
        gl.glDrawBuffers(len(group), bufs)
        status = gl.glCheckFramebufferStatus(GL_FRAMEBUFFER)
        if status != GL_FRAMEBUFFER_COMPLETE:
            formats = ", ".join(d.internal_format for d in group)
            raise NTCGLError(f"the driver cannot render into {formats} (framebuffer status "
                             f"0x{status:04X})")

    def vram_bytes(self) -> dict[str, int]:
        return {"load_pass_buffers": self.triangle.nbytes + self.pass_ubo.size
                + self.remap_ubo.size}

    def release(self) -> None:
        super().release()
        self.remap_ubo.release()
        if self.fbo:
            name = ctypes.c_uint(self.fbo)
            self.tex._gl.glDeleteFramebuffers(1, ctypes.byref(name))
            self.fbo = 0


def decode_mips_gl(model: NTCModel, mips=None, ctx=None, hw_filter: bool = False
                   ) -> list[np.ndarray]:
    """Stored channels [h, w, stored] of each requested colour mip (default: all), one context."""
    own = ctx is None
    if own:
        ctx = create_context()
    else:
        check_context(ctx)
    tex = dec = None
    try:
        tex = NTCTextureGL(model, ctx)
        dec = GLLoadDecoder(tex, hw_filter)
        return [dec.stored_mip(m) for m in (range(model.mips) if mips is None else mips)]
    finally:
        if dec is not None:
            dec.release()
        if tex is not None:
            tex.release()
        if own:
            ctx.release()


def decode_to_textures(tex: NTCTextureGL, hw_filter: bool = False, srgb_bytes: bool = False
                       ) -> list[DecodedTexture]:
    """Every mip of every texture of the set in `tex`, decoded into new GL textures (the caller
    releases them; `tex` may be released right after). `srgb_bytes`: see allocate_decoded."""
    dec = GLTextureDecoder(tex, hw_filter)
    try:
        textures = dec.allocate(srgb_bytes)
        try:
            dec.decode_into(textures)
        except BaseException:
            for t in textures:
                t.release()
            raise
        return textures
    finally:
        dec.release()


def load_ntc_textures(path, ctx, hw_filter: bool = False) -> list[DecodedTexture]:
    """Read and validate a .ntc file (NTCFormatError on a bad one, before touching GL), decode it
    into GL textures; nothing but those textures stays on the GPU."""
    model = read_ntc(path)
    with NTCTextureGL(model, ctx) as tex:
        return decode_to_textures(tex, hw_filter)


def decode_file_gl(model: NTCModel, mip: int, ctx=None, hw_filter: bool = False
                   ) -> list[np.ndarray]:
    """Float [h, w, C] arrays in [0, 1], one per source texture: FileDecoder.textures_mip's twin."""
    if not 0 <= mip < model.mips:
        raise ValueError(f"mip {mip}: the file has mips 0..{model.mips - 1}")
    return reconstruct(model, decode_mips_gl(model, [mip], ctx, hw_filter)[0])


def decode_ntc_gl(path, mip: int = 0, ctx=None, hw_filter: bool = False) -> list[np.ndarray]:
    """Read and validate a .ntc file (NTCFormatError on a bad one, before touching GL), decode."""
    model = read_ntc(path)
    return decode_file_gl(model, mip, ctx, hw_filter)
