"""glTF 2.0 scenes (.gltf and .glb) in, flat lists of triangle primitives and PBR materials out.

`load_scene(path)` reads the file with pygltflib's data model, but every byte it touches goes
through this module: buffers and images are read only from data: URIs, the .glb BIN chunk, or
files *inside the scene's folder* (relative URIs whose resolved path, symlinks followed, stays in
it). Anything else, and any malformed or out-of-range reference, is a `SceneError` with a one-line
message: the viewer prints it instead of a traceback.

What the renderer gets (all numpy, all in the layout a GL vertex buffer wants):
- `Scene.primitives`: one `Primitive` per (node, mesh primitive) of the default scene, its world
  matrix already composed from the node hierarchy (TRS or matrix). Triangle lists only: strips and
  fans are converted, points and lines skipped with a warning. Missing normals are generated flat
  (as the glTF spec asks), missing tangents per vertex by a MikkTSpace-like accumulate +
  orthonormalize on the UV set of the material's normal map (always present, so every primitive
  has one vertex layout), missing UVs are zeros, non-indexed geometry gets indices 0..N-1.
- `Scene.materials`: metallic-roughness PBR with the textures decoded to uint8/uint16 pixels.

Extensions: KHR_texture_transform (per slot `uv_transform`, texCoord override),
KHR_materials_emissive_strength (folded into `emissive_factor`), KHR_mesh_quantization (integer
and normalized attributes are read generically) and this project's NTC_texture_set (see
docs/gltf-ntc-extension.md; exposed as `Material.ntc`). A file *requiring* any other extension is
refused; other used-but-optional extensions are ignored with a warning.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from urllib.parse import unquote, unquote_to_bytes

import numpy as np

from .errors import NTCError
from .images import ImageError, decode_image
from .safe_files import read_regular_file

GL_REPEAT, GL_MIRRORED_REPEAT, GL_CLAMP_TO_EDGE = 10497, 33648, 33071
WRAP_MODES = (GL_REPEAT, GL_MIRRORED_REPEAT, GL_CLAMP_TO_EDGE)
MAG_FILTERS = (9728, 9729)                                  # NEAREST, LINEAR
MIN_FILTERS = (9728, 9729, 9984, 9985, 9986, 9987)          # + the four MIPMAP variants

NTC_EXTENSION = "NTC_texture_set"
# components of an accessor with no bufferView (zeros, maybe sparse-edited): 64 MB of floats
MAX_UNBACKED_COMPONENTS = 1 << 24
SUPPORTED_EXTENSIONS = ("KHR_texture_transform", "KHR_materials_emissive_strength",
                        "KHR_mesh_quantization", NTC_EXTENSION)
SLOTS = ("baseColor", "normal", "metallicRoughness", "occlusion", "emissive")
ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")

GLB_MAGIC = b"glTF"
GLB_JSON, GLB_BIN = 0x4E4F534A, 0x004E4942

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
               5125: np.uint32, 5126: np.float32}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


class SceneError(NTCError):
    """A scene that cannot be shown: missing, malformed, unsafe or unsupported. One line."""


# ----------------------------------------------------------------------------------------------
# the data model the renderer consumes

@dataclass
class ImageRef:
    key: str                    # stable id within the scene: "image<index>"
    name: str                   # file stem, else the image's name, else "image<index>"
    pixels: np.ndarray          # uint8 or uint16 [H, W, C], C in 1..4, decoded as stored
    source_path: Path | None    # the file it came from; None for data: URIs and .glb chunks
    index: int = -1             # index in the glTF images array
    mime_type: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]


@dataclass
class SamplerInfo:
    wrap_s: int = GL_REPEAT
    wrap_t: int = GL_REPEAT
    mag_filter: int | None = None
    min_filter: int | None = None


@dataclass
class TextureSlot:
    image: ImageRef
    sampler: SamplerInfo
    texcoord: int = 0
    # KHR_texture_transform as a 3x3 matrix applied to (u, v, 1); None = identity.
    uv_transform: np.ndarray | None = None
    texture: int = -1           # index in the glTF textures array


@dataclass
class NtcRef:
    """A material's NTC_texture_set: the .ntc file and which of its textures feeds which slot."""
    path: Path
    textures: dict[str, str]    # slot -> texture name inside the .ntc


@dataclass
class Material:
    index: int
    name: str
    base_color_factor: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    metallic_factor: float = 1.0
    roughness_factor: float = 1.0
    emissive_factor: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x emissive_strength already
    normal_scale: float = 1.0
    occlusion_strength: float = 1.0
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5
    double_sided: bool = False
    slots: dict[str, TextureSlot] = field(default_factory=dict)
    emissive_strength: float = 1.0  # KHR_materials_emissive_strength, for the record
    ntc: NtcRef | None = None       # NTC_texture_set, when the file has one


def default_material() -> Material:
    """The glTF default material (for primitives with material -1)."""
    return Material(index=-1, name="default")


@dataclass
class Primitive:
    positions: np.ndarray       # float32 [N, 3]
    normals: np.ndarray         # float32 [N, 3]
    uvs: np.ndarray             # float32 [N, 2] TEXCOORD_0 (zeros if missing)
    tangents: np.ndarray        # float32 [N, 4] (xyz, handedness w = +-1), the file's or generated
    indices: np.ndarray         # uint32 [M], M a multiple of 3
    material: int               # index into Scene.materials, -1 = default material
    world: np.ndarray           # float32 [4, 4], column vectors: p_world = world @ (p, 1)
    uvs1: np.ndarray | None = None     # float32 [N, 2] TEXCOORD_1 when present
    colors: np.ndarray | None = None   # float32 [N, 4] COLOR_0 when present
    mesh: int = -1
    node: int = -1
    name: str = ""


@dataclass
class Scene:
    path: Path
    primitives: list[Primitive]
    materials: list[Material]
    bounds_min: np.ndarray      # float32 [3], world space
    bounds_max: np.ndarray
    images: dict[str, ImageRef] = field(default_factory=dict)   # key -> image, each decoded once
    warnings: list[str] = field(default_factory=list)
    extensions_used: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def material(self, index: int) -> Material:
        return self.materials[index] if index >= 0 else default_material()


# ----------------------------------------------------------------------------------------------
# safe access to the bytes a scene refers to

def resolve_uri(folder: Path, uri, what: str) -> Path:
    """The file a relative URI names, refusing anything that leaves `folder` (which must be
    resolved already). data: URIs are handled by the caller."""
    if not isinstance(uri, str) or not uri:
        raise SceneError(f"{what} has an empty or invalid uri")
    shown = uri if len(uri) <= 80 else uri[:77] + "..."
    if _SCHEME.match(uri) and not PureWindowsPath(uri).drive:
        raise SceneError(f"{what} uri '{shown}' is not a relative file path (only files inside "
                         f"the scene's folder and data: URIs are read)")
    rel = unquote(uri)
    if rel.startswith(("/", "\\")) or PureWindowsPath(rel).drive or PureWindowsPath(rel).root:
        raise SceneError(f"{what} uri '{shown}' is an absolute path; only files inside the "
                         f"scene's folder are read")
    full = (folder / rel).resolve()
    if full != folder and folder not in full.parents:
        raise SceneError(f"{what} uri '{shown}' leaves the scene's folder; only files inside "
                         f"it are read")
    return full


def decode_data_uri(uri: str, what: str) -> tuple[bytes, str | None]:
    """Bytes and media type of a data: URI."""
    head, sep, payload = uri[5:].partition(",")
    if not sep:
        raise SceneError(f"{what} has a malformed data: URI (no ',')")
    parts = head.split(";")
    mime = parts[0] or None
    try:
        if "base64" in parts[1:]:
            return base64.b64decode(payload, validate=False), mime
        return unquote_to_bytes(payload), mime
    except (binascii.Error, ValueError) as e:
        raise SceneError(f"{what} has a malformed base64 data: URI ({e})") from None


def decode_image_bytes(data: bytes, what: str) -> np.ndarray:
    """uint8/uint16 [H, W, C] of an embedded or referenced image (export.images.decode_image)."""
    try:
        return decode_image(data)
    except ImageError as e:
        raise SceneError(f"{what} cannot be decoded: {e}") from None


def read_container(path: Path) -> tuple[dict, bytes | None]:
    """The glTF JSON (as a dict) and, for .glb, the BIN chunk; validates the .glb framing."""
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        raise SceneError(f"scene {path} does not exist") from None
    except IsADirectoryError:
        raise SceneError(f"scene {path} is a folder; give a .gltf or .glb file") from None
    except OSError as e:
        raise SceneError(f"cannot read scene {path}: {e.strerror or e}") from None
    binary = None
    if data[:4] == GLB_MAGIC:
        if len(data) < 20:
            raise SceneError(f"{path.name}: truncated .glb (only {len(data)} bytes)")
        _, version, length = struct.unpack_from("<4sII", data, 0)
        if version != 2:
            raise SceneError(f"{path.name}: .glb version {version} is not supported (2 expected)")
        if length > len(data):
            raise SceneError(f"{path.name}: truncated .glb: header says {length} bytes, the file "
                             f"has {len(data)}")
        chunks, pos = [], 12
        while pos < length:
            if pos + 8 > length:
                raise SceneError(f"{path.name}: corrupt .glb: chunk header at byte {pos} is cut off")
            clen, ctype = struct.unpack_from("<II", data, pos)
            if pos + 8 + clen > length:
                raise SceneError(f"{path.name}: truncated .glb: chunk at byte {pos} needs {clen} "
                                 f"bytes, {length - pos - 8} are left")
            chunks.append((ctype, data[pos + 8:pos + 8 + clen]))
            pos += 8 + clen
        if not chunks or chunks[0][0] != GLB_JSON:
            raise SceneError(f"{path.name}: corrupt .glb: the first chunk is not JSON")
        text = chunks[0][1]
        if len(chunks) > 1 and chunks[1][0] == GLB_BIN:
            binary = chunks[1][1]
    elif path.suffix.lower() == ".glb":
        raise SceneError(f"{path.name}: not a .glb file (bad magic)")
    else:
        text = data
    try:
        doc = json.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SceneError(f"{path.name}: not valid glTF JSON ({e})") from None
    if not isinstance(doc, dict):
        raise SceneError(f"{path.name}: not valid glTF JSON (top level is not an object)")
    return doc, binary


def parse_gltf(doc: dict, path: Path):
    """pygltflib's GLTF2 model of a JSON dict (structure only; this module does all reading)."""
    import pygltflib
    asset = doc.get("asset")
    if not isinstance(asset, dict) or not isinstance(asset.get("version"), str):
        raise SceneError(f"{path.name}: not a glTF file (no asset.version)")
    major = asset["version"].split(".")[0]
    if major != "2":
        raise SceneError(f"{path.name}: glTF version {asset['version']} is not supported (2.x)")
    try:
        return pygltflib.GLTF2.from_json(json.dumps(doc), infer_missing=True)
    except Exception as e:
        raise SceneError(f"{path.name}: malformed glTF ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None


# ----------------------------------------------------------------------------------------------
# geometry helpers

def quat_to_matrix(q) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n == 0:
        return np.eye(3)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _normalize(v: np.ndarray, eps: float = 1e-20) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    ok = n[..., 0] > eps
    return np.where(n > eps, v / np.maximum(n, eps), 0.0), ok


def flat_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per-face normals of an *unwelded* triangle list (indices 0..N-1)."""
    tri = positions[indices.reshape(-1, 3)].astype(np.float64)
    n, ok = _normalize(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]))
    n[~ok] = (0.0, 0.0, 1.0)
    out = np.zeros((positions.shape[0], 3))
    out[indices.reshape(-1, 3)] = n[:, None, :]
    return out.astype(np.float32)


def generate_tangents(positions: np.ndarray, normals: np.ndarray, uvs: np.ndarray,
                      indices: np.ndarray) -> np.ndarray:
    """float32 [N, 4] tangents for glTF UVs: per-triangle dP/du and dP/dv accumulated per vertex
    (weighted by the triangle's area in position space, as MikkTSpace's default), Gram-Schmidt
    against the normal, and w = +1 when cross(N, T) points along image-up (-v in glTF's top-left
    UV convention), else -1. Degenerate UVs get an arbitrary tangent perpendicular to N."""
    tri = indices.reshape(-1, 3)
    p = positions.astype(np.float64)[tri]
    t = uvs.astype(np.float64)[tri]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    good = np.abs(det) > 1e-20
    inv = np.where(good, 1.0 / np.where(good, det, 1.0), 0.0)[:, None]
    sdir = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * inv     # dP/du
    tdir = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * inv     # dP/dv
    # Weight by area over the UV-normalised magnitude so large triangles count more, whatever
    # their UV density: use unit directions times position-space area.
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)[:, None]
    sdir, _ = _normalize(sdir)
    tdir, _ = _normalize(tdir)
    sdir *= area
    tdir *= area
    n_vert = positions.shape[0]
    tan = np.zeros((n_vert, 3))
    bit = np.zeros((n_vert, 3))
    for k in range(3):
        np.add.at(tan, tri[:, k], sdir)
        np.add.at(bit, tri[:, k], tdir)
    n, _ = _normalize(normals.astype(np.float64))
    tan = tan - n * np.sum(n * tan, axis=1, keepdims=True)
    tan, ok = _normalize(tan, 1e-12)
    if not ok.all():  # no usable UV gradient: any unit vector perpendicular to N
        nb = n[~ok]
        helper = np.where(np.abs(nb[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        alt = helper - nb * np.sum(nb * helper, axis=1, keepdims=True)
        tan[~ok] = _normalize(alt)[0]
    w = np.where(np.sum(np.cross(n, tan) * -bit, axis=1) < 0, -1.0, 1.0)
    return np.concatenate([tan, w[:, None]], axis=1).astype(np.float32)


def _triangle_indices(mode: int, idx: np.ndarray) -> np.ndarray:
    if mode == 4:
        return idx[: idx.size // 3 * 3]
    n = idx.size - 2
    if n <= 0:
        return idx[:0]
    i = np.arange(n)
    if mode == 5:  # strip: alternate winding
        a, b, c = idx[i], idx[i + 1], idx[i + 2]
        odd = (i % 2) == 1
        a, b = np.where(odd, b, a), np.where(odd, a, b)
    else:          # fan
        a, b, c = np.full(n, idx[0]), idx[i + 1], idx[i + 2]
    return np.stack([a, b, c], axis=1).reshape(-1)


# ----------------------------------------------------------------------------------------------
# the loader

class _Loader:
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

    # ---- extensions
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

    # ---- buffers and accessors
    def buffer(self, i: int) -> bytes:
        if i in self._buffers:
            return self._buffers[i]
        b = self.g.buffers[i]
        what = f"buffer {i}"
        length = b.byteLength
        if type(length) is not int or length < 0:
            self.fail(f"{what} has no valid byteLength")
        if b.uri is None:
            if i != 0 or self.glb_bin is None:
                self.fail(f"{what} has no uri and there is no .glb binary chunk")
            data = self.glb_bin
        elif isinstance(b.uri, str) and b.uri.startswith("data:"):
            data, _ = self.data_uri(b.uri, what)
        else:
            data = self.read_file(b.uri, what)
        if len(data) < length:
            self.fail(f"{what} is truncated: {len(data)} bytes, byteLength says {length}")
        self._buffers[i] = data
        return data

    def data_uri(self, uri: str, what: str) -> tuple[bytes, str | None]:
        try:
            return decode_data_uri(uri, what)
        except SceneError as e:
            self.fail(str(e))

    def read_file(self, uri, what: str) -> bytes:
        return self.read_file_at(uri, what)[1]

    def read_file_at(self, uri, what: str) -> tuple[Path, bytes]:
        try:
            full = resolve_uri(self.folder, uri, what)
        except SceneError as e:
            self.fail(str(e))
        try:
            return full, read_regular_file(full)
        except FileNotFoundError:
            self.fail(f"{what} file '{unquote(uri)}' is missing")
        except IsADirectoryError:
            self.fail(f"{what} file '{unquote(uri)}' is a folder")
        except OSError as e:
            self.fail(f"cannot read {what} file '{unquote(uri)}': {e.strerror or e}")

    def buffer_view(self, i, what: str) -> tuple[bytes, int, int, int | None]:
        """(buffer bytes, start, length, stride) of a bufferView, range-checked."""
        i = self.index(i, self.g.bufferViews, f"{what}: bufferView")
        bv = self.g.bufferViews[i]
        buf_i = self.index(bv.buffer, self.g.buffers, f"bufferView {i}: buffer")
        data = self.buffer(buf_i)
        off, length = bv.byteOffset or 0, bv.byteLength
        if type(off) is not int or type(length) is not int or off < 0 or length < 0:
            self.fail(f"bufferView {i} has an invalid byteOffset/byteLength")
        if off + length > min(len(data), self.g.buffers[buf_i].byteLength):
            self.fail(f"bufferView {i} (bytes {off}..{off + length}) runs past the end of buffer "
                      f"{buf_i} ({self.g.buffers[buf_i].byteLength} bytes)")
        stride = bv.byteStride
        if stride is not None and (type(stride) is not int or not 4 <= stride <= 252):
            self.fail(f"bufferView {i} has an invalid byteStride {stride!r}")
        return data, off, length, stride

    def accessor(self, i, what: str, float_out: bool = True) -> np.ndarray:
        """[count, components] array; float32 (normalized ints scaled) unless float_out=False."""
        i = self.index(i, self.g.accessors, f"{what}: accessor")
        a = self.g.accessors[i]
        where = f"accessor {i}"
        dtype = _COMPONENTS.get(a.componentType)
        if dtype is None:
            self.fail(f"{where} has unsupported componentType {a.componentType!r}")
        ncomp = _TYPE_SIZES.get(a.type)
        if ncomp is None:
            self.fail(f"{where} has unsupported type {a.type!r}")
        if a.type.startswith("MAT") and np.dtype(dtype).itemsize < 4:
            self.fail(f"{where}: matrices of 1- or 2-byte components are unsupported")
        count = a.count
        if type(count) is not int or count < 0 or count > 1 << 28:
            self.fail(f"{where} has an invalid count {count!r}")
        dt = np.dtype(dtype).newbyteorder("<")
        csize = dt.itemsize
        elem = csize * ncomp
        if a.bufferView is None:
            # all zeros (or sparse edits on zeros): nothing in the file backs the size, so it is
            # bounded here rather than by the buffers
            if count * ncomp > MAX_UNBACKED_COMPONENTS:
                self.fail(f"{where} has no bufferView and declares {count} elements, more than "
                          f"{MAX_UNBACKED_COMPONENTS // ncomp} of its type")
            out = np.zeros((count, ncomp), dt)
        else:
            data, start, length, stride = self.buffer_view(a.bufferView, where)
            aoff = a.byteOffset or 0
            if type(aoff) is not int or aoff < 0:
                self.fail(f"{where} has an invalid byteOffset")
            stride = stride or elem
            if stride < elem:
                self.fail(f"{where}: byteStride {stride} is smaller than an element ({elem} bytes)")
            need = aoff + (stride * (count - 1) + elem if count else 0)
            if need > length:
                self.fail(f"{where} needs {need} bytes of bufferView {a.bufferView}, which has "
                          f"{length}")
            out = np.ndarray((count, ncomp), dt, buffer=data, offset=start + aoff,
                             strides=(stride, csize)).copy()
        if a.sparse is not None:
            out = out.copy()
            self._apply_sparse(a.sparse, out, where)
        out = out.astype(dt.newbyteorder("="))
        if not float_out:
            return out
        if a.normalized and dtype is not np.float32:
            info = np.iinfo(dtype)
            res = out.astype(np.float32) / info.max
            return np.maximum(res, -1.0) if info.min < 0 else res
        return out.astype(np.float32)

    def _apply_sparse(self, sp, out: np.ndarray, where: str) -> None:
        try:
            n = sp.count
            idx_t = _COMPONENTS.get(sp.indices.componentType)
            if type(n) is not int or n < 1 or n > out.shape[0] or idx_t not in (np.uint8, np.uint16,
                                                                                   np.uint32):
                self.fail(f"{where}: malformed sparse accessor")
            data, start, length, _ = self.buffer_view(sp.indices.bufferView, f"{where} sparse")
            off = sp.indices.byteOffset or 0
            isz = np.dtype(idx_t).itemsize
            if off + n * isz > length:
                self.fail(f"{where}: sparse indices run past their bufferView")
            idx = np.frombuffer(data, np.dtype(idx_t).newbyteorder("<"), n, start + off)
            data, start, length, _ = self.buffer_view(sp.values.bufferView, f"{where} sparse")
            off = sp.values.byteOffset or 0
            vsz = out.dtype.itemsize * out.shape[1]
            if off + n * vsz > length:
                self.fail(f"{where}: sparse values run past their bufferView")
            vals = np.frombuffer(data, out.dtype, n * out.shape[1], start + off).reshape(n, -1)
        except AttributeError:
            self.fail(f"{where}: malformed sparse accessor")
        if int(idx.max()) >= out.shape[0]:
            self.fail(f"{where}: sparse index out of range")
        out[idx.astype(np.int64)] = vals

    # ---- images and materials
    def image(self, i: int) -> ImageRef:
        if i in self._images:
            return self._images[i]
        im = self.g.images[i]
        what = f"image {i}"
        source, mime = None, im.mimeType
        if im.uri is not None:
            if isinstance(im.uri, str) and im.uri.startswith("data:"):
                data, mime = self.data_uri(im.uri, what)
                name = im.name or f"image{i}"
            else:
                source, data = self.read_file_at(im.uri, what)
                name = Path(unquote(im.uri)).stem
            label = f"{what} ('{unquote(im.uri)[:60]}')" if source else what
        elif im.bufferView is not None:
            buf, start, length, _ = self.buffer_view(im.bufferView, what)
            data = bytes(buf[start:start + length])
            name = im.name or f"image{i}"
            label = what
        else:
            self.fail(f"{what} has neither a uri nor a bufferView")
        try:
            pixels = decode_image_bytes(data, label)
        except SceneError as e:
            self.fail(str(e))
        ref = ImageRef(key=f"image{i}", name=name, pixels=pixels, source_path=source, index=i,
                       mime_type=mime)
        self._images[i] = ref
        return ref

    def sampler(self, i) -> SamplerInfo:
        if i is None:
            return SamplerInfo()
        s = self.g.samplers[self.index(i, self.g.samplers, "texture sampler")]
        wrap_s = s.wrapS if s.wrapS is not None else GL_REPEAT
        wrap_t = s.wrapT if s.wrapT is not None else GL_REPEAT
        for w in (wrap_s, wrap_t):
            if w not in WRAP_MODES:
                self.fail(f"sampler {i} has an invalid wrap mode {w!r}")
        mag = s.magFilter if s.magFilter in MAG_FILTERS else None
        mn = s.minFilter if s.minFilter in MIN_FILTERS else None
        return SamplerInfo(wrap_s, wrap_t, mag, mn)

    def slot(self, info, what: str) -> TextureSlot | None:
        if info is None:
            return None
        ti = self.index(info.index, self.g.textures, f"{what}: texture")
        tex = self.g.textures[ti]
        if tex.source is None:
            self.warn(f"texture {ti} has no PNG/JPEG source (an extension's image format?); "
                      f"{what} is ignored")
            return None
        img = self.image(self.index(tex.source, self.g.images, f"texture {ti}: source image"))
        texcoord = info.texCoord if type(info.texCoord) is int else 0
        uv_transform = None
        ext = (info.extensions or {}).get("KHR_texture_transform")
        if isinstance(ext, dict):
            try:
                off = [float(v) for v in ext.get("offset", (0.0, 0.0))]
                rot = float(ext.get("rotation", 0.0))
                sc = [float(v) for v in ext.get("scale", (1.0, 1.0))]
                if len(off) != 2 or len(sc) != 2:
                    raise ValueError
            except (TypeError, ValueError):
                self.fail(f"{what}: malformed KHR_texture_transform")
            c, s = math.cos(rot), math.sin(rot)
            t = np.array([[1, 0, off[0]], [0, 1, off[1]], [0, 0, 1]])
            # The extension's GLSL builds mat3(c, s, 0, -s, c, 0, 0, 0, 1): column-major.
            r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
            sm = np.diag([sc[0], sc[1], 1.0])
            uv_transform = (t @ r @ sm).astype(np.float32)
            if type(ext.get("texCoord")) is int:
                texcoord = ext["texCoord"]
        if texcoord not in (0, 1):
            self.warn(f"{what} uses TEXCOORD_{texcoord}; only 0 and 1 are supported, using 0")
            texcoord = 0
        return TextureSlot(img, self.sampler(tex.sampler), texcoord, uv_transform, ti)

    def material(self, i: int) -> Material:
        m = self.g.materials[i]
        what = f"material {i}"
        pbr = m.pbrMetallicRoughness
        mat = Material(index=i, name=m.name if isinstance(m.name, str) and m.name else f"material{i}")

        def floats(v, n, default, label):
            if v is None:
                return default
            try:
                out = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                out = ()
            if len(out) != n:
                self.fail(f"{what}: {label} must be {n} numbers")
            return out

        def num(v, default, label):
            if v is None:
                return default
            if type(v) not in (int, float):
                self.fail(f"{what}: {label} must be a number")
            return float(v)

        slots = {}
        if pbr is not None:
            mat.base_color_factor = floats(pbr.baseColorFactor, 4, mat.base_color_factor,
                                           "baseColorFactor")
            mat.metallic_factor = num(pbr.metallicFactor, 1.0, "metallicFactor")
            mat.roughness_factor = num(pbr.roughnessFactor, 1.0, "roughnessFactor")
            slots["baseColor"] = self.slot(pbr.baseColorTexture, f"{what} baseColorTexture")
            slots["metallicRoughness"] = self.slot(pbr.metallicRoughnessTexture,
                                                   f"{what} metallicRoughnessTexture")
        slots["normal"] = self.slot(m.normalTexture, f"{what} normalTexture")
        if m.normalTexture is not None:
            mat.normal_scale = num(m.normalTexture.scale, 1.0, "normalTexture.scale")
        slots["occlusion"] = self.slot(m.occlusionTexture, f"{what} occlusionTexture")
        if m.occlusionTexture is not None:
            mat.occlusion_strength = num(m.occlusionTexture.strength, 1.0,
                                         "occlusionTexture.strength")
        slots["emissive"] = self.slot(m.emissiveTexture, f"{what} emissiveTexture")
        mat.slots = {k: v for k, v in slots.items() if v is not None}
        mat.emissive_factor = floats(m.emissiveFactor, 3, (0.0, 0.0, 0.0), "emissiveFactor")
        ext = m.extensions or {}
        strength = ext.get("KHR_materials_emissive_strength")
        if isinstance(strength, dict):
            mat.emissive_strength = num(strength.get("emissiveStrength"), 1.0, "emissiveStrength")
            mat.emissive_factor = tuple(f * mat.emissive_strength for f in mat.emissive_factor)
        mode = m.alphaMode or "OPAQUE"
        if mode not in ALPHA_MODES:
            self.fail(f"{what}: unknown alphaMode {mode!r}")
        mat.alpha_mode = mode
        mat.alpha_cutoff = num(m.alphaCutoff, 0.5, "alphaCutoff")
        mat.double_sided = bool(m.doubleSided)
        ntc = ext.get(NTC_EXTENSION)
        if isinstance(ntc, dict):
            mat.ntc = self.ntc_ref(ntc, what)
        return mat

    def ntc_ref(self, ext: dict, what: str) -> NtcRef | None:
        uri, textures = ext.get("uri"), ext.get("textures")
        if not isinstance(uri, str) or not isinstance(textures, dict) or not all(
                k in SLOTS and isinstance(v, str) for k, v in textures.items()):
            self.warn(f"{what}: malformed {NTC_EXTENSION} extension ignored")
            return None
        try:
            path = resolve_uri(self.folder, uri, f"{what} {NTC_EXTENSION}")
        except SceneError as e:
            self.fail(str(e))
        if not path.is_file():
            self.warn(f"{what}: {NTC_EXTENSION} file '{unquote(uri)}' is missing; using the images")
            return None
        return NtcRef(path, dict(textures))

    # ---- meshes and nodes
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
