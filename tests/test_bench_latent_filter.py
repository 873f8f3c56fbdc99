"""bench/latent_filter.py on a small trained set: every LOD measured, the exact filter's figure is
the decoded texture's own (against the source), the latent filter's are finite and name the file;
a file of another size and a missing path are one-line errors."""
from __future__ import annotations

import json
import math

import pytest

from bench import latent_filter


def test_latent_filter_bench_measures_a_file_against_its_source(tmp_path, trained):
    ntc = tmp_path / "set.ntc"
    ntc.write_bytes(trained.data)
    out_dir = tmp_path / "out"
    assert latent_filter.main([str(trained.tset.folder), str(ntc), "--lods", "0,1.5",
                               "--samples", "2000", "--out", str(out_dir)]) == 0
    out = json.loads((out_dir / "latent_filter.json").read_text())
    [f] = out["files"]
    assert [r["lod"] for r in f["rows"]] == [0.0, 1.5]
    for r in f["rows"]:
        assert all(math.isfinite(r[k]) and 10 < r[k] < 100 for k in ("exact", "latent",
                                                                        "latent_vs_exact"))
    assert "| set.ntc | 1.5 |" in (out_dir / "latent_filter.md").read_text()
    # the source's channels are matched to the file's (in the wrong order, the exact filter's
    # figure falls to single digits)
    assert f["rows"][0]["exact"] > 25


def test_latent_filter_bench_refuses_what_it_cannot_measure(tmp_path, trained, capsys):
    from conftest import write_set
    ntc = tmp_path / "set.ntc"
    ntc.write_bytes(trained.data)
    other = write_set(tmp_path / "other", h=16, w=16)
    with pytest.raises(SystemExit, match="is .* the source 16x16"):
        latent_filter.main([str(other), str(ntc)])
    with pytest.raises(SystemExit):
        latent_filter.main([str(tmp_path / "missing"), str(ntc)])
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        latent_filter.main([str(trained.tset.folder), str(ntc), "--lods", "a,b"])
