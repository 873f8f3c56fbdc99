"""Reference mode as an engine ships it: a scene's images as BCn textures with full mip chains
(export/bcn: BC7 for colour, sRGB, and other 3-4 channel images; BC5 X, Y for normal maps, Z
rebuilt in the PBR shader; BC4 for grey, BC5 for grey + alpha, swizzled back to what glTF
samples), encoded once by bc7enc from the same mips the RGBA8 reference holds, and cached beside
the scene like the neural sets: `<scene>.ntc-cache/<image>-<key>.dds`, where the key hashes the
pixels, colour space, normal handling and encoder settings. Cache files are read back strictly
(export.bcn.dds); a damaged one is encoded again. A cache folder that cannot be written costs
time, not the view: the blocks are then kept in memory only (one warning).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from export import layout
from export.bcn import codec
from export.bcn.dds import DDSError, DDSTexture, from_bytes, to_bytes
from export.bcn.formats import format_for
from export.safe_files import atomic_write
from trainer.gltf import safe_name

SCHEMA = 1   # bump when what a cached file holds changes
# The image's own channels out of image_rgba's RGBA: grey, grey + alpha, RGB, RGBA.
_CHANNELS = {1: [0], 2: [0, 3], 3: [0, 1, 2], 4: [0, 1, 2, 3]}


def image_format(image, srgb: bool, normal: bool):
    """(BCFormat, sRGB, swizzle name of export.bcn.gl_texture) of a scene image."""
    channels = image.pixels.shape[2]
    fmt, srgb = format_for(channels, normal, srgb)
    if fmt.channels == 4 or normal:
        return fmt, srgb, "rgba"
    return fmt, srgb, "grey" if channels == 1 else "grey_alpha"


def image_key(image, srgb: bool, normal: bool) -> str:
    h = hashlib.sha256()
    meta = {"schema": SCHEMA, "srgb": srgb, "normal": normal, "shape": list(image.pixels.shape),
            "dtype": str(image.pixels.dtype), "bc7_uber": codec.BC7_UBER,
            "bc7_partitions": codec.BC7_MAX_PARTITIONS, "bc1_level": codec.BC1_LEVEL}
    h.update(json.dumps(meta, sort_keys=True).encode())
    h.update(np.ascontiguousarray(image.pixels).tobytes())
    return h.hexdigest()


class BCnImages:
    """The BCn blocks of scene images: from `folder` when cached there, else encoded now (with a
    progress bar) and cached. folder None: in memory only."""

    def __init__(self, folder: Path | None, log=None, progress: bool = True):
        self.folder = folder
        self.log = log or (lambda *a: None)
        self.progress = progress
        self._warned = False
        self._memory: dict[tuple, tuple[DDSTexture, str]] = {}

    def prepare(self, materials) -> None:
        """Find or encode now the blocks of every image these materials sample."""
        from .material_bindings import COLOUR_SLOTS
        for mat in materials:
            for slot, ts in mat.slots.items():
                self.texture(ts.image, slot in COLOUR_SLOTS, slot == "normal")

    def texture(self, image, srgb: bool, normal: bool) -> tuple[DDSTexture, str]:
        """(blocks of every mip, swizzle) of `image` as a colour (`srgb`) / normal map."""
        found = self._memory.get((image.key, srgb, normal))
        if found is None:
            found = self._memory[(image.key, srgb, normal)] = self._find(image, srgb, normal)
        return found

    def _find(self, image, srgb: bool, normal: bool) -> tuple[DDSTexture, str]:
        fmt, fmt_srgb, swizzle = image_format(image, srgb, normal)
        path = None
        if self.folder is not None:
            key = image_key(image, srgb, normal)
            path = self.folder / f"{safe_name(image.name, image.key)}-{key[:20]}.dds"
            cached = self._read(path, image, fmt, fmt_srgb)
            if cached is not None:
                return cached, swizzle
        dds = self._encode(image, srgb, normal, fmt.name)
        if path is not None:
            self._write(path, dds)
        return dds, swizzle

    def _read(self, path: Path, image, fmt, srgb) -> DDSTexture | None:
        if not path.is_file():
            return None
        try:
            dds = from_bytes(path.read_bytes(), str(path))
        except (DDSError, OSError) as e:
            self.log(f"{path.name}: {e}; encoding again")
            return None
        w, h = image.size
        if (dds.format, dds.srgb, dds.width, dds.height) != (fmt, srgb, w, h) \
                or len(dds.levels) != layout.mip_count(w, h):
            self.log(f"{path.name}: not the texture this image gives; encoding again")
            return None
        return dds

    def _encode(self, image, srgb: bool, normal: bool, fmt_name: str) -> DDSTexture:
        from tqdm import tqdm

        from .material_textures import image_mips8
        mips = [m[..., _CHANNELS[image.pixels.shape[2]]] for m in image_mips8(image, srgb, normal)]
        total = sum(m.shape[0] * m.shape[1] for m in mips)
        with tqdm(total=total, desc=f"{fmt_name.upper()} {image.name}", unit="texel",
                  unit_scale=True, leave=False, disable=not self.progress) as bar:
            return codec.compress_texture(mips, normal, srgb, bar.update)

    def _write(self, path: Path, dds: DDSTexture) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, to_bytes(dds))
        except OSError as e:
            if not self._warned:
                self.log(f"warning: cannot cache BCn textures in {path.parent} "
                         f"({e.strerror or e}); they are encoded again next time (pass "
                         f"--cache-dir DIR to keep them elsewhere)")
                self._warned = True
