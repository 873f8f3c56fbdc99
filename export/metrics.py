"""Image quality measures, defined once for the trainer's report, the viewer and the benches."""
from __future__ import annotations

import math

import numpy as np


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    """PSNR in dB of a mean squared error on a 0..peak scale; inf for a zero error."""
    return math.inf if mse <= 0 else 10 * math.log10(peak * peak / mse)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference in float64 of two arrays of the same shape."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shape mismatch {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("psnr: empty arrays")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two arrays of the same shape (uint8 images by default); inf when equal."""
    return psnr_from_mse(mse(a, b), peak)
