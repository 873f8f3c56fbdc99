"""One pass over the scene's meshes into a render target: the frame block, the sky table, each
mesh with its material's binding for a mode (opaque first, then blended ones back to front), and
the per-mesh draw blocks (uniforms.draw_block), made once per binding variant."""
from __future__ import annotations

import numpy as np

from export.gltf.model import SLOTS
from shaders import constants as C
from shaders.interface import block_dtype

from .frame_stats import VramLedger
from .material_bindings import Binding, MaterialBindings, TextureFormats
from .targets import RenderTarget
from .uniforms import draw_block

FRAME_BINDING = C.BINDINGS["PbrFrame"]
DRAW_BINDING = C.BINDINGS["PbrDraw"]
ENV_UNIT = C.BINDINGS["pbrEnvironment"]
SLOT_UNITS = tuple(C.BINDINGS[f"pbr{s[0].upper()}{s[1:]}Texture"] for s in SLOTS)

BACKGROUND = (0.16, 0.17, 0.19)   # display value of empty pixels


class ScenePass:
    def __init__(self, ctx, meshes, material, bindings: MaterialBindings, samplers, env,
                 ledger: VramLedger):
        import moderngl
        self.mgl = moderngl
        self.ctx, self.meshes, self.material = ctx, meshes, material
        self.bindings, self.samplers, self.env, self.ledger = bindings, samplers, env, ledger
        self.frame_ubo = ctx.buffer(reserve=block_dtype("PbrFrame").itemsize)
        ledger.add("uniforms", self.frame_ubo, self.frame_ubo.size, "frame block")
        self._draw_ubos: dict[tuple[str, int], object] = {}

    def draw(self, mode: str, formats: TextureFormats, target: RenderTarget, frame: bytes,
             eye) -> None:
        ctx, mgl = self.ctx, self.mgl
        target.fbo.use()
        ctx.viewport = (0, 0, *target.size)
        ctx.clear(*BACKGROUND, 1.0, depth=1.0)
        self.frame_ubo.write(frame)
        self.frame_ubo.bind_to_uniform_block(FRAME_BINDING)
        self.env.use(ENV_UNIT)
        ctx.enable(mgl.DEPTH_TEST)
        ctx.disable(mgl.BLEND)
        opaque, blended = [], []
        eye = np.asarray(eye, np.float64)
        for k, mesh in enumerate(self.meshes):
            (blended if self.material(mesh.material).alpha_mode == "BLEND" else opaque).append(k)
        blended.sort(key=lambda k: -float(np.linalg.norm(self.meshes[k].centre - eye)))
        for k in opaque:
            self._draw_mesh(k, mode, formats)
        if blended:
            ctx.enable(mgl.BLEND)
            ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA, mgl.ONE,
                              mgl.ONE_MINUS_SRC_ALPHA)
            target.fbo.depth_mask = False
            for k in blended:
                self._draw_mesh(k, mode, formats)
            target.fbo.depth_mask = True
            ctx.disable(mgl.BLEND)
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE)

    def _draw_ubo(self, mesh_index: int, variant: str, b: Binding):
        key = (variant, mesh_index)
        ubo = self._draw_ubos.get(key)
        if ubo is None:
            mesh = self.meshes[mesh_index]
            ubo = self.ctx.buffer(draw_block(mesh, self.material(mesh.material), b))
            self.ledger.add("uniforms", ubo, ubo.size, f"draw block {variant} {mesh_index}")
            self._draw_ubos[key] = ubo
        return ubo

    def _draw_mesh(self, k: int, mode: str, formats: TextureFormats) -> None:
        ctx, mgl = self.ctx, self.mgl
        mesh = self.meshes[k]
        mat = self.material(mesh.material)
        b = self.bindings.get(mode, mesh.material, formats)
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
                (sampler if sampler is not None else self.samplers.get(None)).use(unit)
        variant = self.bindings.variant(mode, formats)
        self._draw_ubo(k, variant, b).bind_to_uniform_block(DRAW_BINDING)
        mesh.vao(b.program).render(mgl.TRIANGLES, vertices=mesh.count)

    def release(self) -> None:
        for ubo in self._draw_ubos.values():
            self.ledger.remove(ubo)
            ubo.release()
        self._draw_ubos.clear()
        self.ledger.remove(self.frame_ubo)
        self.frame_ubo.release()
