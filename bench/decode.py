"""Decode throughput on whatever OpenGL 4.5 context EGL gives (Mesa llvmpipe on a CPU machine),
measured in one run, against plain texture sampling of the same set.

    python -m bench.decode [--ntc FILE] [--screen 1920x1080] [--repeats 5]

Rows (one function each, `ROWS`; every row takes the `Bench` (context, set, options) and returns
`_row(...)`: name, work, GPU / wall ms, rate, so sample-mode filters can be added as rows):
  load mode    the whole set, every mip, decoded into GL textures (viewer/gl_decode.py:
               GLTextureDecoder.decode_into), Mtexel/s = MLP evaluations (texel positions over all
               mips) per second
  baseline     a full-screen pass sampling every texture of the set, stored as RGBA8 with mips,
               with texture() and trilinear filtering, minified (2.5 texels a pixel, so two mips
               blend); Mpixel/s
GPU time is GL timer queries (ctx.query(time=True)), median of --repeats runs after a warm-up run;
wall time is the same runs on the clock, ending with ctx.finish(). Each row gives its rate both
ways: llvmpipe's GL_TIME_ELAPSED does not cover a draw it rasterises later (at the flush), so a
single full-screen draw reads ~0.1 ms there against ~100 ms on the clock; a row whose timer reads
under half its wall time is flagged and its wall figure is the one to use.

The default set is the shipped WaterBottle (512^2) with an untrained network of the default
preset's shape: decode cost depends on the shapes, not on the weights. Writes
bench/results/decode.md and decode.json. About 15 s on llvmpipe with one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from export import layout
from export.format import from_bytes, read_ntc, to_bytes
from export.model import NTCModel
from viewer.gl_decode import GLTextureDecoder, decode_to_textures
from viewer.gl_resources import NTCTextureGL, build_program, create_context

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_SET = ROOT / "assets" / "WaterBottle"
TEXELS_PER_PIXEL = 2.5  # baseline minification: lod ~ 1.32, trilinear blends mips 1 and 2


def default_model() -> NTCModel:
    """The shipped WaterBottle set's channel plan with an untrained network of the default
    preset's shape (what ntc-compress picks without --bpp), through the file format."""
    from trainer.compress import DEFAULT_BPP
    from trainer.network import NeuralTexture
    from trainer.presets import pick_for_bpp, preset_table
    from trainer.targets import plan_channels
    from trainer.textures import load_texture_set

    tset = load_texture_set(DEFAULT_SET)
    infos, stored = plan_channels(tset)
    w, h = tset.size
    name, cfg, _ = pick_for_bpp(preset_table(w, h, stored, infos), DEFAULT_BPP)
    net = NeuralTexture(cfg, w, h, stored)
    return from_bytes(to_bytes(net.export(infos, {"preset": name, "untrained": True})))


def mlp_macs(model: NTCModel) -> dict:
    """Multiply-adds per decoded texel: the file's layer shapes, and what the shader runs (every
    width padded to a multiple of 4, ntc_decode.slang's vec4s)."""
    dims = model.mlp_dims
    return {"file": sum(i * o for i, o in dims),
            "shader": sum(layout.pad4(i) * layout.pad4(o) for i, o in dims),
            "layers": [list(d) for d in dims]}


def timed(ctx, run, repeats: int) -> tuple[list[float], list[float], float]:
    """(GPU ms per run, wall ms per run, first run's wall ms): one warm-up run (the driver
    compiles the program at its first draw), then `repeats` runs, each timed by a GL timer query
    and on the clock."""
    t0 = time.perf_counter()
    run()
    ctx.finish()
    first = (time.perf_counter() - t0) * 1e3
    query = ctx.query(time=True)
    gpu, wall = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with query:
            run()
        ctx.finish()
        wall.append((time.perf_counter() - t0) * 1e3)
        gpu.append(query.elapsed / 1e6)
    return gpu, wall, first


@dataclass
class Bench:
    ctx: object          # moderngl.Context
    model: NTCModel
    repeats: int
    screen: tuple[int, int]

    @cached_property
    def rgba8_mip0(self) -> list[np.ndarray]:
        """Mip 0 of every texture of the set as [h, w, 4] uint8 (decoded once, in load mode)."""
        with NTCTextureGL(self.model, self.ctx) as tex:
            decoded = decode_to_textures(tex)
        out = []
        for d in decoded:
            pixels = d.read(0)
            d.release()
            rgba = np.full((*pixels.shape[:2], 4), 255, np.uint8)
            rgba[..., :pixels.shape[2]] = pixels if pixels.dtype == np.uint8 else pixels >> 8
            out.append(rgba)
        return out


def _row(name: str, work: str, gpu: list[float], wall: list[float], first: float, items: int,
         unit: str, **extra) -> dict:
    """One table row: `items` (texels, pixels) per run, rates in millions per second."""
    gpu_ms, wall_ms = statistics.median(gpu), statistics.median(wall)
    return {"name": name, "work": work, "gpu_ms": gpu_ms, "wall_ms": wall_ms,
            "first_run_ms": first, "items": items, "unit": unit,
            "rate_gpu": items / gpu_ms / 1e3, "rate_wall": items / wall_ms / 1e3,
            "timer_covers_work": gpu_ms >= 0.5 * wall_ms,
            "gpu_ms_runs": gpu, "wall_ms_runs": wall, **extra}


# ----------------------------------------------------------------------------------------------
# rows

def row_load_mode(b: Bench) -> dict:
    """Every mip of every texture decoded into GL textures (exact latent fetch, the default)."""
    ctx, model = b.ctx, b.model
    texels = sum(w * h for w, h in (layout.mip_size(model.width, model.height, m)
                                    for m in range(model.mips)))
    with NTCTextureGL(model, ctx) as tex:
        dec = GLTextureDecoder(tex)
        textures = dec.allocate()
        try:
            gpu, wall, first = timed(ctx, lambda: dec.decode_into(textures), b.repeats)
            decoded_bytes = sum(d.bytes for d in textures)
            formats = [d.internal_format for d in textures]
        finally:
            for d in textures:
                d.release()
            dec.release()
    n = len(model.textures)
    return _row("load mode: decode set into GL textures", f"{n} textures x {model.mips} mips "
                f"({texels:,} texel positions)", gpu, wall, first, texels, "Mtexel/s",
                decoded_bytes=decoded_bytes, formats=formats)


BASELINE_VERTEX = """#version 450
in vec2 position;
void main() { gl_Position = vec4(position, 0.0, 1.0); }
"""


def baseline_fragment(n: int) -> str:
    """Samples each of n textures once at a minified, screen-aligned uv; sums them so none is
    optimised away."""
    taps = "\n".join(f"    acc += texture(tex{i}, uv);" for i in range(n))
    samplers = "\n".join(f"layout(binding = {i}) uniform sampler2D tex{i};" for i in range(n))
    return f"""#version 450
{samplers}
uniform vec2 uvPerPixel;
out vec4 color;
void main()
{{
    vec2 uv = gl_FragCoord.xy * uvPerPixel;
    vec4 acc = vec4(0.0);
{taps}
    color = acc * {1.0 / n!r};
}}
"""


def row_texture_baseline(b: Bench) -> dict:
    """The set as RGBA8 textures with mips (the load-mode result at mip 0, mips by
    glGenerateMipmap), sampled with texture() and trilinear filtering over a full screen."""
    ctx, model = b.ctx, b.model
    sw, sh = b.screen
    textures = []
    for rgba in b.rgba8_mip0:
        t = ctx.texture((model.width, model.height), 4, rgba.tobytes())
        t.build_mipmaps()  # GL_LINEAR_MIPMAP_LINEAR, repeat
        textures.append(t)
    program = build_program(ctx, BASELINE_VERTEX, baseline_fragment(len(textures)), "baseline")
    program["uvPerPixel"] = (TEXELS_PER_PIXEL / model.width, TEXELS_PER_PIXEL / model.height)
    vbo = ctx.buffer(np.array([-1.0, -1.0, 3.0, -1.0, -1.0, 3.0], np.float32).tobytes())
    vao = ctx.vertex_array(program, [(vbo, "2f", "position")])
    target = ctx.texture((sw, sh), 4)
    fbo = ctx.framebuffer([target])
    home = ctx.fbo

    def draw():
        fbo.use()
        for i, t in enumerate(textures):
            t.use(i)
        vao.render(vertices=3)

    try:
        gpu, wall, first = timed(ctx, draw, b.repeats)
    finally:
        home.use()
        for obj in (fbo, target, vao, vbo, program, *textures):
            obj.release()
    return _row("baseline: texture() of the set as RGBA8 + mips", f"{sw}x{sh} pixels x "
                f"{len(textures)} trilinear samples ({TEXELS_PER_PIXEL} texels/pixel)", gpu, wall,
                first, sw * sh, "Mpixel/s")


ROWS = [row_load_mode, row_texture_baseline]


# ----------------------------------------------------------------------------------------------
# report

def table(rows: list[dict]) -> str:
    lines = ["| row | work per run | GPU ms (timer, median) | wall ms (median) | first run ms | "
             "rate by timer | rate by wall |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        flag = "" if r["timer_covers_work"] else " (timer misses the work)"
        lines.append(f"| {r['name']} | {r['work']} | {r['gpu_ms']:.2f}{flag} | {r['wall_ms']:.2f} "
                     f"| {r['first_run_ms']:.0f} | {r['rate_gpu']:.3f} {r['unit']} | "
                     f"{r['rate_wall']:.3f} {r['unit']} |")
    return "\n".join(lines)


def report(out: dict) -> str:
    m, load, base = out["macs_per_texel"], out["rows"][0], out["rows"][1]
    # one clock for both sides of a comparison: the timer where it covers every row's work
    key = "gpu_ms" if all(r["timer_covers_work"] for r in out["rows"]) else "wall_ms"
    clock = "GL timer" if key == "gpu_ms" else "wall clock"
    texel_rate = load["items"] / load[key] / 1e3
    lines = [
        "# Decode throughput",
        "",
        f"Device: `{out['device']}` ({out['gl_version']}); LP_NUM_THREADS={out['lp_num_threads']}.",
        f"Set: {out['set']} ({out['width']}x{out['height']}, {out['mips']} mips, "
        f"{out['textures']} textures, {out['stored_channels']} stored channels); network "
        f"{out['network']}.",
        f"MLP per decoded texel: {m['file']:,} MACs as stored in the file "
        f"({2 * m['file']:,} FLOPs), {m['shader']:,} MACs as the shader runs them (widths padded "
        f"to vec4); layers (in, out) {m['layers']}.",
        f"Median of {out['repeats']} runs after a warm-up run (the first run includes the "
        f"driver's compile, unless Mesa's shader cache already holds the program).",
        "",
        table(out["rows"]),
        "",
        f"- Load mode ({clock}): {texel_rate:.3f} Mtexel/s, "
        f"{texel_rate * out['textures']:.3f} M output texels/s over {out['textures']} textures, "
        f"{2 * m['shader'] * texel_rate / 1e3:.2f} GFLOP/s of MLP; the decoded set takes "
        f"{load['decoded_bytes']:,} bytes ({', '.join(load['formats'])}).",
        f"- Decoding the whole set once costs {load[key] / base[key]:.1f} baseline frames at "
        f"{out['screen'][0]}x{out['screen'][1]} ({clock}).",
    ]
    if out["screen"] != [1920, 1080]:
        lines.append(f"- Full-screen size reduced to {out['screen'][0]}x{out['screen'][1]} "
                     f"(--screen); the default is 1920x1080.")
    return "\n".join(lines) + "\n"


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.splitlines()[0])
    p.add_argument("--ntc", help=".ntc file to decode (default: WaterBottle, default preset's "
                                 "shape, untrained)")
    p.add_argument("--screen", type=parse_size, default=(1920, 1080),
                   help="full-screen size of the baseline (default 1920x1080)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per row after a warm-up")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for decode.md / decode.json")
    args = p.parse_args(argv)

    model = read_ntc(args.ntc) if args.ntc else default_model()
    ctx = create_context()
    out = {
        "device": ctx.info["GL_RENDERER"], "gl_version": ctx.info["GL_VERSION"],
        "lp_num_threads": os.environ.get("LP_NUM_THREADS", "unset"),
        "set": args.ntc or f"{DEFAULT_SET.relative_to(ROOT)} (untrained, preset "
                           f"{model.extra.get('preset')})",
        "width": model.width, "height": model.height, "mips": model.mips,
        "textures": len(model.textures), "stored_channels": model.stored_channels,
        "network": f"{model.latent.features} features x {model.latent.bits} bits, grid scale "
                   f"{model.latent.grid_scale}, {model.latent.hr_sampling}, "
                   f"{model.weight_format} weights",
        "macs_per_texel": mlp_macs(model), "repeats": args.repeats, "screen": list(args.screen),
        "rows": [],
    }
    print(f"device: {out['device']}; set {out['set']}, {model.width}x{model.height}")
    bench = Bench(ctx, model, args.repeats, args.screen)
    for row in ROWS:
        r = row(bench)
        print(f"  {r['name']}: {r['gpu_ms']:.2f} GPU ms, {r['wall_ms']:.2f} wall ms, "
              f"{r['rate_wall']:.3f} {r['unit']} by wall")
        out["rows"].append(r)
    ctx.release()
    md = report(out)
    print()
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decode.json").write_text(json.dumps(out, indent=1))
    (args.out / "decode.md").write_text(md)
    print(f"wrote {args.out / 'decode.md'} and {args.out / 'decode.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
