"""Pixel helpers every stage shares: the sRGB transfer function, a normal map's rebuilt Z, mip
chains and resizing. Values are floats on a 0..1 scale; the transfer functions take numpy arrays
or torch tensors alike."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import layout


def _clip(x, lo=None, hi=None):
    return x.clamp(lo, hi) if isinstance(x, torch.Tensor) else np.clip(x, lo, hi)


def _where(cond, a, b):
    return torch.where(cond, a, b) if isinstance(cond, torch.Tensor) else np.where(cond, a, b)


def srgb_to_linear(x):
    """The sRGB decoding curve (IEC 61966-2-1)."""
    return _where(x <= 0.04045, x / 12.92, _clip((x + 0.055) / 1.055, 0) ** 2.4)


def linear_to_srgb(x):
    """The sRGB encoding curve; input clipped to 0..1."""
    x = _clip(x, 0, 1)
    return _where(x <= 0.0031308, x * 12.92, 1.055 * _clip(x, 1e-12) ** (1 / 2.4) - 0.055)


def rebuild_normal_z(xy: np.ndarray) -> np.ndarray:
    """Z of unit normals from their encoded X, Y (0..1 each), encoded the same way."""
    x, y = xy[..., 0] * 2 - 1, xy[..., 1] * 2 - 1
    return np.sqrt(np.maximum(0.0, 1.0 - x * x - y * y)) * 0.5 + 0.5


def build_mips(pixels: np.ndarray, srgb: list[bool], normal: bool) -> list[np.ndarray]:
    """Full mip chain, each level box-filtered from mip 0: colour in linear light, normals
    averaged as vectors and renormalised, everything else as is."""
    h, w, c = pixels.shape
    base = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    srgb_mask = torch.tensor(srgb)[None, :, None, None]
    lin = torch.where(srgb_mask, srgb_to_linear(base), base)
    if normal and c >= 3:
        lin = lin.clone()
        lin[:, :3] = lin[:, :3] * 2 - 1
    mips = [pixels]
    for m in range(1, layout.mip_count(w, h)):
        mw, mh = layout.mip_size(w, h, m)
        d = F.interpolate(lin, size=(mh, mw), mode="area")
        if normal and c >= 3:
            d = d.clone()
            d[:, :3] = F.normalize(d[:, :3], dim=1) * 0.5 + 0.5
        d = torch.where(srgb_mask, linear_to_srgb(d), d).clamp(0, 1)
        mips.append(d[0].permute(1, 2, 0).contiguous().numpy())
    return mips


def resize(px: np.ndarray, w: int, h: int, srgb: bool, normal: bool) -> np.ndarray:
    """Bilinear (area-averaging when shrinking an axis) resize of float32 [H, W, C] in [0, 1]."""
    from PIL import Image
    work = px.astype(np.float32)
    if srgb:
        work = work.copy()
        work[..., :3] = srgb_to_linear(work[..., :3])
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(work[..., c]), mode="F")
                               .resize((w, h), Image.Resampling.BILINEAR))
                    for c in range(work.shape[2])], axis=2)
    if normal and out.shape[2] >= 3:
        v = out[..., :3] * 2 - 1
        n = np.linalg.norm(v, axis=2, keepdims=True)
        out[..., :3] = np.where(n > 1e-6, v / np.maximum(n, 1e-6), v) * 0.5 + 0.5
    if srgb:
        out[..., :3] = linear_to_srgb(out[..., :3])
    return np.clip(out, 0, 1).astype(np.float32)
