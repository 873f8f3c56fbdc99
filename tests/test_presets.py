"""--bpp B: the richest preset within B, or the next richer one coarsened to fit when it is only a
little over (every preset carries its MLP and header on top of its name's latent bits)."""
from __future__ import annotations

import pytest

from conftest import ROOT
from trainer.compress import CompressSettings, compress
from trainer.fit import TrainConfig
from trainer.network import GATHER4_WIDE_HIDDEN, NetworkConfig, default_hidden
from trainer.presets import (FIT_SLACK, GATHER4_MAX_GRID, PRESETS, fit_for_bpp, pick_for_bpp,
                             preset_config, preset_layout, preset_table)
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


def test_gather4_presets_trade_features_for_a_finer_grid_at_the_same_bits():
    changed = 0
    for name, features, grid in PRESETS:
        assert preset_layout(features, grid, "bilinear") == (features, grid)
        f, g = preset_layout(features, grid, "gather4")
        assert f % 4 == 0 and 4 <= f <= features
        assert f / g ** 2 == pytest.approx(features / grid ** 2)   # the same latent bits
        # the grid is no coarser than GATHER4_MAX_GRID unless 4 features are not enough for that
        assert g <= GATHER4_MAX_GRID + 1e-9 or f == 4
        if grid <= GATHER4_MAX_GRID:
            assert (f, g) == (features, grid)
        changed += (f, g) != (features, grid)
        # the most features that reach the grid: one step of 4 more would not
        assert f + 4 > features or grid * ((f + 4) / features) ** 0.5 > GATHER4_MAX_GRID
    assert preset_layout(16, 8.0, "gather4") == (4, 8.0 * 0.5)     # p1.3
    assert changed == 3                                            # p0.7, p1.3, p2


def test_the_layout_needs_the_sampling_chosen_and_sets_the_widths():
    with pytest.raises(ValueError, match="sampling"):
        preset_config("p1.3", NetworkConfig())
    cfg = preset_config("p1.3", NetworkConfig(hr_sampling="gather4"))
    assert (cfg.features, cfg.grid_scale) == (4, 4.0)
    assert cfg.widths == default_hidden("gather4", 4) == (64, 48, 32)
    assert preset_config("p4", NetworkConfig(hr_sampling="gather4")).widths == GATHER4_WIDE_HIDDEN
    assert preset_config("p1.3", NetworkConfig(hr_sampling="gather4", hidden=(8,))).widths == (8,)


def test_a_gather4_set_trains_the_finer_layout_at_about_the_bilinear_bpp(bottle):
    tset, infos, stored, w, h, table = bottle
    gather = {r[0]: r for r in preset_table(w, h, stored, infos,
                                            NetworkConfig(hr_sampling="gather4"))}
    by = {r[0]: r for r in table}
    for name in ("p0.7", "p1.3", "p2"):
        assert gather[name][1].features == 4
        # the latent bits are the same; the file differs by the MLP and the grid's rounding
        assert gather[name][2] == pytest.approx(by[name][2], rel=0.06)
    settings = CompressSettings(preset="p1.3", network=NetworkConfig(hr_sampling="gather4"),
                                train=TrainConfig(steps=10, batch=256, progress=False))
    r = compress(tset, settings, log=lambda *a, **k: None).report
    assert (r["features"], r["grid_scale"], r["hidden"]) == (4, 4.0, [64, 48, 32])
    assert r["bpp"] == pytest.approx(gather["p1.3"][2], rel=1e-3)  # header numbers vary in length
