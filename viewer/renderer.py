"""ntc-view's renderer: a glTF scene (export/gltf/) drawn with the PBR shaders of
shaders/pbr*.slang from one of four material texture sources, switchable at run time:

    reference  the scene's images with full mip chains (built on the CPU exactly as the trainer
               builds its targets: colour averaged in linear light, normals renormalised) as
               RGBA8 / SRGB8_ALPHA8 textures, or as BCn (the reference format), sampled through
               the glTF sampler (wrap, filters); the diff view compares with RGBA8
    load       the .ntc decoded once on load (export/decode/gl_load.py) into textures, sampled alike
    sample     the .ntc decoded per pixel (shaders/pbr_ntc.slang), the filter (sample_filters.py)
               chosen per frame; one program per network shape
    feedback   the .ntc decoded in tiles, only those the frames' pixels touch, into a pool the
               shader filters trilinearly (shaders/pbr_feedback.slang, feedback_tiles.py: tiles
               a frame lacked decoded after it, within a budget of decodes a frame)

Every frame renders the scene into an offscreen RGBA8 + depth target; a screen pass copies it (or
in the diff view shows |current - reference| as a heat map) into the display target, with the
text overlay on top; the window blits that target, headless runs read it back.

Resources live in small classes, a module each: programs, meshes, targets, material_bindings (over
material_textures and bcn_images), scene_pass, screen_passes, uniforms. Every GL object that holds
memory is entered with its exact bytes in a `VramLedger` (frame_stats.py lists the categories).

Modes load lazily: a headless run creates only what its mode needs (and the diff's reference).

Light: one directional light above and to the left of the initial view, fixed in the world, and
the sky of viewer/environment.py. No anisotropic filtering in any mode (sample mode has none).
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np

from export.decode.gl_context import RawGL, check_context

from .camera import OrbitCamera
from .environment import table as environment_table
from .feedback_tiles import FeedbackConfig
from .frame_stats import FrameTimer, VramLedger, driver_vram_bytes
from .material_bindings import FORMAT_NAMES, MaterialBindings, TextureFormats
from .bcn_images import BCnImages
from .material_textures import ImageTextures, Samplers
from .meshes import MeshGL
from .overlay import overlay_lines
from .programs import Programs
from .sample_filters import DEFAULT_FILTER, FILTER_NAMES, FrameMean, is_averaged
from .screen_passes import ScreenPasses
from .targets import RenderTarget
from .scene_pass import ScenePass
from .uniforms import frame_block, view_key

MODES = ("reference", "load", "sample", "feedback")

DIFF_GAIN = 4.0                   # heat map: a difference of 1/DIFF_GAIN is full scale
SETTLE_MAX = 64                   # feedback mode: frames settle_tiles draws at most


def check_formats(formats: TextureFormats) -> None:
    for name in ("reference", "load"):
        if getattr(formats, name) not in FORMAT_NAMES:
            raise ValueError(f"{name} format '{getattr(formats, name)}': expected "
                             f"{', '.join(FORMAT_NAMES)}")


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# the renderer

class Renderer:
    """Draws `scene` into a display target of `size` (w, h). `ntc_provider(material)` returns the
    material's .ntc path (or None: the material keeps its images in every mode); it is called the
    first time load or sample mode needs the material. `formats`: reference and load mode's
    texture formats; `bcn_images` (bcn_images.BCnImages) gives the BCn reference's blocks
    (default: encoded in memory, not cached)."""

    def __init__(self, ctx, scene, size: tuple[int, int], mode: str = "reference",
                 filter_mode: str = DEFAULT_FILTER, ntc_provider=None, slot_names=None,
                 overlay: bool = False, timer_latency: int = 2, accumulate: bool = True,
                 log=log_stderr, formats: TextureFormats = TextureFormats(), bcn_images=None,
                 precision: str = "auto", feedback: FeedbackConfig = FeedbackConfig()):
        import moderngl
        self.mgl = moderngl
        check_context(ctx)
        if mode not in MODES:
            raise ValueError(f"mode '{mode}': expected one of {', '.join(MODES)}")
        if filter_mode not in FILTER_NAMES:
            raise ValueError(f"filter '{filter_mode}': expected one of {', '.join(FILTER_NAMES)}")
        check_formats(formats)
        self.ctx = ctx
        self.scene = scene
        self.log = log or (lambda *a: None)
        self.gl = RawGL()
        self.ledger = VramLedger()
        self.mode = mode
        self.formats = formats
        self.feedback = feedback   # feedback mode's settings (feedback_tiles.FeedbackConfig)
        self.bcn_images = bcn_images or BCnImages(None, self.log)
        self.filter = filter_mode
        self.diff = False
        self.diff_gain = DIFF_GAIN
        self.overlay = overlay
        self.accumulate = accumulate   # average a still view's frames (sample_filters.py)
        self.mean = FrameMean()
        self.frame_index = 0
        self.exposure = 1.0
        self.light_colour = np.array([1.0, 0.97, 0.92]) * 3.0
        self.env_intensity = 1.0
        self.timer = FrameTimer(self.gl, latency=timer_latency)
        self.status_lines: list[str] = []   # extra overlay lines (the window's key help)
        self._released = False
        self.targets: dict[str, RenderTarget] = {}
        # The framebuffer bound now, made current again on release and before load-mode decodes
        # (gl_load rebinds moderngl's "current" framebuffer, which must not be a released one).
        self._home = ctx.detect_framebuffer()
        try:
            self._create_static(ntc_provider, slot_names, precision)
            self.camera = OrbitCamera()
            self.resize(size)
            self.camera.frame(scene.bounds_min, scene.bounds_max, size[0] / max(size[1], 1))
            self.light_dir = self._initial_light()
            self.ensure_mode(mode)
        except BaseException:
            self.release()
            raise

    # ------------------------------------------------------------------------------------------
    # static resources

    def _create_static(self, ntc_provider, slot_names, precision: str) -> None:
        ctx = self.ctx
        self.programs = Programs(ctx, precision, self.log)
        self.samplers = Samplers(ctx, self.gl)
        self.images: dict[str, ImageTextures] = {}
        self.white = ctx.texture((1, 1), 4, bytes([255, 255, 255, 255]))
        self.ledger.add("textures", self.white, 4, "white 1x1")
        env = environment_table()
        self.env = ctx.texture((env.shape[1], env.shape[0]), 4, env.tobytes(), dtype="f4")
        self.env.filter = (self.mgl.LINEAR, self.mgl.LINEAR)
        self.env.repeat_x = self.env.repeat_y = False
        self.ledger.add("environment", self.env, env.shape[0] * env.shape[1] * 16,
                        "sky table RGBA32F")
        self.passes = ScreenPasses(ctx, self.programs, self.ledger)
        self.bindings = MaterialBindings(ctx, self.material, self.programs, self.samplers,
                                         self.image_textures, self.white, self.ledger,
                                         ntc_provider,
                                         slot_names, self._home, self.log)
        self.meshes = [MeshGL(ctx, p, self.ledger, f"primitive {i}")
                       for i, p in enumerate(self.scene.primitives)]
        self.used_materials = sorted({m.material for m in self.meshes})
        self.scene_pass = ScenePass(ctx, self.meshes, self.material, self.bindings,
                                    self.samplers, self.env, self.ledger)

    def _initial_light(self) -> np.ndarray:
        """Towards the light: above, to the left of and in front of the initial view."""
        v = self.camera.view()
        right = np.array([v[0][0], v[1][0], v[2][0]])
        back = np.array([v[0][2], v[1][2], v[2][2]])   # from the target towards the eye
        d = 0.55 * back + 0.75 * np.array([0.0, 1.0, 0.0]) - 0.45 * right
        return d / np.linalg.norm(d)

    def material(self, index: int):
        return self.scene.material(index)   # index -1: glTF's default material

    def image_textures(self, fmt: str) -> ImageTextures:
        if fmt not in self.images:
            bcn = self.bcn_images if fmt == "bcn" else None
            self.images[fmt] = ImageTextures(self.ctx, self.ledger, bcn)
        return self.images[fmt]

    # ------------------------------------------------------------------------------------------
    # sizes and modes

    def resize(self, size: tuple[int, int]) -> None:
        size = (max(1, int(size[0])), max(1, int(size[1])))
        if self.targets and self.targets["display"].size == size:
            return
        self._home.use()   # not a target about to be released: moderngl rebinds the current one
        for t in self.targets.values():
            t.release()
        self.mean.restart()
        self.targets = {"scene": RenderTarget(self.ctx, size, self.ledger, "scene"),
                        "display": RenderTarget(self.ctx, size, self.ledger, "display",
                                                depth=False)}
        if self.diff:
            self.targets["reference"] = RenderTarget(self.ctx, size, self.ledger, "reference")
        self.size = size
        if self.bindings.tiles is not None:   # feedback mode: its decode budget follows the view
            self.bindings.tiles.fit_view(size)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode '{mode}': expected one of {', '.join(MODES)}")
        self.ensure_mode(mode)
        if mode == "feedback" and self.mode != "feedback":
            self.bindings.tiles.restart()
        self.mode = mode
        self.timer.reset()

    def set_formats(self, **changes) -> None:
        """Switch reference=... and / or load=... formats ("rgba8" / "bcn")."""
        formats = replace(self.formats, **changes)
        check_formats(formats)
        self.formats = formats
        self.ensure_mode(self.mode)
        self.timer.reset()

    def cycle_filter(self) -> str:
        self.filter = FILTER_NAMES[(FILTER_NAMES.index(self.filter) + 1) % len(FILTER_NAMES)]
        self.timer.reset()
        return self.filter

    def set_filter(self, name: str) -> None:
        if name not in FILTER_NAMES:
            raise ValueError(f"filter '{name}': expected one of {', '.join(FILTER_NAMES)}")
        self.filter = name
        self.timer.reset()

    def set_diff(self, on: bool) -> None:
        if on:
            self.ensure_mode("reference", TextureFormats())
            if "reference" not in self.targets:
                self.targets["reference"] = RenderTarget(self.ctx, self.size, self.ledger,
                                                         "reference")
        elif "reference" in self.targets:
            self.targets.pop("reference").release()
        self.diff = on
        self.timer.reset()

    def ensure_mode(self, mode: str, formats: TextureFormats | None = None) -> None:
        """Create what `mode` needs for every material the scene draws (once)."""
        if mode == "feedback" and self.bindings.tiles is None:
            self.bindings.create_tiles(self.size, self.used_materials, self.feedback)
        for index in self.used_materials:
            self.bindings.get(mode, index, formats or self.formats)

    # ------------------------------------------------------------------------------------------
    # drawing

    def _draw(self, mode: str, target: RenderTarget, formats: TextureFormats) -> None:
        self.scene_pass.draw(mode, formats, target, self._frame_block(),
                             self.camera.eye)

    def _frame_block(self) -> bytes:
        w, h = self.size
        return frame_block(self.camera.view_projection(w / h), self.camera.eye, self.exposure,
                           self.light_dir, self.light_colour, self.env_intensity,
                           self.shader_filter(),
                           self.frame_index)

    @property
    def accumulated(self) -> int:
        """Frames in the mean the display shows (sample_filters.FrameMean)."""
        return self.mean.frames

    def accumulating(self) -> bool:
        return self.accumulate and self.mode == "sample" and is_averaged(self.filter)

    def shader_filter(self) -> str:
        return self.mean.shader_filter(self.filter, self.accumulating())

    def mean_description(self) -> str:
        return self.mean.describe(self.filter)

    def _accumulate(self) -> None:
        """Blend the scene target into the running mean of this view's frames."""
        target = self.targets.get("accumulation")
        if target is None:
            target = self.targets["accumulation"] = RenderTarget(
                self.ctx, self.size, self.ledger, "accumulation", depth=False, float_colour=True)
        self.passes.accumulate(target, self.targets["scene"].colour, self.mean.weight())
        self.mean.add(self.filter)

    def _compose(self, source: str = "scene") -> None:
        diff = self.diff and "reference" in self.targets
        self.passes.compose(self.targets["display"], self.targets[source].colour,
                            self.targets["reference"].colour if diff else None, self.diff_gain,
                            linear_source=source == "accumulation")
        if self.overlay:
            self.passes.draw_text(self.overlay_lines())

    def render(self) -> None:
        """One frame into the display target, timed (GPU by a timer query, CPU by the clock)."""
        t0 = time.perf_counter()
        self.timer.begin()
        try:
            if self.accumulating():   # a changed view (not frame index) starts a new mean
                self.mean.follow((view_key(self._frame_block()), self.mode, self.filter,
                                  self.size))
            self._draw(self.mode, self.targets["scene"], self.formats)
            if self.mode == "feedback":
                self.bindings.update_tiles()
            source = "scene"
            if self.accumulating():
                self._accumulate()
                source = "accumulation"
            else:
                self.mean.restart()
            if self.diff:
                self._draw("reference", self.targets["reference"], TextureFormats())
            self._compose(source)
        finally:
            self.timer.end((time.perf_counter() - t0) * 1e3)
        self.frame_index += 1

    def warm_up(self) -> float:
        """Render and finish one frame (the driver compiles the programs at first draw), then
        restart the frame timer; returns that frame's milliseconds."""
        t0 = time.perf_counter()
        self.render()
        self.ctx.finish()
        ms = (time.perf_counter() - t0) * 1e3
        self.timer.reset()
        return ms

    def settle_tiles(self) -> int | None:
        """Feedback mode: draw frames (untimed) until TileCache.settled, at most SETTLE_MAX, so
        frames timed after are the view's steady state, as load mode's come after its decode;
        then restart the frame timer. The frames drawn, or None in other modes."""
        tiles = self.bindings.tiles
        if self.mode != "feedback" or tiles is None:
            return None
        n = 0
        while n < SETTLE_MAX and not tiles.settled():
            self.render()
            n += 1
        self.ctx.finish()
        self.timer.reset()
        return n

    def read(self) -> np.ndarray:
        """The display target as uint8 [h, w, 3], top row first."""
        return self.targets["display"].read()

    def render_mode_image(self, mode: str, formats: TextureFormats | None = None) -> np.ndarray:
        """A frame of `mode` (no diff, no overlay, untimed) as uint8 [h, w, 3]; the current mode,
        diff and overlay settings are kept. For the current mode while stochastic frames are
        being averaged, that mean (what the display shows) rather than one more frame."""
        saved = (self.mode, self.diff, self.overlay)
        formats = formats or self.formats
        self.ensure_mode(mode, formats)
        mean = mode == self.mode and self.accumulating() and self.accumulated > 0
        self.mode, self.diff, self.overlay = mode, False, False
        try:
            if not mean:
                self._draw(mode, self.targets["scene"], formats)
            self._compose("accumulation" if mean else "scene")
            return self.read()
        finally:
            self.mode, self.diff, self.overlay = saved

    # ------------------------------------------------------------------------------------------
    # figures

    def vram(self) -> dict:
        by = self.ledger.by_category()
        return {"total": sum(by.values()), "by_category": by}

    def driver_vram(self) -> int | None:
        return driver_vram_bytes(self.ctx, self.gl)

    def vram_objects(self) -> list[dict]:
        """Every GL object the viewer holds bytes in: category, label, bytes."""
        return [{"category": c, "label": lbl, "bytes": n}
                for c, lbl, n in sorted(self.ledger.entries())]

    def overlay_lines(self) -> list[str]:
        return overlay_lines(self)

    # ------------------------------------------------------------------------------------------
    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for t in getattr(self, "targets", {}).values():
            t.release()
        for m in getattr(self, "meshes", []):
            m.release(self.ledger)
        for name in ("scene_pass", "bindings", "passes"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.release()
        for name in ("env", "white"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.release()
        for images in getattr(self, "images", {}).values():
            images.release()
        for name in ("samplers", "programs"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.release()
        if hasattr(self, "timer"):
            self.timer.release()
        if getattr(self, "_home", None) is not None:
            self._home.use()
