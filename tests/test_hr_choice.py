"""--hr-sampling auto: each set trains with bilinear or gather4 high-res latents, chosen by the
kurtosis of its texel differences; the choice, and the widths that follow it, reach the file."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import write_set
from export.format import from_bytes
from trainer.compress import CompressSettings, compress
from trainer.fit import BETWEEN_SHARE, TrainConfig
from trainer.hr_choice import (GATHER4_MAX_KURTOSIS, choose_hr_sampling, difference_kurtosis,
                               resolve_network)
from trainer.network import NetworkConfig, NeuralTexture, default_hidden
from trainer.targets import build_targets, plan_channels
from trainer.textures import load_texture_set

SIZE = 64


def painted_parts(h: int, w: int) -> np.ndarray:
    """Flat parts split by sharp edges, each with a gentle ramp: few large differences among many
    small ones (a UV-island layout)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    part = (x >= w // 3).astype(int) + 2 * (y >= h // 2)
    base = np.array([30.0, 200.0, 90.0, 150.0])[part]
    return np.clip(base + 0.3 * x, 0, 255).astype(np.uint8)


def fine_detail(h: int, w: int) -> np.ndarray:
    """Detail at the texel scale everywhere (sand, stone): uniform noise."""
    return np.random.default_rng(3).integers(0, 256, (h, w), dtype=np.uint8)


def _targets(folder):
    tset = load_texture_set(folder)
    infos, stored = plan_channels(tset)
    return tset, build_targets(tset, infos, stored)


def _kurtosis_numpy(img: np.ndarray) -> float:
    d = np.concatenate([np.abs(np.diff(img, axis=1)).ravel(), np.abs(np.diff(img, axis=0)).ravel()])
    c = d - d.mean()
    return float((c ** 4).mean() / (c ** 2).mean() ** 2)


@pytest.mark.parametrize("make, expected", [(painted_parts, "bilinear"),
                                            (fine_detail, "gather4")])
def test_the_choice_follows_the_texel_differences(tmp_path, make, expected):
    _, targets = _targets(write_set(tmp_path / "set", {"mat_roughness.png": make}, SIZE, SIZE))
    kurtosis = difference_kurtosis(targets)
    assert kurtosis == pytest.approx(_kurtosis_numpy(make(SIZE, SIZE) / 255.0), rel=1e-6)
    assert choose_hr_sampling(kurtosis) == expected
    chosen, measured = resolve_network(NetworkConfig(), targets)
    assert (chosen.hr_sampling, measured) == (expected, kurtosis)
    assert chosen.widths == default_hidden(expected, chosen.features)


def test_the_threshold_is_inclusive():
    assert choose_hr_sampling(GATHER4_MAX_KURTOSIS) == "gather4"
    assert choose_hr_sampling(GATHER4_MAX_KURTOSIS + 0.01) == "bilinear"


def test_a_given_sampling_is_kept_and_widths_given_win(tmp_path):
    _, targets = _targets(write_set(tmp_path / "set", {"mat_roughness.png": fine_detail},
                                    SIZE, SIZE))
    asked = NetworkConfig(hr_sampling="bilinear", hidden=(16, 8))
    assert resolve_network(asked, targets) == (asked, None)
    assert asked.widths == (16, 8)


def test_between_share_follows_the_sampling_unless_given():
    assert TrainConfig().between_share_for("gather4") == BETWEEN_SHARE["gather4"] > 0
    assert TrainConfig().between_share_for("bilinear") == BETWEEN_SHARE["bilinear"] == 0
    assert TrainConfig(between_share=0.1).between_share_for("gather4") == 0.1
    assert TrainConfig(between_share=0.0).between_share_for("gather4") == 0.0


def test_a_network_is_built_only_once_the_sampling_is_chosen():
    with pytest.raises(ValueError, match="auto"):
        NeuralTexture(NetworkConfig(), 8, 8, 1)
    with pytest.raises(ValueError, match="auto"):
        NetworkConfig().widths


@pytest.mark.parametrize("asked", ["auto", "bilinear"])
def test_the_file_and_report_carry_the_sampling_trained(tmp_path, asked):
    tset, targets = _targets(write_set(tmp_path / "set", {"mat_roughness.png": fine_detail},
                                       SIZE, SIZE))
    settings = CompressSettings(preset="p2.7", network=NetworkConfig(hr_sampling=asked),
                                train=TrainConfig(steps=20, batch=256, progress=False))
    result = compress(tset, settings, log=lambda *a: None)
    model = from_bytes(result.data)
    expected = "gather4" if asked == "auto" else "bilinear"
    assert model.latent.hr_sampling == result.report["hr_sampling"] == expected
    widths = list(default_hidden(expected, model.latent.features))
    assert [n_out for _, n_out in model.mlp_dims[:-1]] == widths == result.report["hidden"]
    assert result.report["hr_sampling_asked"] == asked
    assert result.report["between_share"] == BETWEEN_SHARE[expected]
    if asked == "auto":
        assert result.report["difference_kurtosis"] == pytest.approx(
            difference_kurtosis(targets))
    else:
        assert result.report["difference_kurtosis"] is None
