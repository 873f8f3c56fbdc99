"""What ntc-view shows while the view stays still, frame after frame: PSNR against the reference
frame of the displayed mean after N frames, for the filters whose frames are averaged
(stochastic, auto). A part of bench.viewer."""
from __future__ import annotations

from export.metrics import psnr

STILL_FRAMES = (1, 2, 4, 8, 16, 32)
AVERAGED_FILTERS = ("stochastic", "auto")


def still_view(ctx, scene, provider, size, reference, counts=STILL_FRAMES) -> dict:
    """{filter: [[frames, PSNR dB], ...]} of sample mode from the renderer's initial view."""
    from viewer.renderer import Renderer
    out = {}
    for filt in AVERAGED_FILTERS:
        r = Renderer(ctx, scene, size, mode="sample", filter_mode=filt, ntc_provider=provider,
                     overlay=False, timer_latency=0, log=None)
        try:
            curve = []
            for n in range(1, max(counts) + 1):
                r.render()
                if n in counts:
                    curve.append([n, psnr(r.read(), reference)])
            out[filt] = curve
        finally:
            r.release()
    return out


def still_view_table(s: dict) -> list[str]:
    """Markdown lines for one scene of viewer.json (nothing when the scene has no curve)."""
    curves = s.get("still_view")
    if not curves:
        return []
    tri = next((r["psnr_vs_reference"] for r in s["rows"]
                if r["mode"] == "sample" and r["filter"] == "trilinear"), None)
    filters = list(curves)
    lines = ["", "Still view: PSNR against the reference frame of what the display shows after N "
                 "frames (one decode a pixel each)" + (f"; trilinear: {tri:.2f} dB" if tri else "")
             + ":", "", "| frames | " + " | ".join(filters) + " |",
             "|---:|" + "---:|" * len(filters)]
    counts = [n for n, _ in curves[filters[0]]]
    for i, n in enumerate(counts):
        lines.append(f"| {n} | " + " | ".join(f"{curves[f][i][1]:.2f}" for f in filters) + " |")
    return lines
