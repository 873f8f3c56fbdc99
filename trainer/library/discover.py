"""The materials of a library folder: every folder of recognisable textures (the rules
ntc-compress uses: a manifest, or image names with a role) and every .gltf / .glb scene, each with
the files that make its outputs; and what is skipped, with why.

A folder that holds a scene belongs to the scene (its images are the scene's); hidden entries
(names starting with '.') and the output folder, when it lies inside the library, are not
searched. Symbolic links are not followed. --include / --exclude are shell patterns matched
against the path relative to the library (e.g. 'rocks/*', '*/old_*').
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from export.safe_files import is_regular_file

from ..gltf import is_scene_path
from ..textures import IMAGE_SUFFIXES, MANIFEST_NAME, InputError, infer_role


@dataclass
class Material:
    rel: str                 # path relative to the library, '/'-separated ('.' for the root)
    source: Path
    kind: str                # "folder" (a texture set) or "scene" (.gltf / .glb)
    inputs: list[Path] = field(default_factory=list)   # the files whose bytes key its outputs


@dataclass
class Discovery:
    materials: list[Material]
    skipped: list[tuple[str, str]]   # (relative path, why)


def _matches(rel: str, include: list[str], exclude: list[str]) -> str | None:
    """Why `rel` is left out by the patterns, or None."""
    if include and not any(fnmatch.fnmatch(rel, p) for p in include):
        return "not matched by --include"
    hit = next((p for p in exclude if fnmatch.fnmatch(rel, p)), None)
    return f"matched by --exclude {hit}" if hit else None


def discover(library: Path, include: list[str] | None = None,
             exclude: list[str] | None = None, ignore: Path | None = None) -> Discovery:
    """Materials under `library` in path order. `ignore`: a folder not to search (the output)."""
    library = Path(library)
    if not library.is_dir():
        raise InputError(f"library {library} is not a folder" if library.exists()
                         else f"library {library} does not exist")
    include, exclude = list(include or []), list(exclude or [])
    ignore_res = ignore.resolve() if ignore is not None else None
    materials: list[Material] = []
    skipped: list[tuple[str, str]] = []
    for here, dirs, files in os.walk(library, followlinks=False):
        folder = Path(here)
        rel_folder = folder.relative_to(library).as_posix()
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (ignore_res is None or (folder / d).resolve() != ignore_res))
        entries = sorted(f for f in files if not f.startswith("."))
        scenes = [f for f in entries if is_scene_path(f) and is_regular_file(folder / f)]
        for name in scenes:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            why = _matches(rel, include, exclude)
            if why:
                skipped.append((rel, why))
                continue
            inputs = [folder / f for f in entries if is_regular_file(folder / f)]
            materials.append(Material(rel, folder / name, "scene", inputs))
        images = [f for f in entries if Path(f).suffix.lower() in IMAGE_SUFFIXES
                  and is_regular_file(folder / f)]
        manifest = MANIFEST_NAME in entries
        if not images and not manifest:
            continue
        if scenes:
            if images:
                skipped.append((rel_folder, f"its images belong to the scene {scenes[0]}"))
            continue
        if not manifest and not any(infer_role(f) for f in images):
            skipped.append((rel_folder, "no image is named like a PBR texture (baseColor, "
                                        "normal, roughness, ...) and there is no "
                                        f"{MANIFEST_NAME}"))
            continue
        why = _matches(rel_folder, include, exclude)
        if why:
            skipped.append((rel_folder, why))
            continue
        inputs = [folder / f for f in images] + ([folder / MANIFEST_NAME] if manifest else [])
        materials.append(Material(rel_folder, folder, "folder", inputs))
    return Discovery(materials, skipped)
