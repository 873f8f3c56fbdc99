"""A scene primitive on the GPU: one interleaved vertex buffer, one index buffer, a vertex array
per program; every buffer entered in the VramLedger."""
from __future__ import annotations

import numpy as np

from .frame_stats import VramLedger

VERTEX_FORMAT = "3f 3f 2f 2f 4f 4f"
VERTEX_NAMES = ("input_position_0", "input_normal_0", "input_uv_0", "input_uv1_0",
                "input_tangent_0", "input_colour_0")


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
