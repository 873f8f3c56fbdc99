"""Sample-mode filters that share decodes between the pixels of a 2x2 quad, measured in texture
space before any is built: half a decode a pixel, or more out of one.

    python -m bench.shared_decodes [--ntc FILE] [--size 128] [--zooms 0.5,1,1.5,2,3]
                                   [--frames 1,2,4,8,16] [--out DIR]

Issue 13 asks for the default filter at <= 3,800 MACs a pixel: with today's 7,552-MAC decode, half
a decode a pixel. A GPU runs a quad's 4 lanes in step, so skipping decodes in some lanes saves
nothing; half a decode a pixel means 2 decodes a quad, each split over 2 lanes (each lane the
multiplies of half a layer's inputs, the partial sums handed across with a fine derivative), so
that every lane pays half. Before building that, this bench asks what such a filter would show.
It runs on the PyTorch twin (export.decode.filters) and the decoded set's stored channels, on
bench.quad_filter's harness view (uv grid turned 30°, repeat wrap) at each zoom (mip-0 texels a
pixel), and gives PSNR against exact trilinear filtering of the decoded texture for:

  latent         1 decode a pixel (sample_latent): the default filter's frame in motion
  checkerboard   1/2: the latent decode at one diagonal of each quad, the other two pixels the
                 mean of those two (checkerboard rendering)
  pairs          1/2: one latent decode a horizontal pixel pair, at the pair's centre
  stochastic N   1 a frame (sample_stochastic), the mean of N frames: what the default filter
                 (auto) averages while the view rests
  quad MIS N     1 a frame, each pixel combining the 4 texels its quad drew that frame (each lane
                 draws as the stochastic filter does) by the balance heuristic of multiple
                 importance sampling: coefficient w_p(T) / sum over the quad of w_q(T) for drawn
                 texel T (w: trilinear footprint weight), the coefficients normalised to sum to 1
  quad MIS raw   the same coefficients unnormalised: unbiased (its expectation is the trilinear
                 value, tests/test_bench_shared_decodes.py) but each frame's scale varies

With --out, writes shared_decodes.md / .json there (default bench/results/).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from bench.output import check_out_folder, machine, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_NTC = ROOT / "assets" / "WaterBottle_ntc" / "M_WaterBottle_MR.ntc"
DEFAULT_ZOOMS = (0.5, 1.0, 1.5, 2.0, 3.0)
DEFAULT_FRAMES = (1, 2, 4, 8, 16)


def quad_members(pixel: torch.Tensor) -> torch.Tensor:
    """[4, N] row indices of the 4 pixels (quad places 0..3: x & 1 + 2 (y & 1)) of each pixel's
    quad, for a row-major image of pixels [N, 2] starting at (0, 0) with even sides."""
    width = int(pixel[:, 0].max()) + 1
    qx, qy = pixel[:, 0] // 2 * 2, pixel[:, 1] // 2 * 2
    return torch.stack([(qy + dy) * width + qx + dx for dy in (0, 1) for dx in (0, 1)])


def footprint_texels(uv: torch.Tensor, lod: torch.Tensor, size: tuple[int, int], mips: int):
    """Each pixel's trilinear footprint: mip [N, 8], texel [N, 8, 2] (before wrapping) and weight
    [N, 8] (bilinear in mips floor(lod) and floor(lod) + 1, blended by frac(lod); summing to 1)."""
    from export.decode.filters import _footprint, mip_sizes
    m0 = torch.floor(lod).long()
    t = lod - m0
    mip, texel, weight = [], [], []
    for level in (0, 1):
        m = (m0 + level).clamp(max=mips - 1)
        first, f = _footprint(uv, mip_sizes(*size, m))
        lw = 1.0 - t if level == 0 else t
        for dy in (0, 1):
            for dx in (0, 1):
                mip.append(m)
                texel.append(first + torch.tensor([dx, dy]))
                wx = f[:, 0] if dx else 1.0 - f[:, 0]
                wy = f[:, 1] if dy else 1.0 - f[:, 1]
                weight.append(lw * wx * wy)
    return torch.stack(mip, 1), torch.stack(texel, 1), torch.stack(weight, 1)


def footprint_weight(fp, mip: torch.Tensor, texel: torch.Tensor) -> torch.Tensor:
    """[N] weight of texel (mip [N], texel [N, 2]) in each pixel's footprint fp (footprint_texels),
    0 where it lies outside."""
    fmip, ftexel, fweight = fp
    hit = (fmip == mip[:, None]) & (ftexel == texel[:, None, :]).all(-1)
    return (fweight * hit).sum(1)


def quad_mis_coefficients(fp, members: torch.Tensor, mip: torch.Tensor,
                          texel: torch.Tensor) -> torch.Tensor:
    """[4, N] balance-heuristic coefficients: for each pixel p and quad place k, the weight in p's
    footprint of the texel place k drew (mip, texel: one per pixel) over the summed weights of the
    quad's 4 footprints for it."""
    out = []
    for k in range(4):
        m, t = mip[members[k]], texel[members[k]]
        own = footprint_weight(fp, m, t)
        total = sum(footprint_weight(tuple(a[members[j]] for a in fp), m, t) for j in range(4))
        out.append(own / total)
    return torch.stack(out)


def checkerboard(values: torch.Tensor, width: int) -> torch.Tensor:
    """values [N, C] of a row-major image: places 0 and 3 of each quad kept, 1 and 2 replaced by
    their mean."""
    img = values.reshape(-1, width, values.shape[1]).clone()
    mean = (img[0::2, 0::2] + img[1::2, 1::2]) / 2
    img[0::2, 1::2] = mean
    img[1::2, 0::2] = mean
    return img.reshape(values.shape)


@torch.no_grad()
def measure_zoom(model, decoder, decoded, zoom: float, size: int, frames) -> dict:
    from bench.latent_filter import psnr
    from bench.quad_filter import view
    from export.decode.filters import (REPEAT, _fetch, harness_uv, sample_latent,
                                       sample_trilinear, stochastic_texels)
    origin, step_x, step_y = view(model, zoom, size)
    uv, pixel = harness_uv((size, size), origin, step_x, step_y)
    lod = torch.full((uv.shape[0],), math.log2(zoom)).clamp(0.0, float(model.mips - 1))
    dims = (model.width, model.height)
    exact = sample_trilinear(decoded, uv, lod, REPEAT)
    latent = sample_latent(decoder, uv, lod, REPEAT)
    left = pixel[:, 0] % 2 == 0
    centre = uv[left] + 0.5 * torch.tensor(step_x, dtype=torch.float32)
    pairs = sample_latent(decoder, centre, lod[left], REPEAT).repeat_interleave(2, 0)
    row = {"zoom": zoom, "lod": float(lod[0]), "latent": psnr(latent, exact),
           "checkerboard": psnr(checkerboard(latent, size), exact), "pairs": psnr(pairs, exact)}
    members = quad_members(pixel)
    fp = footprint_texels(uv, lod, dims, model.mips)
    sums = {k: torch.zeros_like(exact) for k in ("stochastic", "quad_mis", "quad_mis_raw")}
    curves = {k: [] for k in sums}
    for f in range(max(frames)):
        mip, texel = stochastic_texels(uv, lod, pixel, f, dims)
        drawn = _fetch(decoded, mip, texel, REPEAT)
        coeff = quad_mis_coefficients(fp, members, mip, texel)
        raw = sum(coeff[k][:, None] * drawn[members[k]] for k in range(4))
        sums["stochastic"] += drawn
        sums["quad_mis_raw"] += raw
        sums["quad_mis"] += raw / coeff.sum(0)[:, None]
        if f + 1 in frames:
            for k, s in sums.items():
                curves[k].append([f + 1, psnr(s / (f + 1), exact)])
    row.update(curves)
    return row


def markdown(out: dict) -> str:
    frames = [n for n, _ in out["rows"][0]["stochastic"]]
    head = " | ".join(f"{n}" for n in frames)
    lines = ["# Decodes shared in the 2x2 quad, in texture space", "",
             f"Generated by `python -m bench.shared_decodes` on {out['machine']}. Set "
             f"`{out['ntc']}` ({out['width']}x{out['height']}, {out['mips']} mips), harness "
             f"{out['size']}², uv grid turned 30°, repeat wrap. PSNR (dB) of the stored channels "
             "against exact trilinear filtering of the decoded texture (what load mode and the "
             "trilinear filter give). Decodes a pixel: latent 1, checkerboard and pairs 1/2 (a "
             "quad's 2 decodes split over its 4 lanes), stochastic and quad MIS 1 a frame.", "",
             "One frame (in motion):", "",
             "| texels a pixel | lod | latent (1) | checkerboard (1/2) | pairs (1/2) | "
             "stochastic (1) | quad MIS (1) | quad MIS raw (1) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in out["rows"]:
        lines.append(f"| {r['zoom']:g} | {r['lod']:.2f} | {r['latent']:.2f} | "
                     f"{r['checkerboard']:.2f} | {r['pairs']:.2f} | {r['stochastic'][0][1]:.2f} | "
                     f"{r['quad_mis'][0][1]:.2f} | {r['quad_mis_raw'][0][1]:.2f} |")
    lines += ["", "The mean of N frames (a still view), stochastic / quad MIS:", "",
              f"| texels a pixel | {head} |", "|---:|" + "---:|" * len(frames)]
    for r in out["rows"]:
        cells = " | ".join(f"{a[1]:.2f} / {b[1]:.2f}" for a, b in zip(r["stochastic"],
                                                                      r["quad_mis"]))
        lines.append(f"| {r['zoom']:g} | {cells} |")
    return "\n".join(lines) + "\n"


def _numbers(text: str, kind, what: str, p) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v]
    except ValueError:
        p.error(f"{what} {text}: expected comma-separated numbers")
    if not values or min(values) <= 0:
        p.error(f"{what} {text}: expected positive numbers")
    return values


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.shared_decodes", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ntc", type=Path, default=DEFAULT_NTC,
                   help="the .ntc set (default: the shipped default scene's)")
    p.add_argument("--size", type=int, default=128, help="harness image side, even (default 128)")
    p.add_argument("--zooms", default=",".join(f"{z:g}" for z in DEFAULT_ZOOMS),
                   help="mip-0 texels a pixel, comma-separated (default %(default)s)")
    p.add_argument("--frames", default=",".join(map(str, DEFAULT_FRAMES)),
                   help="frame counts of the still-view means (default %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    zooms = _numbers(a.zooms, float, "--zooms", p)
    frames = sorted(set(_numbers(a.frames, int, "--frames", p)))
    if a.size < 2 or a.size % 2:
        p.error("--size: an even number of pixels, at least 2")
    if not a.ntc.is_file():
        p.error(f"{a.ntc} does not exist")
    check_out_folder(p, a.out)
    from export.decode.reference import FileDecoder
    from export.errors import NTCError, one_line
    from export.format import read_ntc
    torch.set_num_threads(1)
    try:
        model = read_ntc(a.ntc)
    except NTCError as e:
        print(f"bench.shared_decodes: {one_line(e)}", file=sys.stderr)
        return 1
    decoder = FileDecoder.from_model(model)
    decoded = [decoder.stored_mip(m) for m in range(model.mips)]
    rows = []
    for z in zooms:
        rows.append(measure_zoom(model, decoder, decoded, z, a.size, frames))
        print(f"  {z:g} texels a pixel: latent {rows[-1]['latent']:.2f}, checkerboard "
              f"{rows[-1]['checkerboard']:.2f} dB", flush=True)
    out = {"machine": machine(), "ntc": str(a.ntc.resolve().relative_to(ROOT))
           if a.ntc.resolve().is_relative_to(ROOT) else str(a.ntc),
           "width": model.width, "height": model.height, "mips": model.mips, "size": a.size,
           "rows": rows}
    write_results(a.out, "shared_decodes", out, markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
