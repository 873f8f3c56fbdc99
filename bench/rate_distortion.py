"""Rate-distortion of neural texture sets against BC1 / BC7(+BC5) / ASTC, measured in one run.

    python -m bench.rate_distortion [--sets WaterBottle,Bench] [--presets p1.3,p2.7] [--steps N]

For every shared set: train at several presets (quality measured on the decoded file), encode the
same textures with the real classical encoders (bench/classical.py), and write under
bench/results/: rate_distortion.md (tables), rate_distortion.json (all figures), rate_distortion.png
(PSNR vs bpp), and the convergence study (PSNR vs training steps/time on a 1K 9-channel set).

bpp everywhere is bits per texel of mip 0 for the whole set. Classical sets are charged for their
full mip chain (block arithmetic per level), as the neural file is; quality is compared at mip 0.
Each run's result is cached in bench/results/cache/ (keyed by set, preset, steps, seed and a digest
of every setting), so an interrupted benchmark resumes; --fresh ignores the cache.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import classical
from bench.output import check_out_folder
from export import layout
from export.metrics import psnr_from_mse
from trainer.budget import DEFAULT_EFFORT, effort_steps
from trainer.compress import CompressSettings, compress
from trainer.fit import TrainConfig
from trainer.textures import load_texture_set

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"

# Shared sets, with manifests where file names mislead (Godot's rock_metal.jpg is its normal map)
# or greyscale maps are stored as RGB JPEGs (kept as one channel, for every codec alike).
SETS: dict[str, tuple[str, dict | None]] = {
    "WaterBottle": ("scenes/WaterBottle", None),
    "Bench": ("scenes/Bench_1024x2048", None),
    "Godot_Rock": ("materials/Godot_Rock", {
        "rock_albedo.jpg": "baseColor", "rock_metal.jpg": "normal",
        "rock_rough.jpg": {"role": "roughness", "channels": 1},
        "rock_ao.jpg": {"role": "occlusion", "channels": 1},
        "rock_depth.jpg": {"role": "height", "channels": 1}}),
    "MaterialX_Brick": ("materials/MaterialX_Brick", None),
    "Godot_Bricks": ("materials/Godot_Bricks", {
        "texture_bricks.jpg": "baseColor", "texture_bricks_normal.jpg": "normal",
        "texture_bricks_ao.jpg": {"role": "occlusion", "channels": 1},
        "texture_bricks_metal.jpg": {"role": "metallic", "channels": 1},
        "texture_bricks_depth.jpg": {"role": "height", "channels": 1}}),
}
DEFAULT_PRESETS = ("p1.3", "p2.7", "p4", "p5.3", "p8")
# Convergence: the 1K 9-channel case (WaterBottle baseColor + normal + ORM, box-filtered to 1024^2).
CONVERGENCE_SET, CONVERGENCE_PRESET = "WaterBottle_1K", "p4"
CONVERGENCE_STEPS = (750, 1500, 3000, 6000, 12000, 24000)


def load_set(name: str):
    if name == "WaterBottle_1K":
        return _half_size(load_set("WaterBottle"), drop=("emissive",))
    folder, manifest = SETS[name]
    if manifest is None:
        return load_texture_set(DATA / folder)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(manifest, f)
    try:
        return load_texture_set(DATA / folder, manifest=f.name)
    finally:
        os.unlink(f.name)


def _half_size(tset, drop=()):
    """The set at half resolution (2x2 box filter of the stored values), without roles in `drop`."""
    tset.textures = [t for t in tset.textures if t.role not in drop]
    for t in tset.textures:
        h, w, c = t.pixels.shape
        t.pixels = np.ascontiguousarray(
            t.pixels[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).mean((1, 3)))
    return tset


def _to_u8(tex) -> np.ndarray:
    peak = (1 << tex.bit_depth) - 1
    return np.round(tex.pixels * peak).astype(np.uint16 if tex.bit_depth == 16 else np.uint8)


def classical_rows(tset) -> list[dict]:
    """Every classical scheme on the set at mip 0; bpp with and without the mip chain."""
    w, h = tset.size
    texs = [{"channels": t.channels, "role": t.role} for t in tset.textures]
    images = [_to_u8(t) for t in tset.textures]
    rows = []
    for kind in classical.SET_KINDS:
        codecs = classical.set_codecs(kind, texs)
        sq = n = 0.0
        bits0 = bits_chain = 0.0
        per_tex, t0 = {}, time.perf_counter()
        for tex, img, codec in zip(tset.textures, images, codecs):
            dec, bpt = classical.roundtrip(codec, img, srgb=tex.colorspace == "srgb",
                                           normal=tex.role == "normal")
            err = ((dec.astype(np.float64) - img) ** 2)
            per_tex[tex.name] = {"codec": codec, "psnr": psnr_from_mse(err.mean(), 255.0)}
            sq, n = sq + err.sum(), n + err.size
            bits0 += bpt
            bits_chain += _chain_bits(codec, w, h)
        rows.append({"codec": kind, "bpp_mip0": bits0, "bpp": bits_chain / (w * h),
                     "psnr_set": psnr_from_mse(sq / n, 255.0), "textures": per_tex,
                     "encode_seconds": time.perf_counter() - t0})
    return rows


def _chain_bits(codec: str, w: int, h: int) -> float:
    """Exact bits of a full mip chain in a block format (whole blocks per level)."""
    block = int(codec[4:].split("x")[0]) if codec.startswith("astc") else 4
    block_bits = 128 if codec.startswith("astc") or codec in ("bc3", "bc5", "bc7") else 64
    total = 0
    for m in range(layout.mip_count(w, h)):
        mw, mh = layout.mip_size(w, h, m)
        total += math.ceil(mw / block) * math.ceil(mh / block) * block_bits
    return total


def _run_settings(preset: str, steps: int, seed: int) -> CompressSettings:
    return CompressSettings(preset=preset, train=TrainConfig(steps=steps, seed=seed,
                                                             progress=False))


def _cache(name: str, preset: str, steps: int, seed: int) -> Path:
    digest = _run_settings(preset, steps, seed).cache_digest()
    return RESULTS / "cache" / f"{name}.{preset}.{steps}.{seed}.{digest}.json"


def _keep(cache: Path, result) -> None:
    if isinstance(result, BaseException):
        raise result
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result.report))


def neural_run(name: str, tset, preset: str, steps: int, seed: int, fresh: bool,
               earlier: set[Path] = frozenset()) -> dict:
    """One run's report, trained now unless cached; "cached": True when its cache entry is one
    of `earlier` (there before this benchmark started)."""
    cache = _cache(name, preset, steps, seed)
    if fresh or not cache.exists():
        _keep(cache, compress(tset, _run_settings(preset, steps, seed), log=lambda *a: None))
    return dict(json.loads(cache.read_text()), cached=cache in earlier)


def train_missing(runs, seed: int, fresh: bool, jobs: int) -> None:
    """Train the (name, tset, preset, steps) runs that are not cached (all with `fresh`), `jobs`
    at a time in processes of their own (trainer/parallel.py); each is cached as it ends."""
    from trainer.parallel import SetCompressor
    todo = {str(_cache(n, p, st, seed)): (n, t, p, st) for n, t, p, st in runs}
    todo = {k: v for k, v in todo.items() if fresh or not Path(k).exists()}
    if not todo:
        return

    print(f"training {len(todo)} runs, {jobs} at a time", flush=True)
    log = lambda *a: print("  ", *a, flush=True)  # noqa: E731 - the pool's done / status lines
    with SetCompressor(compress, CompressSettings(), jobs, log,
                       lambda key, result: _keep(Path(key), result)) as pool:
        for key, (name, tset, preset, steps) in todo.items():
            pool.submit(key, tset, f"{name} {preset}", _run_settings(preset, steps, seed))
        pool.results()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--presets", default=",".join(DEFAULT_PRESETS))
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps for every set (default: the default --effort's for "
                         "each set's size, as ntc-compress)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-convergence", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="ignore cached runs")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="folder for rate_distortion.md/.json/.png (default bench/results; "
                         "runs are cached in bench/results/cache either way)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch CPU threads for the classical codecs (default: all cores)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="neural runs trained at once, one thread each (default 1, so the "
                         "report's seconds are a run alone; --jobs 2 on 2 cores finishes "
                         "sooner, its seconds those of runs sharing the machine). The "
                         "convergence runs, whose seconds are the figure, always run alone")
    a = ap.parse_args(argv)
    if a.jobs < 1:
        ap.error(f"--jobs {a.jobs}: at least 1")
    check_out_folder(ap, a.out)
    import torch
    torch.set_num_threads(a.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    together = f", {a.jobs} runs at a time" if a.jobs > 1 else ""
    out = {"steps": a.steps or f"the default effort's ({DEFAULT_EFFORT})", "seed": a.seed,
           "machine": f"{os.cpu_count()} CPU cores, training on {TrainConfig.threads} torch "
                      f"thread per run (ntc-compress's default){together}, classical codecs on "
                      f"{a.threads}",
           "sets": {}}
    earlier = set() if a.fresh else set((RESULTS / "cache").glob("*.json"))
    names = list(filter(None, a.sets.split(",")))
    presets = a.presets.split(",")
    if a.jobs > 1:
        sets = {n: load_set(n) for n in names}
        train_missing([(n, t, p, a.steps or effort_steps(DEFAULT_EFFORT, *t.size))
                       for n, t in sets.items() for p in presets], a.seed, a.fresh, a.jobs)
    for name in names:
        tset = load_set(name)
        w, h = tset.size
        print(f"== {name}: {w}x{h}, {[t.path.name for t in tset.textures]}", flush=True)
        t0 = time.perf_counter()
        rows = classical_rows(tset)
        print(f"   classical codecs: {time.perf_counter() - t0:.0f} s", flush=True)
        neural, steps = [], a.steps or effort_steps(DEFAULT_EFFORT, w, h)
        for preset in presets:
            rep = neural_run(name, tset, preset, steps, a.seed, a.fresh and a.jobs == 1,
                             earlier)
            neural.append(rep)
            print(f"   {preset}: {rep['bpp']:.2f} bpp, {rep['psnr_set']:.2f} dB, "
                  f"{rep['seconds']:.0f} s", flush=True)
        out["sets"][name] = {"size": [w, h], "textures": [t.path.name for t in tset.textures],
                             "channels": sum(t.channels for t in tset.textures),
                             "steps": steps, "classical": rows, "neural": neural}
    if not a.no_convergence:
        tset = load_set(CONVERGENCE_SET)
        conv = []
        # A convergence-only helper process (--sets '') takes the longest runs first, so it and
        # the main process, which comes to them last and in order, meet in the middle.
        order = CONVERGENCE_STEPS if out["sets"] else CONVERGENCE_STEPS[::-1]
        for steps in order:
            rep = neural_run(CONVERGENCE_SET, tset, CONVERGENCE_PRESET, steps, a.seed, a.fresh,
                             earlier)
            conv.append({"steps": steps, "seconds": rep["seconds"], "cached": rep["cached"],
                         "train_seconds": rep["train_seconds"], "bpp": rep["bpp"],
                         "psnr_set": rep["psnr_set"]})
            print(f"   convergence {steps} steps: {rep['psnr_set']:.2f} dB, {rep['seconds']:.0f} s",
                  flush=True)
        out["convergence"] = {"set": CONVERGENCE_SET, "preset": CONVERGENCE_PRESET,
                              "channels": sum(t.channels for t in tset.textures),
                              "size": list(tset.size), "runs": conv}
    if not out["sets"]:
        print("no sets measured: the runs are cached, no report written")
        return 0
    out.get("convergence", {}).get("runs", []).sort(key=lambda r: r["steps"])
    (a.out / "rate_distortion.json").write_text(json.dumps(out, indent=1))
    from bench.report import write_report
    write_report(out, a.out)
    print(f"wrote {a.out / 'rate_distortion.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
