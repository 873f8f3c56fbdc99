"""Sizes every stage derives from the header: colour mips, latent levels, MLP input width.

Kept in one place so the writer, the reader's validation, the PyTorch decoder and the shaders agree.
"""
from __future__ import annotations

import math

PE_OCTAVES = 3  # triangle-wave positional encoding: 3 octaves x 2 phases x (x, y) = 12 inputs
PE_INPUTS = 4 * PE_OCTAVES
LOD_INPUTS = 1
HR_SAMPLINGS = ("bilinear", "gather4")


def mip_count(width: int, height: int) -> int:
    """Full GL mip chain length for a width x height texture."""
    return int(math.floor(math.log2(max(width, height)))) + 1


def mip_size(width: int, height: int, mip: int) -> tuple[int, int]:
    """GL rule: each level halves, rounding down, never below 1."""
    return max(1, width >> mip), max(1, height >> mip)


def latent_base_size(width: int, height: int, grid_scale: float) -> tuple[int, int]:
    """Level 0 of the latent pyramid: one latent texel per grid_scale x grid_scale texels."""
    return max(1, math.ceil(width / grid_scale)), max(1, math.ceil(height / grid_scale))


def latent_level_sizes(width: int, height: int, grid_scale: float) -> list[tuple[int, int]]:
    """The latent pyramid is one texture array with a full GL mip chain of its own."""
    lw, lh = latent_base_size(width, height, grid_scale)
    return [mip_size(lw, lh, j) for j in range(mip_count(lw, lh))]


def latent_pair(mip: int, num_levels: int) -> tuple[int, int]:
    """Colour mip m reads latent levels m (high-res) and m+1 (low-res), clamped to the pyramid."""
    last = num_levels - 1
    return min(mip, last), min(mip + 1, last)


def pad4(n: int) -> int:
    return (n + 3) // 4 * 4


def mlp_input_size(features: int, hr_sampling: str) -> int:
    """Unpadded MLP input: high-res latents (1 or 4 taps), low-res latents, positional code, LOD."""
    taps = 4 if hr_sampling == "gather4" else 1
    extra = 2 if hr_sampling == "gather4" else 0  # the bilinear weights of the 4 taps
    return taps * features + features + PE_INPUTS + LOD_INPUTS + extra


def container_bits(bits: int) -> int:
    """Latents of 2..4 bits live in RGBA4 texels on the GPU, 5..8 bits in RGBA8."""
    return 4 if bits <= 4 else 8


def latent_level_bytes(level_size: tuple[int, int], features: int, bits: int) -> int:
    """Bytes of one latent level in the file: values bit-packed, layer-major (features/4 RGBA layers)."""
    w, h = level_size
    return (w * h * features * bits + 7) // 8
