"""NumPy twin of the GPU BC7 encoder (shaders/bcn_encode.slang: bc7Main), step for step in
float32, vectorised over blocks [B, 16, 4] of 0..255 texels (twin.blocks_of).

BC7, the better (squared error) of two modes; bc7enc at uber level 1 picks the same two on opaque
textures. Mode 6 (one subset, RGBA endpoints of 7 bits + a p-bit each, 4-bit indices):
  1. principal axis of the block's RGBA (POWER_STEPS steps of power iteration on the covariance,
     from the axis of the largest channel range), endpoints at the extreme projections;
  2. each endpoint rounded to 7 bits under the p-bit (0 or 1) that lands nearer;
  3. each texel the index of the nearest of the 16 interpolated colours (first on ties);
  4. REFINE_STEPS times: least-squares endpoints for those indices, rounded and indexed again,
     kept when the block's squared error drops; then every pair of p-bits for the last
     endpoints, kept when the error drops (a flat block needs one even and one odd endpoint);
  5. the anchor (texel 0) index made < 8 by swapping the endpoints.
Mode 1 (two subsets of RGB, 6-bit endpoints + a p-bit per subset, 3-bit indices, alpha 255):
  1. of the 64 partitions, the one whose subsets best fit a line of 8 levels each: distance
     from the principal line (trace less largest eigenvalue of the subset's covariance,
     ESTIMATE_STEPS power steps from (1, 1, 1)) plus 8 levels' quantization error over the
     subset's extent along it;
  2. each subset fitted as mode 6 is, in RGB with 8 levels and the p-bit shared by its
     endpoints (both p-bits tried last); each subset's anchor (texel 0; the partition's anchor
     for subset 1) made < 4.
Blocks whose alpha varies are left to mode 6 in practice (mode 1 counts alpha's error against
255): on them this encoder is several dB behind bc7enc's alpha modes.
Errors are plain squared RGBA differences, as bc7enc with linear weights, except that alpha's
counts nothing when the source has no alpha (its decoded alpha then stays within one step of 255,
and the p-bits serve the colour).
"""
from __future__ import annotations

import numpy as np

from shaders import constants as C

POWER_STEPS = C.BCN_POWER_STEPS
REFINE_STEPS = C.BCN_REFINE_STEPS
BC7_WEIGHTS = np.array(C.BCN_BC7_WEIGHTS, np.float32)


# ---------------------------------------------------------------------------------------------
# BC7 mode 6

def _quantize_p(e: np.ndarray, p) -> np.ndarray:
    """Endpoints [..., 4] (0..255) rounded to 7 bits under p-bit p."""
    return np.clip(np.floor((e - np.float32(p)) * np.float32(0.5) + np.float32(0.5)), 0, 127)


def _weights(aw) -> np.ndarray:
    """Per-channel weights of a squared RGBA error: alpha counts `aw` (0: the source has none)."""
    return np.array([1, 1, 1, aw], np.float32)


def _quantize(e: np.ndarray, aw=1.0) -> tuple[np.ndarray, np.ndarray]:
    """Endpoints [..., 4] (0..255) -> (7-bit values [..., 4], p-bit [...]) of the nearer p."""
    best_q = best_p = best_err = None
    for p in (0, 1):
        q = _quantize_p(e, p)
        err = ((((q * 2 + p) - e) ** 2) * _weights(aw)).sum(-1)
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


def _indices(px: np.ndarray, pal: np.ndarray, aw=1.0) -> tuple[np.ndarray, np.ndarray]:
    """(index [..., 16], block squared error) of the nearest palette colour per texel."""
    d = (((px[..., :, None, :] - pal[..., None, :, :]) ** 2) * _weights(aw)).sum(-1)
    idx = d.argmin(-1)
    return idx, np.take_along_axis(d, idx[..., None], -1)[..., 0].sum(-1)


def line_fit(rgb: np.ndarray, member: np.ndarray):
    """The principal line of each block's member texels (rgb [..., 16, C], member [..., 16] 0/1,
    at least one member): (mean, unit axis by POWER_STEPS power steps from the axis of the largest
    channel range (the first on ties), smallest and largest projection of a member onto it)."""
    n = np.maximum(member.sum(-1), np.float32(1))
    mean = (rgb * member[..., None]).sum(-2) / n[..., None]
    c = (rgb - mean[..., None, :]) * member[..., None]
    cov = np.einsum("...ti,...tj->...ij", c, c)
    big = np.float32(1e30)
    hi = np.where(member[..., None] > 0, rgb, -big).max(-2)
    lo = np.where(member[..., None] > 0, rgb, big).min(-2)
    axis = np.where(np.arange(rgb.shape[-1]) == (hi - lo).argmax(-1)[..., None], np.float32(1),
                    np.float32(0))
    for _ in range(POWER_STEPS):
        axis = np.einsum("...ij,...j->...i", cov, axis)
        norm = np.sqrt((axis * axis).sum(-1, keepdims=True))
        axis = np.where(norm > 1e-20, axis / np.maximum(norm, np.float32(1e-20)), 0)
    t = ((rgb - mean[..., None, :]) * axis[..., None, :]).sum(-1)
    return mean, axis, np.where(member > 0, t, big).min(-1), np.where(member > 0, t, -big).max(-1)


def bc7_mode6(px: np.ndarray, aw=1.0) -> tuple[np.ndarray, np.ndarray]:
    """float32 [B, 16, 4] texels 0..255 -> (uint8 [B, 16] mode 6 blocks, squared errors [B]);
    alpha's error weighs `aw`."""
    mean, axis, tmin, tmax = line_fit(px, np.ones(px.shape[:-1], np.float32))
    e0 = np.clip(mean + tmin[..., None] * axis, 0, 255)
    e1 = np.clip(mean + tmax[..., None] * axis, 0, 255)
    q0, p0 = _quantize(e0, aw)
    q1, p1 = _quantize(e1, aw)
    idx, err = _indices(px, _palette(q0, p0, q1, p1), aw)
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
        r0, s0 = _quantize(n0, aw)
        r1, s1 = _quantize(n1, aw)
        ridx, rerr = _indices(px, _palette(r0, s0, r1, s1), aw)
        take = ok & (rerr < err)
        q0 = np.where(take[..., None], r0, q0)
        q1 = np.where(take[..., None], r1, q1)
        e0, e1 = np.where(take[..., None], n0, e0), np.where(take[..., None], n1, e1)
        p0, p1 = np.where(take, s0, p0), np.where(take, s1, p1)
        idx, err = np.where(take[..., None], ridx, idx), np.where(take, rerr, err)
    for a, b in ((0, 0), (0, 1), (1, 0), (1, 1)):   # every p-bit pair, by the block's error
        r0, r1 = _quantize_p(e0, a), _quantize_p(e1, b)
        s0, s1 = np.full(err.shape, a, np.float32), np.full(err.shape, b, np.float32)
        ridx, rerr = _indices(px, _palette(r0, s0, r1, s1), aw)
        take = rerr < err
        q0 = np.where(take[..., None], r0, q0)
        q1 = np.where(take[..., None], r1, q1)
        p0, p1 = np.where(take, s0, p0), np.where(take, s1, p1)
        idx, err = np.where(take[..., None], ridx, idx), np.where(take, rerr, err)
    swap = idx[..., 0] >= 8
    q0, q1 = np.where(swap[..., None], q1, q0), np.where(swap[..., None], q0, q1)
    p0, p1 = np.where(swap, p1, p0), np.where(swap, p0, p1)
    idx = np.where(swap[..., None], 15 - idx, idx)
    u = np.uint64
    return pack_mode6(q0.astype(u), p0.astype(u), q1.astype(u), p1.astype(u), idx.astype(u)), err


def pack_mode6(q0, p0, q1, p1, idx) -> np.ndarray:
    """Bit-pack mode 6 fields ([..., 4] endpoints, [...] p-bits, [..., 16] indices)."""
    fields = [(np.full(q0.shape[:-1], C.BCN_BC7_MODE6_BIT, np.uint64), 7)]
    for c in range(4):
        fields += [(q0[..., c], 7), (q1[..., c], 7)]
    fields += [(p0, 1), (p1, 1)]
    fields += [(idx[..., i], 3 if i == 0 else 4) for i in range(16)]
    return pack_fields(fields)


def pack_fields(fields) -> np.ndarray:
    """128-bit blocks from (uint64 array, bits) fields in order, LSB first -> uint8 [..., 16];
    `bits` may be an array (a field's width per block)."""
    shape = fields[0][0].shape
    lo, hi = np.zeros(shape, np.uint64), np.zeros(shape, np.uint64)
    pos = np.zeros(shape, np.int64)
    one = np.uint64(1)
    for value, n in fields:
        n = np.broadcast_to(np.asarray(n, np.int64), shape)
        for b in range(int(n.max())):
            bit = np.where(b < n, (value >> np.uint64(b)) & one, np.uint64(0))
            at = (pos + b).astype(np.uint64)
            lo |= np.where(pos + b < 64, bit << (at % np.uint64(64)), np.uint64(0))
            hi |= np.where(pos + b >= 64, bit << (at % np.uint64(64)), np.uint64(0))
        pos = pos + n
    out = np.zeros((*shape, 16), np.uint8)
    for b in range(8):
        out[..., b] = ((lo >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.uint8)
        out[..., 8 + b] = ((hi >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------
# BC7 mode 1 and the choice between modes

PARTITIONS2 = np.array([[(m >> i) & 1 for i in range(16)] for m in C.BCN_BC7_PARTITIONS2],
                       np.float32)                                    # [64, 16]: 1 = subset 1
ANCHORS2 = np.array(C.BCN_BC7_ANCHORS2)
BC7_WEIGHTS3 = np.array(C.BCN_BC7_WEIGHTS3, np.float32)


def _partition_estimate(rgb: np.ndarray, member: np.ndarray) -> np.ndarray:
    """How badly a subset's texels fit one line quantized to 8 levels: their squared distance
    from the principal line (trace of the covariance less its largest eigenvalue, the latter by
    ESTIMATE_STEPS power steps from (1, 1, 1)) plus the uniform quantization error of 8 levels
    over their extent along it (n * step^2 / 12). rgb [B, 16, 3], member [..., 16] 0/1."""
    n = np.maximum(member.sum(-1), np.float32(1))
    mean = np.einsum("...t,btc->b...c", member, rgb) / n[..., None]
    c = (rgb[:, None] - mean[..., None, :]) * member[..., None]
    cov = np.einsum("b...ti,b...tj->b...ij", c, c)
    axis = np.ones(cov.shape[:-1], np.float32)
    for _ in range(C.BCN_ESTIMATE_STEPS):
        axis = np.einsum("...ij,...j->...i", cov, axis)
        norm = np.sqrt((axis * axis).sum(-1, keepdims=True))
        axis = np.where(norm > 1e-20, axis / np.maximum(norm, np.float32(1e-20)), 0)
    lam = np.einsum("...i,...ij,...j->...", axis, cov, axis)
    t = (c * axis[..., None, :]).sum(-1)                       # 0 outside the subset
    big = np.float32(1e30)
    extent = np.where(member > 0, t, -big).max(-1) - np.where(member > 0, t, big).min(-1)
    extent = np.where(member.sum(-1) > 0, extent, 0)
    step = extent / np.float32(7)
    return np.trace(cov, axis1=-2, axis2=-1) - lam + member.sum(-1) * step * step / np.float32(12)


def _quantize6(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A subset's two endpoints [B, 2, 3] (0..255) -> (6-bit values [B, 2, 3], shared p-bit
    [B]) of the p-bit whose 8-bit endpoints land nearer (0 on ties)."""
    best = None
    for p in (0, 1):
        q = _quantize6_p(e, p)
        err = ((_expand7(q, p) - e) ** 2).sum((-1, -2))
        if best is None:
            best = (q, np.zeros(err.shape, np.float32), err)
        else:
            better = err < best[2]
            best = (np.where(better[..., None, None], q, best[0]), np.where(better, 1, best[1])
                    .astype(np.float32), np.where(better, err, best[2]))
    return best[0], best[1]


def _quantize6_p(e: np.ndarray, p) -> np.ndarray:
    """Endpoints (0..255) rounded to 6 bits under p-bit p."""
    return np.clip(np.floor((e * np.float32(127.0 / 255.0) - np.float32(p)) * np.float32(0.5)
                            + np.float32(0.5)), 0, 63)


def _expand7(q, p) -> np.ndarray:
    """6-bit endpoint + p-bit -> its 8-bit value ((v7 << 1) | (v7 >> 6))."""
    v7 = (q * 2 + (p[..., None, None] if np.ndim(p) else p)).astype(np.int32)
    return ((v7 << 1) | (v7 >> 6)).astype(np.float32)


def _fit_subset(px: np.ndarray, member: np.ndarray, aw=1.0):
    """Mode 1 endpoints and indices of one subset of each block (px [B, 16, 4], member [B, 16]):
    (6-bit endpoints [B, 2, 3], p-bit [B], indices [B, 16] (0 outside), error [B] over the
    subset, alpha decoding as 255)."""
    rgb = px[..., :3]
    mean, axis, tmin, tmax = line_fit(rgb, member)
    ends = np.clip(np.stack([mean + tmin[:, None] * axis, mean + tmax[:, None] * axis], 1), 0,
                   255)
    q, p = _quantize6(ends)
    idx, err = _indices3(px, member, q, p, aw)
    for _ in range(REFINE_STEPS):
        a = BC7_WEIGHTS3[idx] / np.float32(64) * member
        one = (1 - BC7_WEIGHTS3[idx] / np.float32(64)) * member
        aa, bb, ab = (one * one).sum(-1), (a * a).sum(-1), (one * a).sum(-1)
        det = aa * bb - ab * ab
        x0, x1 = (one[..., None] * rgb).sum(-2), (a[..., None] * rgb).sum(-2)
        ok = det > np.float32(1e-3)
        safe = np.where(ok, det, np.float32(1))[:, None]
        n0 = np.clip((bb[:, None] * x0 - ab[:, None] * x1) / safe, 0, 255)
        n1 = np.clip((aa[:, None] * x1 - ab[:, None] * x0) / safe, 0, 255)
        rq, rp = _quantize6(np.stack([n0, n1], 1))
        ridx, rerr = _indices3(px, member, rq, rp, aw)
        take = ok & (rerr < err)
        q, p = np.where(take[:, None, None], rq, q), np.where(take, rp, p)
        ends = np.where(take[:, None, None], np.stack([n0, n1], 1), ends)
        idx, err = np.where(take[:, None], ridx, idx), np.where(take, rerr, err)
    for pbit in (0, 1):   # both p-bits, by the subset's error
        rp = np.full(err.shape, pbit, np.float32)
        rq = _quantize6_p(ends, pbit)
        ridx, rerr = _indices3(px, member, rq, rp, aw)
        take = rerr < err
        q, p = np.where(take[:, None, None], rq, q), np.where(take, rp, p)
        idx, err = np.where(take[:, None], ridx, idx), np.where(take, rerr, err)
    return q, p, idx, err


def _indices3(px, member, q, p, aw=1.0):
    """(3-bit index per member texel (0 elsewhere), error over the subset, alpha vs 255)."""
    e = _expand7(q, p).astype(np.int32)                                   # [B, 2, 3]
    w = BC7_WEIGHTS3.astype(np.int32)[:, None]
    pal = (((64 - w) * e[:, None, 0] + w * e[:, None, 1] + 32) >> 6).astype(np.float32)
    d = ((px[:, :, None, :3] - pal[:, None]) ** 2).sum(-1)                # [B, 16, 8]
    idx = d.argmin(-1)
    best = np.take_along_axis(d, idx[..., None], -1)[..., 0] + np.float32(aw) * (px[..., 3] - 255) ** 2
    return np.where(member > 0, idx, 0), (best * member).sum(-1)


def bc7_mode1(px: np.ndarray, aw=1.0) -> tuple[np.ndarray, np.ndarray]:
    """float32 [B, 16, 4] -> (uint8 [B, 16] mode 1 blocks, squared errors [B]) for the
    partition whose two subsets lie nearest their principal lines."""
    estimate = sum(_partition_estimate(px[..., :3], m) for m in (1 - PARTITIONS2, PARTITIONS2))
    return bc7_mode1_for(px, estimate.argmin(-1), aw)                    # first on ties


def bc7_mode1_for(px: np.ndarray, part: np.ndarray, aw=1.0) -> tuple[np.ndarray, np.ndarray]:
    """bc7_mode1 with the partition of each block given (int [B])."""
    mask = PARTITIONS2[part]
    q0, pb0, i0, e0 = _fit_subset(px, 1 - mask, aw)
    q1, pb1, i1, e1 = _fit_subset(px, mask, aw)
    idx = np.where(mask > 0, i1, i0)
    anchor1 = ANCHORS2[part]
    for q, p_, anchor, sub in ((q0, pb0, np.zeros_like(anchor1), 0), (q1, pb1, anchor1, 1)):
        swap = np.take_along_axis(idx, anchor[:, None], -1)[:, 0] >= 4
        q[swap] = q[swap][:, ::-1]
        inside = (mask > 0) if sub else (mask == 0)
        idx = np.where(swap[:, None] & inside, 7 - idx, idx)
    u = np.uint64
    fields = [(np.full(part.shape, C.BCN_BC7_MODE1_BIT, u), 2), (part.astype(u), 6)]
    for c in range(3):
        fields += [(q0[:, 0, c].astype(u), 6), (q0[:, 1, c].astype(u), 6),
                   (q1[:, 0, c].astype(u), 6), (q1[:, 1, c].astype(u), 6)]
    fields += [(pb0.astype(u), 1), (pb1.astype(u), 1)]
    for i in range(16):
        bits = np.where((i == 0) | (anchor1 == i), 2, 3)
        fields += [(idx[:, i].astype(u), bits)]
    return pack_fields(fields), e0 + e1


def bc7_blocks(px: np.ndarray, aw=1.0) -> np.ndarray:
    """float32 [..., 16, 4] texels 0..255 -> uint8 [..., 16] BC7 blocks: mode 1 where it errs
    less than mode 6 (the first on ties), else mode 6."""
    flat = px.reshape(-1, 16, 4).astype(np.float32)
    six, err6 = bc7_mode6(flat, aw)
    one, err1 = bc7_mode1(flat, aw)
    out = np.where((err1 < err6)[:, None], one, six)
    return out.reshape(*px.shape[:-2], 16)
