"""bench/quad_filter.py keeps running on the shipped default set at a tiny harness size: every zoom
has both filters, the quad filter's values are trilinear's, its decodes are the plan's
(export.decode.filters.quad_decodes) and never more than trilinear's; the report names them. The
larger-group model (group_rounds) agrees with the GL quad at 2x2 and bounds what sharing gives."""
from __future__ import annotations

import json

import pytest

from bench import quad_filter


@pytest.mark.gl
def test_quad_filter_bench_runs_and_reports(tmp_path, ctx):
    assert quad_filter.main(["--size", "16", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "quad_filter.json").read_text())
    assert [r["zoom"] for r in out["rows"]] == list(quad_filter.ZOOMS)
    for r in out["rows"]:
        assert r["plan_matches"] and r["max_diff"] < 1e-4
        assert r["quad"]["decodes"] <= r["quad"]["rounds"] <= r["trilinear"]["decodes"]
        assert r["trilinear"]["decodes"] in (4.0, 8.0) and r["quad"]["wall_ms"] > 0
        assert list(r["groups"]) == [f"{w}x{h}" for w, h in quad_filter.GROUPS]
        for g in r["groups"].values():
            assert g["union_per_lane"] <= g["rounds"] <= r["trilinear"]["decodes"]
    md = (tmp_path / "quad_filter.md").read_text()
    assert "| 0.25 | 0.00 | 4.00 |" in md and "rounds ÷ trilinear" in md
    assert "Sharing in larger groups" in md
    with pytest.raises(SystemExit):
        quad_filter.main(["--size", "7", "--out", str(tmp_path)])


def test_group_model_is_the_quad_plan_at_2x2():
    # where the quad plan shares (every quad on one mip, footprints within its extent), the
    # model's 2x2 groups are the plan's quads: the same mean rounds
    import math

    import numpy as np
    import torch

    from export.decode.filters import harness_uv, lod_from_derivatives, quad_decodes
    model = type("Model", (), {"width": 64, "height": 64})()
    for zoom in (0.5, 1.5, 3.0):
        origin, sx, sy = quad_filter.view(model, zoom, 32)
        lod = float(lod_from_derivatives(torch.tensor(sx), torch.tensor(sy), (64, 64), 7))
        uv, pixel = harness_uv((32, 32), origin, sx, sy)
        plan = quad_decodes(uv, torch.tensor(lod), pixel, (64, 64), 7).reshape(32, 32).numpy()
        rounds, per_lane = quad_filter.group_rounds(uv, lod, pixel, (64, 64), (2, 2))
        assert rounds == pytest.approx(quad_filter.quad_rounds(plan))
        assert per_lane <= rounds <= (8 if lod > math.floor(lod) else 4)
        big, _ = quad_filter.group_rounds(uv, lod, pixel, (64, 64), (8, 8))
        assert big < rounds and np.isfinite(big)
