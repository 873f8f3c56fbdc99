"""Sample mode's harness: render shaders/ntc_sample_harness.slang offscreen, read the result back.

Pixel (x, y) of a harness image (row 0 = window row 0) samples the set at
uv = origin + (x + 0.5) * step_x + (y + 0.5) * step_y, with ntcSample's filter and wrap modes chosen
per render (uniforms, no recompile). export/decode/filters.py computes the same images in PyTorch
(`harness_uv` gives each pixel's uv); the tests and the decode benchmarks drive this class.
"""
from __future__ import annotations

import numpy as np

from shaders import constants as C
from shaders.interface import FILTERS, block_dtype, new_block

from .filters import wrap_pair

from .gl_context import FullscreenTriangle, build_program, render_float_targets
from .gl_resources import NTCTextureGL, decoder_shaders
from .precision import FP32, Precision

HARNESS_BINDING = C.BINDINGS["NtcSampleHarness"]
DECODES_TARGET = 4  # the harness's colour attachment with each pixel's MLP evaluations
VERTEX = "ntc_sample_harness.vert.glsl"
FRAGMENT = "ntc_sample_harness.frag.glsl"


def sample_shaders(model, hw_filter: bool = False, precision: Precision = FP32
                   ) -> tuple[str, str]:
    """(vertex, fragment) GLSL of the harness, specialised for `model`."""
    return decoder_shaders(model, VERTEX, FRAGMENT, hw_filter, precision)


class GLSampleHarness:
    """The sample-mode harness program for one NTCTextureGL, in the set's precision."""

    def __init__(self, tex: NTCTextureGL, hw_filter: bool = False):
        self.tex = tex
        ctx = tex.ctx
        vert, frag = sample_shaders(tex.model, hw_filter, tex.precision)
        self.program = build_program(ctx, vert, frag,
                                     f"sample-mode decoder ({tex.precision.name})")
        self.triangle = FullscreenTriangle(ctx, self.program)
        self.pass_ubo = ctx.buffer(reserve=block_dtype("NtcSampleHarness").itemsize)
        self.targets = (tex.model.stored_channels + 3) // 4
        # rebound after each render: moderngl rebinds "the current" framebuffer when it creates the
        # next one, which must not be a released one (as in gl_decode)
        self._home = ctx.fbo if ctx.fbo is not None else ctx.detect_framebuffer()

    def render(self, size: tuple[int, int], origin, step_x, step_y,
               filter_mode: str = "trilinear", wrap="repeat", frame: int = 0,
               hardware_derivatives: bool = False, decodes: bool = False, draw=None):
        """[h, w, stored] float32 stored channels of a (w, h) harness image. `filter_mode` is a key
        of export.decode.filters.FILTERS, `wrap` a glTF wrap value or name (or a (wrapS, wrapT) pair);
        with `hardware_derivatives` the shader takes ddx/ddy of uv instead of the steps. With
        `decodes`: (channels, [h, w] int MLP evaluations each pixel made). `draw(harness_draw)`, if
        given, makes the draw (a benchmark times it there, apart from the read-back)."""
        model, ctx = self.tex.model, self.tex.ctx
        self.write_block(origin, step_x, step_y, filter_mode, wrap, frame, hardware_derivatives)
        targets = DECODES_TARGET + 1 if decodes else self.targets
        do_draw = self.draw if draw is None else (lambda: draw(self.draw))
        out = render_float_targets(ctx, self._home, size, targets, do_draw, "sample-mode render")
        channels = out[:, :, :model.stored_channels]
        if not decodes:
            return channels
        return channels, np.rint(out[:, :, 4 * DECODES_TARGET]).astype(np.int64)

    def write_block(self, origin, step_x, step_y, filter_mode: str = "trilinear", wrap="repeat",
                    frame: int = 0, hardware_derivatives: bool = False) -> None:
        """Fill the NtcSampleHarness block: uv = origin + fragCoord.x * step_x + fragCoord.y *
        step_y (see render)."""
        if filter_mode not in FILTERS:
            raise ValueError(f"filter '{filter_mode}': expected one of {', '.join(FILTERS)}")
        model = self.tex.model
        block = new_block("NtcSampleHarness")
        block["harnessOrigin"][:2] = origin
        block["harnessStep"] = (*step_x, *step_y)
        block["harnessSet"] = (model.width, model.height, model.mips, FILTERS[filter_mode])
        block["harnessMode"] = (*wrap_pair(wrap), frame, int(hardware_derivatives))
        self.pass_ubo.write(block.tobytes())

    def draw(self) -> None:
        """One draw of the harness with the block last written, into the bound framebuffer."""
        self.pass_ubo.bind_to_uniform_block(HARNESS_BINDING)
        self.tex.bind()
        self.triangle.render()

    def release(self) -> None:
        self.triangle.release()
        for obj in (self.pass_ubo, self.program):
            obj.release()
