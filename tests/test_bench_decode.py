"""bench/decode.py keeps running: every row of `ROWS` (load mode, the texture() baseline, the three
sample-mode filters) on a tiny set at 32x32 with one timed run, and the report over them.

Timings only have to be positive (wall clock) or non-negative (GL timer: llvmpipe's timer can read
~0 for a draw it rasterises at the flush; CPU time, which on a GPU is only the driver's); what they
are is the benchmark's business, not this test's.
"""
from __future__ import annotations

import pytest

from bench import decode
from test_gl_parity import random_model

pytestmark = pytest.mark.gl

ROW_KEYS = {"name", "work", "gpu_ms", "wall_ms", "first_run_ms", "items", "unit", "rate_gpu",
            "rate_wall", "timer_covers_work", "cpu_ms", "gpu_ms_runs", "wall_ms_runs",
            "cpu_ms_runs"}
SIZE = (32, 32)


def test_rows_and_report(ctx):
    model = random_model(40, 24, 5, features=8, bits=4, grid_scale=4.0, hidden=(16,))
    out = decode.measure(ctx, model, "tiny random set", repeats=1, screen=SIZE, sample_repeats=1,
                         log=lambda *_: None)
    rows = out["rows"]
    half_rows = len(decode.HALF_ROWS) if out["half_extension"] else 0
    assert len(decode.ROWS) == 5 and len(rows) == 5 + half_rows
    for r in rows:
        assert ROW_KEYS <= set(r), r["name"]
        assert len(r["wall_ms_runs"]) == len(r["gpu_ms_runs"]) == 1
        assert r["wall_ms"] > 0 and r["first_run_ms"] > 0
        assert r["gpu_ms"] >= 0 and r["cpu_ms"] >= 0
        assert r["rate_wall"] > 0
    assert [r.get("filter") for r in rows[2:5]] == ["latent", "stochastic", "trilinear"]
    assert [r["precision"] for r in rows[2:]] == ["fp32"] * 3 + ["fp16"] * half_rows
    for r in rows[1:]:
        assert r["items"] == SIZE[0] * SIZE[1] and r["unit"] == "Mpixel/s"
    assert [r["mlp_evals_per_pixel"] for r in rows[2:5]] == [1, 1, 8]
    assert rows[0]["items"] == sum(w * h for w, h in (
        decode.layout.mip_size(model.width, model.height, m) for m in range(model.mips)))

    assert set(out["decoder_glsl"]) >= {"ntc_sample_harness.frag.glsl"}
    assert isinstance(out["decoder_glsl_changed_during_run"], list)

    md = decode.report(out)
    assert "## Sample mode against plain sampling" in md
    for f in ("latent", "stochastic", "trilinear"):
        assert f"| {f} |" in md
    assert "Full-screen size 32x32" in md
    assert "## 16-bit MLP arithmetic" in md
    if not out["half_extension"]:   # llvmpipe: says why, then the table as a GPU would give it
        assert "Not measured: " in md and "reports no 16-bit float arithmetic" in md
        fake = [{**r, "precision": "fp16", "name": r["name"] + " (fp16 MLP)"} for r in rows[2:5]]
        md = decode.report({**out, "rows": rows + fake,
                            "half_extension": "GL_AMD_gpu_shader_half_float"})
    assert "| filter | fp32 frame ms | fp16 frame ms | fp16 / fp32 |" in md
    assert "| trilinear | " in md.split("## 16-bit MLP arithmetic")[1]
