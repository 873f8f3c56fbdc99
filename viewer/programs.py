"""The viewer's GL programs: PBR with textures (reference and load modes), one sample-mode PBR
program per neural-set network shape (shared by equal shapes), feedback mode's PBR program, and
the screen passes. Sample mode's
programs run the MLP in the precision resolved for the context (export/decode/precision.py:
`--precision`, 16-bit floats where the driver has them under auto)."""
from __future__ import annotations

from export.decode.gl_context import NTCGLError, build_program
from export.decode.gl_resources import decoder_fragment, generated_source
from export.decode.precision import FP32, Precision, resolve
from shaders import glsl


class Programs:
    """The PBR texture program, one sample-mode program per neural-set shape, the screen passes."""

    def __init__(self, ctx, precision: str = "auto", log=None):
        self.ctx = ctx
        self.log = log or (lambda *a: None)
        self.wanted = precision
        self.precision: Precision = resolve(ctx, precision)  # NTCGLError for fp16 without one
        self.pbr_vert = glsl.load_generated("pbr.vert.glsl")
        self.pbr = build_program(ctx, self.pbr_vert, glsl.load_generated("pbr.frag.glsl"),
                                 "PBR (textures)")
        self.post = build_program(ctx, glsl.load_generated("viewer_post.vert.glsl"),
                                  glsl.load_generated("viewer_post.frag.glsl"), "screen pass")
        self.text = build_program(ctx, glsl.load_generated("viewer_text.vert.glsl"),
                                  glsl.load_generated("viewer_text.frag.glsl"), "text overlay")
        self._sample: dict[str, object] = {}
        self._feedback: dict[bool, object] = {}   # by whether the material discards pixels
        self._ntc_sources: dict[Precision, str] = {}  # pbr_ntc's generated GLSL, read once each

    def sample(self, model) -> tuple[object, Precision]:
        """(program, its precision) for `model`'s network shape (shared by equal shapes). Under
        --precision auto a 16-bit program the driver will not compile falls back, with one log
        line, to 32-bit for this and every later set; under fp16 the failure is the error."""
        try:
            return self._sample_in(model, self.precision), self.precision
        except NTCGLError as e:
            if not self.precision.half or self.wanted == "fp16":
                raise
            self.log(f"16-bit sample-mode program failed ({e}); using 32-bit floats")
            self.precision = FP32
            return self._sample_in(model, FP32), FP32

    def _sample_in(self, model, precision: Precision):
        if precision not in self._ntc_sources:
            self._ntc_sources[precision] = generated_source("pbr_ntc.frag.glsl", precision)
        frag = decoder_fragment(self._ntc_sources[precision], model, precision=precision)
        prog = self._sample.get(frag)
        if prog is None:
            prog = build_program(self.ctx, self.pbr_vert, frag,
                                 f"PBR (sample mode, {precision.name})")
            self._sample[frag] = prog
        return prog

    def feedback(self, discards: bool = False):
        """The feedback-mode PBR program (one for every set: it runs no MLP), built on first use:
        with early depth tests (hidden pixels request no tiles) unless the material `discards`
        pixels (alpha mask), whose depth must then be written after the shader."""
        if discards not in self._feedback:
            name = "pbr_feedback.frag.glsl" if discards else "pbr_feedback_early.frag.glsl"
            self._feedback[discards] = build_program(
                self.ctx, self.pbr_vert, glsl.load_generated(name),
                f"PBR (feedback mode{', alpha mask' if discards else ''})")
        return self._feedback[discards]

    def release(self) -> None:
        for p in [self.pbr, self.post, self.text, *self._sample.values(),
                  *self._feedback.values()]:
            p.release()
        self._sample.clear()
        self._feedback.clear()
