"""The latent filter against trilinear filtering, in texture space: what sample mode's one decode
a pixel gives between texel centres and between mips, for .ntc files of the same sources.

    python -m bench.latent_filter SOURCE FILE.ntc [FILE.ntc ...] [--lods 0,0.5,1,2]
                                  [--samples N] [--out DIR]

SOURCE is what the files were compressed from: a texture folder, or a glTF scene (its first
textured material). For every file and LOD, at N uv drawn uniformly over the texture (repeat wrap,
seed 0), PSNR on the stored channels ([0, 1] scale; the file's channels matched to the source's
by texture file name) of:
  exact     trilinear filtering of the decoded texture (what load mode and the exact filters give)
            against trilinear filtering of the source at the same uv and LOD;
  latent    the latent filter (export.decode.filters.sample_latent: one decode at the nearest mip)
            against the same;
  latent vs exact   the latent filter against trilinear filtering of the decoded texture: the
            filter's own approximation, whatever the compression lost.
The texture-space figures of bench/choices.md's row on training between texel centres
(`--between-share`). With --out, writes latent_filter.md and .json there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench.output import check_out_folder, write_results
from export.metrics import psnr_from_mse

DEFAULT_LODS = (0.0, 0.5, 1.0, 2.0)


def load_source(path: Path):
    """The TextureSet of a folder, or of a glTF scene's first textured material."""
    from trainer.textures import load_texture_set
    if path.suffix.lower() not in (".gltf", ".glb"):
        return load_texture_set(path)
    from export.gltf import load_scene
    from trainer.gltf import material_texture_set
    scene = load_scene(path, log=None)
    for material in scene.materials:
        tset = material_texture_set(scene, material, log=lambda *a, **k: None)
        if tset is not None:
            return tset
    raise SystemExit(f"bench.latent_filter: {path}: no textured material")


def source_mips(tset, model) -> list[torch.Tensor]:
    """The source's mip chain as [h, w, stored] in the file's stored-channel order."""
    from trainer.targets import build_targets, plan_channels
    infos, stored = plan_channels(tset)
    targets = build_targets(tset, infos, stored)
    by_file = {i.file: i for i in infos}
    order = [0] * model.stored_channels
    for tex in model.textures:
        source = by_file.get(tex.file)
        if source is None:
            raise SystemExit(f"bench.latent_filter: the file's texture {tex.file} is not in the source")
        for mine, theirs in zip(tex.channels, source.channels):
            if mine.kind == "stored":
                order[mine.index] = theirs.index
    out = []
    for m, (w, h) in enumerate(targets.mip_sizes.tolist()):
        rows = targets.values[int(targets.mip_offsets[m]):int(targets.mip_offsets[m + 1])]
        out.append(rows.reshape(h, w, -1)[..., order])
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of stored channels on their [0, 1] scale, as the decoder clamps them."""
    return psnr_from_mse(float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


@torch.no_grad()
def measure(tset, ntc: Path, lods, samples: int) -> dict:
    from export.decode.filters import REPEAT, sample_latent, sample_trilinear
    from export.decode.reference import FileDecoder
    from export.format import read_ntc
    model = read_ntc(ntc)
    if (model.width, model.height) != tuple(tset.size):
        raise SystemExit(f"bench.latent_filter: {ntc} is {model.width}x{model.height}, the source "
                         f"{tset.size[0]}x{tset.size[1]}")
    dec = FileDecoder.from_model(model)
    source = source_mips(tset, model)
    decoded = [dec.stored_mip(m) for m in range(model.mips)]
    gen = torch.Generator().manual_seed(0)
    rows = []
    for lod in lods:
        uv = torch.rand(samples, 2, generator=gen)
        level = torch.full((samples,), float(lod))
        ref = sample_trilinear(source, uv, level, REPEAT)
        exact = sample_trilinear(decoded, uv, level, REPEAT)
        latent = sample_latent(dec, uv, level, REPEAT)
        rows.append({"lod": lod, "exact": psnr(exact, ref), "latent": psnr(latent, ref),
                     "latent_vs_exact": psnr(latent, exact)})
    return {"file": str(ntc), "extra": model.extra, "rows": rows}


def markdown(out: dict) -> str:
    lines = ["# Latent filter against trilinear filtering", "",
             f"Source: `{out['source']}`; {out['samples']:,} uv per LOD, repeat wrap, stored "
             "channels. PSNR (dB) against trilinear filtering of the source (exact, latent) and "
             "of the decoded texture (latent vs exact).", "",
             "| file | LOD | exact | latent | latent vs exact |", "|---|---:|---:|---:|---:|"]
    for f in out["files"]:
        for r in f["rows"]:
            lines.append(f"| {Path(f['file']).name} | {r['lod']:g} | {r['exact']:.2f} | "
                         f"{r['latent']:.2f} | {r['latent_vs_exact']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latent_filter", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="texture folder or glTF scene the files were made from")
    p.add_argument("ntc", type=Path, nargs="+", help=".ntc files to measure")
    p.add_argument("--lods", default=",".join(f"{v:g}" for v in DEFAULT_LODS),
                   help="comma-separated LODs (default %(default)s)")
    p.add_argument("--samples", type=int, default=40000, help="uv per LOD (default %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="write latent_filter.md/.json here")
    a = p.parse_args(argv)
    try:
        lods = [float(v) for v in a.lods.split(",")]
    except ValueError:
        p.error(f"--lods {a.lods}: expected numbers like 0,0.5,1")
    if a.samples < 1 or min(lods) < 0:
        p.error("--samples at least 1, LODs at least 0")
    for path in (a.source, *a.ntc):
        if not path.exists():
            p.error(f"{path} does not exist")
    if a.out is not None:
        check_out_folder(p, a.out)
    from export.errors import NTCError, one_line
    torch.set_num_threads(1)
    try:
        tset = load_source(a.source)
        out = {"source": str(a.source), "samples": a.samples,
               "files": [measure(tset, f, lods, a.samples) for f in a.ntc]}
    except NTCError as e:
        print(f"bench.latent_filter: error: {one_line(e)}", file=sys.stderr)
        return 1
    md = markdown(out)
    if a.out is None:
        print(md)
    else:
        write_results(a.out, "latent_filter", out, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
