"""--bpp B: the richest preset within B, or the next richer one coarsened to fit when it is only a
little over (every preset carries its MLP and header on top of its name's latent bits)."""
from __future__ import annotations

import pytest

from conftest import ROOT
from trainer.compress import CompressSettings, compress
from trainer.fit import TrainConfig
from trainer.network import NetworkConfig
from trainer.presets import FIT_SLACK, fit_for_bpp, pick_for_bpp, preset_table
from trainer.targets import plan_channels
from trainer.textures import load_texture_set

BOTTLE = ROOT / "assets" / "WaterBottle"   # 512^2, 11 stored channels


@pytest.fixture(scope="module")
def bottle():
    tset = load_texture_set(BOTTLE)
    infos, stored = plan_channels(tset)
    w, h = tset.size
    return tset, infos, stored, w, h, preset_table(w, h, stored, infos,
                                                  NetworkConfig(hr_sampling="bilinear"))


def test_a_rung_a_little_over_the_budget_is_coarsened_to_fit(bottle):
    _, infos, stored, w, h, table = bottle
    by = {r[0]: r for r in table}
    assert 4.0 < by["p4"][2] <= 4.0 * FIT_SLACK          # 4.35 at 512^2: over its own name
    assert pick_for_bpp(table, 4.0)[0] == "p2.7"          # so plain picking falls a rung
    name, cfg, bpp = fit_for_bpp(table, 4.0, w, h, stored, infos)
    assert name == "p4@4" and cfg.features == by["p4"][1].features
    assert cfg.grid_scale > by["p4"][1].grid_scale
    assert by["p2.7"][2] < bpp <= 4.0 and bpp > 3.9     # uses the budget, never exceeds it
    # a budget the next rung is far over keeps the rung within it
    assert fit_for_bpp(table, by["p2.7"][2], w, h, stored, infos) == by["p2.7"]
    # below the smallest preset: coarsened when close, else the smallest as before
    name, _, bpp = fit_for_bpp(table, 0.95 * by["p0.7"][2], w, h, stored, infos)
    assert name.startswith("p0.7@") and bpp <= 0.95 * by["p0.7"][2]
    assert fit_for_bpp(table, 0.5 * by["p0.7"][2], w, h, stored, infos) == by["p0.7"]


def test_compress_with_bpp_stays_within_it(bottle):
    tset = bottle[0]
    settings = CompressSettings(bpp=4.0, device="cpu",
                                train=TrainConfig(steps=10, batch=256, progress=False))
    r = compress(tset, settings, log=lambda *a, **k: None).report
    assert r["preset"] == "p4@4" and 3.9 < r["bpp"] <= 4.0
