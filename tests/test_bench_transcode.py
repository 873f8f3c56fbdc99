"""bench/transcode.py keeps running: the encoder comparison on a tiny texture folder and the
decode + transcode timing of a tiny .ntc, with its report. The figures themselves are the
benchmark's business; here they exist, are finite and hang together."""
from __future__ import annotations

import json
import math

import pytest

from conftest import write_set

pytestmark = pytest.mark.gl


def test_transcode_bench_runs(trained, tmp_path, capsys):
    from bench import transcode
    folder = write_set(tmp_path / "set")
    ntc = tmp_path / "set.ntc"
    ntc.write_bytes(trained.data)
    out_dir = tmp_path / "out"
    assert transcode.main(["--sets", str(folder), "--ntc", str(ntc), "--repeats", "1",
                           "--out", str(out_dir)]) == 0
    out = json.loads((out_dir / "transcode.json").read_text())
    formats = sorted(r["format"] for r in out["encoder"])
    assert formats == ["bc1", "bc5", "bc7", "bc7"]     # base colour also in BC1; normal; ORM
    for r in out["encoder"]:
        assert math.isfinite(r["gpu_psnr"]) and r["gpu_psnr"] > 25
        assert math.isfinite(r["bc7enc_psnr"]) and r["gpu_ms"] >= 0
        assert (r["bc7enc_default_psnr"] is None) == (r["format"] != "bc7")
    assert set(out["summary"]) == {"bc1", "bc5", "bc7"}
    t = out["transcode"]
    assert t["bytes"]["bcn"] * 3 < t["bytes"]["rgba8"]
    assert all(v > 0 for v in t["median_ms"].values())
    md = (out_dir / "transcode.md").read_text()
    assert md.startswith("# The GPU BCn encoder") and "decode + transcode" in md


def test_transcode_bench_bad_flags(tmp_path, capsys):
    from bench import transcode
    for argv in (["--sets", "Nowhere"], ["--ntc", str(tmp_path / "missing.ntc")],
                 ["--repeats", "0"]):
        with pytest.raises(SystemExit) as e:
            transcode.main(argv + ["--out", str(tmp_path / "o")])
        assert e.value.code == 2
    assert not (tmp_path / "o").exists()
