"""The library's report, from the records of every material (this run's and earlier runs' that
still match): OUT/library_report.json, .csv and .md, and a plot of set PSNR against bpp
(library_psnr_bpp.png, when matplotlib is installed). Totals are sums over the materials'
records, which jobs.run computed from the files it read and wrote."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from export.safe_files import atomic_write

BYTES = ("source", "rgba8_mips", "bcn_mips", "ntc")
COLUMNS = ("material", "kind", "status", "preset", "bpp", "psnr_set", "seconds", "device", "node",
           "reason")


def totals(records: list[dict]) -> dict:
    done = [r for r in records if r["status"] in ("done", "up to date")]
    out = {"materials": len(records), "done": len(done),
           "failed": sum(r["status"] == "failed" for r in records),
           "up_to_date": sum(r["status"] == "up to date" for r in records)}
    for k in BYTES:
        vals = [r.get("bytes", {}).get(k) for r in done]
        out[f"{k}_bytes"] = sum(v for v in vals if v is not None)
    return out


def _f(v, fmt=".2f") -> str:
    return "" if v is None else format(v, fmt) if isinstance(v, float) else str(v)


def write(out_root: Path, records: list[dict], skipped: list[tuple[str, str]], meta: dict) -> dict:
    report = {**meta, "totals": totals(records), "materials": records,
              "skipped": [{"path": p, "why": w} for p, w in skipped]}
    atomic_write(out_root / "library_report.json", (json.dumps(report, indent=1) + "\n").encode())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS + tuple(f"{k}_bytes" for k in BYTES))
    for r in records:
        w.writerow([_f(r.get(c)) for c in COLUMNS]
                   + [_f(r.get("bytes", {}).get(k)) for k in BYTES])
    atomic_write(out_root / "library_report.csv", buf.getvalue().encode())
    t = report["totals"]
    lines = [f"# Library report: {meta['library']}", "",
             f"{t['materials']} materials: {t['done']} done ({t['up_to_date']} already up to "
             f"date), {t['failed']} failed; {len(skipped)} paths skipped. Settings: "
             f"{meta['settings']}, {meta['steps']}, {meta['network']}.", "",
             "| bytes | source files | RGBA8 with mips | BCn with mips | .ntc |",
             "|---|---:|---:|---:|---:|",
             f"| all materials | {t['source_bytes']:,} | {t['rgba8_mips_bytes']:,} | "
             f"{t['bcn_mips_bytes']:,} | {t['ntc_bytes']:,} |", "",
             "| material | status | preset | bpp | set PSNR (dB) | seconds | node |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in records:
        status = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
        lines.append(f"| {r['material']} | {status} | {_f(r.get('preset'))} | "
                     f"{_f(r.get('bpp'))} | {_f(r.get('psnr_set'))} | "
                     f"{_f(r.get('seconds'), '.1f')} | {r.get('node', '')} |")
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- `{p}`: {w}" for p, w in skipped]
    if _plot(out_root / "library_psnr_bpp.png", records):
        lines += ["", "![set PSNR against bpp](library_psnr_bpp.png)"]
    atomic_write(out_root / "library_report.md", ("\n".join(lines) + "\n").encode())
    return report


def _plot(path: Path, records: list[dict]) -> bool:
    points = [(r["bpp"], r["psnr_set"], r["material"]) for r in records
              if r.get("bpp") is not None and r.get("psnr_set") is not None]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    for x, y, name in points:
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("bits per texel (file, mip 0)")
    ax.set_ylabel("set PSNR (dB)")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return True
