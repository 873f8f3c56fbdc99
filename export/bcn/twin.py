"""NumPy twin of the GPU BCn encoder (shaders/bcn_encode.slang): the same algorithm, step for
step, in float32, vectorised over blocks; the GL encoder is held to it block for block
(tests/test_gl_bcn.py) and both to bc7enc's quality by bench.transcode.

BC4 (and BC5 = BC4 of R, then of G): the 8-value mode (r0 = max > r1 = min), starting from the
block's min and max, each texel the nearest of the 8 levels; then REFINE_STEPS times least-squares
endpoints for those levels, rounded, kept when the error drops. A flat block is r0 = r1.
BC7 mode 6 (one subset, RGBA endpoints of 7 bits + a p-bit each, 4-bit indices):
  1. principal axis of the block's RGBA (POWER_STEPS steps of power iteration on the covariance,
     from the axis of the largest channel range), endpoints at the extreme projections;
  2. each endpoint rounded to 7 bits under the p-bit (0 or 1) that lands nearer;
  3. each texel the index of the nearest of the 16 interpolated colours (first on ties);
  4. REFINE_STEPS times: least-squares endpoints for those indices, rounded and indexed again,
     kept when the block's squared error drops;
  5. the anchor (texel 0) index made < 8 by swapping the endpoints.
Values are 0..255 floats (the 8-bit texels); errors are plain squared RGBA differences, as bc7enc
with linear weights. Edge blocks repeat the level's last row / column (codec.pad_to_blocks).
"""
from __future__ import annotations

import numpy as np

from shaders import constants as C

from .codec import pad_to_blocks, to_rgba8
from .formats import FORMATS

POWER_STEPS = C.BCN_POWER_STEPS
REFINE_STEPS = C.BCN_REFINE_STEPS
BC7_WEIGHTS = np.array([0, 4, 9, 13, 17, 21, 26, 30, 34, 38, 43, 47, 51, 55, 60, 64], np.float32)


def blocks_of(rgba: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] -> float32 [blocks_h, blocks_w, 16, 4], texels in row order."""
    p = pad_to_blocks(rgba).astype(np.float32)
    h, w = p.shape[:2]
    return p.reshape(h // 4, 4, w // 4, 4, 4).transpose(0, 2, 1, 3, 4).reshape(h // 4, w // 4,
                                                                             16, 4)


# ---------------------------------------------------------------------------------------------
# BC4 / BC5

def _bc4_levels(v, lo, hi):
    """(level 0..7 per texel: lo + level/7 (hi - lo), squared error) of the nearest level."""
    span = np.maximum(hi - lo, np.float32(1))
    level = np.clip(np.floor((v - lo[..., None]) / span[..., None] * np.float32(7)
                             + np.float32(0.5)), 0, 7)
    value = lo[..., None] + level * (hi - lo)[..., None] / np.float32(7)
    return level, ((value - v) ** 2).sum(-1)


def bc4_blocks(v: np.ndarray) -> np.ndarray:
    """float32 [..., 16] values 0..255 -> uint8 [..., 8] BC4 blocks."""
    v = v.astype(np.float32)
    lo, hi = v.min(-1), v.max(-1)
    level, err = _bc4_levels(v, lo, hi)
    for _ in range(REFINE_STEPS):   # least-squares endpoints for these levels
        a = level / np.float32(7)
        aa, bb, ab = ((1 - a) ** 2).sum(-1), (a * a).sum(-1), ((1 - a) * a).sum(-1)
        det = aa * bb - ab * ab
        x0, x1 = ((1 - a) * v).sum(-1), (a * v).sum(-1)
        safe = np.where(det > np.float32(1e-3), det, np.float32(1))
        n0 = np.clip(np.floor((bb * x0 - ab * x1) / safe + np.float32(0.5)), 0, 255)
        n1 = np.clip(np.floor((aa * x1 - ab * x0) / safe + np.float32(0.5)), 0, 255)
        nlevel, nerr = _bc4_levels(v, n0, n1)
        take = (det > np.float32(1e-3)) & (n1 > n0) & (nerr < err)
        lo, hi = np.where(take, n0, lo), np.where(take, n1, hi)
        level, err = np.where(take[..., None], nlevel, level), np.where(take, nerr, err)
    level = level.astype(np.uint64)
    idx = np.where(level == 7, 0, np.where(level == 0, 1, 8 - level))
    idx = np.where((hi > lo)[..., None], idx, 0)
    bits = np.zeros(v.shape[:-1], np.uint64)
    for i in range(16):
        bits |= idx[..., i] << np.uint64(3 * i)
    out = np.zeros((*v.shape[:-1], 8), np.uint8)
    out[..., 0] = hi.astype(np.uint8)
    out[..., 1] = lo.astype(np.uint8)
    for b in range(6):
        out[..., 2 + b] = ((bits >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.uint8)
    return out


def encode_bc4(values: np.ndarray) -> bytes:
    """uint8 [H, W] or [H, W, 1+] (R used) -> BC4 blocks."""
    r = values if values.ndim == 2 else values[..., 0]
    blocks = blocks_of(to_rgba8(r[..., None]))[..., 0]
    return bc4_blocks(blocks).tobytes()


def encode_bc5(values: np.ndarray) -> bytes:
    """uint8 [H, W, 2+] (R, G used) -> BC5 blocks (BC4 of R, then BC4 of G)."""
    blocks = blocks_of(to_rgba8(values[..., :2]))
    return np.concatenate([bc4_blocks(blocks[..., 0]), bc4_blocks(blocks[..., 1])], -1).tobytes()


# ---------------------------------------------------------------------------------------------
# BC7 mode 6

def _quantize(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Endpoints [..., 4] (0..255) -> (7-bit values [..., 4], p-bit [...]) of the nearer p."""
    best_q = best_p = best_err = None
    for p in (0, 1):
        q = np.clip(np.floor((e - np.float32(p)) * np.float32(0.5) + np.float32(0.5)), 0, 127)
        err = (((q * 2 + p) - e) ** 2).sum(-1)
        if best_err is None:
            best_q, best_p, best_err = q, np.zeros(err.shape, np.float32), err
        else:
            better = err < best_err
            best_q = np.where(better[..., None], q, best_q)
            best_p = np.where(better, np.float32(1), best_p)
            best_err = np.where(better, err, best_err)
    return best_q.astype(np.float32), best_p


def _palette(q0, p0, q1, p1) -> np.ndarray:
    """[..., 16, 4] colours of the 16 indices (the decoder's integer interpolation)."""
    e0 = (q0 * 2 + p0[..., None]).astype(np.int32)
    e1 = (q1 * 2 + p1[..., None]).astype(np.int32)
    w = BC7_WEIGHTS.astype(np.int32)[:, None]
    return (((64 - w) * e0[..., None, :] + w * e1[..., None, :] + 32) >> 6).astype(np.float32)


def _indices(px: np.ndarray, pal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index [..., 16], block squared error) of the nearest palette colour per texel."""
    d = ((px[..., :, None, :] - pal[..., None, :, :]) ** 2).sum(-1)   # [..., 16 texels, 16]
    idx = d.argmin(-1)
    return idx, np.take_along_axis(d, idx[..., None], -1)[..., 0].sum(-1)


def _principal_axis(px: np.ndarray) -> np.ndarray:
    mean = px.mean(-2)
    c = px - mean[..., None, :]
    cov = np.einsum("...ti,...tj->...ij", c, c)
    rng = px.max(-2) - px.min(-2)
    axis = np.where(np.arange(4) == rng.argmax(-1)[..., None], np.float32(1), np.float32(0))
    for _ in range(POWER_STEPS):
        axis = np.einsum("...ij,...j->...i", cov, axis)
        n = np.sqrt((axis * axis).sum(-1, keepdims=True))
        axis = np.where(n > 1e-20, axis / np.maximum(n, np.float32(1e-20)), 0).astype(np.float32)
    return axis


def bc7_mode6_blocks(px: np.ndarray) -> np.ndarray:
    """float32 [..., 16, 4] texels 0..255 -> uint8 [..., 16] BC7 mode 6 blocks."""
    px = px.astype(np.float32)
    mean = px.mean(-2)
    axis = _principal_axis(px)
    t = ((px - mean[..., None, :]) * axis[..., None, :]).sum(-1)
    e0 = np.clip(mean + t.min(-1)[..., None] * axis, 0, 255)
    e1 = np.clip(mean + t.max(-1)[..., None] * axis, 0, 255)
    q0, p0 = _quantize(e0)
    q1, p1 = _quantize(e1)
    idx, err = _indices(px, _palette(q0, p0, q1, p1))
    for _ in range(REFINE_STEPS):
        a = BC7_WEIGHTS[idx] / np.float32(64)               # weight of e1 per texel
        aa, bb, ab = ((1 - a) ** 2).sum(-1), (a * a).sum(-1), ((1 - a) * a).sum(-1)
        det = aa * bb - ab * ab
        x0 = ((1 - a)[..., None] * px).sum(-2)
        x1 = (a[..., None] * px).sum(-2)
        ok = det > np.float32(1e-3)
        safe = np.where(ok, det, np.float32(1))[..., None]
        n0 = np.clip((bb[..., None] * x0 - ab[..., None] * x1) / safe, 0, 255)
        n1 = np.clip((aa[..., None] * x1 - ab[..., None] * x0) / safe, 0, 255)
        r0, s0 = _quantize(n0)
        r1, s1 = _quantize(n1)
        ridx, rerr = _indices(px, _palette(r0, s0, r1, s1))
        take = ok & (rerr < err)
        q0 = np.where(take[..., None], r0, q0)
        q1 = np.where(take[..., None], r1, q1)
        p0, p1 = np.where(take, s0, p0), np.where(take, s1, p1)
        idx, err = np.where(take[..., None], ridx, idx), np.where(take, rerr, err)
    swap = idx[..., 0] >= 8
    q0, q1 = np.where(swap[..., None], q1, q0), np.where(swap[..., None], q0, q1)
    p0, p1 = np.where(swap, p1, p0), np.where(swap, p0, p1)
    idx = np.where(swap[..., None], 15 - idx, idx)
    return pack_mode6(q0.astype(np.uint64), p0.astype(np.uint64), q1.astype(np.uint64),
                      p1.astype(np.uint64), idx.astype(np.uint64))


def pack_mode6(q0, p0, q1, p1, idx) -> np.ndarray:
    """Bit-pack mode 6 fields ([..., 4] endpoints, [...] p-bits, [..., 16] indices)."""
    lo = np.full(q0.shape[:-1], C.BCN_BC7_MODE6_BIT, np.uint64)
    hi = np.zeros(q0.shape[:-1], np.uint64)
    pos = 7
    fields = []
    for c in range(4):
        fields += [(q0[..., c], 7), (q1[..., c], 7)]
    fields += [(p0, 1), (p1, 1)]
    fields += [(idx[..., i], 3 if i == 0 else 4) for i in range(16)]
    for value, n in fields:
        for b in range(n):   # bit by bit: fields straddle the 64-bit halves
            bit = (value >> np.uint64(b)) & np.uint64(1)
            if pos < 64:
                lo |= bit << np.uint64(pos)
            else:
                hi |= bit << np.uint64(pos - 64)
            pos += 1
    out = np.zeros((*q0.shape[:-1], 16), np.uint8)
    for b in range(8):
        out[..., b] = ((lo >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.uint8)
        out[..., 8 + b] = ((hi >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.uint8)
    return out


def encode_bc7(rgba: np.ndarray) -> bytes:
    """uint8 [H, W, 4] -> BC7 (mode 6) blocks."""
    return bc7_mode6_blocks(blocks_of(rgba)).tobytes()


def encode(name: str, rgba: np.ndarray) -> bytes:
    """Blocks of one level (uint8 [H, W, 4]) in BC4, BC5 or BC7, as the GPU encoder makes them."""
    if name == "bc4":
        return encode_bc4(rgba)
    if name == "bc5":
        return encode_bc5(rgba)
    if name == "bc7":
        return encode_bc7(rgba)
    raise ValueError(f"the GPU encoder has no {name}")


GPU_FORMATS = tuple(FORMATS[n] for n in ("bc4", "bc5", "bc7"))
