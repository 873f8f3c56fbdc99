"""bench/shared_decodes.py: the quad MIS estimator's expectation is exact trilinear filtering (every
draw of every quad place enumerated with its probability), the checkerboard keeps one diagonal and
fills the other with its mean, and the bench writes its tables from the shipped default set."""
from __future__ import annotations

import json

import pytest
import torch

from bench import shared_decodes as sd
from export.decode.filters import REPEAT, _fetch, harness_uv, sample_trilinear


def _mips(size: int, channels: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    out = []
    while True:
        out.append(torch.rand(size, size, channels, generator=gen))
        if size == 1:
            return out
        size //= 2


@pytest.mark.parametrize("zoom,turn", [(0.5, 0.3), (1.0, 0.5), (1.6, 0.2), (3.0, 0.7)])
def test_quad_mis_raw_estimate_is_unbiased(zoom, turn):
    mips = _mips(32)
    c, s = torch.cos(torch.tensor(turn)).item(), torch.sin(torch.tensor(turn)).item()
    step_x, step_y = (zoom * c / 32, zoom * s / 32), (-zoom * s / 32, zoom * c / 32)
    uv, pixel = harness_uv((8, 8), (0.31, 0.27), step_x, step_y)
    lod = torch.full((64,), torch.log2(torch.tensor(zoom)).item()).clamp(0, len(mips) - 1)
    members = sd.quad_members(pixel)
    fp = sd.footprint_texels(uv, lod, (32, 32), len(mips))
    fmip, ftexel, fweight = fp
    assert torch.allclose(fweight.sum(1), torch.ones(64))
    expected = torch.zeros(64, 3)
    for i in range(8):   # every place draws its footprint's texel i with probability fweight[:, i]
        coeff = sd.quad_mis_coefficients(fp, members, fmip[:, i], ftexel[:, i])
        value = _fetch(mips, fmip[:, i], ftexel[:, i], REPEAT)
        for k in range(4):
            m = members[k]
            drawn = fweight[m, i] > 0   # a texel of weight 0 is never drawn (its ratio is 0/0)
            expected += torch.where(drawn, fweight[m, i] * coeff[k], 0.0)[:, None] * value[m]
    exact = sample_trilinear(mips, uv, lod, REPEAT)
    assert torch.allclose(expected, exact, atol=1e-5)
    # a pixel's own draw always counts (its coefficient is positive), and the coefficients of one
    # draw over the quad's 4 pixels sum to 1 (the balance heuristic)
    coeff = sd.quad_mis_coefficients(fp, members, fmip[:, 0], ftexel[:, 0])
    place = pixel[:, 0] % 2 + 2 * (pixel[:, 1] % 2)
    assert (coeff[place, torch.arange(64)] > 0).all()
    for k in range(4):
        sums = torch.zeros(64)
        for j in range(4):   # pixel members[j] weighs the draw of place k of its quad
            sums += coeff[k][members[j]]
        assert torch.allclose(sums, torch.ones(64), atol=1e-5)


def test_checkerboard_keeps_one_diagonal_and_fills_the_other():
    values = torch.arange(16 * 2, dtype=torch.float32).reshape(16, 2)   # a 4x4 image
    out = sd.checkerboard(values, 4).reshape(4, 4, 2)
    img = values.reshape(4, 4, 2)
    assert torch.equal(out[0::2, 0::2], img[0::2, 0::2])
    assert torch.equal(out[1::2, 1::2], img[1::2, 1::2])
    mean = (img[0::2, 0::2] + img[1::2, 1::2]) / 2
    assert torch.equal(out[0::2, 1::2], mean) and torch.equal(out[1::2, 0::2], mean)


def test_shared_decodes_bench_writes_its_tables(tmp_path):
    out_dir = tmp_path / "out"
    assert sd.main(["--size", "16", "--zooms", "1,2", "--frames", "1,2",
                    "--out", str(out_dir)]) == 0
    out = json.loads((out_dir / "shared_decodes.json").read_text())
    assert [r["zoom"] for r in out["rows"]] == [1.0, 2.0]
    for r in out["rows"]:
        assert 10 < r["checkerboard"] < 100 and 10 < r["latent"] < 100
        assert [n for n, _ in r["quad_mis"]] == [1, 2]
    text = (out_dir / "shared_decodes.md").read_text()
    assert "| 2 | 1.00 |" in text and "checkerboard (1/2)" in text


def test_shared_decodes_bench_refuses_bad_flags(tmp_path, capsys):
    for flags in (["--size", "15"], ["--zooms", "a"], ["--frames", "0"],
                  ["--ntc", str(tmp_path / "missing.ntc")]):
        with pytest.raises(SystemExit):
            sd.main(flags + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "even number" in err and "does not exist" in err
