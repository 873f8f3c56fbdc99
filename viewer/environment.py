"""The viewer's image-based ambient light: a procedural sky / ground gradient and its tables.

The environment's radiance depends only on a direction's height y (world +Y is up, as in glTF):
a blue zenith fading to a bright horizon above, a warm dark ground below, blended across the horizon
over a few degrees. Because of that symmetry, everything the shader needs is a function of one
direction's y and the perceptual roughness, tabulated here once (numerically, by importance
sampling) into a small float texture (shaders/pbr_common.slang: pbrEnvironment):

    rows 0 .. R-1   GGX-prefiltered radiance at perceptual roughness r / (R - 1) (alpha = r^2),
                    with the split-sum assumption N = V = R, weighted by N.L (Karis 2013)
    row R           irradiance / pi at a normal of height y (cosine-weighted mean radiance)

columns: y from -1 to 1, texel centres at both ends. The table is linear light, RGB32F.
"""
from __future__ import annotations

import numpy as np

ZENITH = np.array([0.22, 0.38, 0.78])     # linear radiance straight up
HORIZON = np.array([0.95, 0.95, 1.0])     # at the horizon, sky side
GROUND = np.array([0.20, 0.17, 0.14])     # below
GROUND_HORIZON = np.array([0.45, 0.42, 0.38])
BLEND = 0.06                              # horizon softness, in y

COLUMNS = 128
ROUGHNESS_ROWS = 9
SAMPLES = 4096


def radiance(y: np.ndarray) -> np.ndarray:
    """Linear RGB radiance [..., 3] of directions with height y ([...], in [-1, 1])."""
    y = np.asarray(y, np.float64)[..., None]
    up = np.clip(y, 0.0, 1.0)
    sky = HORIZON + (ZENITH - HORIZON) * np.sqrt(up)
    down = np.clip(-y, 0.0, 1.0)
    ground = GROUND_HORIZON + (GROUND - GROUND_HORIZON) * np.sqrt(down)
    t = np.clip((y + BLEND) / (2 * BLEND), 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    return ground + (sky - ground) * t


def _hammersley(n: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n, dtype=np.uint32)
    bits = i.copy()
    bits = ((bits << 16) | (bits >> 16)) & 0xFFFFFFFF
    bits = ((bits & 0x55555555) << 1) | ((bits & 0xAAAAAAAA) >> 1)
    bits = ((bits & 0x33333333) << 2) | ((bits & 0xCCCCCCCC) >> 2)
    bits = ((bits & 0x0F0F0F0F) << 4) | ((bits & 0xF0F0F0F0) >> 4)
    bits = ((bits & 0x00FF00FF) << 8) | ((bits & 0xFF00FF00) >> 8)
    return (i + 0.5) / n, bits.astype(np.float64) / 2.0 ** 32


def _frames(ys: np.ndarray):
    """Orthonormal frames (t, b, n) whose n has height ys and lies in the x-y plane."""
    n = np.stack([np.sqrt(np.clip(1 - ys * ys, 0, 1)), ys, np.zeros_like(ys)], -1)
    b = np.broadcast_to(np.array([0.0, 0.0, 1.0]), n.shape)
    t = np.cross(b, n)
    return t, b, n


def table(columns: int = COLUMNS, roughness_rows: int = ROUGHNESS_ROWS,
          samples: int = SAMPLES) -> np.ndarray:
    """float32 [roughness_rows + 1, columns, 4]: the environment texture (alpha 1)."""
    ys = np.linspace(-1.0, 1.0, columns)
    t, b, n = _frames(ys)
    u1, u2 = _hammersley(samples)
    phi = 2 * np.pi * u2
    out = np.ones((roughness_rows + 1, columns, 4), np.float32)
    for row in range(roughness_rows):
        r = row / (roughness_rows - 1)
        a = max(r * r, 1e-4)
        cos_h = np.sqrt((1 - u1) / (1 + (a * a - 1) * u1))
        sin_h = np.sqrt(1 - cos_h ** 2)
        # half vectors in each column's frame; V = N, L = reflect(-V, H) = 2 (N.H) H - N
        h = (t[:, None] * (sin_h * np.cos(phi))[None, :, None]
             + b[:, None] * (sin_h * np.sin(phi))[None, :, None]
             + n[:, None] * cos_h[None, :, None])
        n_dot_h = cos_h[None, :]
        light = 2 * n_dot_h[..., None] * h - n[:, None]
        n_dot_l = np.clip((light * n[:, None]).sum(-1), 0, None)
        rad = radiance(light[..., 1])
        w = n_dot_l[..., None]
        out[row, :, :3] = (rad * w).sum(1) / np.maximum(w.sum(1), 1e-12)
    # cosine-weighted directions: the mean radiance is irradiance / pi
    cos_t = np.sqrt(1 - u1)
    sin_t = np.sqrt(u1)
    light = (t[:, None] * (sin_t * np.cos(phi))[None, :, None]
             + b[:, None] * (sin_t * np.sin(phi))[None, :, None]
             + n[:, None] * cos_t[None, :, None])
    out[roughness_rows, :, :3] = radiance(light[..., 1]).mean(1)
    return out
