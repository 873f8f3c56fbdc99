"""The passes after the scene: blending a frame into the running mean of stochastic frames, the
screen pass into the display target (a copy, or the diff heat map against the reference), and the
text overlay. Their buffers are entered in the VramLedger."""
from __future__ import annotations

from export.decode.gl_context import FullscreenTriangle
from shaders import constants as C

from .frame_stats import VramLedger
from .overlay import FontAtlas
from .programs import Programs
from .targets import RenderTarget
from .uniforms import post_block

POST_BINDING = C.BINDINGS["PostPass"]
POST_A_UNIT, POST_B_UNIT, FONT_UNIT = (C.BINDINGS[n] for n in ("postA", "postB", "postFont"))
TEXT_VERTEX = ("2f 2f 4f", "input_position_0", "input_uv_0", "input_colour_0")


class ScreenPasses:
    def __init__(self, ctx, programs: Programs, ledger: VramLedger):
        import moderngl
        self.mgl = moderngl
        self.ctx = ctx
        self.programs = programs
        self.ledger = ledger
        self.ubo = ctx.buffer(reserve=len(post_block(C.POST_COPY)))
        ledger.add("uniforms", self.ubo, self.ubo.size, "screen pass block")
        self.triangle = FullscreenTriangle(ctx, programs.post)
        ledger.add("uniforms", self.triangle, self.triangle.nbytes, "fullscreen triangle")
        self.font = None            # the overlay's atlas, made at its first draw
        self.font_tex = None
        self.text_vbo = None
        self.text_vao = None

    def _post(self, block: bytes) -> None:
        self.ubo.write(block)
        self.ubo.bind_to_uniform_block(POST_BINDING)
        self.triangle.render()

    def accumulate(self, target: RenderTarget, frame, weight: float) -> None:
        """Blend texture `frame` (display values) into `target` with alpha `weight`: a running
        mean in linear light (shaders/display.slang), which compose(linear_source=True) shows."""
        ctx, mgl = self.ctx, self.mgl
        target.fbo.use()
        ctx.viewport = (0, 0, *target.size)
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE)
        ctx.enable(mgl.BLEND)
        ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA)
        frame.use(POST_A_UNIT)
        self._post(post_block(C.POST_ACCUMULATE, weight=weight, size=target.size))
        ctx.disable(mgl.BLEND)

    def compose(self, display: RenderTarget, source, reference=None, gain: float = 0.0,
                linear_source: bool = False) -> None:
        """Texture `source` into `display`, or with a `reference` texture the heat map of their
        difference times `gain`; `linear_source`: `source` is accumulate's mean in linear light."""
        ctx, mgl = self.ctx, self.mgl
        display.fbo.use()
        ctx.viewport = (0, 0, *display.size)
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE | mgl.BLEND)
        source.use(POST_A_UNIT)
        if reference is not None:
            reference.use(POST_B_UNIT)
        mode = C.POST_DIFF if reference is not None else C.POST_COPY
        self._post(post_block(mode, gain=gain, size=display.size, linear_source=linear_source))

    def draw_text(self, lines: list[str]) -> None:
        """The overlay's lines over the bound target (the viewport size is compose's)."""
        ctx, mgl = self.ctx, self.mgl
        if self.font is None:
            self.font = FontAtlas()
            fh, fw = self.font.pixels.shape
            self.font_tex = ctx.texture((fw, fh), 1, self.font.pixels.tobytes())
            self.font_tex.filter = (mgl.NEAREST, mgl.NEAREST)
            self.ledger.add("overlay", self.font_tex, fw * fh, "font atlas R8")
        verts = self.font.layout(lines)
        data = verts.tobytes()
        if self.text_vbo is None or self.text_vbo.size < len(data):
            if self.text_vbo is not None:
                self.text_vao.release()
                self.ledger.remove(self.text_vbo)
                self.text_vbo.release()
            self.text_vbo = ctx.buffer(reserve=max(len(data), 64 * 1024))
            self.ledger.add("overlay", self.text_vbo, self.text_vbo.size, "text vertices")
            self.text_vao = ctx.vertex_array(self.programs.text, [(self.text_vbo, *TEXT_VERTEX)])
        self.text_vbo.write(data)
        self.font_tex.use(FONT_UNIT)
        ctx.enable(mgl.BLEND)
        ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA, mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA)
        self.text_vao.render(mgl.TRIANGLES, vertices=len(verts))
        ctx.disable(mgl.BLEND)

    def release(self) -> None:
        for obj in (self.text_vao, self.text_vbo, self.font_tex):
            if obj is not None:
                obj.release()
        self.triangle.release()
        self.ubo.release()
