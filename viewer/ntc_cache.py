"""Neural texture sets of a scene's materials, compressed once and cached beside the scene.

`ensure_ntc(scene, material, settings)` returns the .ntc file of the material's set
(trainer.gltf.material_texture_set): the file the scene names through NTC_texture_set when it has
one, else a cached file, else it compresses the set now (with a progress bar) and caches it;
`ensure_all` does so for several materials, the missing sets compressed --jobs at a time. The
cache lives in `<scene dir>/<scene stem>.ntc-cache/` (or `cache_dir`), one file per set named
`<material>-<key>.ntc`, where the key hashes the set's pixels, roles and colour spaces, the
compression settings (bpp / target PSNR / preset, steps, batch, seed, network) and the .ntc format
version: any change gives a new key, identical sets in several materials or scenes share a file.
Files are written atomically (a partial file is never seen). Nothing is written anywhere else.

Which texture of the set feeds which glTF slot: `export.gltf.ntc_extension.slot_texture_names(material)`; each decoded
texture is sampled exactly as glTF samples the original image (see trainer/gltf.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from export.errors import NTCError, one_line
from export.format import NTCFormatError, read_ntc
from export.gltf import Material, Scene
from export.images import max_side
from export.safe_files import atomic_write
from export.gltf.ntc_extension import slot_texture_names
from trainer.gltf import material_texture_set, safe_name, set_key
from trainer.textures import ConstantSetError, InputError

CACHE_SUFFIX = ".ntc-cache"

__all__ = ["NTCCacheError", "cache_folder", "ensure_ntc", "ensure_all", "cached_path"]


class NTCCacheError(NTCError):
    """The cache cannot be used (read-only folder, ...) or a set cannot be compressed. One line."""


def cache_folder(scene: Scene, cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return scene.path.parent / f"{scene.path.stem}{CACHE_SUFFIX}"


def cached_path(scene: Scene, material: Material, key: str,
                cache_dir: str | Path | None = None) -> Path:
    folder = cache_folder(scene, cache_dir)
    own = folder / f"{safe_name(material.name, f'material{material.index}')}-{key[:20]}.ntc"
    if not own.is_file() and folder.is_dir():
        # the same set (same key) already cached for another material: share its file
        shared = sorted(folder.glob(f"*-{key[:20]}.ntc"))
        if shared:
            return shared[0]
    return own


def _valid(path: Path) -> bool:
    try:
        read_ntc(path)
        return True
    except NTCFormatError:
        return False


def _writable_folder(folder: Path) -> None:
    hint = "pass --cache-dir DIR to keep the neural texture cache elsewhere"
    try:
        folder.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise NTCCacheError(f"cannot create the neural texture cache {folder}: its parent does "
                            f"not exist; {hint}") from None
    except OSError as e:
        raise NTCCacheError(f"cannot create the neural texture cache {folder} "
                            f"({e.strerror or e}); {hint}") from None
    if not folder.is_dir():
        raise NTCCacheError(f"the neural texture cache {folder} is not a folder; {hint}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NTCCacheError(f"the neural texture cache {folder} is not writable; {hint}")


@dataclass
class _ToCompress:
    """A material's set that is in neither the scene nor the cache (its images are not kept)."""
    key: str
    path: Path
    size: tuple[int, int]
    textures: list[str]


def _find(scene: Scene, material: Material, settings, cache_dir, log, use_scene_ntc: bool):
    """The material's .ntc if the scene names a valid one or the cache has it; None when it has
    no textures; else (_ToCompress, its TextureSet)."""
    if use_scene_ntc and material.ntc is not None:
        if _valid(material.ntc.path):
            model = read_ntc(material.ntc.path)
            if max(model.width, model.height) > max_side():
                raise NTCCacheError(f"material '{material.name}': {material.ntc.path.name} is "
                                    f"{model.width}x{model.height}, larger than --max-size "
                                    f"{max_side()}")
            if log:
                log(f"material '{material.name}': using {material.ntc.path.name} "
                    f"(named by the scene)")
            return material.ntc.path
        if log:
            log(f"material '{material.name}': {material.ntc.path.name} named by the scene is not "
                f"a valid .ntc file; using the cache instead")
        material.ntc = None  # so material_slot_names gives the cached set's mapping
    try:
        tset = material_texture_set(scene, material, log)
    except InputError as e:
        raise NTCCacheError(f"material '{material.name}': {e}") from None
    if tset is None:
        return None
    key = set_key(tset, settings)
    path = cached_path(scene, material, key, cache_dir)
    if path.is_file():
        if _valid(path):
            if log:
                log(f"material '{material.name}': using cached {path.name}")
            return path
        if log:
            log(f"material '{material.name}': cached {path.name} is damaged; compressing again")
    # Check the folder before training, so a read-only scene fails in a second, not after minutes.
    _writable_folder(path.parent)
    return _ToCompress(key, path, tset.size, [t.name for t in tset.textures]), tset


def _store(scene: Scene, material: Material, job: _ToCompress, result, log) -> Path | None:
    """Write a compressed set (or say why there is none) into the cache."""
    if isinstance(result, ConstantSetError):
        if log:
            log(f"material '{material.name}': {result}; using its images")
        return None
    if isinstance(result, NTCError):
        raise NTCCacheError(f"material '{material.name}': {one_line(result)}") from None
    report = dict(result.report, scene=str(scene.path), material=material.name, key=job.key,
                  slots=slot_texture_names(material))
    report.pop("training_curve", None)
    try:
        atomic_write(job.path, result.data)
        atomic_write(job.path.with_suffix(".json"), json.dumps(report, indent=2).encode())
    except OSError as e:
        raise NTCCacheError(f"cannot write {job.path} ({e.strerror or e}); pass --cache-dir DIR "
                            f"to keep the neural texture cache elsewhere") from None
    if log:
        log(f"material '{material.name}': cached {job.path.name} ({report['bpp']:.2f} bpp, "
            f"set PSNR {report['psnr_set']:.2f} dB)")
    return job.path


def ensure_ntc(scene: Scene, material: Material, settings, cache_dir: str | Path | None = None,
               log=print, use_scene_ntc: bool = True) -> Path | None:
    """Path of the material's .ntc, compressing (in this process) and caching it when missing;
    None when the material has no textures (or only constant ones). `settings`:
    trainer.compress.CompressSettings. Raises NTCCacheError."""
    return ensure_all(scene, settings, cache_dir, log, [material], use_scene_ntc, jobs=1)[
        material.index]


def ensure_all(scene: Scene, settings, cache_dir: str | Path | None = None, log=print,
               materials=None, use_scene_ntc: bool = True, jobs: int | None = None
               ) -> dict[int, Path | None]:
    """ensure_ntc for every material (or those given): material index -> .ntc path or None.
    Missing sets are compressed `jobs` at a time (default settings.jobs_here()), each in a process
    of its own (trainer/parallel.py)."""
    from trainer.compress import compress
    from trainer.parallel import SetCompressor
    materials = scene.materials if materials is None else materials
    out: dict[int, Path | None] = {}
    todo: list[tuple[Material, _ToCompress]] = []
    jobs = min(len(materials), jobs or settings.jobs_here()) if materials else 1
    with SetCompressor(compress, settings, jobs, log or (lambda *a, **k: None)) as compressor:
        for m in materials:
            found = _find(scene, m, settings, cache_dir, log, use_scene_ntc)
            if not isinstance(found, tuple):
                out[m.index] = found
                continue
            job, tset = found
            twin = next((other for other, j in todo if j.key == job.key), None)
            todo.append((m, job))
            if log and twin is not None:   # the compressor trains a key once
                log(f"material '{m.name}': the same textures as '{twin.name}', one set for both")
            elif log:
                w, h = job.size
                log(f"material '{m.name}': compressing {w}x{h} ({', '.join(job.textures)}) into "
                    f"the cache {job.path.parent}")
            compressor.submit(job.key, tset, f"material '{m.name}'")
            del tset, found
            if failed := compressor.failure():   # stop the others: the viewer cannot go on
                first = next(mat for mat, j in todo if j.key == failed[0])
                raise NTCCacheError(f"material '{first.name}': {one_line(failed[1])}")
        done = compressor.results()
    stored: dict[str, Path | None] = {}   # a set two materials share is written once
    for m, job in todo:
        if job.key not in stored:
            stored[job.key] = _store(scene, m, job, done[job.key], log)
        out[m.index] = stored[job.key]
    return out
