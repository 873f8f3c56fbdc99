"""Decode throughput on whatever OpenGL 4.5 context EGL gives (Mesa llvmpipe on a CPU machine),
measured in one run, against plain texture sampling of the same set.

    python -m bench.decode [--ntc FILE] [--size 1920x1080] [--repeats 5] [--sample-repeats 1]

Rows (one function each, `ROWS`; every row takes the `Bench` (context, set, options) and returns
`_row(...)`: name, work, GPU / wall ms, rate):
  load mode    the whole set, every mip, decoded into GL textures (export/decode/gl_load.py:
               GLTextureDecoder.decode_into), Mtexel/s = MLP evaluations (texel positions over all
               mips) per second
  baseline     a full-screen pass sampling every texture of the set, stored as RGBA8 with mips,
               with texture() and trilinear filtering, minified (2.5 texels a pixel, so two mips
               blend); Mpixel/s
  sample fp16  where the context reports a 16-bit float extension (export/decode/precision.py),
               the same passes with the MLP in 16-bit floats (the *_half programs); none on llvmpipe
  sample mode  one full-screen pass per filter (latent, stochastic, trilinear) of the sample-mode
               harness (shaders/ntc_sample_harness.slang's generated GLSL, as export/decode/gl_sample.py
               builds it), every pixel calling ntcSample for all stored channels, at the baseline's
               view (same uv per pixel, so lambda = log2(2.5) ~ 1.32: latent decodes mip 1 once,
               stochastic one texel of mip 1 or 2, trilinear 4 + 4 texels of mips 1 and 2);
               Mpixel/s, and in the report the cost as a ratio to the baseline of the same run
GPU time is GL timer queries (ctx.query(time=True)), median of --repeats runs after a warm-up run;
wall time is the same runs on the clock, ending with ctx.finish(). Each row gives its rate both
ways: llvmpipe's GL_TIME_ELAPSED does not cover a draw it rasterises later (at the flush), so a
single full-screen draw reads ~0.1 ms there against ~100 ms on the clock; a row whose timer reads
under half its wall time is flagged and its wall figure is the one to use. Ratios between rows use
one clock for all of them (the wall clock as soon as one row's timer misses its work). Each run also
records the process's CPU time (all threads): on a software renderer that is the rendering work,
steady where the wall clock of a shared machine is not, so on llvmpipe the report gives the
sample-mode ratios by CPU time too and rests its filter-to-filter conclusions on it.

A 1080p sample-mode frame costs seconds on llvmpipe (trilinear about 90 s with one thread), so the
sample rows run --sample-repeats timed frames (default 1) after a warm-up draw of 16x16 pixels into
the same framebuffer (which makes the driver compile the program, filter being a uniform).

The default set is the shipped WaterBottle (512^2) with an untrained network of the default
preset's shape: decode cost depends on the shapes, not on the weights. Writes
bench/results/decode.md and decode.json. About 2.5 minutes on llvmpipe with one thread and a core
to itself, longer on a loaded machine (the trilinear frame is most of it).

Why this module is long: it is one experiment, its fixture (Bench), the rows it times against one
another and its CLI, which share the fixture's state; the report is in decode_report.py.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from bench.decode_report import report
from bench.output import write_results
from export import layout
from export.arguments import image_size
from export.format import from_bytes, read_ntc, to_bytes
from export.model import NTCModel
from export.decode.gl_load import VERTEX as LOAD_VERTEX
from export.decode.gl_load import GLTextureDecoder, decode_to_textures
from export.decode.gl_context import FullscreenTriangle, build_program, create_context
from export.decode.gl_resources import NTCTextureGL
from export.decode.gl_sample import FRAGMENT as SAMPLE_FRAGMENT
from export.decode.gl_sample import VERTEX as SAMPLE_VERTEX
from export.decode.gl_sample import GLSampleHarness
from export.decode.precision import FP32, Precision, half_extension, no_half_reason, resolve
from export.decode.network_block import macs_per_decode
from shaders.glsl import half_name
from shaders.interface import DECODES_PER_PIXEL

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_SET = ROOT / "assets" / "WaterBottle"
TEXELS_PER_PIXEL = 2.5  # baseline minification: lod ~ 1.32, trilinear blends mips 1 and 2
SAMPLE_WARMUP = (16, 16)  # pixels drawn by a sample row's warm-up (compiles the program)


def default_model() -> NTCModel:
    """The shipped WaterBottle set's channel plan with an untrained network of the default
    preset's shape (what ntc-compress picks without --bpp), through the file format."""
    from trainer.compress import DEFAULT_BPP
    from trainer.hr_choice import resolve_network
    from trainer.network import NetworkConfig, NeuralTexture
    from trainer.presets import fit_for_bpp, preset_table
    from trainer.targets import build_targets, plan_channels
    from trainer.textures import load_texture_set

    tset = load_texture_set(DEFAULT_SET)
    infos, stored = plan_channels(tset)
    w, h = tset.size
    network, _ = resolve_network(NetworkConfig(), build_targets(tset, infos, stored))
    name, cfg, _ = fit_for_bpp(preset_table(w, h, stored, infos, network), DEFAULT_BPP, w, h,
                               stored, infos)
    net = NeuralTexture(cfg, w, h, stored)
    return from_bytes(to_bytes(net.export(infos, {"preset": name, "untrained": True})))


def decoder_sources() -> dict[str, str]:
    """sha256 (12 hex digits) of each generated GLSL file the decode rows compile, as it is on disk
    now: the measured decoder is the working tree's, and a run can say if it changed under it."""
    out = {}
    for name in (LOAD_VERTEX, GLTextureDecoder.fragment, SAMPLE_VERTEX, SAMPLE_FRAGMENT,
                 half_name(SAMPLE_FRAGMENT)):
        path = ROOT / "shaders" / "generated" / name
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else None
    return out


def sources_vs_head(names) -> str:
    """'as committed', 'modified' (differs from git HEAD) or 'unknown' (no git)."""
    try:
        r = subprocess.run(["git", "diff", "--quiet", "HEAD", "--",
                            *(f"shaders/generated/{n}" for n in names)], cwd=ROOT,
                           capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return {0: "as committed", 1: "modified"}.get(r.returncode, "unknown")


def timed(ctx, run, repeats: int, warmup=None
          ) -> tuple[list[float], list[float], float, list[float]]:
    """(GPU ms per run, wall ms per run, warm-up's wall ms, CPU ms per run): one warm-up run (the
    driver compiles the program at its first draw; `warmup` instead of `run` when given), then
    `repeats` runs, each timed by a GL timer query, on the clock and by this process's CPU time
    (all its threads: on llvmpipe the rasteriser's work, which tells a run slowed by other load on
    the machine from a slow run)."""
    t0 = time.perf_counter()
    (warmup or run)()
    ctx.finish()
    first = (time.perf_counter() - t0) * 1e3
    query = ctx.query(time=True)
    gpu, wall, cpu = [], [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        with query:
            run()
        ctx.finish()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        gpu.append(query.elapsed / 1e6)
    return gpu, wall, first, cpu


@dataclass
class Bench:
    ctx: object          # moderngl.Context
    model: NTCModel
    repeats: int
    screen: tuple[int, int]
    sample_repeats: int = 1
    _sample_passes: dict = field(default_factory=dict, repr=False)  # precision -> SamplePass

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

    def sample_pass(self, precision: str = "fp32") -> "SamplePass":
        """The sample-mode harness program for the set in `precision` ("fp32" or "fp16"), shared
        by the sample rows."""
        if precision not in self._sample_passes:
            self._sample_passes[precision] = SamplePass(self.ctx, self.model,
                                                        resolve(self.ctx, precision))
        return self._sample_passes[precision]

    def release(self) -> None:
        for sp in self._sample_passes.values():
            sp.release()
        self._sample_passes.clear()


def _row(name: str, work: str, gpu: list[float], wall: list[float], first: float, items: int,
         unit: str, cpu: list[float], **extra) -> dict:
    """One table row: `items` (texels, pixels) per run, rates in millions per second."""
    gpu_ms, wall_ms = statistics.median(gpu), statistics.median(wall)
    return {"name": name, "work": work, "gpu_ms": gpu_ms, "wall_ms": wall_ms,
            "first_run_ms": first, "items": items, "unit": unit,
            "rate_gpu": items / gpu_ms / 1e3, "rate_wall": items / wall_ms / 1e3,
            "timer_covers_work": gpu_ms >= 0.5 * wall_ms,
            "cpu_ms": statistics.median(cpu),
            "gpu_ms_runs": gpu, "wall_ms_runs": wall, "cpu_ms_runs": cpu, **extra}


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
            gpu, wall, first, cpu = timed(ctx, lambda: dec.decode_into(textures), b.repeats)
            decoded_bytes = sum(d.bytes for d in textures)
            formats = [d.internal_format for d in textures]
        finally:
            for d in textures:
                d.release()
            dec.release()
    n = len(model.textures)
    return _row("load mode: decode set into GL textures", f"{n} textures x {model.mips} mips "
                f"({texels:,} texel positions)", gpu, wall, first, texels, "Mtexel/s", cpu,
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
    triangle = FullscreenTriangle(ctx, program, "position")
    target = ctx.texture((sw, sh), 4)
    fbo = ctx.framebuffer([target])
    home = ctx.fbo

    def draw():
        fbo.use()
        for i, t in enumerate(textures):
            t.use(i)
        triangle.render()

    try:
        gpu, wall, first, cpu = timed(ctx, draw, b.repeats)
    finally:
        home.use()
        triangle.release()
        for obj in (fbo, target, program, *textures):
            obj.release()
    return _row("baseline: texture() of the set as RGBA8 + mips", f"{sw}x{sh} pixels x "
                f"{len(textures)} trilinear samples ({TEXELS_PER_PIXEL} texels/pixel)", gpu, wall,
                first, sw * sh, "Mpixel/s", cpu)


class SamplePass:
    """The sample-mode harness (export/decode/gl_sample.py: GLSampleHarness, the generated GLSL of
    ntc_sample_harness.slang specialised for the set) on its own copy of the set, drawn into a
    framebuffer that stays bound across runs, without reading it back."""

    def __init__(self, ctx, model: NTCModel, precision: Precision = FP32):
        self.tex = NTCTextureGL(model, ctx, precision)
        try:
            self.harness = GLSampleHarness(self.tex)
        except BaseException:
            self.tex.release()
            raise
        self.targets = self.harness.targets

    def release(self) -> None:
        self.harness.release()
        self.tex.release()


def row_sample(filter_mode: str, precision: str = "fp32"):
    """The row function of one sample-mode filter, the MLP in `precision`."""

    def row(b: Bench) -> dict:
        ctx, model = b.ctx, b.model
        sw, sh = b.screen
        sp = b.sample_pass(precision)
        # the baseline's view: uv = gl_FragCoord.xy * uvPerPixel, repeat wrap
        step_x = (TEXELS_PER_PIXEL / model.width, 0.0)
        step_y = (0.0, TEXELS_PER_PIXEL / model.height)
        sp.harness.write_block((0.0, 0.0), step_x, step_y, filter_mode,
                               hardware_derivatives=True)
        # RGBA8 targets, as the baseline's: what a frame writes is not what is measured
        targets = [ctx.texture((sw, sh), 4) for _ in range(sp.targets)]
        fbo = ctx.framebuffer(color_attachments=targets)
        home = ctx.fbo

        def draw(size=(sw, sh)):
            fbo.use()
            ctx.viewport = (0, 0, *size)
            sp.harness.draw()

        try:
            gpu, wall, first, cpu = timed(ctx, draw, b.sample_repeats,
                                     warmup=lambda: draw(SAMPLE_WARMUP))
            err = ctx.error
        finally:
            home.use()
            fbo.release()
            for t in targets:
                t.release()
        if err != "GL_NO_ERROR":
            raise RuntimeError(f"sample-mode {filter_mode} pass failed: {err}")
        evals = DECODES_PER_PIXEL[filter_mode]
        half = " (fp16 MLP)" if precision == "fp16" else ""
        return _row(f"sample mode: {filter_mode} filter{half}", f"{sw}x{sh} pixels x {evals} MLP "
                    f"eval{'s' if evals > 1 else ''} ({model.stored_channels} stored channels, "
                    f"{sp.targets} RGBA8 targets)", gpu, wall, first, sw * sh, "Mpixel/s", cpu,
                    filter=filter_mode, mlp_evals_per_pixel=evals, precision=precision,
                    repeats=b.sample_repeats, warmup_pixels=list(SAMPLE_WARMUP))

    suffix = "_fp16" if precision == "fp16" else ""
    row.__name__ = row.__qualname__ = f"row_sample_{filter_mode}{suffix}"
    row.__doc__ = (f"Sample mode, {filter_mode} filter, MLP in {precision}, over a full screen at "
                   f"the baseline's view.")
    return row


SAMPLE_FILTERS = ("latent", "stochastic", "trilinear")
ROWS = [row_load_mode, row_texture_baseline, *(row_sample(f) for f in SAMPLE_FILTERS)]
HALF_ROWS = [row_sample(f, "fp16") for f in SAMPLE_FILTERS]  # where the driver has 16-bit floats


def measure(ctx, model: NTCModel, set_name: str, repeats: int, screen: tuple[int, int],
            sample_repeats: int = 1, rows=None, log=print) -> dict:
    """Run `rows` (default ROWS) on one context; the dict decode.json holds."""
    out = {
        "device": ctx.info["GL_RENDERER"], "gl_version": ctx.info["GL_VERSION"],
        "lp_num_threads": os.environ.get("LP_NUM_THREADS", "unset"),
        "set": set_name,
        "width": model.width, "height": model.height, "mips": model.mips,
        "textures": len(model.textures), "stored_channels": model.stored_channels,
        "network": f"{model.latent.features} features x {model.latent.bits} bits, grid scale "
                   f"{model.latent.grid_scale}, {model.latent.hr_sampling}, "
                   f"{model.weight_format} weights",
        "macs_per_texel": macs_per_decode(model.mlp_dims), "repeats": repeats,
        "sample_repeats": sample_repeats, "screen": list(screen),
        "texels_per_pixel": TEXELS_PER_PIXEL, "sample_warmup": list(SAMPLE_WARMUP),
        "sample_evals": dict(DECODES_PER_PIXEL),
        "decoder_glsl": decoder_sources(), "rows": [],
        "half_extension": half_extension(ctx),
    }
    out["no_half_reason"] = None if out["half_extension"] else no_half_reason(ctx)
    if rows is None:
        rows = ROWS + (HALF_ROWS if out["half_extension"] else [])
    bench = Bench(ctx, model, repeats, tuple(screen), sample_repeats)
    try:
        for row in rows:
            t0 = time.perf_counter()
            r = row(bench)
            log(f"  {r['name']}: {r['gpu_ms']:.2f} GPU ms, {r['wall_ms']:.2f} wall ms, "
                f"{r['rate_wall']:.3f} {r['unit']} by wall ({time.perf_counter() - t0:.0f} s)")
            out["rows"].append(r)
    finally:
        bench.release()
    after = decoder_sources()
    out["decoder_glsl_changed_during_run"] = sorted(
        n for n, h in out["decoder_glsl"].items() if after.get(n) != h)
    out["decoder_glsl_vs_head"] = sources_vs_head(out["decoder_glsl"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.splitlines()[0])
    p.add_argument("--ntc", help=".ntc file to decode (default: WaterBottle, default preset's "
                                 "shape, untrained)")
    p.add_argument("--size", "--screen", dest="screen", type=image_size, default=(1920, 1080),
                   metavar="WxH", help="full-screen size of the baseline and sample-mode rows "
                                       "(default 1920x1080)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed runs of the load-mode and baseline rows after a warm-up")
    p.add_argument("--sample-repeats", type=int, default=1,
                   help="timed frames per sample-mode filter after a warm-up (default 1: a 1080p "
                        "trilinear frame takes ~90 s on llvmpipe)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for decode.md / decode.json")
    args = p.parse_args(argv)

    model = read_ntc(args.ntc) if args.ntc else default_model()
    set_name = args.ntc or (f"{DEFAULT_SET.relative_to(ROOT)} (untrained, preset "
                            f"{model.extra.get('preset')})")
    ctx = create_context()
    print(f"device: {ctx.info['GL_RENDERER']}; set {set_name}, {model.width}x{model.height}")
    try:
        out = measure(ctx, model, set_name, args.repeats, args.screen, args.sample_repeats)
    finally:
        ctx.release()
    write_results(args.out, "decode", out, report(out))
    print(f"wrote {args.out / 'decode.md'} and {args.out / 'decode.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
