"""bench/quad_filter.py keeps running on the shipped default set at a tiny harness size: every zoom
has both filters, the quad filter's values are trilinear's, its decodes are the plan's
(export.decode.filters.quad_decodes) and never more than trilinear's; the report names them."""
from __future__ import annotations

import json

import pytest

from bench import quad_filter

pytestmark = pytest.mark.gl


def test_quad_filter_bench_runs_and_reports(tmp_path, ctx):
    assert quad_filter.main(["--size", "16", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "quad_filter.json").read_text())
    assert [r["zoom"] for r in out["rows"]] == list(quad_filter.ZOOMS)
    for r in out["rows"]:
        assert r["plan_matches"] and r["max_diff"] < 1e-4
        assert r["quad"]["decodes"] <= r["quad"]["rounds"] <= r["trilinear"]["decodes"]
        assert r["trilinear"]["decodes"] in (4.0, 8.0) and r["quad"]["wall_ms"] > 0
    md = (tmp_path / "quad_filter.md").read_text()
    assert "| 0.25 | 0.00 | 4.00 |" in md and "rounds ÷ trilinear" in md
    with pytest.raises(SystemExit):
        quad_filter.main(["--size", "7", "--out", str(tmp_path)])
