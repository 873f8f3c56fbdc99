"""GL resources of one neural texture set: the latent texture array and the MLP weights block.

`NTCTextureGL(model, ctx)` uploads an `export.model.NTCModel` into a moderngl context:

  latents   one GL_TEXTURE_2D_ARRAY, layer l = features 4l..4l+3, texture mip j = latent level j
            (immutable storage with exactly the pyramid's levels). 2..4-bit latents live in GL_RGBA4
            and upload as the file stores them (GL_UNSIGNED_SHORT_4_4_4_4_REV, bit-packed
            LSB-first); 5..8-bit latents live in GL_RGBA8 (GL_UNSIGNED_BYTE). Clamp-to-edge,
            GL_LINEAR within a level, GL_LINEAR_MIPMAP_NEAREST between levels.
  weights   one std140 uniform block (ntc_decode.slang's NtcModel): ntcInfo, then per layer the
            dequantized weights [out_pad][in_pad] (int8 * scale, or fp16, as float32) and bias
            (network_block.model_block); with a 16-bit Precision (precision.py) the same values
            as halves (NtcModelHalf, network_block.half_block), for the *_half programs.

Load mode decodes a set into ordinary GL textures (`DecodedTexture`, format by `texel_format`) with
the output remap of ntc_remap.slang, driven by `remap_block`.

moderngl 5.13 can neither give a texture array a GL_RGBA4 internal format nor write its mip levels,
so the latent texture is made with a few raw GL calls on the current context (gl_context.RawGL).
Failures raise gl_context.NTCGLError with a one-line reason.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from shaders import constants as C
from shaders import glsl

from .. import layout
from ..bitpack import latent_to_texel_order, pack_bits
from ..model import CONST, COPY, NORMAL_Z, STORED, NTCModel, TextureInfo
from .gl_context import (GL_CLAMP_TO_EDGE, GL_LINEAR, GL_LINEAR_MIPMAP_NEAREST,
                         GL_PIXEL_UNPACK_BUFFER, GL_PIXEL_UNPACK_BUFFER_BINDING, GL_RGBA,
                         GL_RGBA4, GL_RGBA8, GL_TEXTURE0, GL_TEXTURE_2D_ARRAY,
                         GL_TEXTURE_BINDING_2D_ARRAY, GL_TEXTURE_MAG_FILTER, GL_TEXTURE_MIN_FILTER,
                         GL_TEXTURE_RED_SIZE, GL_TEXTURE_WRAP_S, GL_TEXTURE_WRAP_T,
                         GL_UNPACK_ALIGNMENT, GL_UNPACK_IMAGE_HEIGHT, GL_UNPACK_ROW_LENGTH,
                         GL_UNPACK_SKIP_IMAGES, GL_UNPACK_SKIP_PIXELS, GL_UNPACK_SKIP_ROWS,
                         GL_UNSIGNED_BYTE, GL_UNSIGNED_SHORT_4_4_4_4_REV, GL_ACTIVE_TEXTURE,
                         NTCGLError, RawGL, check_context)
from .network_block import (UnsupportedNetwork, check_model, decoder_constants, half_block,
                            model_block, weight_vec4_count)
from .precision import FP32, Precision

LATENT_UNIT = C.BINDINGS["ntcLatents"]
MODEL_BINDING = C.BINDINGS["NtcModel"]
PASS_BINDING = C.BINDINGS["NtcPass"]
REMAP_BINDING = C.BINDINGS["NtcRemap"]
MAX_TEXTURES = C.NTC_MAX_TEXTURES

# ----------------------------------------------------------------------------------------------
# the texture set on the GPU

def latent_texel_bytes(model: NTCModel) -> tuple[int, int, int]:
    """(container bits per feature, GL internal format, bytes per RGBA texel)."""
    cb = layout.container_bits(model.latent.bits)
    return (4, GL_RGBA4, 2) if cb == 4 else (8, GL_RGBA8, 4)


def decoder_fragment(source: str, model: NTCModel, hw_filter: bool = False,
                     precision: Precision = FP32) -> str:
    """Generated decoder GLSL `source` specialised for `model`'s network shape (shaders/glsl.py);
    a 16-bit variant's source also gets `precision`'s extension."""
    try:
        out = glsl.specialise(source, decoder_constants(model, hw_filter),
                              weight_vec4_count(model.mlp_dims))
        if glsl.is_half(out) != precision.half:
            raise glsl.SpecialisationError(f"a {precision.name} program needs the "
                                           f"{'16' if precision.half else '32'}-bit variant")
        return glsl.with_half_extension(out, precision.extension) if precision.half else out
    except (glsl.SpecialisationError, UnsupportedNetwork) as e:
        raise NTCGLError(str(e)) from None


def generated_source(name: str, precision: Precision = FP32) -> str:
    """Generated GLSL `name` from shaders/generated/, or its 16-bit variant for a 16-bit
    `precision` (not yet specialised)."""
    try:
        return glsl.load_generated(glsl.half_name(name) if precision.half else name)
    except glsl.SpecialisationError as e:
        raise NTCGLError(str(e)) from None


def decoder_shaders(model: NTCModel, vertex: str, fragment: str, hw_filter: bool = False,
                    precision: Precision = FP32) -> tuple[str, str]:
    """(vertex, fragment) GLSL from shaders/generated/, the fragment (its 16-bit variant with a
    16-bit `precision`) specialised for `model`."""
    return (generated_source(vertex),
            decoder_fragment(generated_source(fragment, precision), model, hw_filter, precision))


class NTCTextureGL:
    """Latent texture array + weights uniform buffer of one NTCModel in a moderngl context. The
    weights are float32, or halves for a 16-bit `precision`: the programs built for this set
    (gl_sample, the viewer) take its precision."""

    def __init__(self, model: NTCModel, ctx, precision: Precision = FP32):
        check_context(ctx)
        try:
            check_model(model)
            block = model_block(model)
            data = half_block(block) if precision.half else block.tobytes()
        except UnsupportedNetwork as e:
            raise NTCGLError(str(e)) from None
        self.model = model
        self.ctx = ctx
        self.precision = precision
        self.texture = 0
        self.weights = None
        max_block = int(ctx.info.get("GL_MAX_UNIFORM_BLOCK_SIZE", 16384))
        if len(data) > max_block:
            raise NTCGLError(f"the MLP needs a {len(data)}-byte uniform block, the driver "
                             f"allows {max_block}")
        self._gl = RawGL()
        try:
            self._upload_latents()
            self.weights = ctx.buffer(data)
        except BaseException:
            self.release()
            raise
        self.weight_vec4 = block.size // 4 - 1

    def _upload_latents(self) -> None:
        gl, model = self._gl, self.model
        lat = model.latent
        cbits, ifmt, _ = latent_texel_bytes(model)
        w0, h0 = lat.levels[0]
        gl.glGetError()  # clear stale errors from earlier work on this context
        prev_unit = gl.get_int(GL_ACTIVE_TEXTURE)
        gl.glActiveTexture(GL_TEXTURE0 + LATENT_UNIT)
        prev_tex = gl.get_int(GL_TEXTURE_BINDING_2D_ARRAY)
        prev_pbo = gl.get_int(GL_PIXEL_UNPACK_BUFFER_BINDING)
        prev_align = gl.get_int(GL_UNPACK_ALIGNMENT)
        name = ctypes.c_uint(0)
        gl.glGenTextures(1, ctypes.byref(name))
        self.texture = name.value
        try:
            gl.glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0)
            for pname in (GL_UNPACK_ROW_LENGTH, GL_UNPACK_IMAGE_HEIGHT, GL_UNPACK_SKIP_ROWS,
                          GL_UNPACK_SKIP_PIXELS, GL_UNPACK_SKIP_IMAGES):
                gl.glPixelStorei(pname, 0)
            gl.glPixelStorei(GL_UNPACK_ALIGNMENT, 1)
            gl.glBindTexture(GL_TEXTURE_2D_ARRAY, self.texture)
            gl.glTexStorage3D(GL_TEXTURE_2D_ARRAY, len(lat.levels), ifmt, w0, h0, lat.layers)
            gl.check(f"glTexStorage3D({'RGBA4' if cbits == 4 else 'RGBA8'}, "
                     f"{w0}x{h0}x{lat.layers}, {len(lat.levels)} levels)")
            gl_type = GL_UNSIGNED_SHORT_4_4_4_4_REV if cbits == 4 else GL_UNSIGNED_BYTE
            for j, (q, (w, h)) in enumerate(zip(model.latents, lat.levels)):
                # exactly the file's latent.J chunk when bits == container bits
                data = pack_bits(latent_to_texel_order(q), cbits)
                buf = ctypes.create_string_buffer(data, len(data))
                gl.glTexSubImage3D(GL_TEXTURE_2D_ARRAY, j, 0, 0, 0, w, h, lat.layers, GL_RGBA,
                                   gl_type, ctypes.cast(buf, ctypes.c_void_p))
                gl.check(f"uploading latent level {j}")
            for pname, value in ((GL_TEXTURE_MIN_FILTER, GL_LINEAR_MIPMAP_NEAREST),
                                 (GL_TEXTURE_MAG_FILTER, GL_LINEAR),
                                 (GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE),
                                 (GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE)):
                gl.glTexParameteri(GL_TEXTURE_2D_ARRAY, pname, value)
            gl.check("setting latent sampling state")
            size = ctypes.c_int(0)
            gl.glGetTexLevelParameteriv(GL_TEXTURE_2D_ARRAY, 0, GL_TEXTURE_RED_SIZE,
                                        ctypes.byref(size))
            self.driver_bits = size.value  # what the driver reports it stores per channel
        finally:
            gl.glBindTexture(GL_TEXTURE_2D_ARRAY, prev_tex)
            gl.glBindBuffer(GL_PIXEL_UNPACK_BUFFER, prev_pbo)
            gl.glPixelStorei(GL_UNPACK_ALIGNMENT, prev_align)
            gl.glActiveTexture(prev_unit)

    # ------------------------------------------------------------------------------------------
    def bind(self) -> None:
        """Bind the latents to texture unit 0 and the weights to uniform block binding 1."""
        gl = self._gl
        gl.glActiveTexture(GL_TEXTURE0 + LATENT_UNIT)
        gl.glBindTexture(GL_TEXTURE_2D_ARRAY, self.texture)
        self.weights.bind_to_uniform_block(MODEL_BINDING)

    def vram_bytes(self) -> dict[str, int]:
        """Exact bytes of each GL object, by category (all latent levels and layers)."""
        _, _, texel = latent_texel_bytes(self.model)
        lat = self.model.latent
        latents = sum(w * h for w, h in lat.levels) * lat.layers * texel
        return {"latents": latents, "weights": self.weights.size if self.weights else 0}

    def release(self) -> None:
        if self.texture:
            name = ctypes.c_uint(self.texture)
            self._gl.glDeleteTextures(1, ctypes.byref(name))
            self.texture = 0
        if self.weights is not None:
            self.weights.release()
            self.weights = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------------------------
# load mode: the set decoded into ordinary GL textures

@dataclass(frozen=True)
class TexelFormat:
    name: str        # GL internal format, e.g. "GL_SRGB8_ALPHA8"
    enum: int
    components: int  # moderngl components
    dtype: str       # moderngl dtype ("f1": UNORM8, "nu2": UNORM16)
    bytes: int       # per texel

    @property
    def bits(self) -> int:
        return 16 if self.dtype == "nu2" else 8


TEXEL_FORMATS = {f.name: f for f in (
    TexelFormat("GL_R8", 0x8229, 1, "f1", 1),
    TexelFormat("GL_RG8", 0x822B, 2, "f1", 2),
    TexelFormat("GL_RGBA8", 0x8058, 4, "f1", 4),
    TexelFormat("GL_SRGB8_ALPHA8", 0x8C43, 4, "f1", 4),
    TexelFormat("GL_R16", 0x822A, 1, "nu2", 2),
    TexelFormat("GL_RG16", 0x822C, 2, "nu2", 4),
    TexelFormat("GL_RGBA16", 0x805B, 4, "nu2", 8),
)}


def texel_format(tex: TextureInfo) -> TexelFormat:
    """The GL format a source texture is decoded into, so that any shader samples it unchanged:
    - sRGB colour: GL_SRGB8_ALPHA8 (the sampler linearises, filtering happens in linear light);
      GL has no 16-bit sRGB format, so 16-bit colour sources are decoded to 8 bits too.
    - everything else by channel count and source depth: R8/RG8/RGBA8, or R16/RG16/RGBA16 UNORM.
      3 channels take the RGBA format (RGB8 is not a required render format, and drivers pad it
      to 4 bytes anyway, so the byte count stays honest).
    - normals are data: a normal whose Z is rebuilt (NORMAL_Z) is decoded with its Z into RGBA8,
      not kept as RG8 with Z rebuilt at sample time: every PBR shader then reads it unchanged, and
      filtering the rebuilt unit normals is what the source's mips hold (rebuilding Z from
      filtered X, Y is not). It costs 2 bytes a texel more than RG8."""
    n = len(tex.channels)
    if tex.colorspace == "srgb":
        return TEXEL_FORMATS["GL_SRGB8_ALPHA8"]
    rgba = "R" if n == 1 else "RG" if n == 2 else "RGBA"
    return TEXEL_FORMATS[f"GL_{rgba}{16 if tex.bit_depth == 16 else 8}"]


_KIND_CODES = {STORED: C.NTC_REMAP_STORED, CONST: C.NTC_REMAP_CONST, COPY: C.NTC_REMAP_COPY,
               NORMAL_Z: C.NTC_REMAP_NORMAL_Z}


def texel_channel_map(tex: TextureInfo) -> list[tuple[int, int, float]]:
    """(kind code, index, value) of each of the 4 texel channels of `tex` in ntcRemap: channel c
    of the source is texel channel c; the rest is what GL gives for a narrower format (0, 0, 1),
    except that a 1-channel sRGB texture repeats its grey in G and B (it is stored as RGBA)."""
    out = []
    for c in range(4):
        if c < len(tex.channels):
            ch = tex.channels[c]
            out.append((_KIND_CODES[ch.kind], ch.index if ch.kind in (STORED, COPY) else 0,
                        ch.value if ch.kind == CONST else 0.0))
        elif c < 3 and len(tex.channels) == 1 and tex.colorspace == "srgb":
            out.append((_KIND_CODES[COPY], 0, 0.0))
        else:
            out.append((_KIND_CODES[CONST], 0, 1.0 if c == 3 else 0.0))
    return out


def remap_block(model: NTCModel) -> bytes:
    """Contents of the NtcRemap uniform block (std140: int4 kind[16], int4 index[16],
    float4 value[16]) for the textures of `model`, in file order."""
    if len(model.textures) > MAX_TEXTURES:
        raise NTCGLError(f"{len(model.textures)} textures, the GL decoder writes at most "
                         f"{MAX_TEXTURES}")
    kind = np.zeros((MAX_TEXTURES, 4), np.int32)
    index = np.zeros((MAX_TEXTURES, 4), np.int32)
    value = np.zeros((MAX_TEXTURES, 4), np.float32)
    for t, tex in enumerate(model.textures):
        for c, (k, i, v) in enumerate(texel_channel_map(tex)):
            kind[t, c], index[t, c], value[t, c] = k, i, v
    return kind.tobytes() + index.tobytes() + value.tobytes()


@dataclass
class DecodedTexture:
    """One source texture decoded into a GL_TEXTURE_2D with its full mip chain."""
    name: str            # the source texture's name (file stem)
    texture: object      # moderngl.Texture
    format: TexelFormat
    channels: int        # source channels: texel channels 0..channels-1
    levels: int
    bytes: int           # exact: sum over levels of w * h * format.bytes

    @property
    def internal_format(self) -> str:
        return self.format.name

    def read(self, level: int) -> np.ndarray:
        """[h, w, channels] uint8 / uint16 of one level, row 0 = the image's top row."""
        w, h = layout.mip_size(*self.texture.size, level)
        dtype = np.uint16 if self.format.bits == 16 else np.uint8
        texels = np.frombuffer(self.texture.read(level=level), dtype)
        return texels.reshape(h, w, self.format.components)[:, :, :self.channels]

    def release(self) -> None:
        self.texture.release()


def allocate_decoded(ctx, model: NTCModel, srgb_bytes: bool = False) -> list[DecodedTexture]:
    """Empty GL textures with full mip chains for every texture of `model`, trilinear (and the
    driver's largest anisotropy) for sampling. `srgb_bytes`: sRGB colour in GL_RGBA8 instead of
    GL_SRGB8_ALPHA8, the same bytes read back unconverted (what a BCn encoder takes)."""
    size, mips = (model.width, model.height), model.mips
    texels = sum(w * h for w, h in (layout.mip_size(*size, m) for m in range(mips)))
    out = []
    try:
        for tex in model.textures:
            fmt = texel_format(tex)
            if srgb_bytes and fmt.name == "GL_SRGB8_ALPHA8":
                fmt = TEXEL_FORMATS["GL_RGBA8"]
            t = ctx.texture(size, fmt.components, dtype=fmt.dtype, internal_format=fmt.enum)
            out.append(DecodedTexture(tex.name, t, fmt, len(tex.channels), mips,
                                      texels * fmt.bytes))
            # moderngl allocates (and lets one read) the levels below 0 only through
            # build_mipmaps; it also sets GL_LINEAR_MIPMAP_LINEAR / GL_LINEAR.
            t.build_mipmaps()
            if ctx.max_anisotropy > 1:
                t.anisotropy = ctx.max_anisotropy
    except BaseException:
        for d in out:
            d.release()
        raise
    err = ctx.error
    if err != "GL_NO_ERROR":
        for d in out:
            d.release()
        raise NTCGLError(f"allocating the decoded textures failed: {err}")
    return out
