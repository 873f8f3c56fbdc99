"""load_scene: a glTF file's default scene flattened into primitives and materials (see the
package docstring)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .buffers import BufferReading
from .container import parse_gltf, read_container
from .geometry import _normalize, _triangle_indices, flat_normals, generate_tangents, \
    quat_to_matrix
from .materials import MaterialReading
from .model import ImageRef, Primitive, Scene, SceneError
from .ntc_extension import NTC_EXTENSION

SUPPORTED_EXTENSIONS = ("KHR_texture_transform", "KHR_materials_emissive_strength",
                        "KHR_mesh_quantization", NTC_EXTENSION)


class _Loader(BufferReading, MaterialReading):
    def __init__(self, path: Path, log):
        self.path = path
        self.folder = path.parent.resolve()
        self.log = log
        self.warnings: list[str] = []
        doc, self.glb_bin = read_container(path)
        self.doc = doc
        self.g = parse_gltf(doc, path)
        self._buffers: dict[int, bytes] = {}
        self._images: dict[int, ImageRef] = {}
        self._prim_cache: dict[tuple[int, int], tuple] = {}

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
            if self.log:
                self.log(f"warning: {self.path.name}: {msg}")

    def fail(self, msg: str):
        raise SceneError(f"{self.path.name}: {msg}")

    def index(self, value, array: list, what: str) -> int:
        if type(value) is not int or not 0 <= value < len(array or []):
            self.fail(f"{what} {value!r} is out of range (the file has {len(array or [])})")
        return value

    def check_extensions(self) -> list[str]:
        for key in ("extensionsRequired", "extensionsUsed"):
            # from the JSON itself: pygltflib turns a string into a list of its characters
            names = self.doc.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                self.fail(f"{key} must be a list of extension names, not {type(names).__name__} "
                          f"{str(names)[:40]!r}")
        required = self.g.extensionsRequired or []
        used = self.g.extensionsUsed or []
        missing = [e for e in required if e not in SUPPORTED_EXTENSIONS]
        if missing:
            self.fail(f"requires extension {', '.join(map(str, missing))}, which this viewer "
                      f"does not support (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
        ignored = [e for e in used if e not in SUPPORTED_EXTENSIONS]
        if ignored:
            self.warn(f"ignoring optional extension(s) {', '.join(map(str, ignored))}")
        return list(used)

    def primitive_data(self, mesh_i: int, prim_i: int, tangent_uv: int):
        key = (mesh_i, prim_i, tangent_uv)
        if key in self._prim_cache:
            return self._prim_cache[key]
        p = self.g.meshes[mesh_i].primitives[prim_i]
        what = f"mesh {mesh_i} primitive {prim_i}"
        mode = 4 if p.mode is None else p.mode
        if mode not in (4, 5, 6):
            names = {0: "points", 1: "lines", 2: "line loop", 3: "line strip"}
            self.warn(f"{what} draws {names.get(mode, f'mode {mode!r}')}; only triangles are "
                      f"drawn, skipped")
            self._prim_cache[key] = None
            return None
        attrs = p.attributes.__dict__ if p.attributes is not None else {}
        if attrs.get("POSITION") is None:
            self.warn(f"{what} has no POSITION; skipped")
            self._prim_cache[key] = None
            return None
        pos = self.accessor(attrs["POSITION"], f"{what} POSITION")
        if pos.shape[1] != 3:
            self.fail(f"{what}: POSITION must be VEC3")
        n = pos.shape[0]

        def attr(name, comps):
            if attrs.get(name) is None:
                return None
            a = self.accessor(attrs[name], f"{what} {name}")
            if a.shape[0] != n or a.shape[1] not in comps:
                self.fail(f"{what}: {name} has {a.shape[0]}x{a.shape[1]} values, expected "
                          f"{n}x{comps[-1]}")
            return a

        normals, tangents = attr("NORMAL", (3,)), attr("TANGENT", (4,))
        uv0, uv1, colors = attr("TEXCOORD_0", (2,)), attr("TEXCOORD_1", (2,)), attr("COLOR_0", (3, 4))
        if colors is not None and colors.shape[1] == 3:
            colors = np.concatenate([colors, np.ones((n, 1), np.float32)], axis=1)
        if p.indices is not None:
            idx = self.accessor(p.indices, f"{what} indices", float_out=False)
            if idx.shape[1] != 1 or idx.dtype not in (np.uint8, np.uint16, np.uint32):
                self.fail(f"{what}: indices must be unsigned integer scalars")
            idx = idx[:, 0].astype(np.uint32)
            if idx.size and int(idx.max()) >= n:
                self.fail(f"{what}: index {int(idx.max())} is out of range ({n} vertices)")
        else:
            idx = np.arange(n, dtype=np.uint32)
        tri = _triangle_indices(mode, idx).astype(np.uint32)
        if mode == 4 and tri.size != idx.size:
            self.warn(f"{what}: {idx.size} indices is not a multiple of 3; the rest is ignored")
        if tri.size == 0:
            self._prim_cache[key] = None
            return None
        if normals is None:
            # Flat normals need one vertex per corner: unweld every attribute.
            pos, tangents = pos[tri], None
            uv0 = uv0[tri] if uv0 is not None else None
            uv1 = uv1[tri] if uv1 is not None else None
            colors = colors[tri] if colors is not None else None
            tri = np.arange(tri.size, dtype=np.uint32)
            normals = flat_normals(pos, tri)
        else:
            normals = _normalize(normals)[0].astype(np.float32)
        if uv0 is None:
            uv0 = np.zeros((pos.shape[0], 2), np.float32)
        if tangents is None:
            uvs = uv1 if tangent_uv == 1 and uv1 is not None else uv0
            tangents = generate_tangents(pos, normals, uvs, tri)
        else:
            tangents = tangents.astype(np.float32)
            tangents[:, 3] = np.where(tangents[:, 3] < 0, -1.0, 1.0)
        out = (pos.astype(np.float32), normals, uv0.astype(np.float32), tangents, tri,
               None if uv1 is None else uv1.astype(np.float32), colors)
        self._prim_cache[key] = out
        return out

    def local_matrix(self, node, i: int) -> np.ndarray:
        if node.matrix is not None:
            try:
                m = np.asarray(node.matrix, np.float64)
            except (TypeError, ValueError):
                m = np.zeros(0)
            if m.shape != (16,):
                self.fail(f"node {i}: matrix must be 16 numbers")
            return m.reshape(4, 4).T  # glTF stores column-major
        try:
            t = np.asarray(node.translation if node.translation is not None else (0, 0, 0), float)
            r = np.asarray(node.rotation if node.rotation is not None else (0, 0, 0, 1), float)
            s = np.asarray(node.scale if node.scale is not None else (1, 1, 1), float)
        except (TypeError, ValueError):
            self.fail(f"node {i}: translation/rotation/scale must be numbers")
        if t.shape != (3,) or r.shape != (4,) or s.shape != (3,):
            self.fail(f"node {i}: translation, rotation and scale need 3, 4 and 3 numbers")
        m = np.eye(4)
        m[:3, :3] = quat_to_matrix(r) * s[None, :]
        m[:3, 3] = t
        return m

    def load(self) -> Scene:
        used = self.check_extensions()
        materials = [self.material(i) for i in range(len(self.g.materials))]
        g = self.g
        if g.scenes:
            si = g.scene if g.scene is not None else 0
            si = self.index(si, g.scenes, "scene")
            roots = g.scenes[si].nodes or []
        else:  # no scenes: every node that is nobody's child
            children = {c for nd in g.nodes for c in (nd.children or []) if type(c) is int}
            roots = [i for i in range(len(g.nodes)) if i not in children]
        prims: list[Primitive] = []
        stack = [(self.index(r, g.nodes, "scene root node"), np.eye(4), ()) for r in roots]
        stack.reverse()
        visits = 0
        while stack:
            ni, parent, path = stack.pop()
            if ni in path:
                self.fail(f"node {ni} is its own ancestor (cycle in the node hierarchy)")
            visits += 1
            if visits > 1_000_000:
                self.fail("node hierarchy is too large")
            node = g.nodes[ni]
            world = parent @ self.local_matrix(node, ni)
            if node.mesh is not None:
                mi = self.index(node.mesh, g.meshes, f"node {ni}: mesh")
                mesh = g.meshes[mi]
                if node.skin is not None:
                    self.warn("skins are not animated; meshes are drawn in their bind pose")
                for pi, p in enumerate(mesh.primitives or []):
                    mat_i = -1 if p.material is None else self.index(
                        p.material, g.materials, f"mesh {mi} primitive {pi}: material")
                    if p.targets:
                        self.warn("morph targets are ignored")
                    tangent_uv = 0
                    if mat_i >= 0 and "normal" in materials[mat_i].slots:
                        tangent_uv = materials[mat_i].slots["normal"].texcoord
                    data = self.primitive_data(mi, pi, tangent_uv)
                    if data is None:
                        continue
                    pos, nrm, uv0, tan, tri, uv1, col = data
                    prims.append(Primitive(pos, nrm, uv0, tan, tri, mat_i,
                                           world.astype(np.float32), uv1, col, mi, ni,
                                           mesh.name or f"mesh{mi}"))
            for c in reversed(node.children or []):
                stack.append((self.index(c, g.nodes, f"node {ni}: child"), world, path + (ni,)))
        if not prims:
            self.fail("the scene has no triangles to draw")
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for p in prims:
            w = p.world.astype(np.float64)
            wp = p.positions.astype(np.float64) @ w[:3, :3].T + w[:3, 3]
            lo = np.minimum(lo, wp.min(axis=0))
            hi = np.maximum(hi, wp.max(axis=0))
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            self.fail("vertex positions are not finite")
        images = {ref.key: ref for ref in self._images.values()}
        return Scene(self.path, prims, materials, lo.astype(np.float32), hi.astype(np.float32),
                     images, self.warnings, [str(e) for e in used])


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def load_scene(path: str | Path, log=_stderr) -> Scene:
    """Load a .gltf or .glb scene (see the module docstring). Warnings go to `log` (stderr by
    default; None = silent) and are kept in `Scene.warnings`. Raises SceneError."""
    path = Path(path)
    if path.suffix.lower() not in (".gltf", ".glb"):
        if path.is_dir():
            raise SceneError(f"scene {path} is a folder; give a .gltf or .glb file")
        if not path.exists():
            raise SceneError(f"scene {path} does not exist")
    try:
        return _Loader(path, log).load()
    except SceneError:
        raise
    except (TypeError, AttributeError, ValueError, KeyError, IndexError) as e:
        # A safety net for shapes of JSON the checks above did not foresee: still one line.
        detail = str(e).splitlines()[0] if str(e) else ""
        raise SceneError(f"{path.name}: malformed glTF ({type(e).__name__}: {detail})") from None
    except RecursionError:
        raise SceneError(f"{path.name}: structure nested too deeply") from None
    except MemoryError:
        raise SceneError(f"{path.name}: too large to load") from None
