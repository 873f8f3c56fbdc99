"""The GPU BCn encoder (shaders/bcn_encode.slang, load mode's transcode) against bc7enc, and the
time to decode and transcode a whole set on load.

    python -m bench.transcode [--sets WaterBottle,Bench,...|FOLDER] [--steps N | --ntc FILE]
                              [--repeats N] [--out DIR]

1. Encoder quality and time, every texture (mip 0, 8 bits) of the shared sets
   (bench.rate_distortion.SETS; or texture folders given by path): each in the format an engine
   ships it in
   (export.bcn.formats.format_for: BC7 for colour and 3-4 channel maps, BC5 for normals and two
   channels, BC4 for one; opaque colour maps also in BC1, the classical BC1 set's format),
   encoded by
     - the GPU encoder on this process's GL context (one render pass; ms to ctx.finish());
     - bc7enc as the project's CPU encoder uses it (export.bcn.codec: rgbcx level 10
       BC1/BC4/BC5, BC7 uber 1 with linear weights), one thread;
     - for BC7 also bc7enc's defaults (bc7enc_compress_block_params_init: uber 0, perceptual
       weights), the issue's point of comparison;
   each decoded by texture2ddecoder (independent of both) and compared with the source's stored
   channels (BC5 normals: X, Y).
2. Transcode time on load: the 2K WaterBottle set without emissive (baseColor, normal, ORM: 9
   channels, 2048^2) compressed once at p4 with --steps (training quality does not change the
   decode's cost; the file is cached in bench/results/cache/transcode/; or the .ntc --ntc names),
   then on one context,
   --repeats times: load mode's decode into RGBA8 textures with every mip, then the transcode of
   those textures into BCn (every mip), each timed to ctx.finish(); medians.

Writes bench/results/transcode.md and transcode.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.output import check_out_folder, machine, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "cache" / "transcode"
TARGET_DB = {"bc1": 0.3, "bc4": 0.3, "bc5": 0.3}   # GPU within this of bc7enc's (issue 14)
TARGET_BC7_DEFAULT_DB = 1.5            # GPU BC7 within this of bc7enc's defaults
DEFAULT_STEPS = 2000


def psnr8(a: np.ndarray, b: np.ndarray) -> float | None:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return None if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def compared_channels(fmt, channels: int, normal: bool) -> int:
    if normal:
        return 2
    return min(channels, fmt.channels) if fmt.channels < 4 else channels


def bc7enc_default(rgba: np.ndarray) -> bytes:
    import bc7enc

    from export.bcn.codec import pad_to_blocks
    padded = pad_to_blocks(rgba)
    h, w = padded.shape[:2]
    return bc7enc.pack_dds(padded.tobytes(), w, h, "BC7",
                           params=bc7enc.bc7enc_compress_block_params_init())


def compare(ctx, encoder, fmt, rgba: np.ndarray, src: np.ndarray, n: int, alpha: bool) -> dict:
    """GPU encoder against bc7enc (and, for BC7, bc7enc's defaults) on one image: PSNR of the
    first n channels against `src`, times."""
    from export.bcn import codec
    h, w = rgba.shape[:2]
    tex = ctx.texture((w, h), 4, rgba.tobytes())
    try:
        encoder.encode_bytes(tex, 0, fmt, alpha)   # the program's first use
        t0 = time.perf_counter()
        target = encoder.encode(tex, 0, fmt, alpha)
        ctx.finish()
        gpu_ms = (time.perf_counter() - t0) * 1e3
        gpu = target.read()
        target.release()
    finally:
        tex.release()
    t0 = time.perf_counter()
    cpu = codec.encode(fmt, rgba)
    cpu_s = time.perf_counter() - t0
    row = {"format": fmt.name, "size": [w, h], "channels_compared": n,
           "gpu_psnr": psnr8(codec.decode(fmt, gpu, w, h)[..., :n], src), "gpu_ms": gpu_ms,
           "bc7enc_psnr": psnr8(codec.decode(fmt, cpu, w, h)[..., :n], src), "bc7enc_s": cpu_s,
           "bc7enc_default_psnr": None, "bc7enc_default_s": None}
    if fmt.name == "bc7":
        t0 = time.perf_counter()
        default = bc7enc_default(rgba)
        row["bc7enc_default_s"] = time.perf_counter() - t0
        row["bc7enc_default_psnr"] = psnr8(codec.decode(fmt, default, w, h)[..., :n], src)
    return row


def encoder_rows(ctx, set_names, log) -> list[dict]:
    """Every texture in the format an engine ships it in; opaque colour maps also in BC1 (the
    classical BC1 set's format)."""
    from bench.rate_distortion import SETS, load_set
    from export.bcn import FORMATS, format_for
    from export.bcn.codec import block_input
    from export.decode.gl_transcode import GLBCnEncoder
    from trainer.textures import load_texture_set
    encoder = GLBCnEncoder(ctx)
    rows = []
    try:
        for name in set_names:
            tset = load_set(name) if name in SETS else load_texture_set(Path(name))
            for t in tset.textures:
                pixels = np.round(np.clip(t.pixels, 0, 1) * 255).astype(np.uint8)
                normal = t.role == "normal"
                fmt, srgb = format_for(t.channels, normal, t.colorspace == "srgb")
                rgba = block_input(pixels, fmt)
                n = compared_channels(fmt, t.channels, normal)
                src = rgba[..., :n] if fmt.channels == 4 else pixels[..., :n]
                cases = [(fmt, n, src)]
                if fmt.name == "bc7" and srgb and t.channels == 3:
                    cases.append((FORMATS["bc1"], 3, rgba[..., :3]))
                for f, nc, ref in cases:
                    log(f"{name}/{t.name}: {f.name.upper()} {rgba.shape[1]}x{rgba.shape[0]}")
                    row = compare(ctx, encoder, f, rgba, ref, nc, t.channels in (2, 4))
                    row.update({"set": name, "texture": t.name, "role": t.role,
                                "srgb": srgb})
                    rows.append(row)
    finally:
        encoder.release()
    return rows


def transcode_set(steps: int, log):
    """The 2K 9-channel WaterBottle set's .ntc (compressed once, cached) and its model."""
    from bench.rate_distortion import load_set
    from export.format import read_ntc
    from export.safe_files import atomic_write
    from trainer.compress import CompressSettings, compress
    from trainer.fit import TrainConfig
    path = CACHE / f"WaterBottle_2K_9ch.p4.{steps}.ntc"
    if not path.is_file():
        tset = load_set("WaterBottle")
        tset.textures = [t for t in tset.textures if t.role != "emissive"]
        log(f"compressing the 2K 9-channel WaterBottle set ({steps} steps) into {path}")
        result = compress(tset, CompressSettings(preset="p4", train=TrainConfig(steps=steps)),
                          log)
        CACHE.mkdir(parents=True, exist_ok=True)
        atomic_write(path, result.data)
    return path, read_ntc(path)


def transcode_timing(ctx, model, repeats: int) -> dict:
    """Load mode's decode (every mip, into RGBA8 textures, sRGB kept as its bytes) and the
    transcode of those textures into BCn, each to ctx.finish(); the first round compiles the
    programs and is not counted."""
    from export.decode.gl_load import decode_to_textures
    from export.decode.gl_resources import NTCTextureGL
    from export.decode.gl_transcode import GLBCnEncoder, transcode_all
    times = {"decode": [], "transcode": []}
    out_bytes = {}
    encoder = GLBCnEncoder(ctx)
    try:
        for i in range(repeats + 1):
            with NTCTextureGL(model, ctx) as tex:
                ctx.finish()
                t0 = time.perf_counter()
                decoded = decode_to_textures(tex, srgb_bytes=True)
                ctx.finish()
                t1 = time.perf_counter()
            bcn = transcode_all(encoder, decoded, model.textures)
            ctx.finish()
            t2 = time.perf_counter()
            out_bytes = {"rgba8": sum(d.bytes for d in decoded), "bcn": sum(t.bytes for t in bcn)}
            for t in list(decoded) + bcn:
                t.release()
            if i:
                times["decode"].append((t1 - t0) * 1e3)
                times["transcode"].append((t2 - t1) * 1e3)
    finally:
        encoder.release()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"ms": times, "median_ms": med, "bytes": out_bytes,
            "size": [model.width, model.height], "mips": model.mips,
            "textures": [t.name for t in model.textures], "stored_channels": model.stored_channels}


def summary(rows: list[dict]) -> dict:
    out = {}
    for fmt in sorted({r["format"] for r in rows}):
        sel = [r for r in rows if r["format"] == fmt and None not in (r["gpu_psnr"],
                                                                       r["bc7enc_psnr"])]
        d = [r["gpu_psnr"] - r["bc7enc_psnr"] for r in sel]
        entry = {"textures": len(sel), "mean_vs_bc7enc_db": float(np.mean(d)) if d else None,
                 "worst_vs_bc7enc_db": float(np.min(d)) if d else None,
                 "gpu_ms": float(sum(r["gpu_ms"] for r in sel)),
                 "bc7enc_s": float(sum(r["bc7enc_s"] for r in sel))}
        if fmt in TARGET_DB:
            entry["target_db"] = TARGET_DB[fmt]
            entry["met"] = bool(d) and bool(min(d) >= -TARGET_DB[fmt])
        if fmt == "bc7":
            dd = [r["gpu_psnr"] - r["bc7enc_default_psnr"] for r in sel
                  if r["bc7enc_default_psnr"] is not None]
            entry.update(mean_vs_default_db=float(np.mean(dd)) if dd else None,
                         worst_vs_default_db=float(np.min(dd)) if dd else None,
                         target_default_db=TARGET_BC7_DEFAULT_DB,
                         met=bool(dd) and bool(min(dd) >= -TARGET_BC7_DEFAULT_DB))
        out[fmt] = entry
    return out


def _f(v, fmt=".2f") -> str:
    return "-" if v is None else format(v, fmt)


def report(out: dict) -> str:
    lines = ["# The GPU BCn encoder against bc7enc, and transcoding on load", "",
             f"Generated by `python -m bench.transcode` on {out['machine']}; GL device "
             f"`{out['device']}` (LP_NUM_THREADS={out['lp_num_threads']}). Every figure was "
             f"measured in this run. PSNR over the stored channels (BC5 normals: X, Y) of mip 0, "
             f"8-bit, each encoding decoded by texture2ddecoder. GPU ms: one render pass to "
             f"`ctx.finish()` after a first, untimed pass (program compile); bc7enc: one thread, "
             f"`export.bcn.codec` (BC7 uber 1, linear weights; rgbcx BC4 / BC5) and, for BC7, "
             f"its defaults (uber 0, perceptual weights).", "",
             "| set | texture | format | size | GPU dB | bc7enc dB | GPU - bc7enc | "
             "bc7enc default dB | GPU - default | GPU ms | bc7enc s | default s |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in out["encoder"]:
        d = None if None in (r["gpu_psnr"], r["bc7enc_psnr"]) else r["gpu_psnr"] - r["bc7enc_psnr"]
        dd = None if None in (r["gpu_psnr"], r["bc7enc_default_psnr"]) else \
            r["gpu_psnr"] - r["bc7enc_default_psnr"]
        lines.append(f"| {r['set']} | {r['texture']} | {r['format'].upper()}"
                     f"{' sRGB' if r['srgb'] else ''} | {r['size'][0]}x{r['size'][1]} | "
                     f"{_f(r['gpu_psnr'])} | {_f(r['bc7enc_psnr'])} | {_f(d, '+.2f')} | "
                     f"{_f(r['bc7enc_default_psnr'])} | {_f(dd, '+.2f')} | {r['gpu_ms']:.0f} | "
                     f"{r['bc7enc_s']:.2f} | {_f(r['bc7enc_default_s'])} |")
    lines += ["", "Per format (mean / worst of GPU - bc7enc over the textures):", "",
              "| format | textures | vs bc7enc (dB) | vs bc7enc defaults (dB) | target | "
              "GPU ms total | bc7enc s total |", "|---|---:|---:|---:|---|---:|---:|"]
    for fmt, e in out["summary"].items():
        if fmt == "bc7":
            target = (f"within {e['target_default_db']} dB of the defaults: "
                      f"{'met' if e['met'] else 'NOT met'}")
        elif "target_db" in e:
            target = f"within {e['target_db']} dB of bc7enc: {'met' if e['met'] else 'NOT met'}"
        else:
            target = "-"
        lines.append(f"| {fmt.upper()} | {e['textures']} | {_f(e['mean_vs_bc7enc_db'], '+.2f')}"
                     f" / {_f(e['worst_vs_bc7enc_db'], '+.2f')} | "
                     f"{_f(e.get('mean_vs_default_db'), '+.2f')} / "
                     f"{_f(e.get('worst_vs_default_db'), '+.2f')} | {target} | "
                     f"{e['gpu_ms']:.0f} | {e['bc7enc_s']:.1f} |")
    t = out.get("transcode")
    if t:
        med = t["median_ms"]
        lines += ["", f"## Decode and transcode on load: {t['size'][0]}x{t['size'][1]}, "
                      f"{t['stored_channels']} stored channels ({', '.join(t['textures'])}), "
                      f"{t['mips']} mips", "",
                  f"`{out['transcode_file']}`"
                  + (f" (p4, {out['transcode_steps']} training steps)"
                     if out['transcode_steps'] else "") + ", "
                  f"median of {len(t['ms']['decode'])} rounds after one untimed round:", "",
                  "| load | ms | texture bytes |", "|---|---:|---:|",
                  f"| decode into RGBA8 textures (every mip) | {med['decode']:.0f} | "
                  f"{t['bytes']['rgba8']:,} |",
                  f"| transcode those into BCn (every mip) | {med['transcode']:.0f} | "
                  f"{t['bytes']['bcn']:,} |",
                  f"| decode + transcode | {med['decode'] + med['transcode']:.0f} | |"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from bench.rate_distortion import SETS
    p = argparse.ArgumentParser(prog="python -m bench.transcode",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=",".join(SETS),
                   help=f"comma-separated shared sets (default all: {', '.join(SETS)}); "
                        f"'none' skips the encoder comparison")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help="training steps of the 2K set timed on load (default %(default)s); 0 "
                        "skips the timing")
    p.add_argument("--ntc", type=Path, default=None,
                   help="time this .ntc on load instead of the 2K WaterBottle set (e.g. on a "
                        "machine without ../shared/data)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (default %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for transcode.md/.json")
    a = p.parse_args(argv)
    sets = [] if a.sets == "none" else [s for s in a.sets.split(",") if s]
    bad = [s for s in sets if s not in SETS and not Path(s).is_dir()]
    if bad:
        p.error(f"unknown sets {bad}; known: {', '.join(SETS)}, or a texture folder")
    if a.ntc is not None and not a.ntc.is_file():
        p.error(f"--ntc {a.ntc}: no such file")
    if a.steps < 0 or a.repeats < 1:
        p.error("--steps >= 0 and --repeats >= 1")
    check_out_folder(p, a.out)

    from export.decode.gl_context import create_context
    from export.errors import NTCError, one_line

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        ctx = create_context()
    except NTCError as e:
        print(f"bench.transcode: error: {one_line(e)}", file=sys.stderr)
        return 1
    try:
        out = {"machine": machine(), "device": ctx.info.get("GL_RENDERER"),
               "lp_num_threads": os.environ.get("LP_NUM_THREADS", "unset"),
               "encoder": encoder_rows(ctx, sets, log)}
        out["summary"] = summary(out["encoder"])
        if a.ntc is not None or a.steps:
            if a.ntc is not None:
                from export.format import read_ntc
                path, model = a.ntc, read_ntc(a.ntc)
            else:
                path, model = transcode_set(a.steps, log)
            path = Path(path).resolve()
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            out.update(transcode_file=str(shown), transcode_steps=None if a.ntc else a.steps,
                       transcode=transcode_timing(ctx, model, a.repeats))
    finally:
        ctx.release()
    write_results(a.out, "transcode", out, report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
