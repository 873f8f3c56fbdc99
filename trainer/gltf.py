"""glTF scenes as texture sets: one neural texture set per material, and `ntc-compress scene.gltf`.

A material's set holds one texture per image it uses, each a drop-in replacement for that image:
decoded, it is sampled exactly as glTF samples the original (same channels, same colour space), so
a renderer only swaps the texture source. Channels glTF never reads are made constant (they then
cost nothing in the file):

    texture name        role               channels                 feeds slot(s)
    baseColor           baseColor (sRGB)   RGB, or RGBA when the material's alphaMode is MASK/BLEND
    normal              normal             RGB (Z rebuilt on decode when it is a unit normal)
    orm                 orm                R occlusion, G roughness, B metallic: metallicRoughness
                                           and occlusion when both use the SAME image
    metallicRoughness   metallicRoughness  R = 0 (unused), G roughness, B metallic
    occlusion           occlusion          R
    emissive            emissive (sRGB)    RGB

All textures of a set share one size: smaller images are resized up to the largest width and
height (bilinear, sRGB in linear light, normals renormalised), with a log line saying so.

`ntc-compress scene.gltf -o OUT_DIR` writes OUT_DIR/<material>.ntc per material and
OUT_DIR/<scene>.gltf, a copy of the scene whose materials name their .ntc through the
NTC_texture_set extension (docs/gltf-ntc-extension.md); the original images stay as the fallback
(copied beside it), so any glTF viewer still renders the copy.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from export.errors import one_line
from export.header import VERSION as NTC_FORMAT_VERSION
from export.gltf.ntc_extension import NTC_EXTENSION, slot_texture_names
from export.pixels import resize
from export.safe_files import (OutputPathError, atomic_write, read_regular_file,
                               refuse_overwriting)

from .parallel import BatchedCompressor, SetCompressor
from .textures import MAX_CHANNELS, ConstantSetError, InputError, SourceTexture, TextureSet

SET_SCHEMA = "ntc-gltf-set/2"   # bump when what a material compresses to changes
SCENE_SUFFIXES = (".gltf", ".glb")
# texture name -> (role, colorspace); a texture's role is also its name inside the .ntc
TEXTURE_ROLES = {
    "baseColor": ("baseColor", "srgb"),
    "normal": ("normal", "linear"),
    "orm": ("orm", "linear"),
    "metallicRoughness": ("metallicRoughness", "linear"),
    "occlusion": ("occlusion", "linear"),
    "emissive": ("emissive", "srgb"),
}


@dataclass
class SceneTexture(SourceTexture):
    """A SourceTexture built from a glTF material slot: named by its role, not its file."""
    texture_name: str = ""
    slots: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.texture_name or self.path.stem


def is_scene_path(path) -> bool:
    return Path(path).suffix.lower() in SCENE_SUFFIXES


def safe_name(name: str, fallback: str) -> str:
    """A file-name-safe version of a material name."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "").strip("._")
    return s[:80] or fallback


def _as_float(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0, 16
    return pixels.astype(np.float32) / 255.0, 8


def _expand_rgb(px: np.ndarray) -> np.ndarray:
    """Grey (+alpha) as glTF samples it: luminance in R, G and B."""
    c = px.shape[2]
    if c == 1:
        return np.repeat(px, 3, axis=2)
    if c == 2:
        return np.concatenate([np.repeat(px[..., :1], 3, axis=2), px[..., 1:2]], axis=2)
    return px


def material_texture_set(scene, material, log=print) -> TextureSet | None:
    """The material's neural texture set (see the module docstring), or None when the material
    uses no textures."""
    names = slot_texture_names(material)
    if not names:
        return None
    textures: list[SceneTexture] = []
    done = set()
    for slot, tex_name in names.items():
        if tex_name in done:
            continue
        done.add(tex_name)
        image = material.slots[slot].image
        px, depth = _as_float(image.pixels)
        role, cs = TEXTURE_ROLES[tex_name]
        if tex_name == "baseColor":
            px = _expand_rgb(px)
            if not (material.alpha_mode in ("MASK", "BLEND") and px.shape[2] == 4):
                px = px[..., :3]
        elif tex_name == "occlusion":
            px = px[..., :1]
        else:
            px = _expand_rgb(px)[..., :3]
            if tex_name == "metallicRoughness":
                px = px.copy()
                px[..., 0] = 0.0   # glTF reads roughness from G, metallic from B: R is unused
        slots = tuple(s for s, n in names.items() if n == tex_name)
        path = image.source_path or Path(f"{image.name}.png")
        textures.append(SceneTexture(path=Path(path.name), role=role, colorspace=cs,
                                     pixels=np.ascontiguousarray(px), bit_depth=depth,
                                     texture_name=tex_name, slots=slots))
    h = max(t.pixels.shape[0] for t in textures)
    w = max(t.pixels.shape[1] for t in textures)
    for t in textures:
        th, tw = t.pixels.shape[:2]
        if (th, tw) != (h, w):
            if log:
                log(f"material '{material.name}': resizing {t.name} ({t.path.name}) {tw}x{th} -> "
                    f"{w}x{h} (bilinear) so the set shares one size")
            t.pixels = resize(t.pixels, w, h, t.colorspace == "srgb", t.role == "normal")
    total = sum(t.channels for t in textures)
    if total > MAX_CHANNELS:  # cannot happen with the roles above (at most 14); kept as a guard
        raise InputError(f"material '{material.name}' has {total} channels, the limit is "
                         f"{MAX_CHANNELS}")
    folder = Path(getattr(scene, "path", Path("."))).parent
    return TextureSet(folder, textures)


def set_key(tset: TextureSet, settings) -> str:
    """Hex SHA-256 of what determines a set's .ntc: the pixels, roles and colour spaces of its
    textures, the compression settings, the .ntc format version and SET_SCHEMA."""
    h = hashlib.sha256()
    meta = {"schema": SET_SCHEMA, "format": NTC_FORMAT_VERSION,
            "settings": settings.cache_fields(),
            "textures": [{"name": t.name, "role": t.role, "colorspace": t.colorspace,
                          "bit_depth": t.bit_depth, "weight": t.weight,
                          "shape": list(t.pixels.shape)} for t in tset.textures],
            "mask": None if tset.mask is None else list(tset.mask.shape)}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for t in tset.textures:
        h.update(np.ascontiguousarray(t.pixels, np.float32).tobytes())
    if tset.mask is not None:
        h.update(np.ascontiguousarray(tset.mask, np.float32).tobytes())
    return h.hexdigest()


def apply_weights(tset: TextureSet, weights: dict[str, float] | None) -> None:
    for t in tset.textures:
        for key in (t.role, t.name):
            if weights and key in weights:
                t.weight = weights[key]


# ----------------------------------------------------------------------------------------------
# ntc-compress scene.gltf -o OUT_DIR

def _load(scene_path: Path, log):
    from export.gltf import SceneError, load_scene
    from export.gltf.container import read_container
    try:
        scene = load_scene(scene_path, log=log)
        doc, binary = read_container(scene_path)
    except SceneError as e:
        raise InputError(str(e)) from None
    return scene, doc, binary


def _copy_plan(doc: dict, scene, binary: bytes | None,
               out_dir: Path) -> tuple[dict[Path, bytes], set[Path]]:
    """Rewrite the buffer and image URIs of `doc` (in place) for OUT_DIR and return the files to
    write there (referenced files copied under the same relative path, a .glb's BIN chunk as
    <stem>.bin; data: URIs stay embedded) and the files read for them."""
    from export.gltf import SceneError
    from export.gltf.container import resolve_uri
    folder = scene.path.parent.resolve()
    files: dict[Path, bytes] = {}
    sources: set[Path] = set()

    def copy(entry: dict, what: str):
        uri = entry.get("uri")
        if not isinstance(uri, str) or uri.startswith("data:"):
            return
        try:
            src = resolve_uri(folder, uri, what)
            data = read_regular_file(src)
        except SceneError as e:
            raise InputError(f"{scene.path.name}: {e}") from None
        except OSError as e:
            raise InputError(f"{scene.path.name}: cannot read {what} '{uri}': "
                             f"{e.strerror or e}") from None
        rel = src.relative_to(folder)
        entry["uri"] = quote(rel.as_posix())
        files[out_dir / rel] = data
        sources.add(src.resolve())

    for i, b in enumerate(doc.get("buffers") or []):
        if not isinstance(b, dict):
            continue
        if b.get("uri") is None and i == 0 and binary is not None:
            name = f"{safe_name(scene.path.stem, 'scene')}.bin"
            b["uri"] = quote(name)
            files[out_dir / name] = binary
        else:
            copy(b, f"buffer {i}")
    for i, im in enumerate(doc.get("images") or []):
        if isinstance(im, dict):
            copy(im, f"image {i}")
    return files, sources


def compress_scene(scene_path: str | Path, out_dir: str | Path, settings,
                   weights: dict[str, float] | None = None, log=print,
                   extra_outputs: dict[str, Path] | None = None, compress_sets=None) -> dict:
    """Compress every textured material of a scene into OUT_DIR/<material>.ntc and write
    OUT_DIR/<scene>.gltf referencing them (NTC_texture_set), with the original images as the
    fallback. Returns the report (per material: file, bpp, PSNR ...). Raises InputError.
    extra_outputs (e.g. the CLI's --report) are checked against the inputs with the rest, before
    anything is compressed. compress_sets([(key, TextureSet)], settings) -> {key: CompressResult
    or the NTCError it raised}, when given, compresses every distinct set at once (ntc-library:
    one Ray task each); otherwise settings.jobs at a time, in processes of their own on this
    machine (trainer/parallel.py)."""
    scene_path, out_dir = Path(scene_path), Path(out_dir)
    scene, doc, binary = _load(scene_path, log)
    folder = scene.path.parent.resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir} is a file; for a glTF scene -o names an output folder")
    if out_dir.resolve() == folder:
        raise InputError(f"output folder {out_dir} is the scene's own folder; the copy of the "
                         f"scene would overwrite it (choose another folder)")
    if not out_dir.resolve().parent.is_dir():
        raise InputError(f"output folder {out_dir.parent} does not exist")
    out_res = out_dir.resolve()

    known = set(TEXTURE_ROLES)
    unknown = sorted(set(weights or {}) - known)
    if unknown:
        raise InputError(f"--weight names '{unknown[0]}'; in a scene the textures are "
                         f"{', '.join(TEXTURE_ROLES)}")

    copies, sources = _copy_plan(doc, scene, binary, out_res)
    gltf_name = f"{scene_path.stem}.gltf"
    taken = {p.relative_to(out_res).as_posix().lower() for p in copies} | {gltf_name.lower()}
    if len(taken) != len(copies) + 1:
        raise InputError(f"the scene's files collide with the output {gltf_name} in {out_dir}")
    # Nothing is written until every material is compressed; never over an input file. Checked
    # now for every output known before compressing, and again below with the .ntc files.
    inputs = sources | {p.resolve() for p in [scene.path] + [i.source_path for i in
                                                             scene.images.values() if i.source_path]}
    planned = {str(p): p for p in [*copies, out_res / gltf_name]}
    try:
        refuse_overwriting({**planned, **(extra_outputs or {})}, inputs)
    except OutputPathError as e:
        raise InputError(f"{e}; choose another output folder") from None

    materials = [m for m in scene.materials if m.slots]
    report = {"input": str(scene_path), "output": str(out_dir / gltf_name), "materials": []}
    # Every distinct set goes to the compressor as its material is read (one set's images in
    # memory per running compression); the report is then assembled in the scene's order.
    plan = []   # (material, size, key, label): label None for a set an earlier material has
    labels: dict[str, str] = {}
    if compress_sets is not None:
        compressor = BatchedCompressor(compress_sets, settings)
    else:
        from .compress import compress
        compressor = SetCompressor(compress, settings, min(len(materials), settings.jobs_here()),
                                   log)
    with compressor:
        for n, mat in enumerate(materials, 1):
            tset = material_texture_set(scene, mat, log)
            apply_weights(tset, weights)
            key = set_key(tset, settings)
            w, h = tset.size
            if key in labels:
                log(f"material {n}/{len(materials)} '{mat.name}': same textures as "
                    f"{labels[key]}")
                plan.append((mat, (w, h), key, None))
                continue
            labels[key] = f"material {n}/{len(materials)} '{mat.name}'"
            log(f"{labels[key]}: {w}x{h}, {', '.join(t.name for t in tset.textures)}")
            plan.append((mat, (w, h), key, labels[key]))
            compressor.submit(key, tset, labels[key])
            del tset
            if failed := compressor.failure():   # stop the others: the scene is not written
                first = next(m for m, _, k, _ in plan if k == failed[0])
                raise InputError(f"material '{first.name}': {one_line(failed[1])}")
        done = compressor.results()

    by_key: dict[str, tuple[str, dict]] = {}
    outputs: dict[Path, bytes] = {}
    mats_json = doc.get("materials") or []
    for mat, (w, h), key, label in plan:
        entry = {"material": mat.name, "index": mat.index, "width": w, "height": h,
                 "textures": slot_texture_names(mat)}
        result = done[key]
        if isinstance(result, ConstantSetError):
            if label is not None:
                log(f"material '{mat.name}' keeps its images: {result}")
            entry["skipped"] = str(result)
            report["materials"].append(entry)
            continue
        if isinstance(result, BaseException):
            raise InputError(f"material '{mat.name}': {one_line(result)}") from None
        if key not in by_key:
            base = safe_name(mat.name, f"material{mat.index}")
            fname, k = f"{base}.ntc", 1
            while fname.lower() in taken:
                fname, k = f"{base}_{k}.ntc", k + 1
            taken.add(fname.lower())
            outputs[out_res / fname] = result.data
            by_key[key] = (fname, result.report)
        fname, rep = by_key[key]
        entry.update({"file": fname, "bpp": rep["bpp"], "file_bytes": rep["file_bytes"],
                      "psnr_set": rep["psnr_set"], "preset": rep["preset"], "report": rep})
        report["materials"].append(entry)
        m = mats_json[mat.index]
        exts = m.setdefault("extensions", {})
        exts[NTC_EXTENSION] = {"uri": quote(fname), "textures": slot_texture_names(mat)}
    if any("file" in e for e in report["materials"]):
        used = doc.setdefault("extensionsUsed", [])
        if NTC_EXTENSION not in used:
            used.append(NTC_EXTENSION)
    else:
        log("no material has textures to compress; the copy of the scene has no neural textures")

    outputs.update(copies)
    outputs[out_res / gltf_name] = (json.dumps(doc, indent=2) + "\n").encode()
    for path in outputs:
        if path.resolve() in inputs:
            raise InputError(f"writing {path} would overwrite an input file; choose another "
                             f"output folder")
    try:
        out_res.mkdir(exist_ok=True)
        for path, data in outputs.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
    except OSError as e:
        raise InputError(f"cannot write to {out_dir}: {e.strerror or e}") from None
    report["files"] = sorted(str(p.relative_to(out_res)) for p in outputs)
    return report
