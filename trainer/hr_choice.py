"""Which high-res latent sampling a set trains with when --hr-sampling is auto.

"gather4" hands the MLP the 4 nearest high-res latents and the tap weights instead of their
bilinear blend, so it can rebuild detail finer than the latent grid, with a narrower first layer
to keep the MACs of a decode about equal. That wins on sets with texture detail everywhere (stone,
brick, sand, bark) and loses on sets of smooth regions split by a few sharp edges (UV islands,
painted parts). The kurtosis of the set's texel-to-texel differences tells the two apart: few
large steps among many near-zero ones give a heavy tail (high kurtosis), dense detail a light
one. The threshold and the A/B on 14 sets are in bench/choices.md.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .network import NetworkConfig
from .targets import TrainingTargets

# Sets whose difference kurtosis is at most this train with gather4 (bench/choices.md).
GATHER4_MAX_KURTOSIS = 32.0


def difference_kurtosis(targets: TrainingTargets) -> float:
    """Kurtosis (E[(d - mean)^4] / var^2) of |d|, d every horizontal and vertical difference of
    neighbouring texels of mip 0, over all stored channels; float64 moments, one channel at a time.
    0 for a set with no differences to measure (one texel, or all differences equal)."""
    w, h = (int(v) for v in targets.mip_sizes[0])
    mip0 = targets.values[:w * h]
    n = mip0.shape[1] * (h * (w - 1) + (h - 1) * w)
    if n == 0:
        return 0.0
    sums = torch.zeros(4, dtype=torch.float64)   # sum of d, d^2, d^3, d^4
    for c in range(mip0.shape[1]):
        img = mip0[:, c].reshape(h, w).double()
        for d in ((img[:, 1:] - img[:, :-1]).abs(), (img[1:] - img[:-1]).abs()):
            sums += torch.stack([d.sum(), (d ** 2).sum(), (d ** 3).sum(), (d ** 4).sum()])
    m1, m2, m3, m4 = (float(s) / n for s in sums)
    var = m2 - m1 * m1
    if var <= 1e-18:
        return 0.0
    central4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1 ** 4
    return central4 / (var * var)


def choose_hr_sampling(kurtosis: float) -> str:
    return "gather4" if kurtosis <= GATHER4_MAX_KURTOSIS else "bilinear"


def resolve_network(cfg: NetworkConfig, targets: TrainingTargets) -> tuple[NetworkConfig, float | None]:
    """(cfg with hr_sampling "auto" replaced by the set's choice, the kurtosis it was chosen by,
    or None when the sampling was given). Hidden widths left unset follow the sampling
    (NetworkConfig.widths)."""
    if cfg.hr_sampling != "auto":
        return cfg, None
    kurtosis = difference_kurtosis(targets)
    return replace(cfg, hr_sampling=choose_hr_sampling(kurtosis)), kurtosis
