"""The quad filter against per-pixel trilinear: decodes a pixel and GPU rounds a quad, by zoom.

    python -m bench.quad_filter [--size 256] [--ntc FILE] [--out DIR]

Both filters give the same values (exact trilinear filtering of the decoded texture); the quad
filter decodes the union of a 2x2 pixel quad's footprints once, a quarter by each pixel
(shaders/ntc_sample.slang, its plan in ntc_quad.slang). What that saves depends on how many
texels a pixel covers, so the sample-mode harness (export/decode/gl_sample.py) renders a --size² image of the shipped default
set (assets/WaterBottle_ntc, or --ntc) at zooms from 4 pixels a texel (close-up) to 6 texels a
pixel (far), the uv grid turned 30° so footprints straddle texels as on real surfaces, and reports
for each filter: MLP evaluations a pixel (the harness counts them per pixel), rounds a quad (the
largest count among its 4 pixels: what a GPU running the quad's lanes in step pays), the largest
difference between the two filters' stored values, and the frame time on this machine's GL
(draw to glFinish, median of 3: a GL timer query on a GPU, the wall clock on llvmpipe, where it
follows the decodes). export.decode.filters.quad_decodes
predicts the counts and is checked against them here too.

It also models sharing in larger groups than a quad (`group_rounds`), what a subgroup of lanes
handing decodes round (ballot and broadcast) could reach: each group of pixels decodes the union
of its footprints once, spread over its lanes, and pays the rounds its busiest lane runs. That
bounds any exact filter built by sharing decodes, so it says how far issue 13's 1/3 is from reach.
Writes bench/results/quad_filter.md / .json.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np

from bench.output import check_out_folder, machine, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_NTC = ROOT / "assets" / "WaterBottle_ntc" / "M_WaterBottle_MR.ntc"
ZOOMS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 6.0)   # mip-0 texels a pixel
TURN = math.radians(30.0)
# pixel groups (width, height) modelled beyond the quad: llvmpipe's 8-lane subgroup (two quads
# side by side, read off gl_SubGroupInvocationARB), a 32-lane group (a warp's size; how a
# driver lays its lanes out is its own) and a large group, near the limit of unbounded sharing
GROUPS = ((4, 2), (8, 4), (64, 64))


def view(model, zoom: float, size: int):
    """(origin, step_x, step_y) of a harness image: `zoom` texels a pixel, turned by TURN,
    centred on the texture."""
    w, h = model.width, model.height
    c, s = math.cos(TURN), math.sin(TURN)
    step_x = (zoom * c / w, zoom * s / h)
    step_y = (-zoom * s / w, zoom * c / h)
    half = size / 2
    origin = (0.5 - half * (step_x[0] + step_y[0]), 0.5 - half * (step_x[1] + step_y[1]))
    return origin, step_x, step_y


def group_rounds(uv, lod: float, pixel, size: tuple[int, int], tile: tuple[int, int]):
    """(mean rounds a pixel, mean union texels a lane) when every tile-sized group of pixels
    (aligned at multiples of the tile; every group full) decodes the union of its pixels'
    trilinear footprints once, spread evenly over its lanes: a group runs ceil(union / lanes)
    rounds, or each pixel's own 4 a level where that is no more. The harness' lod is the same at
    every pixel, so every group shares its mips."""
    import torch

    from export.decode.filters import footprint_union, mip_sizes, pixel_groups
    group, groups = pixel_groups(pixel, tile)
    mip0 = math.floor(lod)
    levels = 2 if lod > mip0 else 1
    union = torch.zeros(groups, dtype=torch.long)
    for level in range(levels):
        mips = torch.full((pixel.shape[0],), mip0 + level, dtype=torch.long)
        sizes = mip_sizes(size[0], size[1], mips)
        union += footprint_union(uv, sizes, group, groups)
    lanes = tile[0] * tile[1]
    rounds = torch.clamp((union + lanes - 1) // lanes, max=4 * levels)
    return float(rounds.float().mean()), float(union.float().mean()) / lanes


def quad_rounds(decodes: np.ndarray) -> float:
    """Mean over 2x2 quads of the largest count among their pixels."""
    h, w = decodes.shape
    q = decodes[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2)
    return float(q.max(axis=(1, 3)).mean())


def timed_render(harness, size: int, view_args, filt: str):
    """(stored channels, decodes [h, w], GL timer ms, wall ms) of one harness frame; both times
    cover the draw and its completion (glFinish), not the read-back."""
    ctx = harness.tex.ctx
    query = ctx.query(time=True)
    wall = []

    def timed(draw):
        t0 = time.perf_counter()
        with query:
            draw()
        ctx.finish()
        wall.append(time.perf_counter() - t0)
    channels, decodes = harness.render((size, size), *view_args, filt, "repeat", decodes=True,
                                       draw=timed)
    return channels, decodes, query.elapsed / 1e6, 1000 * wall[0]


def measure(harness, model, zoom: float, size: int, clock: str) -> dict:
    import torch

    from export.decode.filters import harness_uv, lod_from_derivatives, quad_decodes
    origin, sx, sy = view(model, zoom, size)
    lod = float(lod_from_derivatives(torch.tensor(sx), torch.tensor(sy),
                                     (model.width, model.height), model.mips))
    row = {"zoom": zoom, "lod": lod}
    values = {}
    for filt in ("trilinear", "quad"):
        runs = [timed_render(harness, size, (origin, sx, sy), filt) for _ in range(3)]
        got, decodes = runs[0][0], runs[0][1]
        values[filt] = got
        row[filt] = {"decodes": float(decodes.mean()), "rounds": quad_rounds(decodes),
                     "gpu_ms": statistics.median(r[2] for r in runs),
                     "wall_ms": statistics.median(r[3] for r in runs)}
        row[filt]["ms"] = row[filt][clock]
        if filt == "quad":
            uv, pixel = harness_uv((size, size), origin, sx, sy)
            plan = quad_decodes(uv, torch.tensor(lod), pixel, (model.width, model.height),
                                model.mips).reshape(size, size).numpy()
            row["plan_matches"] = bool(np.array_equal(plan, decodes))
            row["groups"] = {}
            for tile in GROUPS:
                rounds, per_lane = group_rounds(uv, lod, pixel, (model.width, model.height), tile)
                row["groups"][f"{tile[0]}x{tile[1]}"] = {"rounds": rounds,
                                                         "union_per_lane": per_lane}
    row["max_diff"] = float(np.abs(values["quad"] - values["trilinear"]).max())
    return row


def report(out: dict) -> str:
    lines = ["# Quad filter against per-pixel trilinear", "",
             f"Generated by `python -m bench.quad_filter` on {out['machine']}, GL renderer "
             f"{out['renderer']}. Set {out['set']} ({out['width']}x{out['height']}, {out['mips']} "
             f"mips), harness image {out['size']}x{out['size']}, uv grid turned 30°. Both "
             "filters compute exact trilinear filtering of the decoded texture; *decodes* are "
             "MLP evaluations a pixel as the harness counted them, *rounds* the largest count in "
             "each 2x2 quad (a GPU runs a quad's lanes in step), averaged over the image; times "
             f"are one full harness frame (draw to finish, {out['clock'].replace('_', ' ')}), "
             "median of 3.", "",
             "| texels a pixel | lod | trilinear decodes | quad decodes | quad rounds | "
             "rounds ÷ trilinear | max value diff | trilinear ms | quad ms | time ratio | "
             "plan = GL |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in out["rows"]:
        t, q = r["trilinear"], r["quad"]
        lines.append(f"| {r['zoom']:g} | {r['lod']:.2f} | {t['decodes']:.2f} | "
                     f"{q['decodes']:.2f} | {q['rounds']:.2f} | {q['rounds'] / t['decodes']:.2f} | "
                     f"{r['max_diff']:.1e} | {t['ms']:.0f} | {q['ms']:.0f} | "
                     f"{q['ms'] / t['ms']:.2f} | {'yes' if r['plan_matches'] else 'NO'} |")
    mean = statistics.mean(r["quad"]["rounds"] / r["trilinear"]["decodes"] for r in out["rows"])
    lines += ["", f"Mean of rounds ÷ trilinear decodes over the zooms: {mean:.2f} (issue 13's "
              f"target for the exact filter: 1/3 = 0.33).", ""]
    names = list(out["rows"][0]["groups"])
    lines += ["## Sharing in larger groups (a model, `group_rounds`)", "",
              "Rounds ÷ trilinear decodes if each group of pixels decoded the union of its "
              "footprints once, spread over its lanes (a lane per pixel), the group paying its "
              "busiest lane's rounds; in brackets the union's texels a lane without the rounding "
              "(÷ trilinear decodes), what unlimited sharing approaches. The quad column is the "
              "model at 2x2 (equal to the GL counts above where the quad plan shares).", "",
              "| texels a pixel | lod | 2x2 quad | " + " | ".join(names) + " |",
              "|---:|---:|---:|" + "---:|" * len(names)]
    for r in out["rows"]:
        t = r["trilinear"]["decodes"]
        cells = [f"{g['rounds'] / t:.2f} ({g['union_per_lane'] / t:.2f})"
                 for g in r["groups"].values()]
        lines.append(f"| {r['zoom']:g} | {r['lod']:.2f} | {r['quad']['rounds'] / t:.2f} | "
                     + " | ".join(cells) + " |")
    means = [statistics.mean(r["groups"][n]["rounds"] / r["trilinear"]["decodes"]
                             for r in out["rows"]) for n in names]
    bound = statistics.mean(r["groups"][names[-1]]["union_per_lane"] / r["trilinear"]["decodes"]
                            for r in out["rows"])
    lines += ["", "Mean over the zooms: " + ", ".join(f"{n} {m:.2f}" for n, m in zip(names, means))
              + f"; unrounded union a lane in the largest group {bound:.2f}. A pixel's trilinear "
              "footprint reads mips floor(lod) and floor(lod) + 1, whose texels outnumber the "
              "pixels by 4^frac(lod) and 4^frac(lod) / 4: between mips an exact filter must "
              "decode 1.25 x 4^frac(lod) texels a pixel however widely it shares, against "
              "trilinear's 8.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quad_filter",
                                description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="harness image side (default 256)")
    p.add_argument("--ntc", type=Path, default=DEFAULT_NTC, help="the .ntc file to sample")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    if a.size < 8 or a.size % 2:
        p.error("--size: an even number of at least 8")
    check_out_folder(p, a.out)
    from export.decode.gl_context import create_context
    from export.decode.gl_resources import NTCTextureGL
    from export.decode.gl_sample import GLSampleHarness
    from export.format import read_ntc
    model = read_ntc(a.ntc)
    ctx = create_context()
    tex = NTCTextureGL(model, ctx)
    harness = GLSampleHarness(tex)
    harness.render((8, 8), *view(model, 1.0, 8), "quad")   # compiles the program
    from bench.clocks import cpu_is_work
    renderer = ctx.info["GL_RENDERER"]
    # llvmpipe's timer misses what it rasterises at the flush: the wall clock there
    clock = "wall_ms" if cpu_is_work(renderer) else "gpu_ms"
    rows = []
    for zoom in ZOOMS:
        rows.append(measure(harness, model, zoom, a.size, clock))
        r = rows[-1]
        print(f"zoom {zoom:g}: trilinear {r['trilinear']['decodes']:.2f} decodes, quad "
              f"{r['quad']['decodes']:.2f} ({r['quad']['rounds']:.2f} rounds a quad)", flush=True)
    out = {"machine": machine(), "renderer": renderer, "clock": clock, "set": a.ntc.name,
           "width": model.width, "height": model.height, "mips": model.mips, "size": a.size,
           "rows": rows}
    write_results(a.out, "quad_filter", out, report(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
