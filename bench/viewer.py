"""ntc-view on the shared glTF scenes: image quality, frame time and VRAM of every texture source.

Measured in one run on one OpenGL context:

    python -m bench.viewer [--scenes WaterBottle,FlightHelmet] [--steps N] [--bpp B]
                           [--size WxH] [--frames N] [--cache-dir DIR]

For each scene (../shared/data/scenes: WaterBottle/PF_WaterBottle_MR.gltf, 2048^2 textures, and
FlightHelmet_512/FlightHelmet.gltf, six materials, five distinct 512^2 sets; a path to any .gltf/.glb works too):

1. every textured material's neural texture set is compressed once through the viewer's cache
   (viewer/ntc_cache.ensure_ntc with --bpp and --steps, the same settings key ntc-view uses) in
   --cache-dir (default bench/results/cache/viewer/<scene>/), so the shared data folder, which is
   read-only, is never written; an interrupted run resumes from the cache;
2. each row renders the scene headless with ntc-view's renderer (viewer/renderer.Renderer, a fresh
   one per row on the same context, so its VRAM ledger is that row's footprint), at --size from the
   renderer's initial view (the camera framing the scene's bounds), exactly as
   `ntc-view --headless` does: set-up (upload; load mode also decodes), one untimed warm-up frame
   (driver compiles), then --frames timed frames. Rows: reference (the images), load (decoded on
   load), each also with BCn textures (reference_bcn: the images encoded by bc7enc as ntc-view
   --reference bcn; load_bcn: the decoded set transcoded on the GPU, --load-format bcn), sample
   with each filter (trilinear; stochastic as ntc-view shows it, the mean of the row's frames,
   and as one frame; latent; auto), feedback (tiles decoded as the frames ask for them: after
   the warm-up frame it draws until no tile waits, untimed, as load mode decodes before it is
   timed; `tiles` gives the texels decoded after each frame and those settling frames);
3. per row: PSNR of the last frame against the (RGBA8) reference row's last frame (same camera, 8-bit RGB,
   whole image), GPU ms (GL timer query) median / p95, CPU ms (the renderer's clock: building and
   submitting the frame), wall ms per frame (ending with ctx.finish()) and this process's CPU time
   per frame (on a software renderer that is the rendering work), VRAM by the renderer's ledger
   categories and total, and the texture memory (ledger categories textures + decoded + latents +
   weights + tiles: whatever holds material texture data in that mode);
4. per scene: texture VRAM of sample mode / reference mode (the target is <= 1/10) and against the
   same textures in block formats, BC7 for colour / ORM / occlusion / emissive and BC5 for normal
   maps, each with a full mip chain of whole 4x4 blocks per level
   (bench.rate_distortion._chain_bits); frame-time ratios sample / reference and load / reference.

Writes bench/results/viewer.md, viewer.json and one screenshot per row,
bench/results/viewer/<scene>_<row>.png (row: reference, load, sample_trilinear, sample_stochastic,
sample_stochastic_1, sample_latent). Time: the compression dominates (see bench/README.md).

One experiment, its rows and its CLI; the figures against the reference row are in
viewer_figures.py, the report in viewer_report.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.output import write_results
from bench.scenes import (CACHE, DEFAULT_SIZE, RESULTS, add_scene_arguments, check_scenes,
                          log_stderr, settings_and_context)
from bench.still_view import STILL_FRAMES, still_view
from bench.viewer_figures import (TEXTURE_CATEGORIES, VRAM_TARGET, block_format_textures,
                                  compare_rows, object_fraction)
from bench.viewer_report import report
from trainer.budget import budget_text

# (row name, renderer mode, sample filter, average stochastic frames as ntc-view shows them,
#  (reference format, load format): ntc-view's --reference and --load-format)
RGBA8, BCN = ("rgba8", "rgba8"), ("bcn", "bcn")
ROWS = (("reference", "reference", "trilinear", True, RGBA8),
        ("reference_bcn", "reference", "trilinear", True, BCN),
        ("load", "load", "trilinear", True, RGBA8),
        ("load_bcn", "load", "trilinear", True, BCN),
        ("sample_trilinear", "sample", "trilinear", True, RGBA8),
        ("sample_stochastic", "sample", "stochastic", True, RGBA8),
        ("sample_stochastic_1", "sample", "stochastic", False, RGBA8),
        ("sample_latent", "sample", "latent", True, RGBA8),
        ("sample_auto", "sample", "auto", True, RGBA8),
        ("feedback", "feedback", "trilinear", True, RGBA8))
DEFAULT_FRAMES = 5


# ----------------------------------------------------------------------------------------------
# one row

def render_row(ctx, scene, provider, mode: str, filt: str, size, frames: int,
               accumulate: bool = True, log=log_stderr, formats=RGBA8,
               bcn_images=None) -> tuple[dict, np.ndarray]:
    """One headless run of ntc-view's renderer as viewer/cli.run_headless does it (set-up, one
    warm-up frame, `frames` timed frames), also timing each frame on the clock (to ctx.finish())
    and by this process's CPU time. Returns (figures, last frame as uint8 [h, w, 3]: with the
    stochastic filter and `accumulate`, the mean of the warm-up and timed frames)."""
    from viewer.frame_stats import FrameTimer
    from viewer.material_bindings import TextureFormats
    from viewer.renderer import Renderer
    renderer = None
    try:
        t0 = time.perf_counter()
        renderer = Renderer(ctx, scene, size, mode=mode, filter_mode=filt, ntc_provider=provider,
                            overlay=False, timer_latency=0, accumulate=accumulate, log=log,
                            formats=TextureFormats(*formats), bcn_images=bcn_images)
        ctx.finish()
        setup_ms = (time.perf_counter() - t0) * 1e3
        first_ms = renderer.warm_up()
        settle = renderer.settle_tiles()
        wall, proc = [], []
        for _ in range(frames):
            c0, t0 = time.process_time(), time.perf_counter()
            renderer.render()
            ctx.finish()
            wall.append((time.perf_counter() - t0) * 1e3)
            proc.append((time.process_time() - c0) * 1e3)
        renderer.timer.flush()
        image = renderer.read()
        vram = renderer.vram()
        by = vram["by_category"]
        gpu = FrameTimer.summary(renderer.timer.gpu_ms)
        row = {
            "mode": mode, "filter": filt if mode == "sample" else None, "frames": frames,
            "precision": renderer.programs.precision.name if mode == "sample" else None,
            "formats": {"reference": formats[0], "load": formats[1]},
            "accumulated_frames": renderer.accumulated,
            "gpu_ms": gpu, "cpu_ms": FrameTimer.summary(renderer.timer.cpu_ms),
            "wall_ms": FrameTimer.summary(wall), "process_cpu_ms": FrameTimer.summary(proc),
            "gpu_ms_frames": list(renderer.timer.gpu_ms), "wall_ms_frames": wall,
            "setup_ms": setup_ms, "first_frame_ms": first_ms,
            "vram_bytes": vram,
            "texture_vram_bytes": sum(by[c] for c in TEXTURE_CATEGORIES),
            "driver_vram_bytes": renderer.driver_vram(),
            "vram_objects": renderer.vram_objects(),
            "object_fraction": object_fraction(image),
        }
        if renderer.bindings.tiles is not None:   # feedback mode: texels decoded after each frame
            row["tiles"] = renderer.bindings.tiles.summary()
            row["tiles"]["settle_frames"] = settle
        row["timer_covers_work"] = bool(gpu and row["wall_ms"]
                                        and gpu["median"] >= 0.5 * row["wall_ms"]["median"])
        return row, image
    finally:
        if renderer is not None:
            renderer.release()


# ----------------------------------------------------------------------------------------------
# one scene, all scenes

def measure_scene(ctx, name: str, scene_path, settings, size=DEFAULT_SIZE,
                  frames: int = DEFAULT_FRAMES, cache_dir=None, shots_dir=None,
                  rows=ROWS, log=log_stderr, still_frames=STILL_FRAMES) -> dict:
    """Compress what the cache lacks, then render every row of `rows`; the scene's dict of
    viewer.json. Screenshots go to shots_dir/<name>_<row>.png when shots_dir is given."""
    from export.images import encode_png
    from viewer.ntc_cache import ensure_all
    from export.gltf import load_scene

    from export.decode.network_block import macs_per_decode
    from export.format import read_ntc
    from export.safe_files import atomic_write

    log = log or (lambda *a: None)
    scene_path = Path(scene_path)
    scene = load_scene(scene_path, log=log)
    cache_dir = Path(cache_dir) if cache_dir is not None else CACHE / name
    cache_dir.mkdir(parents=True, exist_ok=True)

    # 1. neural sets, found in the cache or compressed now (outside every timing), the missing
    # ones --jobs at a time as ntc-view compresses them
    drawn = scene.drawn_materials(textured=True)
    t_compress = time.perf_counter()
    paths: dict[int, Path | None] = ensure_all(scene, settings, cache_dir, log=log,
                                               materials=drawn) if drawn else {}
    compress_s = time.perf_counter() - t_compress
    materials = []
    for mat in drawn:
        index = mat.index
        path = paths[index]
        entry = {"material": mat.name, "index": index, "file": None}
        if path is not None:
            model = read_ntc(path)
            entry.update(file=str(path), file_bytes=path.stat().st_size,
                         size=[model.width, model.height],
                         textures=[t.name for t in model.textures],
                         macs_per_decode=macs_per_decode(model.mlp_dims)["shader"])
            report = path.with_suffix(".json")
            if report.is_file():
                rep = json.loads(report.read_text())
                entry.update({k: rep.get(k) for k in ("bpp", "psnr_set", "preset", "steps",
                                                      "seconds", "device", "key")})
        materials.append(entry)

    # materials whose sets are identical (same cache key): one file, one upload, one decode
    groups: dict[str, list[str]] = {}
    for m in materials:
        if m.get("key"):
            groups.setdefault(m["key"], []).append(m["material"])
    identical = [names for names in groups.values() if len(names) > 1]

    def provider(material):
        return paths.get(material.index)

    # the images as BCn, encoded now (outside every timing) or found in the cache
    from viewer.bcn_images import BCnImages
    bcn_images = BCnImages(cache_dir, log)
    t0 = time.perf_counter()
    if any(r[4][0] == "bcn" for r in rows):
        bcn_images.prepare([scene.material(i) for i in sorted({p.material
                                                               for p in scene.primitives})])
    bcn_encode_s = time.perf_counter() - t0

    # 2. rows on the shared context
    t_render = time.perf_counter()
    results, images = [], {}
    for row_name, mode, filt, accumulate, formats in rows:
        log(f"{name}: {row_name} at {size[0]}x{size[1]}, {frames} frame(s)")
        row, image = render_row(ctx, scene, provider, mode, filt, size, frames, accumulate,
                                log=log, formats=formats, bcn_images=bcn_images)
        row["name"] = row_name
        images[row_name] = image
        if shots_dir is not None:
            shot = Path(shots_dir) / f"{name}_{row_name}.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(shot, encode_png(image))
            row["screenshot"] = str(shot)
        results.append(row)
    render_s = time.perf_counter() - t_render

    # 3. figures against the reference row
    ref = next(r for r in results if r["mode"] == "reference"
               and r["formats"]["reference"] == "rgba8")
    still = still_view(ctx, scene, provider, size, images[ref["name"]], still_frames) \
        if still_frames else {}
    bc = block_format_textures(scene)
    bc_bytes = sum(t["block_bytes"] for t in bc)
    ratios = compare_rows(results, images, ref, bc_bytes)
    return {
        "name": name, "path": str(scene_path), "cache_dir": str(cache_dir),
        "primitives": len(scene.primitives), "materials": materials,
        "ntc_file_bytes": sum(m.get("file_bytes", 0) for m in materials),
        "identical_sets": identical,
        "block_format_textures": bc, "block_format_bytes": bc_bytes,
        "rgba8_bytes": sum(t["rgba8_bytes"] for t in bc),
        "rows": results, "ratios": ratios, "still_view": still,
        "compress_seconds": compress_s, "render_seconds": render_s,
        "bcn_encode_seconds": bcn_encode_s,
    }


def measure(ctx, scenes, settings, size=DEFAULT_SIZE, frames: int = DEFAULT_FRAMES,
            cache_dir=None, shots_dir=None, rows=ROWS, log=log_stderr,
            still_frames=STILL_FRAMES) -> dict:
    """Every scene of `scenes` ((name, path) pairs) on one context; the dict of viewer.json.
    `cache_dir`: the folder holding one cache folder per scene (default bench/results/cache/
    viewer)."""
    from trainer.compress import resolve_device
    t0 = time.perf_counter()
    out = {
        "device": ctx.info.get("GL_RENDERER"), "gl_version": ctx.info.get("GL_VERSION"),
        "gl_vendor": ctx.info.get("GL_VENDOR"),
        "lp_num_threads": os.environ.get("LP_NUM_THREADS", "unset"),
        "machine": f"{os.cpu_count()} CPU cores, {settings.train.threads} torch thread(s)",
        "settings": {"steps": settings.train.steps, "effort": settings.train.effort,
                     "between_share": settings.train.between_share,
                     "lod_blend_share": settings.train.lod_blend_share,
                     "bpp": settings.effective_bpp,
                     "network": settings.network.text(),
                     "batch": settings.train.batch_for(resolve_device(settings.device)),
                     "seed": settings.train.seed, "size": list(size), "frames": frames},
        "vram_target": VRAM_TARGET, "texture_categories": list(TEXTURE_CATEGORIES),
        "scenes": [],
    }
    base = Path(cache_dir) if cache_dir is not None else CACHE
    for name, path in scenes:
        out["scenes"].append(measure_scene(ctx, name, path, settings, size, frames,
                                           base / name, shots_dir, rows, log, still_frames))
    out["seconds"] = time.perf_counter() - t0
    return out


# ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.viewer",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_arguments(p)
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help="timed frames per row after one warm-up frame (default %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=CACHE,
                   help="compressed materials, one folder per scene (default "
                        "bench/results/cache/viewer)")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="folder for viewer.md, viewer.json and viewer/ (screenshots)")
    p.add_argument("--no-progress", action="store_true", help="no training progress bars")
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.frames < 1:
        p.error("--frames: at least 1")
    check_scenes(p, a.scenes)
    from export.errors import NTCError, one_line
    settings, ctx = settings_and_context(p, a, "bench.viewer")
    if ctx is None:
        return 1
    print(f"device: {ctx.info.get('GL_RENDERER')}; scenes {', '.join(n for n, _ in a.scenes)}; "
          f"{budget_text(settings.train.steps, settings.train.effort)} --bpp {settings.effective_bpp} "
          f"--size {a.size[0]}x{a.size[1]} "
          f"--frames {a.frames}", flush=True)
    try:
        out = measure(ctx, a.scenes, settings, a.size, a.frames, a.cache_dir,
                      a.out / "viewer")
    except NTCError as e:
        print(f"bench.viewer: error: {one_line(e)}", file=sys.stderr)
        return 1
    finally:
        ctx.release()
    write_results(a.out, "viewer", out, report(out))
    print(f"wrote {a.out / 'viewer.md'}, {a.out / 'viewer.json'} and {a.out / 'viewer'}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
