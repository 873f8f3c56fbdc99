"""ntc-view's renderer: a glTF scene (export/gltf/) drawn with the PBR shaders of
shaders/pbr*.slang from one of three material texture sources, switchable at run time:

    reference  the scene's images as RGBA8 / SRGB8_ALPHA8 textures with full mip chains (built on
               the CPU exactly as the trainer builds its targets: colour averaged in linear light,
               normals renormalised), sampled through the glTF sampler (wrap, filters)
    load       the material's .ntc decoded once on load (viewer/gl_decode.decode_to_textures) into
               ordinary textures, sampled the same way
    sample     the material's .ntc decoded per pixel (shaders/pbr_ntc.slang: ntcSample + ntcRemap),
               filter latent / stochastic / trilinear chosen per frame; one program per file shape

Every frame renders the scene into an offscreen RGBA8 + depth target, then a screen pass copies it
(or, in the diff view, shows |current - reference| as a heat map, the reference rendered into a
second target) into the display target, and the text overlay goes on top. The window blits the
display target; headless runs read it back.

Resources are owned by small classes (MeshGL, RenderTarget, Programs here; ImageTextures, LoadedSet,
SampledSet in material_textures.py) and every GL object that holds memory is entered in a
`VramLedger` (frame_stats.py) with its exact size in bytes (all mip levels), by category:

    textures      reference images (+ the 1x1 white texture bound to empty slots)
    decoded       load-mode textures
    latents       sample-mode latent texture arrays
    weights       sample-mode MLP uniform blocks
    geometry      vertex and index buffers
    framebuffers  render targets (colour RGBA8 4 B/px, depth D24 counted as 4 B/px: drivers store
                  it in 32 bits)
    uniforms      per-frame / per-draw / remap / screen-pass uniform buffers, fullscreen triangle
    environment   the ambient light table (RGBA32F)
    overlay       font atlas and text vertex buffer

Modes load lazily: a headless run creates only what its mode needs (plus the reference when the
diff view is on), so the ledger is that mode's footprint.

Light and ambient: one directional light placed above and to the left of the initial view, fixed in
the world; the procedural sky of viewer/environment.py. Anisotropic filtering is off in every mode
(sample mode has none), so the diff view compares like with like.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from export.format import read_ntc
from export.gltf.ntc_extension import material_slot_names, slot_texture_index
from export.decode.gl_resources import decoder_fragment
from shaders import glsl
from shaders.interface import FILTERS

from .camera import OrbitCamera
from .environment import table as environment_table
from .frame_stats import FrameTimer, VramLedger, driver_vram_bytes, format_bytes
from export.decode.gl_context import RawGL, build_program, check_context
from .material_textures import (GL_REPEAT, Binding, ImageTextures, LoadedSet, SampledSet,
                                Samplers)
from .overlay import FontAtlas

MODES = ("reference", "load", "sample")
FILTER_NAMES = tuple(FILTERS)          # latent, stochastic, trilinear (NTC_FILTER_* order)
SLOTS = ("baseColor", "normal", "metallicRoughness", "occlusion", "emissive")
COLOUR_SLOTS = ("baseColor", "emissive")

FRAME_BINDING = 4     # PbrFrame   (pbr_common.slang)
DRAW_BINDING = 5      # PbrDraw
ENV_UNIT = 6          # pbrEnvironment
POST_BINDING = 7      # PostPass   (viewer_post.slang)
SLOT_UNITS = (8, 9, 10, 11, 12)
POST_A_UNIT, POST_B_UNIT, FONT_UNIT = 0, 1, 2

FLAG_TEXTURED, FLAG_SRGB = 1, 2
ALPHA_MODES = {"OPAQUE": 0, "MASK": 1, "BLEND": 2}

VERTEX_FORMAT = "3f 3f 2f 2f 4f 4f"
VERTEX_NAMES = ("input_position_0", "input_normal_0", "input_uv_0", "input_uv1_0",
                "input_tangent_0", "input_colour_0")
_FULLSCREEN = np.array([-1.0, -1.0, 3.0, -1.0, -1.0, 3.0], np.float32)
BACKGROUND = (0.16, 0.17, 0.19)   # display value of empty pixels
ACCUMULATE_MAX = 256              # stochastic frames averaged; beyond, a moving average
DIFF_GAIN = 4.0                   # heat map: a difference of 1/DIFF_GAIN is full scale


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# programs

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


# ----------------------------------------------------------------------------------------------
# geometry

class MeshGL:
    """One primitive: interleaved vertex buffer (position, normal, uv0, uv1, tangent, colour),
    32-bit index buffer, a vertex array per program."""

    def __init__(self, ctx, prim, ledger: VramLedger, label: str):
        n = prim.positions.shape[0]
        tangents = prim.tangents if prim.tangents is not None else np.zeros((n, 4), np.float32)
        uv1 = prim.uvs1 if getattr(prim, "uvs1", None) is not None else np.zeros((n, 2))
        colours = prim.colors if getattr(prim, "colors", None) is not None else np.ones((n, 4))
        data = np.concatenate([prim.positions, prim.normals, prim.uvs, uv1, tangents, colours],
                              axis=1).astype(np.float32)
        self.ctx = ctx
        self.vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
        self.ibo = ctx.buffer(np.ascontiguousarray(prim.indices, np.uint32).tobytes())
        ledger.add("geometry", self.vbo, self.vbo.size, f"{label} vertices")
        ledger.add("geometry", self.ibo, self.ibo.size, f"{label} indices")
        self.count = int(prim.indices.size)
        world = np.asarray(prim.world, np.float64)
        self.world = world
        self.normal_matrix = np.linalg.inv(world[:3, :3]).T if abs(np.linalg.det(world[:3, :3])) \
            > 1e-30 else np.eye(3)
        self.mirrored = np.linalg.det(world[:3, :3]) < 0   # flips the winding
        p = prim.positions.astype(np.float64) @ world[:3, :3].T + world[:3, 3]
        self.centre = (p.min(0) + p.max(0)) * 0.5
        self.material = prim.material
        self._vaos: dict[int, object] = {}

    def vao(self, program):
        vao = self._vaos.get(id(program))
        if vao is None:
            vao = self.ctx.vertex_array(program, [(self.vbo, VERTEX_FORMAT, *VERTEX_NAMES)],
                                        index_buffer=self.ibo, index_element_size=4,
                                        skip_errors=True)
            self._vaos[id(program)] = vao
        return vao

    def release(self, ledger: VramLedger) -> None:
        for vao in self._vaos.values():
            vao.release()
        for b in (self.vbo, self.ibo):
            ledger.remove(b)
            b.release()


# ----------------------------------------------------------------------------------------------
# targets and timing

class RenderTarget:
    """RGBA8 (or RGBA32F: `float_colour`) colour texture (+ depth) framebuffer of the window's
    size."""

    def __init__(self, ctx, size: tuple[int, int], ledger: VramLedger, label: str,
                 depth: bool = True, float_colour: bool = False):
        self.size = size
        self.ledger = ledger
        self.colour = ctx.texture(size, 4, dtype="f4" if float_colour else "f1")
        self.colour.filter = (0x2600, 0x2600)  # GL_NEAREST
        self.depth = ctx.depth_texture(size) if depth else None
        self.fbo = ctx.framebuffer([self.colour], self.depth)
        w, h = size
        ledger.add("framebuffers", self.colour, w * h * (16 if float_colour else 4),
                   f"{label} colour{' RGBA32F' if float_colour else ''}")
        if self.depth is not None:
            ledger.add("framebuffers", self.depth, w * h * 4, f"{label} depth")

    def read(self) -> np.ndarray:
        """uint8 [h, w, 3], row 0 = top of the picture."""
        w, h = self.size
        data = np.frombuffer(self.fbo.read(components=3, alignment=1), np.uint8)
        return np.ascontiguousarray(data.reshape(h, w, 3)[::-1])

    def release(self) -> None:
        self.fbo.release()
        for t in (self.colour, self.depth):
            if t is not None:
                self.ledger.remove(t)
                t.release()


# ----------------------------------------------------------------------------------------------
# the renderer

class Renderer:
    """Draws `scene` into a display target of `size` (w, h). `ntc_provider(material)` returns the
    material's .ntc path (or None: the material keeps its images in every mode); it is called the
    first time load or sample mode needs the material."""

    def __init__(self, ctx, scene, size: tuple[int, int], mode: str = "reference",
                 filter_mode: str = "trilinear", ntc_provider=None, slot_names=None,
                 overlay: bool = False, timer_latency: int = 2, accumulate: bool = True,
                 log=log_stderr):
        import moderngl
        self.mgl = moderngl
        check_context(ctx)
        if mode not in MODES:
            raise ValueError(f"mode '{mode}': expected one of {', '.join(MODES)}")
        if filter_mode not in FILTER_NAMES:
            raise ValueError(f"filter '{filter_mode}': expected one of {', '.join(FILTER_NAMES)}")
        self.ctx = ctx
        self.scene = scene
        self.log = log or (lambda *a: None)
        self.ntc_provider = ntc_provider
        self.slot_names = slot_names or material_slot_names
        self.gl = RawGL()
        self.ledger = VramLedger()
        self.mode = mode
        self.filter = filter_mode
        self.diff = False
        self.diff_gain = DIFF_GAIN
        self.overlay = overlay
        # Sample mode's stochastic filter decodes one texel a pixel, drawn anew each frame; while
        # the view stays the same the frames are averaged (what TAA does in an engine), so the
        # picture converges to the trilinear one. `accumulated` counts the frames in the mean.
        self.accumulate = accumulate
        self.accumulated = 0
        self._accumulation_key = None
        self.frame_index = 0
        self.exposure = 1.0
        self.light_colour = np.array([1.0, 0.97, 0.92]) * 3.0
        self.env_intensity = 1.0
        self.timer = FrameTimer(self.gl, latency=timer_latency)
        self.status_lines: list[str] = []   # extra overlay lines (the window's key help)
        self._released = False
        self._ntc_models: dict[int, object] = {}
        self._bindings: dict[tuple[str, int], Binding] = {}
        self._ntc_paths: dict[int, Path] = {}   # material -> its .ntc (shared sets share one)
        self._loaded: dict[int | Path, LoadedSet] = {}
        self._sampled: dict[int | Path, SampledSet] = {}
        self._draw_ubos: dict[tuple[str, int], object] = {}
        self.targets: dict[str, RenderTarget] = {}
        # The framebuffer bound now, made current again on release and before load-mode decodes
        # (gl_decode rebinds moderngl's "current" framebuffer, which must not be a released one).
        self._home = ctx.detect_framebuffer()
        try:
            self._create_static()
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

    def _create_static(self) -> None:
        ctx = self.ctx
        self.programs = Programs(ctx)
        self.samplers = Samplers(ctx, self.gl)
        self.images = ImageTextures(ctx, self.ledger)
        self.white = ctx.texture((1, 1), 4, bytes([255, 255, 255, 255]))
        self.ledger.add("textures", self.white, 4, "white 1x1")
        env = environment_table()
        self.env = ctx.texture((env.shape[1], env.shape[0]), 4, env.tobytes(), dtype="f4")
        self.env.filter = (self.mgl.LINEAR, self.mgl.LINEAR)
        self.env.repeat_x = self.env.repeat_y = False
        self.ledger.add("environment", self.env, env.shape[0] * env.shape[1] * 16,
                        "sky table RGBA32F")
        self.frame_ubo = ctx.buffer(reserve=8 * 16)
        self.ledger.add("uniforms", self.frame_ubo, self.frame_ubo.size, "frame block")
        self.post_ubo = ctx.buffer(reserve=2 * 16)
        self.ledger.add("uniforms", self.post_ubo, self.post_ubo.size, "screen pass block")
        self.fullscreen = ctx.buffer(_FULLSCREEN.tobytes())
        self.ledger.add("uniforms", self.fullscreen, self.fullscreen.size, "fullscreen triangle")
        self.post_vao = ctx.vertex_array(self.programs.post, [(self.fullscreen, "2f",
                                                               "position_0")])
        self.font = None            # the overlay's atlas, made at its first draw
        self.font_tex = None
        self.text_vbo = None
        self.text_vao = None
        self.meshes = [MeshGL(ctx, p, self.ledger, f"primitive {i}")
                       for i, p in enumerate(self.scene.primitives)]
        self.used_materials = sorted({m.material for m in self.meshes})

    def _initial_light(self) -> np.ndarray:
        """Towards the light: above, to the left of and in front of the initial view."""
        v = self.camera.view()
        right = np.array([v[0][0], v[1][0], v[2][0]])
        back = np.array([v[0][2], v[1][2], v[2][2]])   # from the target towards the eye
        d = 0.55 * back + 0.75 * np.array([0.0, 1.0, 0.0]) - 0.45 * right
        return d / np.linalg.norm(d)

    def material(self, index: int):
        return self.scene.material(index) if hasattr(self.scene, "material") else (
            self.scene.materials[index] if index >= 0 else _DefaultMaterial())

    # ------------------------------------------------------------------------------------------
    # sizes and modes

    def resize(self, size: tuple[int, int]) -> None:
        size = (max(1, int(size[0])), max(1, int(size[1])))
        if self.targets and self.targets["display"].size == size:
            return
        for t in self.targets.values():
            t.release()
        self.accumulated, self._accumulation_key = 0, None
        self.targets = {"scene": RenderTarget(self.ctx, size, self.ledger, "scene"),
                        "display": RenderTarget(self.ctx, size, self.ledger, "display",
                                                depth=False)}
        if self.diff:
            self.targets["reference"] = RenderTarget(self.ctx, size, self.ledger, "reference")
        self.size = size

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode '{mode}': expected one of {', '.join(MODES)}")
        self.ensure_mode(mode)
        self.mode = mode
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
            self.ensure_mode("reference")
            if "reference" not in self.targets:
                self.targets["reference"] = RenderTarget(self.ctx, self.size, self.ledger,
                                                         "reference")
        elif "reference" in self.targets:
            self.targets.pop("reference").release()
        self.diff = on
        self.timer.reset()

    def ensure_mode(self, mode: str) -> None:
        """Create what `mode` needs for every material the scene draws (once)."""
        for index in self.used_materials:
            self._binding(mode, index)

    def _ntc_model(self, index: int):
        if index not in self._ntc_models:
            mat = self.material(index)
            path = None
            if self.ntc_provider is not None and index >= 0 and mat.slots:
                path = self.ntc_provider(mat)
            if path is not None:
                self._ntc_paths[index] = Path(path).resolve()
            self._ntc_models[index] = read_ntc(path) if path is not None else None
        return self._ntc_models[index]

    def _binding(self, mode: str, index: int) -> Binding:
        key = (mode, index)
        b = self._bindings.get(key)
        if b is not None:
            return b
        mat = self.material(index)
        model = self._ntc_model(index) if mode != "reference" else None
        label = f"material {index} '{mat.name}'"
        if model is None:
            b = self._texture_binding(mat, None)
        elif mode == "load":
            # materials whose sets are one file share one GL copy of it
            shared = self._ntc_paths.get(index, index)
            if shared not in self._loaded:
                self._home.use()
                self._loaded[shared] = LoadedSet(self.ctx, model, self.ledger, label)
            b = self._texture_binding(mat, (model, self._loaded[shared]))
        else:
            shared = self._ntc_paths.get(index, index)
            if shared not in self._sampled:
                self._sampled[shared] = SampledSet(self.ctx, model, self.programs, self.ledger,
                                                   label)
            b = self._sample_binding(mat, model, self._sampled[shared])
        self._bindings[key] = b
        return b

    def _texture_binding(self, mat, loaded) -> Binding:
        b = Binding(self.programs.pbr)
        names = self.slot_names(mat)
        for s, slot in enumerate(SLOTS):
            ts = mat.slots.get(slot)
            if ts is None:
                b.textures.append((self.white, None))
                continue
            sampler = self.samplers.get(ts.sampler)
            colour = slot in COLOUR_SLOTS
            if loaded is None:
                tex = self.images.get(ts.image, colour, slot == "normal")
                b.flags[s] = FLAG_TEXTURED
            else:
                model, lset = loaded
                i = slot_texture_index(model, mat, slot, names)
                if i < 0:
                    self.log(f"warning: {mat.name}: no texture of its .ntc feeds {slot}; "
                             f"using the image")
                    tex = self.images.get(ts.image, colour, slot == "normal")
                    b.flags[s] = FLAG_TEXTURED
                else:
                    d = lset.textures[i]
                    tex = d.texture
                    srgb_format = d.internal_format == "GL_SRGB8_ALPHA8"
                    b.flags[s] = FLAG_TEXTURED | (FLAG_SRGB if colour and not srgb_format else 0)
            b.textures.append((tex, sampler))
        return b

    def _sample_binding(self, mat, model, sset: SampledSet) -> Binding:
        b = Binding(sset.program, ntc=sset)
        names = self.slot_names(mat)
        for s, slot in enumerate(SLOTS):
            if slot not in mat.slots:
                continue
            i = slot_texture_index(model, mat, slot, names)
            if i < 0:
                self.log(f"warning: {mat.name}: no texture of its .ntc feeds {slot}; the slot "
                         f"is left untextured in sample mode")
                continue
            b.slot_tex[s] = i
            b.flags[s] = FLAG_TEXTURED | (FLAG_SRGB if slot in COLOUR_SLOTS else 0)
        b.ntc_slot = "baseColor" if "baseColor" in mat.slots else next(
            (s for s in SLOTS if s in mat.slots), None)
        if b.ntc_slot is not None:
            smp = mat.slots[b.ntc_slot].sampler
            b.ntc_wrap = (getattr(smp, "wrap_s", GL_REPEAT) or GL_REPEAT,
                          getattr(smp, "wrap_t", GL_REPEAT) or GL_REPEAT)
        return b

    # ------------------------------------------------------------------------------------------
    # uniform blocks

    def _draw_block(self, mesh: MeshGL, mode: str, b: Binding) -> bytes:
        mat = self.material(mesh.material)
        f = np.zeros((23, 4), np.float32)
        f[0:4] = mesh.world.T                       # rows of the transpose = columns
        f[4:7, :3] = mesh.normal_matrix.T
        f[7] = mat.base_color_factor
        f[8, :3] = mat.emissive_factor
        f[9] = (mat.metallic_factor, mat.roughness_factor, mat.normal_scale,
                mat.occlusion_strength)
        f[10] = (ALPHA_MODES.get(mat.alpha_mode, 0), mat.alpha_cutoff,
                 1.0 if mat.double_sided else 0.0, 0.0)
        for s in range(6):
            slot = SLOTS[s] if s < 5 else b.ntc_slot
            ts = mat.slots.get(slot) if slot else None
            t = getattr(ts, "uv_transform", None) if ts is not None else None
            t = np.eye(3, dtype=np.float32) if t is None else np.asarray(t, np.float32)
            f[11 + 2 * s, :3] = t[0]
            f[12 + 2 * s, :3] = t[1]
            f[11 + 2 * s, 3] = 1.0 if ts is not None and getattr(ts, "texcoord", 0) == 1 else 0.0
        i = np.zeros((6, 4), np.int32)
        i[0] = b.slot_tex[:4]
        i[1, 0] = b.slot_tex[4]
        i[2] = b.flags[:4]
        i[3, 0] = b.flags[4]
        if b.ntc is not None:
            m = b.ntc.tex.model
            i[4, :3] = (m.width, m.height, m.mips)
            i[5, :2] = b.ntc_wrap
        return f.tobytes() + i.tobytes()

    def _draw_ubo(self, mesh_index: int, mode: str, b: Binding):
        key = (mode, mesh_index)
        ubo = self._draw_ubos.get(key)
        if ubo is None:
            ubo = self.ctx.buffer(self._draw_block(self.meshes[mesh_index], mode, b))
            self.ledger.add("uniforms", ubo, ubo.size, f"draw block {mode} {mesh_index}")
            self._draw_ubos[key] = ubo
        return ubo

    def _frame_block(self) -> bytes:
        w, h = self.size
        f = np.zeros((8, 4), np.float32)
        f[0:4] = self.camera.view_projection(w / h)
        f[4, :3] = np.asarray(self.camera.eye)
        f[4, 3] = self.exposure
        f[5, :3] = self.light_dir
        f[6, :3] = self.light_colour
        f[6, 3] = self.env_intensity
        ints = np.array([FILTERS[self.filter], self.frame_index & 0x7FFFFFFF, 0, 0], np.int32)
        return f[:7].tobytes() + ints.tobytes()

    # ------------------------------------------------------------------------------------------
    # drawing

    def _draw_scene(self, mode: str, target: RenderTarget) -> None:
        ctx, mgl = self.ctx, self.mgl
        target.fbo.use()
        ctx.viewport = (0, 0, *target.size)
        ctx.clear(*BACKGROUND, 1.0, depth=1.0)
        self.frame_ubo.write(self._frame_block())
        self.frame_ubo.bind_to_uniform_block(FRAME_BINDING)
        self.env.use(ENV_UNIT)
        ctx.enable(mgl.DEPTH_TEST)
        ctx.disable(mgl.BLEND)
        opaque, blended = [], []
        eye = np.asarray(self.camera.eye, np.float64)
        for k, mesh in enumerate(self.meshes):
            (blended if self.material(mesh.material).alpha_mode == "BLEND" else opaque).append(k)
        blended.sort(key=lambda k: -float(np.linalg.norm(self.meshes[k].centre - eye)))
        for k in opaque:
            self._draw_mesh(k, mode)
        if blended:
            ctx.enable(mgl.BLEND)
            ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA, mgl.ONE,
                              mgl.ONE_MINUS_SRC_ALPHA)
            target.fbo.depth_mask = False
            for k in blended:
                self._draw_mesh(k, mode)
            target.fbo.depth_mask = True
            ctx.disable(mgl.BLEND)
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE)

    def _draw_mesh(self, k: int, mode: str) -> None:
        ctx, mgl = self.ctx, self.mgl
        mesh = self.meshes[k]
        mat = self.material(mesh.material)
        b = self._binding(mode, mesh.material)
        if mat.double_sided:
            ctx.disable(mgl.CULL_FACE)
        else:
            ctx.enable(mgl.CULL_FACE)
            ctx.cull_face = "back"
        ctx.front_face = "cw" if mesh.mirrored else "ccw"
        if b.ntc is not None:
            b.ntc.bind()
        else:
            for unit, (tex, sampler) in zip(SLOT_UNITS, b.textures):
                tex.use(unit)
                if sampler is not None:
                    sampler.use(unit)
                else:
                    self.samplers.get(None).use(unit)
        self._draw_ubo(k, mode, b).bind_to_uniform_block(DRAW_BINDING)
        mesh.vao(b.program).render(mgl.TRIANGLES, vertices=mesh.count)

    def accumulating(self) -> bool:
        return self.accumulate and self.mode == "sample" and self.filter == "stochastic"

    def _accumulate(self) -> None:
        """Blend the scene target into the running mean of this view's stochastic frames,
        starting a new mean when anything but the frame index changed (camera, light, mode,
        filter, size)."""
        ctx, mgl = self.ctx, self.mgl
        key = (self._frame_block()[:7 * 16], self.mode, self.filter, self.size)
        if key != self._accumulation_key:
            self.accumulated, self._accumulation_key = 0, key
        target = self.targets.get("accumulation")
        if target is None:
            target = self.targets["accumulation"] = RenderTarget(
                ctx, self.size, self.ledger, "accumulation", depth=False, float_colour=True)
        target.fbo.use()
        ctx.viewport = (0, 0, *target.size)
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE)
        ctx.enable(mgl.BLEND)
        ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA)
        self.targets["scene"].colour.use(POST_A_UNIT)
        weight = 1.0 / (min(self.accumulated, ACCUMULATE_MAX - 1) + 1)
        self.post_ubo.write(np.array([2, 0, 0, 0], np.int32).tobytes()
                            + np.array([self.diff_gain, weight, *target.size], np.float32)
                            .tobytes())
        self.post_ubo.bind_to_uniform_block(POST_BINDING)
        self.post_vao.render(mgl.TRIANGLES, vertices=3)
        ctx.disable(mgl.BLEND)
        self.accumulated += 1

    def _compose(self, source: str = "scene") -> None:
        ctx, mgl = self.ctx, self.mgl
        display = self.targets["display"]
        display.fbo.use()
        ctx.viewport = (0, 0, *display.size)
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE | mgl.BLEND)
        self.targets[source].colour.use(POST_A_UNIT)
        diff = self.diff and "reference" in self.targets
        if diff:
            self.targets["reference"].colour.use(POST_B_UNIT)
        w, h = display.size
        self.post_ubo.write(np.array([1 if diff else 0, 0, 0, 0], np.int32).tobytes()
                            + np.array([self.diff_gain, 0.0, w, h], np.float32).tobytes())
        self.post_ubo.bind_to_uniform_block(POST_BINDING)
        self.post_vao.render(mgl.TRIANGLES, vertices=3)
        if self.overlay:
            self._draw_text(self.overlay_lines())

    def _draw_text(self, lines: list[str]) -> None:
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
            self.text_vao = ctx.vertex_array(self.programs.text, [
                (self.text_vbo, "2f 2f 4f", "input_position_0", "input_uv_0", "input_colour_0")])
        self.text_vbo.write(data)
        self.font_tex.use(FONT_UNIT)
        ctx.enable(mgl.BLEND)
        ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA, mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA)
        self.text_vao.render(mgl.TRIANGLES, vertices=len(verts))
        ctx.disable(mgl.BLEND)

    def render(self) -> None:
        """One frame into the display target, timed (GPU by a timer query, CPU by the clock)."""
        t0 = time.perf_counter()
        self.timer.begin()
        try:
            self._draw_scene(self.mode, self.targets["scene"])
            source = "scene"
            if self.accumulating():
                self._accumulate()
                source = "accumulation"
            else:
                self.accumulated = 0
            if self.diff:
                self._draw_scene("reference", self.targets["reference"])
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

    def read(self) -> np.ndarray:
        """The display target as uint8 [h, w, 3], top row first."""
        return self.targets["display"].read()

    def render_mode_image(self, mode: str) -> np.ndarray:
        """A frame of `mode` (no diff, no overlay, untimed) as uint8 [h, w, 3]; the current mode,
        diff and overlay settings are kept. For the current mode while stochastic frames are
        being averaged, that mean (what the display shows) rather than one more frame."""
        saved = (self.mode, self.diff, self.overlay)
        self.ensure_mode(mode)
        mean = mode == self.mode and self.accumulating() and self.accumulated > 0
        self.mode, self.diff, self.overlay = mode, False, False
        try:
            if not mean:
                self._draw_scene(mode, self.targets["scene"])
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
        gpu = FrameTimer.summary(self.timer.gpu_ms)
        cpu = FrameTimer.summary(self.timer.cpu_ms)
        vram = self.vram()
        by = vram["by_category"]
        w, h = self.size
        gpu_text = f"{gpu['median']:.2f} ms (median of {len(self.timer.gpu_ms)})" if gpu else "-"
        cpu_text = f"{cpu['median']:.2f} ms" if cpu else "-"
        mean = f" (mean of {self.accumulated} frames)" if self.accumulating() else ""
        lines = [f"mode {self.mode}   sample filter {self.filter}{mean}   {w}x{h}"
                 + ("   DIFF vs reference" if self.diff else ""),
                 f"GPU {gpu_text}   CPU {cpu_text}",
                 f"VRAM {format_bytes(vram['total'])}: textures {format_bytes(by['textures'])}, "
                 f"decoded {format_bytes(by['decoded'])}, latents {format_bytes(by['latents'])}, "
                 f"weights {format_bytes(by['weights'])}",
                 f"  geometry {format_bytes(by['geometry'])}, framebuffers "
                 f"{format_bytes(by['framebuffers'])}, other "
                 f"{format_bytes(by['uniforms'] + by['environment'] + by['overlay'])}",
                 f"driver VRAM in use: {format_bytes(self.driver_vram())}"]
        return lines + list(self.status_lines)

    # ------------------------------------------------------------------------------------------
    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for attr in ("_loaded", "_sampled"):
            for s in getattr(self, attr, {}).values():
                s.release()
        for ubo in getattr(self, "_draw_ubos", {}).values():
            ubo.release()
        for t in getattr(self, "targets", {}).values():
            t.release()
        for m in getattr(self, "meshes", []):
            m.release(self.ledger)
        for name in ("text_vao", "text_vbo", "post_vao", "fullscreen", "post_ubo", "frame_ubo",
                     "env", "white", "font_tex"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.release()
        for name in ("images", "samplers", "programs"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.release()
        if hasattr(self, "timer"):
            self.timer.release()
        if getattr(self, "_home", None) is not None:
            self._home.use()


class _DefaultMaterial:
    """glTF's default material, for scenes whose model has no `material(index)` helper."""
    index, name = -1, "default"
    base_color_factor = (1.0, 1.0, 1.0, 1.0)
    metallic_factor = roughness_factor = 1.0
    emissive_factor = (0.0, 0.0, 0.0)
    normal_scale = occlusion_strength = 1.0
    alpha_mode, alpha_cutoff, double_sided = "OPAQUE", 0.5, False
    slots: dict = {}

