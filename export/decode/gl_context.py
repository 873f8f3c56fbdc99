"""GL utilities every GL decoder and the viewer share: a headless OpenGL 4.5 context, program
building with one-line errors, the few raw GL entry points moderngl does not wrap (RawGL), float
render targets read back, and the full-screen triangle every screen pass draws.

Every failure on the GL side (no 4.5 context, a driver refusing an upload, a shader that does not
compile or link, a file this decoder cannot run) raises `NTCGLError` with a one-line reason.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

import numpy as np

from ..errors import NTCError

GL_VERSION_REQUIRED = 450

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
GL_TEXTURE_BINDING_2D = 0x8069
GL_FRAMEBUFFER = 0x8D40
GL_FRAMEBUFFER_COMPLETE = 0x8CD5
GL_COLOR_ATTACHMENT0 = 0x8CE0
GL_BLEND = 0x0BE2
GL_SCISSOR_TEST = 0x0C11
GL_FRAMEBUFFER_SRGB = 0x8DB9
GL_BUFFER_UPDATE_BARRIER_BIT = 0x200   # glMemoryBarrier: buffer reads see shader writes


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

class RawGL:
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
        # block-compressed textures (BCn), which moderngl cannot create
        "glTexStorage2D": (None, [ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_int,
                                  ctypes.c_int]),
        "glCompressedTexSubImage2D": (None, [ctypes.c_uint, ctypes.c_int, ctypes.c_int,
                                             ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                             ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]),
        "glGetCompressedTexImage": (None, [ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]),
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
        "glFramebufferTextureLayer": (None, [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                                             ctypes.c_int, ctypes.c_int]),
        "glScissor": (None, [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
        # feedback mode's BC7 pool: encoded blocks moved into a slot on the GPU
        "glCopyImageSubData": (None, [ctypes.c_uint, ctypes.c_uint, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_int]),
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
# passes

@contextlib.contextmanager
def exact_writes(gl: "RawGL"):
    """Blending, the scissor test and linear -> sRGB encoding off, so a pass writes exactly the
    values its shader returns; the previous state restored after."""
    saved = {cap: gl.glIsEnabled(cap) for cap in (GL_BLEND, GL_SCISSOR_TEST, GL_FRAMEBUFFER_SRGB)}
    for cap in saved:
        gl.glDisable(cap)
    try:
        yield
    finally:
        for cap, on in saved.items():
            if on:
                gl.glEnable(cap)


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


class FullscreenTriangle:
    """One triangle covering the viewport (clip-space corners (-1,-1), (3,-1), (-1,3)), bound to a
    program's vec2 position attribute."""

    CORNERS = np.array([-1.0, -1.0, 3.0, -1.0, -1.0, 3.0], np.float32)

    def __init__(self, ctx, program, attribute: str = "position_0"):
        self.vbo = ctx.buffer(self.CORNERS.tobytes())
        self.vao = ctx.vertex_array(program, [(self.vbo, "2f", attribute)])

    @property
    def nbytes(self) -> int:
        return self.vbo.size

    def render(self) -> None:
        self.vao.render(vertices=3)

    def release(self) -> None:
        self.vao.release()
        self.vbo.release()
