"""bench/library.py keeps running: 2 tiny crops (32², 20 steps) of the shared sets through one
process and through ntc-library; the figures are the benchmark's business, the outputs must be
the same bytes either way. Skipped where ../shared/data is absent."""
from __future__ import annotations

import json

import pytest


def test_library_bench_runs(tmp_path):
    from bench import library
    from bench.rate_distortion import DATA
    if not (DATA / "scenes" / "WaterBottle").is_dir():
        pytest.skip(f"{DATA} not present")
    assert library.main(["--materials", "2", "--size", "32", "--steps", "20",
                         "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "library.json").read_text())
    assert out["library_rc"] == 0 and out["identical"] == 2
    assert out["sequential_s"] > 0 and out["library_s"] > 0
    assert "ntc-library" in (tmp_path / "library.md").read_text()
