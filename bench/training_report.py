"""Markdown and plot from bench/results/training.json (written by bench.training).

    python -m bench.training_report    # rebuild training.md / training.png from the JSON
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGETS = ((42.9, 120.0), (45.0, 300.0))  # (dB, within wall seconds): issue 10's targets


def psnr_at(runs: list[dict], seconds: float) -> float | None:
    """PSNR at `seconds` of wall time, linear in log-time between measured runs."""
    pts = sorted((r["wall_s"], r["psnr_set"]) for r in runs)
    for (t0, p0), (t1, p1) in zip(pts, pts[1:]):
        if t0 <= seconds <= t1:
            return p0 + (p1 - p0) * math.log(seconds / t0) / math.log(t1 / t0)
    return pts[-1][1] if pts and seconds > pts[-1][0] else None


def seconds_to(runs: list[dict], psnr: float) -> float | None:
    """Wall seconds to reach `psnr`, linear in log-time between measured runs; None if never."""
    pts = sorted((r["wall_s"], r["psnr_set"]) for r in runs)
    for (t0, p0), (t1, p1) in zip(pts, pts[1:]):
        if p0 >= psnr:
            return t0
        if p0 < psnr <= p1:
            return t0 * math.exp(math.log(t1 / t0) * (psnr - p0) / (p1 - p0))
    return pts[0][0] if pts and pts[0][1] >= psnr else None


def _throughput_lines(rows: list[dict]) -> list[str]:
    lines = ["## Step throughput", "",
             "Median of 10-step blocks after a 10-step warm-up (up to 300 steps or 8 s a row), the "
             "faster of two passes over the whole table (the machine is shared), "
             "a fresh batch of 4096 texels every step, drawn as the trainer draws them (the draw "
             "is timed too), fresh network per row. CPU ms "
             "is the process's CPU time (both threads count with 2). \"x reference\" compares "
             "with the reference step under the same threads and neighbour.", "",
             "| device | threads | beside | step | ms/step (wall) | ms/step (CPU) | steps/s | "
             "M texels/s | x reference | x its idle time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ref = {(r["device"], r["threads"], r["beside"]): r["ms_step"] for r in rows
           if r["step"].startswith("reference")}
    idle = {(r["device"], r["threads"], r["step"]): r["ms_step"] for r in rows
            if r["beside"] == "idle"}
    for r in rows:
        speed = ref[(r["device"], r["threads"], r["beside"])] / r["ms_step"]
        slow = r["ms_step"] / idle[(r["device"], r["threads"], r["step"])]
        lines.append(f"| {r['device']} | {r['threads']} | {r['beside']} | {r['step']} | "
                     f"{r['ms_step']:.2f} | {r['cpu_ms_step']:.2f} | {r['steps_s']:.0f} | "
                     f"{r['texels_s'] / 1e6:.2f} | {speed:.1f} | {slow:.2f} |")
    if not any(r["device"] != "cpu" for r in rows):
        lines += ["", "No CUDA device on the machine that ran this: no GPU rows."]
    return lines


def _latent_lr_text(runs: list[dict]) -> str:
    """The latent learning rate the runs trained with, as the report names it (runs measured
    before it was recorded say so)."""
    rates = {r.get("lr_latents") for r in runs}
    if not rates or None in rates:
        return "the latent lr of the trainer that made them (not recorded)"
    return "lr " + " / ".join(f"{x:g}" for x in sorted(rates))


def _convergence_lines(runs: list[dict]) -> list[str]:
    old = [r for r in runs if r["trainer"] == "old"]
    new = [r for r in runs if r["trainer"] == "new"]
    lines = ["## Convergence: PSNR of the written file against time", "",
             "Each row is one full `compress()` (PCA init, training, export, decode of the file "
             "for the report) with one torch thread on an otherwise idle machine. **old**: the "
             "reference step with the schedule it shipped with (latents trained with noise, "
             "frozen and weights quantized at 85 %, float32, latent lr 0.1, texels drawn by "
             "area with a quarter mip-uniform: bench.training.OLD). **new**: ntc-compress's "
             "defaults (fused step, bf16 hidden layers where the CPU multiplies bf16 in hardware, "
             "float32 elsewhere, latents trained through their rounding "
             f"at {_latent_lr_text(new)}, frozen at 95 %, texels drawn by their recent loss "
             "within each mip: trainer/sampling.py).",
             "",
             "| trainer | steps | set PSNR (dB) | worst mip (dB) | wall s | CPU s | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["trainer"] != "old", r["steps"])):
        worst = min(p for p in r["psnr_set_mip"] if p != float("inf"))
        lines.append(f"| {r['trainer']} | {r['steps']:,} | {r['psnr_set']:.2f} | {worst:.2f} | "
                     f"{r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['train_s']:.0f} |")
    lines += ["", "Targets (issue 10), read off these runs (linear in log-time between runs):", ""]
    for psnr, within in TARGETS:
        for label, rr in (("old", old), ("new", new)):
            t = seconds_to(rr, psnr)
            at = psnr_at(rr, within)
            reach = f"reaches {psnr} dB at {t:.0f} s" if t else f"does not reach {psnr} dB"
            at_s = f"{at:.2f} dB at {within:.0f} s" if at is not None else f"no run near {within:.0f} s"
            met = t is not None and t <= within
            lines.append(f"- {psnr} dB within {within:.0f} s — {label}: {reach}; {at_s}: "
                         f"**{'met' if met else 'not met'}**")
    if old and new:
        best_old = max(old, key=lambda r: r["psnr_set"])
        t = seconds_to(new, best_old["psnr_set"])
        if t:
            lines.append(f"- The old trainer's best ({best_old['psnr_set']:.2f} dB, "
                         f"{best_old['wall_s']:.0f} s) is reached by the new one in {t:.0f} s: "
                         f"**{best_old['wall_s'] / t:.1f}x** less time.")
    return lines


def write_training_report(out: dict, results: Path) -> None:
    lines = ["# Training speed and convergence", "",
             f"Generated by `python -m bench.training` on {out['machine']}. Set: "
             f"{out['set']} ({out['size'][0]}x{out['size'][1]}, {out['channels']} channels), "
             f"preset {out['preset']}. Every figure was measured in that run; the machine is "
             "shared, so compare ratios measured together rather than absolute times.", ""]
    if out.get("throughput"):
        lines += _throughput_lines(out["throughput"]) + [""]
    if out.get("convergence"):
        lines += _convergence_lines(out["convergence"]) + [""]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, style in (("old", "o--"), ("new", "s-")):
            rr = sorted((r for r in out["convergence"] if r["trainer"] == label),
                        key=lambda r: r["wall_s"])
            ax.plot([r["wall_s"] for r in rr], [r["psnr_set"] for r in rr], style,
                    label=f"{label} trainer")
        for psnr, within in TARGETS:
            ax.plot([within], [psnr], "k*", ms=10)
        ax.set_xscale("log")
        ax.set_xlabel("wall seconds (one compress, one thread)")
        ax.set_ylabel("set PSNR of the written file (dB)")
        ax.set_title(f"{out['set']} {out['preset']}: PSNR vs time (stars: targets)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(results / "training.png", dpi=110)
        plt.close(fig)
        lines += ["![PSNR vs wall seconds](training.png)", ""]
    (results / "training.md").write_text("\n".join(lines))


if __name__ == "__main__":
    results = Path(__file__).resolve().parent / "results"
    write_training_report(json.loads((results / "training.json").read_text()), results)
    sys.exit(0)
