"""Texture sets: find the textures in a folder, infer their roles, load and validate them.

Roles come from common file names, or from a manifest (`ntc.json` in the folder, or --manifest)
that wins over names. Unknown files are listed and skipped, never guessed.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.errors import NTCError
from export.header import ROLES as FILE_ROLES
from export.images import ImageError, check_size, decode_image, image_size, read_pixels
from export.safe_files import is_regular_file, read_regular_file

MANIFEST_NAME = "ntc.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_CHANNELS = 16
SRGB_ROLES = ("baseColor", "emissive")
SKIP = "skip"
MASK = "mask"

# Checked in order; the first match wins, so packed layouts come before the single channels they
# contain ("occlusionRoughnessMetallic"). Each rule: substrings of the name with separators removed,
# and whole words (camelCase and separators split words) that are too short to match as substrings.
_NAME_RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("orm", ("occlusionroughnessmetal", "occlusionroughmetal", "aoroughnessmetal"), ("orm",)),
    ("metallicRoughness", ("metallicroughness", "metalroughness", "roughnessmetal"), ()),
    ("normal", ("normal",), ("nrm", "nor")),
    ("baseColor", ("basecolor", "basecolour", "albedo", "diffuse"), ("color", "colour", "col", "base")),
    ("emissive", ("emissive", "emission"), ()),
    ("roughness", ("roughness",), ("rough",)),
    ("metallic", ("metallic", "metalness"), ("metal",)),
    ("occlusion", ("occlusion",), ("ao",)),
    ("height", ("height", "displacement"), ("depth", "disp")),
    ("opacity", ("opacity",), ("alpha",)),
]
ROLES = list(FILE_ROLES)   # every role a .ntc may hold; the name rules above guess most of them


class InputError(NTCError):
    """A user mistake in the input: reported as one line, never a traceback."""


class ConstantSetError(InputError):
    """Every channel of the set is constant: there is nothing to train (a scene keeps the
    material's images)."""


@dataclass
class SourceTexture:
    path: Path
    role: str
    colorspace: str          # "srgb" or "linear"
    pixels: np.ndarray       # float32 [H, W, C] in [0, 1]
    bit_depth: int           # 8 or 16
    weight: float = 1.0

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def srgb_channels(self) -> list[bool]:
        return [self.colorspace == "srgb" and i < 3 for i in range(self.channels)]


@dataclass
class TextureSet:
    folder: Path
    textures: list[SourceTexture]
    mask: np.ndarray | None = None     # float32 [H, W] importance in [0, 1]
    skipped: list[str] = field(default_factory=list)           # image files with no role
    not_files: dict[str, str] = field(default_factory=dict)    # image-named entries: why unread
    input_files: list[Path] = field(default_factory=list)  # every file read: images, manifest, mask

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.textures[0].pixels.shape[:2]
        return w, h


def _words(stem: str) -> list[str]:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", stem)     # camelCase -> camel_Case
    return [w for w in re.split(r"[^a-z0-9]+", s.lower()) if w]


def infer_role(filename: str) -> str | None:
    """Role from a file name, or None when no rule matches."""
    words = _words(Path(filename).stem)
    joined = "".join(words)
    for role, substrings, whole_words in _NAME_RULES:
        if any(s in joined for s in substrings) or any(w in words for w in whole_words):
            return role
    return None


def _load_manifest(path: Path) -> dict:
    try:
        data = json.loads(read_regular_file(path).decode("utf-8"))
    except OSError as e:
        raise InputError(f"cannot read manifest {path}: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"manifest {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"manifest {path} must map file names to roles")
    entries = {}
    for name, spec in data.items():
        if isinstance(spec, str):
            spec = {"role": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("role"), str):
            raise InputError(f"manifest {path}: entry '{name}' needs a role")
        role = spec["role"]
        if role not in ROLES + [SKIP]:
            raise InputError(f"manifest {path}: '{name}' has unknown role '{role}' "
                             f"(known: {', '.join(ROLES + [SKIP])})")
        cs = spec.get("colorspace", "srgb" if role in SRGB_ROLES else "linear")
        if cs not in ("srgb", "linear"):
            raise InputError(f"manifest {path}: '{name}' colorspace must be srgb or linear")
        ch = spec.get("channels")
        if ch is not None and (type(ch) is not int or not 1 <= ch <= 4):
            raise InputError(f"manifest {path}: '{name}' channels must be 1..4")
        wt = spec.get("weight", 1.0)
        if type(wt) not in (int, float) or not wt > 0:
            raise InputError(f"manifest {path}: '{name}' weight must be a positive number")
        if Path(name).name != name or name in (".", ".."):
            raise InputError(f"manifest {path}: '{name}' must be a plain file name in the folder")
        entries[name] = {"role": role, "colorspace": cs, "channels": ch, "weight": float(wt)}
    return entries


def probe_image(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The file's bytes and (width, height) from its header, within the size limit; nothing is
    decoded yet, so a set's sizes are compared before any pixel is allocated."""
    try:
        data = read_regular_file(path)
    except OSError as e:
        raise InputError(f"cannot read image {path.name}: {e.strerror or e}") from None
    try:
        size = image_size(data)
        check_size(*size)
    except ImageError as e:
        raise InputError(f"image {path.name}: {e}") from None
    return data, size


def read_image(path: Path, data: bytes | None = None) -> tuple[np.ndarray, int]:
    """Float32 [H, W, C] in [0, 1] and the source bit depth; palette images become RGB(A)."""
    try:
        img = read_pixels(path) if data is None else decode_image(data)
    except ImageError as e:
        raise InputError(str(e) if data is None else f"cannot read image {path.name}: {e}") from None
    if img.ndim != 3 or not 1 <= img.shape[2] <= 4 or img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"{path.name}: unsupported image shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0, 8
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0, 16
    raise InputError(f"{path.name}: unsupported pixel type {img.dtype} (8- or 16-bit expected)")


def load_texture_set(folder: str | Path, manifest: str | Path | None = None,
                     weights: dict[str, float] | None = None,
                     mask: str | Path | None = None) -> TextureSet:
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"input folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"input {folder} is not a folder of images")
    manifest_path = Path(manifest) if manifest else folder / MANIFEST_NAME
    if manifest and not manifest_path.is_file():
        raise InputError(f"manifest {manifest_path} does not exist")
    entries = _load_manifest(manifest_path) if manifest_path.is_file() else {}
    named = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = [p for p in named if is_regular_file(p)]
    # folders, FIFOs, devices and broken links named like images: listed with why, never opened
    not_files = {p.name: _not_a_file(p) for p in named if not is_regular_file(p)}
    for n, spec in entries.items():
        if spec["role"] != SKIP and not is_regular_file(folder / n):
            why = _not_a_file(folder / n) if os.path.lexists(folder / n) else f"not in {folder}"
            raise InputError(f"manifest names {n}, which is {why}")

    textures, skipped, mask_path = [], [], Path(mask) if mask else None
    if mask_path and not is_regular_file(mask_path):
        raise InputError(f"mask {mask_path} does not exist or is not a regular file")
    chosen = []
    for p in files:
        spec = entries.get(p.name)
        role = spec["role"] if spec else infer_role(p.name)
        if role is None or role == SKIP:
            skipped.append(p.name)
            continue
        if role == MASK:
            mask_path = mask_path or p
            continue
        spec = spec or {"colorspace": "srgb" if role in SRGB_ROLES else "linear",
                        "channels": None, "weight": 1.0}
        chosen.append((p, role, spec, *probe_image(p)))
    sizes = {size for *_, size in chosen}
    if len(sizes) > 1:  # from the headers, before decoding anything
        desc = ", ".join(f"{p.name} {w}x{h}" for p, _, _, _, (w, h) in chosen)
        raise InputError(f"textures of a set must share one size: {desc}")
    for p, role, spec, data, _ in chosen:
        pixels, depth = read_image(p, data)
        if spec["channels"]:
            if spec["channels"] > pixels.shape[2]:
                raise InputError(f"{p.name}: manifest asks for {spec['channels']} channels, "
                                 f"the image has {pixels.shape[2]}")
            pixels = pixels[:, :, :spec["channels"]]
        weight = spec["weight"]
        for key in (p.stem, role):
            if weights and key in weights:
                weight = weights[key]
        textures.append(SourceTexture(p, role, spec["colorspace"], pixels, depth, weight))

    if not textures:
        listed = f" (skipped: {', '.join(skipped + list(not_files))})" if skipped or not_files else ""
        raise InputError(f"no recognisable textures in {folder}{listed}; name them by role "
                         f"(baseColor, normal, orm, ...) or add an {MANIFEST_NAME} manifest")
    total = sum(t.channels for t in textures)
    if total > MAX_CHANNELS:
        raise InputError(f"the set has {total} channels, the limit is {MAX_CHANNELS}; "
                         f"drop textures or limit channels in {MANIFEST_NAME}")
    if weights:
        known = {t.name for t in textures} | {t.role for t in textures}
        unknown = sorted(set(weights) - known)
        if unknown:
            raise InputError(f"--weight names '{unknown[0]}', which is neither a texture nor a role "
                             f"of this set")

    mask_img = None
    if mask_path:
        m, _ = read_image(mask_path, probe_image(mask_path)[0])
        if m.shape[:2] != textures[0].pixels.shape[:2]:
            raise InputError(f"mask {mask_path.name} is {m.shape[1]}x{m.shape[0]}, the set is "
                             f"{textures[0].pixels.shape[1]}x{textures[0].pixels.shape[0]}")
        mask_img = m[:, :, 0].copy()
    read = [t.path for t in textures] + [p for p in (manifest_path, mask_path) if p and p.is_file()]
    return TextureSet(folder, textures, mask_img, skipped, not_files, read)


def _not_a_file(p: Path) -> str:
    if p.is_symlink() and not p.exists():
        return "a broken link"
    if p.is_dir():
        return "a folder"
    return "not a regular file (a FIFO, device or socket)"
