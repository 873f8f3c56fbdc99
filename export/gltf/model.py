"""The scene model the renderer and the trainer consume: primitives with their world matrices,
metallic-roughness materials with decoded images, and the glTF enum values the model keeps."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NTCError

GL_REPEAT, GL_MIRRORED_REPEAT, GL_CLAMP_TO_EDGE = 10497, 33648, 33071   # glTF sampler wraps
WRAP_MODES = (GL_REPEAT, GL_MIRRORED_REPEAT, GL_CLAMP_TO_EDGE)
MAG_FILTERS = (9728, 9729)                                  # NEAREST, LINEAR
MIN_FILTERS = (9728, 9729, 9984, 9985, 9986, 9987)          # + the four MIPMAP variants
SLOTS = ("baseColor", "normal", "metallicRoughness", "occlusion", "emissive")
ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")


class SceneError(NTCError):
    """A scene that cannot be shown: missing, malformed, unsafe or unsupported. One line."""


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

    def drawn_materials(self, textured: bool = False) -> list[Material]:
        """The materials the primitives draw, in index order (the glTF default material for
        primitives without one); textured: only those with a texture (what has a neural set)."""
        drawn = [self.material(i) for i in sorted({p.material for p in self.primitives})]
        return [m for m in drawn if m.slots] if textured else drawn
