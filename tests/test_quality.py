"""A quality floor on real data: a 64x64 crop of the WaterBottle set, a small training budget.

Measured when the floor was set (preset p4, 800 steps x 2048 texels, seed 0, CPU, one thread,
about 6 s on a loaded 2-core machine): set PSNR 37.7 dB (baseColor 34.6, normal 45.2, ORM 38.7);
per mip 37.7, 35.9, 35.6, 37.7, 44.3, 54.7, inf dB; SSIM 0.944 / 0.970 / 0.966.
100 steps give 27.2 dB (mips 1-4: 19-24 dB), 1500 steps 41.7 dB; predicting every channel's mean
gives 14.3 dB.
"""
from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import SHARED_DATA
from export.format import from_bytes
from trainer.compress import CompressSettings, compress
from trainer.evaluate import evaluate
from trainer.fit import TrainConfig
from trainer.targets import build_targets, plan_channels
from trainer.textures import load_texture_set

BOTTLE = SHARED_DATA / "scenes" / "WaterBottle"
FILES = ["PF_WaterBottle_MR_baseColor.png", "PF_WaterBottle_MR_normal.png",
         "PF_WaterBottle_MR_occlusionRoughnessMetallic.png"]
CROP = (768, 256, 64)  # row, column, size: label edges and speckles in baseColor and ORM

SET_FLOOR_DB = 35.0        # measured 37.7
TEXTURE_FLOOR_DB = 31.0    # measured 34.6 (baseColor) .. 45.2 (normal)
MIP_FLOOR_DB = 33.0        # every mip of the pooled set; measured 35.6 at the worst
SSIM_FLOOR = 0.92          # measured 0.944 at the worst
STEPS, BATCH, PRESET = 800, 2048, "p4"

pytestmark = pytest.mark.skipif(not all((BOTTLE / f).is_file() for f in FILES),
                                reason=f"shared data not found at {BOTTLE}")


@pytest.fixture(scope="module")
def bottle_crop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bottle") / "WaterBottle_crop"
    folder.mkdir()
    y, x, n = CROP
    for f in FILES:
        iio.imwrite(folder / f, iio.imread(BOTTLE / f)[y:y + n, x:x + n])
    tset = load_texture_set(folder)
    settings = CompressSettings(preset=PRESET, device="cpu",
                                train=TrainConfig(steps=STEPS, batch=BATCH, progress=False))
    result = compress(tset, settings, log=lambda *a, **k: None)
    return tset, result


def _mean_prediction_psnr(source_mips) -> float:
    sq, n = 0.0, 0
    for chain in source_mips:
        ref = np.round(chain[0] * 255) / 255
        pred = np.round(ref.mean(axis=(0, 1), keepdims=True) * 255) / 255
        sq += float(((ref - pred) ** 2).sum())
        n += ref.size
    return 10 * math.log10(n / sq)


def test_quality_floor_on_a_real_crop(bottle_crop):
    tset, result = bottle_crop
    r = result.report
    assert (r["width"], r["height"], r["preset"], r["steps"]) == (64, 64, PRESET, STEPS)
    infos, stored = plan_channels(tset)
    baseline = _mean_prediction_psnr(build_targets(tset, infos, stored).source_mips)
    assert baseline < SET_FLOOR_DB - 15  # the floor is far above a network that learned nothing
    assert r["psnr_set"] >= SET_FLOOR_DB, r["psnr_set"]
    assert len(r["psnr_set_mip"]) == 7
    assert min(r["psnr_set_mip"]) >= MIP_FLOOR_DB, r["psnr_set_mip"]
    for name, t in r["textures"].items():
        assert t["psnr"] >= TEXTURE_FLOOR_DB, (name, t["psnr"])
        assert t["ssim"] is not None and t["ssim"] >= SSIM_FLOOR, (name, t["ssim"])


def test_report_figures_come_from_the_file(bottle_crop):
    tset, result = bottle_crop
    infos, stored = plan_channels(tset)
    again = evaluate(from_bytes(result.data), build_targets(tset, infos, stored).source_mips)
    r = result.report
    assert r["file_bytes"] == len(result.data)
    assert r["bpp"] == len(result.data) * 8 / (64 * 64)
    for key in ("psnr_set", "psnr_set_all_mips", "psnr_set_mip"):
        assert r[key] == again[key], key
    assert set(r["textures"]) == set(again["textures"]) == {f[:-4] for f in FILES}
    for name, t in again["textures"].items():
        assert {k: r["textures"][name][k] for k in t} == t
