"""The viewer's GL programs: PBR with textures (reference and load modes), one sample-mode PBR
program per neural-set network shape (shared by equal shapes), and the screen passes."""
from __future__ import annotations

from export.decode.gl_context import build_program
from export.decode.gl_resources import decoder_fragment
from shaders import glsl


class Programs:
    """The PBR texture program, one sample-mode program per neural-set shape, the screen passes."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.pbr_vert = glsl.load_generated("pbr.vert.glsl")
        self.pbr = build_program(ctx, self.pbr_vert, glsl.load_generated("pbr.frag.glsl"),
                                 "PBR (textures)")
        self.post = build_program(ctx, glsl.load_generated("viewer_post.vert.glsl"),
                                  glsl.load_generated("viewer_post.frag.glsl"), "screen pass")
        self.text = build_program(ctx, glsl.load_generated("viewer_text.vert.glsl"),
                                  glsl.load_generated("viewer_text.frag.glsl"), "text overlay")
        self._sample: dict[str, object] = {}
        self._ntc_source = glsl.load_generated("pbr_ntc.frag.glsl")

    def sample(self, model):
        """The sample-mode program for `model`'s network shape (shared by equal shapes)."""
        frag = decoder_fragment(self._ntc_source, model)
        prog = self._sample.get(frag)
        if prog is None:
            prog = build_program(self.ctx, self.pbr_vert, frag, "PBR (sample mode)")
            self._sample[frag] = prog
        return prog

    def release(self) -> None:
        for p in [self.pbr, self.post, self.text, *self._sample.values()]:
            p.release()
        self._sample.clear()
