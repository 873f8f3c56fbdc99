"""Bit-rate presets: grid scale x latent features at 4 bits. The exact bpp of a preset depends on
the set (MLP size amortised over its texels, its stored channels), so it is computed by
serialising an untrained model of the same shape: the file size is known before training."""
from __future__ import annotations

import math
from dataclasses import replace

from export import layout
from export.format import to_bytes
from export.model import TextureInfo

from .network import NetworkConfig, NeuralTexture

# (name, features, grid scale): latent bits per texel of mip 0 ~= features * 4 * 4/3 / scale^2
PRESETS: list[tuple[str, int, float]] = [
    ("p0.7", 8, 8.0),
    ("p1.3", 16, 8.0),
    ("p2", 12, 5.66),
    ("p2.7", 8, 4.0),
    ("p4", 12, 4.0),
    ("p5.3", 16, 4.0),
    ("p8", 12, 2.83),
    ("p10.7", 8, 2.0),
    ("p16", 12, 2.0),
    ("p21", 16, 2.0),
]


# gather4 reads the 4 nearest high-res latents, so a coarse grid starves it of detail: its presets
# never use a grid coarser than this many texels, trading latent features (in steps of 4, down to
# 4) for a finer grid at the same latent bits (bench/choices.md)
GATHER4_MAX_GRID = 4.0


def preset_layout(features: int, grid_scale: float, hr_sampling: str) -> tuple[int, float]:
    """(features, grid scale) of a preset for this high-res sampling, which must be chosen already
    (hr_choice.resolve_network chooses it for a set): as listed, except that gather4 moves to
    fewer features on a finer grid (features / grid_scale^2 kept) until the grid is at most
    GATHER4_MAX_GRID texels."""
    if hr_sampling not in layout.HR_SAMPLINGS:
        raise ValueError(f"high-res sampling '{hr_sampling}': choose it before the preset's "
                         "layout (hr_choice.resolve_network)")
    if hr_sampling != "gather4":
        return features, grid_scale
    f = features  # features come 4 to a latent texture layer (export/header.py checks it)
    while f > 4 and grid_scale * math.sqrt(f / features) > GATHER4_MAX_GRID:
        f -= 4
    return f, grid_scale * math.sqrt(f / features)


def preset_config(name: str, base: NetworkConfig) -> NetworkConfig:
    """The preset's latent shape (preset_layout) on `base`."""
    for n, f, g in PRESETS:
        if n == name:
            f, g = preset_layout(f, g, base.hr_sampling)
            return replace(base, features=f, grid_scale=g)
    raise KeyError(name)


def file_bytes(cfg: NetworkConfig, width: int, height: int, stored: int,
               textures: list[TextureInfo]) -> int:
    net = NeuralTexture(cfg, width, height, stored)
    return len(to_bytes(net.export(textures)))


def preset_table(width: int, height: int, stored: int, textures: list[TextureInfo],
                 base: NetworkConfig) -> list[tuple[str, NetworkConfig, float]]:
    """Every preset on `base` (its sampling chosen: the MLP's bytes count) with its exact bpp
    for this set, in increasing bpp."""
    rows = []
    for name, _, _ in PRESETS:
        cfg = preset_config(name, base)
        rows.append((name, cfg, file_bytes(cfg, width, height, stored, textures) * 8 / (width * height)))
    return sorted(rows, key=lambda r: r[2])


def pick_for_bpp(table, bpp: float):
    """The richest preset whose file stays within `bpp`, or the smallest if none does."""
    within = [r for r in table if r[2] <= bpp * 1.0001]
    return within[-1] if within else table[0]


# A preset's name is its latent bits per texel; the MLP and header come on top, so every rung is a
# little over its name (2K: 4.02 for p4; 512^2: 4.35), and --bpp 4 would fall a whole rung, to
# ~2.7-3.0 bpp. A rung at most this much over the budget is coarsened to fit instead.
FIT_SLACK = 1.15


def coarsen_to_fit(cfg: NetworkConfig, width: int, height: int, stored: int,
                   textures: list[TextureInfo], bpp: float, steps: int = 12):
    """(cfg with a coarser latent grid, its bpp): the smallest grid-scale increase, up to 2x, whose
    file fits `bpp` (bisection on the exact serialized size); None if 2x is not enough."""
    def size(scale: float) -> float:
        return file_bytes(replace(cfg, grid_scale=scale), width, height, stored, textures) * 8 \
            / (width * height)
    lo, hi = cfg.grid_scale, cfg.grid_scale * 2
    hi_bpp = size(hi)
    if hi_bpp > bpp:
        return None
    for _ in range(steps):
        mid = (lo + hi) / 2
        mid_bpp = size(mid)
        if mid_bpp > bpp:
            lo = mid
        else:
            hi, hi_bpp = mid, mid_bpp
    return replace(cfg, grid_scale=hi), hi_bpp


def fit_for_bpp(table, bpp: float, width: int, height: int, stored: int,
                textures: list[TextureInfo]):
    """What --bpp trains: the richest preset within `bpp`, unless the next richer one is at most
    FIT_SLACK over, which is then coarsened to fit and named NAME@BPP (e.g. p4@4). Measured on
    the 512^2 WaterBottle set, 10 000 steps: p2.7 3.00 bpp 41.19 dB, p4@4 3.98 bpp 42.47 dB."""
    row = pick_for_bpp(table, bpp)
    i = table.index(row)
    candidate = row if row[2] > bpp * 1.0001 else (table[i + 1] if i + 1 < len(table) else None)
    if candidate is not None and candidate[2] <= bpp * FIT_SLACK:
        fitted = coarsen_to_fit(candidate[1], width, height, stored, textures, bpp)
        if fitted is not None:
            return (f"{candidate[0]}@{bpp:g}", *fitted)
    return row

