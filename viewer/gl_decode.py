"""Load mode: decode a whole texture set on the GPU once, with the generated decoder shader.

Each colour mip is one offscreen draw of shaders/ntc_load.slang's fragment entry into
ceil(stored / 4) RGBA32F targets; reading them back gives the stored channels, and
`export.decoder.reconstruct` turns those into the source textures exactly as the PyTorch path does.

    decode_file_gl(model, mip)   == export.decoder.FileDecoder.from_model(model).textures_mip(mip)
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

import numpy as np

from export import layout
from export.decoder import reconstruct
from export.format import read_ntc
from export.model import NTCModel
from shaders import glsl

from .gl_resources import (PASS_BINDING, NTCGLError, NTCTextureGL, build_program, check_context,
                           create_context)

VERTEX = "ntc_load.vert.glsl"
FRAGMENT = "ntc_load.frag.glsl"
# One triangle that covers the viewport (clip space), see vertexMain.
_FULLSCREEN = np.array([-1.0, -1.0, 3.0, -1.0, -1.0, 3.0], np.float32)


def load_shaders(model: NTCModel, hw_filter: bool = False) -> tuple[str, str]:
    """(vertex, fragment) GLSL of the load pass, specialised for `model`."""
    try:
        vert = glsl.load_generated(VERTEX)
        frag = glsl.specialise(glsl.load_generated(FRAGMENT),
                               glsl.decoder_constants(model, hw_filter),
                               glsl.weight_vec4_count(model))
    except glsl.SpecialisationError as e:
        raise NTCGLError(str(e)) from None
    return vert, frag


class GLLoadDecoder:
    """The load pass for one NTCTextureGL: program, fullscreen triangle, pass uniform block."""

    def __init__(self, tex: NTCTextureGL, hw_filter: bool = False):
        self.tex = tex
        ctx = tex.ctx
        vert, frag = load_shaders(tex.model, hw_filter)
        self.program = build_program(ctx, vert, frag, "load-mode decoder")
        self.vbo = ctx.buffer(_FULLSCREEN.tobytes())
        self.pass_ubo = ctx.buffer(reserve=16)
        self.vao = ctx.vertex_array(self.program, [(self.vbo, "2f", "position_0")])
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
        colour = [ctx.texture((w, h), 4, dtype="f4") for _ in range(self.targets)]
        fbo = ctx.framebuffer(color_attachments=colour)
        try:
            fbo.use()
            ctx.viewport = (0, 0, w, h)
            self.pass_ubo.write(np.array([mip, w, h, 0], np.int32).tobytes())
            self.pass_ubo.bind_to_uniform_block(PASS_BINDING)
            self.tex.bind()
            self.vao.render(vertices=3)
            out = np.empty((h, w, 4 * self.targets), np.float32)
            for i in range(self.targets):
                data = fbo.read(components=4, attachment=i, dtype="f4")
                out[:, :, 4 * i:4 * i + 4] = np.frombuffer(data, np.float32).reshape(h, w, 4)
        finally:
            self._home.use()
            fbo.release()
            for t in colour:
                t.release()
        err = ctx.error
        if err != "GL_NO_ERROR":
            raise NTCGLError(f"load-mode decode of mip {mip} failed: {err}")
        return out[:, :, :model.stored_channels]

    def vram_bytes(self) -> dict[str, int]:
        """Bytes of the pass's own GL objects (render targets are transient, per mip)."""
        return {"load_pass_buffers": self.vbo.size + self.pass_ubo.size}

    def release(self) -> None:
        for obj in (self.vao, self.vbo, self.pass_ubo, self.program):
            obj.release()


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
