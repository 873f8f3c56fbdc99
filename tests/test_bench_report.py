"""bench/report.py on a small synthetic result: the tables and plot a long benchmark ends with."""
from __future__ import annotations

import math

import pytest

from bench.report import bits_to_match, compare_with_astc, write_report


def test_bits_to_match_interpolates_in_log_bpp():
    pts = [(1.0, 30.0), (4.0, 40.0)]
    assert bits_to_match(pts, 35.0) == pytest.approx(2.0)   # halfway in log2: 1 -> 4
    assert bits_to_match(pts, 29.0) == 1.0                  # the cheapest point already reaches it
    assert bits_to_match(pts, 41.0) is None                 # never reached


def _set(neural):
    tex = ["a_baseColor.png"]
    cls = [{"codec": c, "bpp": b, "bpp_mip0": b * 0.75, "psnr_set": p, "encode_seconds": 1.0,
            "textures": {"a_baseColor": {"codec": c.lower(), "psnr": p}}}
           for c, b, p in [("BC1", 5.33, 40.0), ("BC7", 10.67, 48.0), ("ASTC4x4", 10.67, 50.0),
                           ("ASTC6x6", 4.74, 44.0), ("ASTC8x8", 2.67, 41.0), ("ASTC12x12", 1.19, 37.0)]]
    return {"size": [64, 64], "textures": tex, "channels": 3, "classical": cls,
            "neural": [{"preset": n, "bpp": b, "psnr_set": p, "seconds": 5.0,
                        "textures": {"a_baseColor": {"psnr": p}}} for n, b, p in neural]}


def test_report_tables_and_plot(tmp_path):
    out = {"steps": 100, "seed": 0, "machine": "2 CPU cores",
           "sets": {"S": _set([("p1.3", 1.0, 36.0), ("p2.7", 2.0, 42.0), ("p5.3", 4.0, 45.0)])},
           "convergence": {"set": "S", "preset": "p4", "channels": 9, "size": [64, 64],
                           "runs": [{"steps": s, "seconds": s / 10, "train_seconds": s / 20,
                                     "bpp": 4.0, "psnr_set": p}
                                    for s, p in [(100, 30.0), (200, 38.5), (400, 39.0)]]}}
    write_report(out, tmp_path)
    md = (tmp_path / "rate_distortion.md").read_text()
    assert (tmp_path / "rate_distortion.png").stat().st_size > 10_000
    # ASTC 8x8 (41 dB at 2.67 bpp) is matched between the 1 and 2 bpp points
    b = bits_to_match([(1.0, 36.0), (2.0, 42.0), (4.0, 45.0)], 41.0)
    assert f"{b:.2f} bpp ({2.67 / b:.1f}x fewer than 2.7)" in md
    assert "from 200 steps" in md  # 38.5 is within 1 dB of 39.0
    rows = compare_with_astc(out["sets"]["S"])
    assert rows[0]["vs"].startswith("ASTC 12x12")        # 1.0 bpp is below ASTC's cheapest point
    t = math.log(2.0 / 1.19) / math.log(2.67 / 1.19)      # ASTC interpolated in log-bpp at 2.0
    assert rows[1]["delta"] == pytest.approx(42.0 - (37.0 + 4.0 * t))
