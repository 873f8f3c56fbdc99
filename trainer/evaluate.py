"""Quality of a written file: decode it (never the float model) and compare with the sources."""
from __future__ import annotations


import numpy as np
import torch
from pytorch_msssim import ssim

from export.decode.reference import FileDecoder, to_uint
from export.metrics import psnr_from_mse
from export.model import NTCModel


def _quantized(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """Values as the 8/16-bit file holds them, on a [0, 1] scale."""
    peak = (1 << bit_depth) - 1
    return to_uint(x, bit_depth).astype(np.float64) / peak


def _ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    h, w = a.shape[:2]
    win = min(11, h, w)
    win -= 1 - win % 2  # odd window no larger than the image
    if win < 3:
        return None
    ta = torch.from_numpy(a).float().permute(2, 0, 1)[None]
    tb = torch.from_numpy(b).float().permute(2, 0, 1)[None]
    return float(ssim(ta, tb, data_range=1.0, win_size=win))


def evaluate(model: NTCModel, source_mips: list[list[np.ndarray]]) -> dict:
    """PSNR per texture and mip, pooled per mip and over the set, SSIM at mip 0.

    PSNR is on the source's integer values (8-bit: peak 255) after the decoder's channel rebuild
    (normal Z, constants), so it is what a user sees in the decoded PNGs.
    """
    dec = FileDecoder.from_model(model)
    per_tex = {t.name: {"psnr_mip": [], "ssim": None} for t in model.textures}
    pooled_mip, total_sq, total_n = [], 0.0, 0
    for m in range(model.mips):
        sq, n = 0.0, 0
        for tex, img, chain in zip(model.textures, dec.textures_mip(m), source_mips):
            a = _quantized(img, tex.bit_depth)
            b = _quantized(chain[m], tex.bit_depth)
            e = float(((a - b) ** 2).sum())
            per_tex[tex.name]["psnr_mip"].append(psnr_from_mse(e / a.size))
            if m == 0:
                per_tex[tex.name]["ssim"] = _ssim(a, b)
            sq, n = sq + e, n + a.size
        pooled_mip.append(psnr_from_mse(sq / n))
        total_sq, total_n = total_sq + sq, total_n + n
    for v in per_tex.values():
        v["psnr"] = v["psnr_mip"][0]
    return {
        "psnr_set": pooled_mip[0],            # mip 0, all channels of all textures pooled
        "psnr_set_all_mips": psnr_from_mse(total_sq / total_n),
        "psnr_set_mip": pooled_mip,
        "textures": per_tex,
    }
