"""The markdown report of bench.viewer (bench/results/viewer.md) from its measured rows."""
from __future__ import annotations

from pathlib import Path

from bench.clocks import clock_of
from bench.still_view import still_view_table
from trainer.budget import budget_text
from viewer.sample_filters import AUTO_SEED_FRAMES, FILTER_DECODES

ROOT = Path(__file__).resolve().parents[1]


def _mb(n) -> str:
    return "-" if n is None else f"{n / 2 ** 20:.2f}"


def _f(v, fmt=".2f", none="-") -> str:
    return none if v is None else format(v, fmt)


def _x(v) -> str:
    """A ratio as 'x', with 1/n for small ones."""
    if v is None:
        return "-"
    if 0 < v < 1:
        return f"{v:.3f} (1/{1 / v:.1f})"
    return f"{v:.2f}"


def _label(r: dict) -> str:
    if r["mode"] == "feedback":
        return "feedback (tiles)"
    if r["mode"] != "sample":
        return r["name"]
    if r["filter"] == "stochastic":
        n = r.get("accumulated_frames") or 1
        return f"sample (stochastic, {'one frame' if n == 1 else f'mean of {n} frames'})"
    if r["filter"] == "auto":
        n = max(0, (r.get("accumulated_frames") or 0) - AUTO_SEED_FRAMES)
        return f"sample (auto: latent + {n} stochastic frames)"
    return f"sample ({r['filter']})"


def filter_table(s: dict, rows: list[dict], key: str, clock: str, pixels: int) -> list[str]:
    """Sample mode per filter, then feedback mode: decodes and multiply-adds a pixel (feedback's
    measured over the row's timed frames, and once settled), quality, frame time."""
    macs = [m["macs_per_decode"] for m in s["materials"] if m.get("macs_per_decode")]
    sample = [r for r in rows if r["mode"] == "sample"]
    tri = next((r for r in sample if r["filter"] == "trilinear"), None)
    if not macs or not sample:
        return []
    precisions = sorted({r.get("precision") or "fp32" for r in sample})
    lines = ["", f"Sample mode per filter (MACs a pixel: decodes x {max(macs):,} MACs, the "
                 f"scene's largest network as the shader runs it, in {' / '.join(precisions)} "
                 f"(`--precision auto`); frame time against the reference row by the {clock}):",
             "",
             "| filter | decodes a pixel | MACs a pixel | PSNR vs reference (dB) | vs trilinear "
             "(dB) | x reference frame time |", "|---|---:|---:|---:|---:|---:|"]
    for r in sample:
        n = FILTER_DECODES[r["filter"]]
        d = None if tri is None or r["psnr_vs_reference"] is None else \
            r["psnr_vs_reference"] - tri["psnr_vs_reference"]
        lines.append(f"| {_label(r)} | {n} | {n * max(macs):,} | "
                     f"{_f(r['psnr_vs_reference'])} | {_f(d, '+.2f')} | "
                     f"{_f(r['frame_time_vs_reference'].get(key))} |")
    for r in rows:
        if r["mode"] != "feedback" or not r.get("tiles"):
            continue
        per = r["tiles"]["decoded_texels_per_frame"]
        timed = per[len(per) - r["frames"]:]   # before them: the warm-up and settling frames
        n, last = sum(timed) / len(timed) / pixels, timed[-1] / pixels
        d = None if tri is None or r["psnr_vs_reference"] is None else \
            r["psnr_vs_reference"] - tri["psnr_vs_reference"]
        lines.append(f"| feedback (tiles; mean of the timed frames, last) | {n:.3f}, {last:.3f} | "
                     f"{n * max(macs):,.0f}, {last * max(macs):,.0f} | "
                     f"{_f(r['psnr_vs_reference'])} | {_f(d, '+.2f')} | "
                     f"{_f(r['frame_time_vs_reference'].get(key))} |")
    return lines


def feedback_lines(rows: list[dict], pixels: int) -> list[str]:
    """What the feedback row decoded, frame by frame (`pixels`: of a frame)."""
    fb = next((r for r in rows if r["mode"] == "feedback" and r.get("tiles")), None)
    if fb is None:
        return []
    t = fb["tiles"]
    per = t["decoded_texels_per_frame"]
    settle = t.get("settle_frames")
    return ["", f"Feedback mode: {t['decoded_texels_total']:,} texels decoded in all "
                f"(the sets' pinned small mips when it started, then after each frame: "
                f"{', '.join(f'{n:,}' for n in per)}), {t['resident']} of {t['pool_slots']} "
                f"{t['tile']}x{t['tile']} tile slots in use, {t['waiting']} tiles waiting"
                f"; {per[0] / pixels:.2f} decodes a pixel after the first frame"
                + (f"; {settle} untimed frames after the warm-up until no tile waited, then the "
                   f"timed ones" if settle is not None else "") + "."]


def scene_report(s: dict, out: dict) -> list[str]:
    rows = s["rows"]
    key, clock = clock_of(rows)
    lines = [f"## {s['name']}", "",
             f"`{s['path']}`: {s['primitives']} primitives; neural sets in `{s['cache_dir']}` "
             f"(compression this run {s['compress_seconds']:.0f} s, rendering "
             f"{s['render_seconds']:.0f} s).", "",
             "| material | size | textures | preset | bpp | set PSNR (dB) | .ntc bytes | "
             "training s |", "|---|---|---|---|---:|---:|---:|---:|"]
    for m in s["materials"]:
        if m["file"] is None:
            lines.append(f"| {m['material']} | - | (keeps its images) | | | | | |")
            continue
        lines.append(f"| {m['material']} | {m['size'][0]}x{m['size'][1]} | "
                     f"{', '.join(m['textures'])} | {m.get('preset') or '-'} | "
                     f"{_f(m.get('bpp'))} | {_f(m.get('psnr_set'))} | {m['file_bytes']:,} | "
                     f"{_f(m.get('seconds'), '.0f')} |")
    cats = ("textures", "decoded", "latents", "weights", "tiles", "geometry", "framebuffers")
    lines += ["", f"Quality and frame time (`x reference`: frame time against the reference "
                  f"row by the {clock}):", "",
              "| row | PSNR vs reference (dB) | on scene pixels (dB) | GPU ms median / p95 | "
              "CPU ms median | wall ms median | process CPU ms | x reference | set-up ms | "
              "first frame ms | scene pixels |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        g, c, w, p = r["gpu_ms"], r["cpu_ms"], r["wall_ms"], r["process_cpu_ms"]
        flag = "" if r["timer_covers_work"] else "*"
        lines.append(
            f"| {_label(r)} | {_f(r['psnr_vs_reference'], '.2f', 'ref')} | "
            f"{_f(r['psnr_vs_reference_object'], '.2f', 'ref')} | "
            f"{_f(g and g['median'])} / {_f(g and g['p95'])}{flag} | {_f(c and c['median'])} | "
            f"{_f(w and w['median'], '.1f')} | {_f(p and p['median'], '.1f')} | "
            f"{_f(r['frame_time_vs_reference'].get(key))} | {r['setup_ms']:.0f} | "
            f"{r['first_frame_ms']:.0f} | {100 * r['object_fraction']:.0f} % |")
    size = out["settings"]["size"]
    lines += filter_table(s, rows, key, clock, size[0] * size[1])
    lines += feedback_lines(rows, size[0] * size[1])
    lines += still_view_table(s)
    lines += ["", "VRAM by the renderer's ledger (MiB = 2^20 bytes):", "",
              "| row | texture VRAM bytes | x reference | x BC7+BC5 | "
              + " | ".join(cats) + " | other | total | driver |",
              "|---|---:|---:|---:|" + "---:|" * len(cats) + "---:|---:|---:|"]
    for r in rows:
        by = r["vram_bytes"]["by_category"]
        other = r["vram_bytes"]["total"] - sum(by[c] for c in cats)
        lines.append(
            f"| {_label(r)} | {r['texture_vram_bytes']:,} | "
            f"{_x(r['texture_vram_vs_reference'])} | {_x(r['texture_vram_vs_block_formats'])} | "
            + " | ".join(_mb(by[cat]) for cat in cats)
            + f" | {_mb(other)} | {_mb(r['vram_bytes']['total'])} | "
              f"{_mb(r['driver_vram_bytes'])} |")
    ratios = s["ratios"]
    bc = s["block_format_textures"]
    lines += ["", f"- Texture memory as block formats (full mip chains, whole 4x4 blocks per "
                  f"level): {s['block_format_bytes']:,} bytes for {len(bc)} textures "
                  f"({', '.join(sorted({t['format'] for t in bc}))}; RGBA8 with mips "
                  f"{s['rgba8_bytes']:,}); the .ntc files hold {s['ntc_file_bytes']:,} bytes."]
    for a, b in (("reference_bcn", "load_bcn"), ("load", "load_bcn")):
        cmp = ratios.get(f"{b}_vs_{a}")
        if cmp is None:
            continue
        nb, na = cmp["texture_vram_bytes"]
        lines.append(f"- {b} against {a}: frame PSNR {_f(cmp['psnr_difference'], '+.2f')} dB, "
                     f"texture VRAM {nb:,} against {na:,} bytes"
                     + (" (byte for byte the same)" if nb == na else "") + ".")
    for names in s.get("identical_sets", []):
        lines.append(f"- {', '.join(names)} have identical texture sets (one cache key): the "
                     f"viewer compresses, caches, uploads and (load mode) decodes that set once "
                     f"and the materials share it, as reference mode shares their images.")
    v = ratios.get("texture_vram_sample_over_reference")
    if v is not None:
        lines.append(
            f"- **Sample mode / reference texture VRAM: {_x(v)}** (target <= 1/"
            f"{1 / out['vram_target']:.0f}: {'met' if ratios['texture_vram_sample_meets_target'] else 'NOT met'}); "
            f"against BC7+BC5: {_x(ratios['texture_vram_sample_over_block_formats'])}. "
            f"Load mode / reference: {_x(ratios.get('texture_vram_load_over_reference'))}, "
            f"against BC7+BC5: {_x(ratios.get('texture_vram_load_over_block_formats'))}.")
    fs, fl = ratios.get("frame_time_sample_over_reference"), \
        ratios.get("frame_time_load_over_reference")
    if fs or fl:
        def both(fr):
            if not fr:
                return "-"
            parts = [f"**{_f(fr.get(key))}x** by {clock}"]
            if key != "gpu_ms":
                parts.append(f"{_f(fr.get('gpu_ms'))}x by GL timer")
            parts.append(f"{_f(fr.get('process_cpu_ms'))}x by process CPU time")
            return ", ".join(parts)
        lines.append(f"- Frame time, sample (trilinear) / reference: {both(fs)}; load / "
                     f"reference: {both(fl)}.")
    if not all(r["timer_covers_work"] for r in rows):
        lines.append("- `*`: the GL timer read under half the wall clock of the same frames (a "
                     "software renderer rasterises at the flush, outside the query); the wall "
                     "clock is the figure to use there.")
    shots = [r.get("screenshot") for r in rows if r.get("screenshot")]
    if shots:
        lines.append("- Screenshots: " + ", ".join(
            f"`{Path(p).relative_to(ROOT) if Path(p).is_relative_to(ROOT) else p}`"
            for p in shots) + ".")
    return lines + [""]


def report(out: dict) -> str:
    st = out["settings"]
    lines = [
        "# ntc-view on the shared scenes", "",
        f"Device: `{out['device']}` ({out['gl_version']}, {out['gl_vendor']}); "
        f"LP_NUM_THREADS={out['lp_num_threads']}; training: {out['machine']}.",
        f"Settings: {budget_text(st['steps'], st.get('effort'))}, --bpp {st['bpp']} ("
        f"{st.get('network') or 'hidden layers ' + ','.join(map(str, st['hidden']))}, "
        f"batch {st['batch']}, seed {st['seed']}"
        f"{', --between-share ' + str(st['between_share']) if st.get('between_share') else ''}"
        f"{', --lod-blend-share ' + str(st['lod_blend_share']) if st.get('lod_blend_share') else ''}); "
        f"{st['size'][0]}x{st['size'][1]}, {st['frames']} timed frame(s) per row after one "
        f"warm-up frame; run time {out['seconds']:.0f} s.",
        "",
        "Each row is a fresh `viewer.renderer.Renderer` on the same context, from the initial "
        "view (camera framing the scene's bounds), so its VRAM ledger is that row's footprint. "
        "PSNR: the row's last frame against the reference row's last frame, 8-bit RGB, whole "
        "image, and over the pixels where either frame shows the scene (the background is "
        "identical in every row); the stochastic filter is shown as ntc-view shows it, the mean "
        "of the frames drawn since the view last changed (the warm-up and timed frames), and as "
        "one frame. GPU ms: "
        "GL timer query per frame; CPU ms: the renderer's clock (building and submitting a "
        "frame); wall ms: one frame to `ctx.finish()`; process CPU ms: this process's CPU time "
        "per frame (all threads). Texture VRAM = ledger categories "
        + " + ".join(out["texture_categories"])
        + " (the reference images, load mode's decoded textures, sample mode's latents and MLP "
          "weights; the 1x1 white texture of empty slots is in `textures` in every mode). "
          "Block formats (export.bcn.formats): BC7 for colour and 3-4 channel maps (ORM), BC5 "
          "for normal maps, BC4 for grey ones, full mip chains; reference_bcn holds them encoded "
          "by bc7enc, load_bcn the decoded set transcoded on the GPU (shaders/bcn_encode.slang). 'scene pixels': the share of the frame that is not background; 'driver': "
          "GL_NVX_gpu_memory_info's memory in use (whole GPU), where the driver has it.",
        "",
    ]
    for s in out["scenes"]:
        lines += scene_report(s, out)
    return "\n".join(lines)
