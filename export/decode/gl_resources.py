"""GL resources of one neural texture set: the latent texture array and the MLP weights block.

`NTCTextureGL(model, ctx)` uploads an `export.model.NTCModel` into a moderngl context:

  latents   one GL_TEXTURE_2D_ARRAY, layer l = features 4l..4l+3, texture mip j = latent level j
            (immutable storage with exactly the pyramid's levels). 2..4-bit latents live in GL_RGBA4
            and upload as the file stores them (GL_UNSIGNED_SHORT_4_4_4_4_REV, bit-packed
            LSB-first); 5..8-bit latents live in GL_RGBA8 (GL_UNSIGNED_BYTE). Clamp-to-edge,
            GL_LINEAR within a level, GL_LINEAR_MIPMAP_NEAREST between levels.
  weights   one std140 uniform block (ntc_decode.slang's NtcModel): ntcInfo, then per layer the
            dequantized weights [out_pad][in_pad] (int8 * scale, or fp16, as float32) and bias.

Load mode decodes a set into ordinary GL textures (`DecodedTexture`, format by `texel_format`) with
the output remap of ntc_remap.slang, driven by `remap_block`.

moderngl 5.13 can neither give a texture array a GL_RGBA4 internal format nor write its mip levels,
so the latent texture is made with a few raw GL calls on the current context (`_RawGL`).

Every failure on the GL side (no 4.5 context, a driver refusing an upload, a shader that does not
compile or link, a file this decoder cannot run) raises `NTCGLError` with a one-line reason.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from dataclasses import dataclass

import numpy as np

from export import layout
from export.errors import NTCError
from export.format import latent_to_texel_order, pack_bits
from export.model import CONST, COPY, NORMAL_Z, STORED, NTCModel, TextureInfo
from shaders import glsl

GL_VERSION_REQUIRED = 450

LATENT_UNIT = 0       # texture unit of ntcLatents   ([[vk::binding(0)]] in ntc_decode.slang)
MODEL_BINDING = 1     # uniform block NtcModel        ([[vk::binding(1)]])
PASS_BINDING = 2      # uniform block NtcPass         ([[vk::binding(2)]] in ntc_load.slang)
REMAP_BINDING = 3     # uniform block NtcRemap        ([[vk::binding(3)]] in ntc_remap.slang)
MAX_TEXTURES = 16     # NTC_MAX_TEXTURES in ntc_remap.slang

# GL enums
GL_TEXTURE_2D_ARRAY = 0x8C1A
GL_TEXTURE_BINDING_2D_ARRAY = 0x8C1D
GL_TEXTURE0 = 0x84C0
GL_ACTIVE_TEXTURE = 0x84E0
GL_RGBA = 0x1908
GL_RGBA4 = 0x8056
GL_RGBA8 = 0x8058
GL_UNSIGNED_BYTE = 0x1401
GL_UNSIGNED_SHORT_4_4_4_4_REV = 0x8365
GL_TEXTURE_MAG_FILTER = 0x2800
GL_TEXTURE_MIN_FILTER = 0x2801
GL_TEXTURE_WRAP_S = 0x2802
GL_TEXTURE_WRAP_T = 0x2803
GL_LINEAR = 0x2601
GL_LINEAR_MIPMAP_NEAREST = 0x2701
GL_CLAMP_TO_EDGE = 0x812F
GL_UNPACK_ALIGNMENT = 0x0CF5
GL_UNPACK_ROW_LENGTH = 0x0CF2
GL_UNPACK_IMAGE_HEIGHT = 0x806E
GL_UNPACK_SKIP_ROWS = 0x0CF3
GL_UNPACK_SKIP_PIXELS = 0x0CF4
GL_UNPACK_SKIP_IMAGES = 0x806D
GL_PIXEL_UNPACK_BUFFER = 0x88EC
GL_PIXEL_UNPACK_BUFFER_BINDING = 0x88EF
GL_TEXTURE_RED_SIZE = 0x805C
GL_TEXTURE_2D = 0x0DE1
GL_FRAMEBUFFER = 0x8D40
GL_FRAMEBUFFER_COMPLETE = 0x8CD5
GL_COLOR_ATTACHMENT0 = 0x8CE0
GL_BLEND = 0x0BE2
GL_SCISSOR_TEST = 0x0C11
GL_FRAMEBUFFER_SRGB = 0x8DB9


class NTCGLError(NTCError):
    """The GL decoder cannot run (context, driver, shader, unsupported file); one-line reason."""


# ----------------------------------------------------------------------------------------------
# context

def create_context():
    """A headless OpenGL 4.5 core context (EGL; Mesa llvmpipe is fine)."""
    try:
        import moderngl
    except ImportError as e:
        raise NTCGLError(f"moderngl is not installed ({e.name}); pip install moderngl") from None
    try:
        ctx = moderngl.create_standalone_context(backend="egl", require=GL_VERSION_REQUIRED)
    except Exception as e:  # glcontext raises plain Exceptions whose text names the EGL step
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NTCGLError(f"cannot create a headless OpenGL 4.5 context through EGL: {msg}") \
            from None
    check_context(ctx)
    return ctx


def check_context(ctx) -> None:
    code = int(getattr(ctx, "version_code", 0))
    if code < GL_VERSION_REQUIRED:
        renderer = ctx.info.get("GL_RENDERER", "unknown renderer") if code else "unknown"
        major, minor = code // 100, code % 100 // 10
        raise NTCGLError(f"OpenGL 4.5 is required, the context gives {major}.{minor} ({renderer})")


def build_program(ctx, vertex_src: str, fragment_src: str, what: str = "decoder"):
    """Compile and link; a compile or link failure becomes NTCGLError naming its first message."""
    try:
        import moderngl
    except ImportError as e:
        raise NTCGLError(f"moderngl is not installed ({e.name})") from None
    try:
        return ctx.program(vertex_shader=vertex_src, fragment_shader=fragment_src)
    except moderngl.Error as e:
        log = str(e)
        lines = [ln.strip() for ln in log.splitlines() if ln.strip() and set(ln.strip()) != {"="}]
        step = "link" if "linker" in log.lower() else "compile"
        stage = next((ln.replace("_", " ") for ln in lines
                      if ln in ("vertex_shader", "fragment_shader", "compute_shader")), "")
        detail = next((ln for ln in lines if "error" in ln.lower() and "failed" not in ln.lower()),
                      lines[0] if lines else "no log")
        where = f" ({stage})" if stage else ""
        err = NTCGLError(f"{what} shader failed to {step}{where}: {detail}")
        err.log = log
        raise err from None


# ----------------------------------------------------------------------------------------------
# raw GL entry points on the current context

class _RawGL:
    """The few GL functions moderngl does not wrap, resolved through EGL / GLX / WGL."""

    _SIGS = {
        "glGenTextures": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glDeleteTextures": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glBindTexture": (None, [ctypes.c_uint, ctypes.c_uint]),
        "glActiveTexture": (None, [ctypes.c_uint]),
        "glTexStorage3D": (None, [ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_int]),
        "glTexSubImage3D": (None, [ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]),
        "glTexParameteri": (None, [ctypes.c_uint, ctypes.c_uint, ctypes.c_int]),
        "glPixelStorei": (None, [ctypes.c_uint, ctypes.c_int]),
        "glBindBuffer": (None, [ctypes.c_uint, ctypes.c_uint]),
        "glGetIntegerv": (None, [ctypes.c_uint, ctypes.POINTER(ctypes.c_int)]),
        "glGetTexLevelParameteriv": (None, [ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                            ctypes.POINTER(ctypes.c_int)]),
        "glGetError": (ctypes.c_uint, []),
        "glGenFramebuffers": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glDeleteFramebuffers": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glBindFramebuffer": (None, [ctypes.c_uint, ctypes.c_uint]),
        "glFramebufferTexture": (None, [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_int]),
        "glDrawBuffers": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glCheckFramebufferStatus": (ctypes.c_uint, [ctypes.c_uint]),
        "glViewport": (None, [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
        "glIsEnabled": (ctypes.c_ubyte, [ctypes.c_uint]),
        "glEnable": (None, [ctypes.c_uint]),
        "glDisable": (None, [ctypes.c_uint]),
        # sampler objects (mirrored repeat, which moderngl's samplers lack) and 64-bit timer queries
        "glSamplerParameteri": (None, [ctypes.c_uint, ctypes.c_uint, ctypes.c_int]),
        "glGenQueries": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glDeleteQueries": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glBeginQuery": (None, [ctypes.c_uint, ctypes.c_uint]),
        "glEndQuery": (None, [ctypes.c_uint]),
        "glGetQueryObjectui64v": (None, [ctypes.c_uint, ctypes.c_uint,
                                         ctypes.POINTER(ctypes.c_uint64)]),
    }

    def __init__(self):
        loader = self._loader()
        for name, (restype, argtypes) in self._SIGS.items():
            addr = loader(name)
            if not addr:
                raise NTCGLError(f"the GL driver does not provide {name}")
            proto = (ctypes.WINFUNCTYPE if sys.platform == "win32" else ctypes.CFUNCTYPE)
            setattr(self, name, proto(restype, *argtypes)(addr))

    @staticmethod
    def _loader():
        if sys.platform == "win32":
            gl = ctypes.WinDLL("opengl32")
            gl.wglGetProcAddress.restype = ctypes.c_void_p
            gl.wglGetProcAddress.argtypes = [ctypes.c_char_p]

            def load(name):
                addr = gl.wglGetProcAddress(name.encode())
                if addr in (None, 0, 1, 2, 3, -1):
                    addr = ctypes.cast(getattr(gl, name, None), ctypes.c_void_p).value \
                        if hasattr(gl, name) else None
                return addr
            return load
        egl_name = ctypes.util.find_library("EGL") or "libEGL.so.1"
        try:
            egl = ctypes.CDLL(egl_name)
            egl.eglGetCurrentContext.restype = ctypes.c_void_p
            egl_current = bool(egl.eglGetCurrentContext())
        except OSError:
            egl_current = False
        if egl_current:
            egl.eglGetProcAddress.restype = ctypes.c_void_p
            egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
            return lambda name: egl.eglGetProcAddress(name.encode())
        try:
            glx = ctypes.CDLL(ctypes.util.find_library("GL") or "libGL.so.1")
        except OSError:
            raise NTCGLError("no current EGL context and no libGL to load GL functions from") \
                from None
        glx.glXGetProcAddressARB.restype = ctypes.c_void_p
        glx.glXGetProcAddressARB.argtypes = [ctypes.c_char_p]
        return lambda name: glx.glXGetProcAddressARB(name.encode())

    def get_int(self, pname: int) -> int:
        v = ctypes.c_int(0)
        self.glGetIntegerv(pname, ctypes.byref(v))
        return v.value

    def check(self, what: str) -> None:
        err = self.glGetError()
        if err:
            raise NTCGLError(f"{what} failed: GL error 0x{err:04X}")


# ----------------------------------------------------------------------------------------------
# the texture set on the GPU

def latent_texel_bytes(model: NTCModel) -> tuple[int, int, int]:
    """(container bits per feature, GL internal format, bytes per RGBA texel)."""
    cb = layout.container_bits(model.latent.bits)
    return (4, GL_RGBA4, 2) if cb == 4 else (8, GL_RGBA8, 4)


def model_block(model: NTCModel) -> np.ndarray:
    """float32 contents of the NtcModel uniform block (std140: a flat vec4 array). Layer 0's weight
    columns are permuted into the shader's input order, which changes nothing but the order of the
    float sums."""
    lat = model.latent
    cbits = layout.container_bits(lat.bits)
    container_max = (1 << cbits) - 1
    info = np.array([max(1, model.mips - 1), container_max * 2.0 / lat.qmax, -1.0,
                     len(lat.levels) - 1], np.float32)
    parts = [info]
    for i, lw in enumerate(model.layers):
        out_n, in_n = lw.shape
        w = np.zeros((layout.pad4(out_n), layout.pad4(in_n)), np.float32)
        w[:out_n, :in_n] = lw.dequantized()
        if i == 0:  # the shader's vec4-aligned input order (shaders/glsl.py: input_order)
            order = np.array(glsl.input_order(lat.features, lat.hr_sampling))
            w = np.where(order[None, :] >= 0, w[:, np.maximum(order, 0)], 0.0).astype(np.float32)
        b = np.zeros(layout.pad4(out_n), np.float32)
        b[:out_n] = lw.bias
        parts += [w.ravel(), b]
    return np.concatenate(parts).astype(np.float32)




def decoder_shaders(model: NTCModel, vertex: str, fragment: str, hw_filter: bool = False
                    ) -> tuple[str, str]:
    """(vertex, fragment) GLSL from shaders/generated/, the fragment specialised for `model`'s
    network shape (shaders/glsl.py)."""
    try:
        vert = glsl.load_generated(vertex)
        frag = glsl.specialise(glsl.load_generated(fragment),
                               glsl.decoder_constants(model, hw_filter),
                               glsl.weight_vec4_count(model))
    except glsl.SpecialisationError as e:
        raise NTCGLError(str(e)) from None
    return vert, frag

def render_float_targets(ctx, home, size: tuple[int, int], targets: int, draw, what: str) -> np.ndarray:
    """Run `draw()` into `targets` RGBA32F attachments of `size` and read them back as
    [h, w, 4 * targets] float32; `home` is the framebuffer to rebind afterwards (moderngl rebinds
    "the current" framebuffer when it creates the next one, which must not be a released one)."""
    w, h = size
    colour = [ctx.texture((w, h), 4, dtype="f4") for _ in range(targets)]
    fbo = ctx.framebuffer(color_attachments=colour)
    try:
        fbo.use()
        ctx.viewport = (0, 0, w, h)
        draw()
        out = np.empty((h, w, 4 * targets), np.float32)
        for i in range(targets):
            data = fbo.read(components=4, attachment=i, dtype="f4")
            out[:, :, 4 * i:4 * i + 4] = np.frombuffer(data, np.float32).reshape(h, w, 4)
    finally:
        home.use()
        fbo.release()
        for t in colour:
            t.release()
    err = ctx.error
    if err != "GL_NO_ERROR":
        raise NTCGLError(f"{what} failed: {err}")
    return out

class NTCTextureGL:
    """Latent texture array + weights uniform buffer of one NTCModel in a moderngl context."""

    def __init__(self, model: NTCModel, ctx):
        check_context(ctx)
        try:
            glsl.check_supported(model)
        except glsl.SpecialisationError as e:
            raise NTCGLError(str(e)) from None
        self.model = model
        self.ctx = ctx
        self.texture = 0
        self.weights = None
        block = model_block(model)
        max_block = int(ctx.info.get("GL_MAX_UNIFORM_BLOCK_SIZE", 16384))
        if block.nbytes > max_block:
            raise NTCGLError(f"the MLP needs a {block.nbytes}-byte uniform block, the driver "
                             f"allows {max_block}")
        self._gl = _RawGL()
        try:
            self._upload_latents()
            self.weights = ctx.buffer(block.tobytes())
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


_KIND_CODES = {STORED: 0, CONST: 1, COPY: 2, NORMAL_Z: 3}  # NTC_REMAP_* in ntc_remap.slang


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


def allocate_decoded(ctx, model: NTCModel) -> list[DecodedTexture]:
    """Empty GL textures with full mip chains for every texture of `model`, trilinear (and the
    driver's largest anisotropy) for sampling."""
    size, mips = (model.width, model.height), model.mips
    texels = sum(w * h for w, h in (layout.mip_size(*size, m) for m in range(mips)))
    out = []
    try:
        for tex in model.textures:
            fmt = texel_format(tex)
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
