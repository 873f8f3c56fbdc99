"""One material's job: its content key, its outputs in the output tree (mirroring the library),
whether they are already there, and the compression itself (run inside a Ray worker, or inline).

Outputs: a folder material `a/b` -> OUT/a/b.ntc and OUT/a/b.ntc.json; a scene `a/s.gltf` ->
OUT/a/s_ntc/ (ntc-compress's scene output) and OUT/a/s.gltf.json. Every file is written
atomically and the .json, which holds the content key, last: a material counts as done only when
its .json is there with the key of its current inputs and settings, so an interrupted or failed
run leaves nothing that a re-run would mistake for finished work.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from export import layout
from export.bcn.formats import format_for
from export.errors import NTCError, one_line
from export.header import VERSION as FORMAT_VERSION
from export.safe_files import atomic_write

from ..textures import IMAGE_SUFFIXES
from .discover import Material

SCHEMA = 1   # bump when a job's outputs change meaning


def outputs(mat: Material, out_root: Path) -> tuple[Path, Path]:
    """(the main output: .ntc file or scene folder, the .json that marks it done)."""
    rel = mat.source.name if mat.rel == "." else mat.rel
    if mat.kind == "scene":
        return out_root / f"{Path(rel).with_suffix('')}_ntc", out_root / f"{rel}.json"
    return out_root / f"{rel}.ntc", out_root / f"{rel}.ntc.json"


def content_key(mat: Material, settings) -> str:
    """SHA-256 of what determines the outputs: every input file's bytes, the settings, the .ntc
    format version."""
    h = hashlib.sha256()
    meta = {"schema": SCHEMA, "format": FORMAT_VERSION, "kind": mat.kind,
            "settings": settings.cache_fields(),
            "inputs": sorted(p.name for p in mat.inputs)}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for p in sorted(mat.inputs, key=lambda p: p.name):
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def finished(mat: Material, out_root: Path, key: str) -> dict | None:
    """The record of an earlier run whose outputs match `key`, or None."""
    main, marker = outputs(mat, out_root)
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or not main.exists():
        return None
    return record


def _set_bytes(tset, source: bool = True) -> dict:
    """Bytes of a texture set as RGBA8 and as BCn, both with full mip chains (computed), and (with
    `source`) as its image files."""
    w, h = tset.size
    texels = sum(mw * mh for mw, mh in (layout.mip_size(w, h, m)
                                        for m in range(layout.mip_count(w, h))))
    bcn = 0
    for t in tset.textures:
        fmt, _ = format_for(t.channels, t.role == "normal", t.colorspace == "srgb")
        bcn += fmt.chain_bytes(w, h)
    out = {"rgba8_mips": texels * 4 * len(tset.textures), "bcn_mips": bcn}
    if source:
        out["source"] = sum(t.path.stat().st_size for t in tset.textures)
    return out


def _scene_source_bytes(mat: Material) -> int:
    """A scene's image files (a .glb holds its images: the whole file counts)."""
    if mat.source.suffix.lower() == ".glb":
        return mat.source.stat().st_size
    return sum(p.stat().st_size for p in mat.inputs if p.suffix.lower() in IMAGE_SUFFIXES)


def _counting_sets(compress_sets, sets: list):
    """compress_sets as a compress_scene hook that also keeps the distinct texture sets in `sets`
    (for their RGBA8 / BCn bytes)."""
    def hook(items, settings):
        sets.extend(t for _, t in items)
        return compress_sets(items, settings)
    return hook


def run(mat: Material, out_root: Path, settings, key: str, node: str, compress_sets,
        on_step=None) -> dict:
    """Compress one material into its outputs; the record written to its .json (also returned).
    A user-fixable problem (bad input, ...) is a 'failed' record with its one-line reason; other
    exceptions propagate (the caller may retry). `node`: where it runs; `compress_sets`: how a
    scene's distinct texture sets are compressed (gltf.compress_scene's hook); `on_step`: a
    folder's training progress (compress's)."""
    from ..compress import compress
    from ..textures import load_texture_set
    t0 = time.perf_counter()
    main, marker = outputs(mat, out_root)
    record = {"material": mat.rel, "kind": mat.kind, "key": key, "node": node}
    try:
        if mat.kind == "scene":
            from ..gltf import compress_scene
            main.parent.mkdir(parents=True, exist_ok=True)
            sets: list = []
            rep = compress_scene(mat.source, main, settings, log=lambda *a, **k: None,
                                 compress_sets=_counting_sets(compress_sets, sets))
            done = [m for m in rep["materials"] if "file" in m]
            totals = {"source": _scene_source_bytes(mat), "rgba8_mips": 0, "bcn_mips": 0}
            for tset in sets:   # each distinct set once, as its one .ntc file
                for k, v in _set_bytes(tset, source=False).items():
                    totals[k] += v
            record.update(outputs=[str(main)], materials=[
                {k: m.get(k) for k in ("material", "file", "bpp", "psnr_set", "preset")}
                for m in rep["materials"]],
                bpp=None, psnr_set=None, textures={},
                bytes={**totals, "ntc": sum({m["file"]: m["file_bytes"] for m in done}.values())})
        else:
            tset = load_texture_set(mat.source)
            result = compress(tset, settings, lambda *a, **k: None, on_step)
            main.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(main, result.data)
            rep = result.report
            record.update(outputs=[str(main)], preset=rep["preset"], bpp=rep["bpp"],
                          psnr_set=rep["psnr_set"], device=rep["device"],
                          size=[rep["width"], rep["height"]],
                          textures={n: t["psnr"] for n, t in rep["textures"].items()},
                          bytes={**_set_bytes(tset), "ntc": len(result.data)})
    except NTCError as e:
        return {**record, "status": "failed", "reason": one_line(e),
                "seconds": time.perf_counter() - t0}
    record.update(status="done", seconds=time.perf_counter() - t0)
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(marker, (json.dumps(record, indent=1) + "\n").encode())
    return record
