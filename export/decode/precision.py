"""The arithmetic precision of the GL decoders' MLP: 32-bit floats (every GL 4.5 driver), or 16-bit
floats where the driver has them (the *_half.frag.glsl variants of shaders/ntc_decode.slang,
NTC_HALF). A GPU with packed 16-bit arithmetic does twice the multiply-adds a clock and reads half
the weight bytes; the latent taps and the positional code stay 32-bit either way.

`resolve(ctx, "auto" | "fp32" | "fp16")` picks one for a context: "auto" takes 16-bit floats where
the context reports one of shaders.glsl.HALF_EXTENSIONS, else 32-bit; "fp16" insists (a one-line
NTCGLError where the driver has none). The weights block and the program of one set must agree,
so a Precision travels with the set's NTCTextureGL (gl_resources) into every program built for it.
"""
from __future__ import annotations

from dataclasses import dataclass

from shaders.glsl import HALF_EXTENSIONS

from .gl_context import NTCGLError

PRECISIONS = ("auto", "fp32", "fp16")


@dataclass(frozen=True)
class Precision:
    """fp32 (extension None) or fp16 through `extension` (one of HALF_EXTENSIONS)."""
    extension: str | None = None

    @property
    def half(self) -> bool:
        return self.extension is not None

    @property
    def name(self) -> str:
        return "fp16" if self.half else "fp32"


FP32 = Precision()


def half_extension(ctx) -> str | None:
    """The first of HALF_EXTENSIONS the context reports, or None."""
    have = set(getattr(ctx, "extensions", ()) or ())
    return next((e for e in HALF_EXTENSIONS if e in have), None)


def no_half_reason(ctx) -> str:
    renderer = ctx.info.get("GL_RENDERER", "this driver") if hasattr(ctx, "info") else "this driver"
    return (f"{renderer} reports no 16-bit float arithmetic (none of "
            f"{', '.join(HALF_EXTENSIONS)})")


def resolve(ctx, wanted: str) -> Precision:
    """The Precision `wanted` ("auto", "fp32", "fp16") comes to on `ctx`."""
    if wanted not in PRECISIONS:
        raise ValueError(f"precision '{wanted}': expected one of {', '.join(PRECISIONS)}")
    if wanted == "fp32":
        return FP32
    ext = half_extension(ctx)
    if ext is None:
        if wanted == "fp16":
            raise NTCGLError(f"--precision fp16: {no_half_reason(ctx)}; use fp32 or auto")
        return FP32
    return Precision(ext)
