"""NumPy twin of the GPU BCn encoder (shaders/bcn_encode.slang): the same algorithm, step for
step, in float32, vectorised over blocks; the GL encoder is held to it block for block
(tests/test_gl_bcn.py) and both to bc7enc's quality by bench.transcode.

BC4 (and BC5 = BC4 of R, then of G): the 8-value mode (r0 = max > r1 = min), each texel the
nearest of its 8 values as decoders compute them (integer division), then REFINE_STEPS times
least-squares endpoints for those indices, rounded, kept when the error drops; against it the
6-value mode (r0 <= r1 the min and max of the values other than 0 and 255, which it holds
exactly), whichever errs less. A flat block is r0 = r1.
BC1 (opaque, the 4-colour mode): principal-axis endpoints rounded to 5:6:5, each texel the
nearest of the 4 colours as decoders compute them, REFINE_STEPS least-squares refinements, then
NUDGE_ROUNDS greedy rounds moving each channel of each endpoint one step down or up when the block
errs less; c0 > c1 (swapped, indices remapped). Against it the 3-colour mode (c0 <= c1, their
midpoint and black) fitted to the texels brighter than BLACK, for blocks with black in them;
whichever errs less. No texture takes BC1 by default (export/bcn/formats.py); it is the
BC1 set's format in the benches.
BC7: export/bcn/twin_bc7.py.
Values are 0..255 floats (the 8-bit texels); edge blocks repeat the level's last row / column
(codec.pad_to_blocks).
"""
from __future__ import annotations

import numpy as np

from shaders import constants as C

from .codec import pad_to_blocks, to_rgba8
from .twin_bc7 import bc7_blocks, line_fit

REFINE_STEPS = C.BCN_REFINE_STEPS


def blocks_of(rgba: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] -> float32 [blocks_h, blocks_w, 16, 4], texels in row order."""
    p = pad_to_blocks(rgba).astype(np.float32)
    h, w = p.shape[:2]
    return p.reshape(h // 4, 4, w // 4, 4, 4).transpose(0, 2, 1, 3, 4).reshape(h // 4, w // 4,
                                                                             16, 4)


# ---------------------------------------------------------------------------------------------
# BC4 / BC5

BC4_WEIGHTS8 = np.array(C.BCN_BC4_WEIGHTS8, np.float32) / np.float32(7)  # of r0, by index


def _bc4_palette(r0, r1) -> np.ndarray:
    """[..., 8] values of the 8 indices as decoders compute them (integer division): r0 > r1
    interpolates 6 values between them; r0 <= r1 interpolates 4 and adds 0 and 255."""
    r0, r1 = r0[..., None], r1[..., None]
    k8, k6 = np.arange(2, 8, dtype=np.float32), np.arange(2, 6, dtype=np.float32)
    eight = np.floor(((8 - k8) * r0 + (k8 - 1) * r1) / np.float32(7))
    six = np.concatenate([np.floor(((6 - k6) * r0 + (k6 - 1) * r1) / np.float32(5)),
                          np.zeros_like(r0), np.full_like(r0, 255)], -1)
    return np.concatenate([r0, r1, np.where(r0 > r1, eight, six)], -1)


def _bc4_nearest(v, r0, r1):
    """(index per texel, block squared error): the nearest palette value (first on ties)."""
    d = (v[..., :, None] - _bc4_palette(r0, r1)[..., None, :]) ** 2
    idx = d.argmin(-1)
    return idx, np.take_along_axis(d, idx[..., None], -1)[..., 0].sum(-1)


def bc4_blocks(v: np.ndarray) -> np.ndarray:
    """float32 [..., 16] values 0..255 -> uint8 [..., 8] BC4 blocks."""
    v = v.astype(np.float32)
    r0, r1 = v.max(-1), v.min(-1)       # 8-value mode (r0 > r1; a flat block: r0 == r1)
    idx, err = _bc4_nearest(v, r0, r1)
    for _ in range(REFINE_STEPS):       # least-squares endpoints for these indices
        a = BC4_WEIGHTS8[idx]
        aa, bb, ab = (a * a).sum(-1), ((1 - a) ** 2).sum(-1), (a * (1 - a)).sum(-1)
        det = aa * bb - ab * ab
        x0, x1 = (a * v).sum(-1), ((1 - a) * v).sum(-1)
        safe = np.where(det > np.float32(1e-3), det, np.float32(1))
        n0 = np.clip(np.floor((bb * x0 - ab * x1) / safe + np.float32(0.5)), 0, 255)
        n1 = np.clip(np.floor((aa * x1 - ab * x0) / safe + np.float32(0.5)), 0, 255)
        nidx, nerr = _bc4_nearest(v, n0, n1)
        take = (det > np.float32(1e-3)) & (n0 > n1) & (nerr < err)
        r0, r1 = np.where(take, n0, r0), np.where(take, n1, r1)
        idx, err = np.where(take[..., None], nidx, idx), np.where(take, nerr, err)
    # 6-value mode: r0 <= r1 span the values other than 0 and 255, which it holds exactly
    inner = (v > 0) & (v < 255)
    lo6 = np.where(inner, v, np.float32(255)).min(-1)
    hi6 = np.where(inner, v, np.float32(0)).max(-1)
    lo6, hi6 = np.minimum(lo6, hi6), np.maximum(lo6, hi6)   # no inner value: 0, 0
    idx6, err6 = _bc4_nearest(v, lo6, hi6)
    six = err6 < err
    r0, r1 = np.where(six, lo6, r0), np.where(six, hi6, r1)
    idx = np.where(six[..., None], idx6, idx).astype(np.uint64)
    bits = np.zeros(v.shape[:-1], np.uint64)
    for i in range(16):
        bits |= idx[..., i] << np.uint64(3 * i)
    out = np.zeros((*v.shape[:-1], 8), np.uint8)
    out[..., 0] = r0.astype(np.uint8)
    out[..., 1] = r1.astype(np.uint8)
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
# BC1 (opaque: the 4-colour mode)

BC1_BITS = np.array([31, 63, 31], np.float32)                       # 5:6:5
BC1_WEIGHTS4 = np.array(C.BCN_BC1_WEIGHTS4, np.float32) / np.float32(3)  # of c0, by index


def _bc1_expand(q: np.ndarray) -> np.ndarray:
    """5:6:5 values [..., 3] -> their 8-bit colours (the top bits repeated below)."""
    q = q.astype(np.int32)
    return np.stack([(q[..., 0] << 3) | (q[..., 0] >> 2), (q[..., 1] << 2) | (q[..., 1] >> 4),
                     (q[..., 2] << 3) | (q[..., 2] >> 2)], -1).astype(np.float32)


def _bc1_nearest(rgb, q0, q1, three: bool = False):
    """(index per texel, block squared error) of the nearest of the 4-colour mode's colours (or
    with `three` the 3-colour mode's, with black) as decoders compute them (integer division)."""
    c0, c1 = _bc1_expand(q0), _bc1_expand(q1)
    if three:
        pal = np.stack([c0, c1, np.floor((c0 + c1) / np.float32(2)), np.zeros_like(c0)], -2)
    else:
        pal = np.stack([c0, c1, np.floor((2 * c0 + c1) / np.float32(3)),
                        np.floor((c0 + 2 * c1) / np.float32(3))], -2)        # [..., 4, 3]
    d = ((rgb[..., :, None, :] - pal[..., None, :, :]) ** 2).sum(-1)
    idx = d.argmin(-1)
    return idx, np.take_along_axis(d, idx[..., None], -1)[..., 0].sum(-1)


def bc1_blocks(px: np.ndarray) -> np.ndarray:
    """float32 [..., 16, 4] texels 0..255 -> uint8 [..., 8] BC1 blocks (4-colour mode, RGB):
    principal-axis endpoints, nearest colours, least-squares refinements, one-step nudges."""
    rgb = px[..., :3].astype(np.float32)
    mean, axis, tmin, tmax = line_fit(rgb, np.ones(rgb.shape[:-1], np.float32))
    q0 = _bc1_quantize(mean + tmax[..., None] * axis)
    q1 = _bc1_quantize(mean + tmin[..., None] * axis)
    idx, err = _bc1_nearest(rgb, q0, q1)
    for _ in range(REFINE_STEPS):
        a = BC1_WEIGHTS4[idx]
        aa, bb, ab = (a * a).sum(-1), ((1 - a) ** 2).sum(-1), (a * (1 - a)).sum(-1)
        det = aa * bb - ab * ab
        x0, x1 = (a[..., None] * rgb).sum(-2), ((1 - a)[..., None] * rgb).sum(-2)
        ok = det > np.float32(1e-3)
        safe = np.where(ok, det, np.float32(1))[..., None]
        n0 = np.clip((bb[..., None] * x0 - ab[..., None] * x1) / safe, 0, 255)
        n1 = np.clip((aa[..., None] * x1 - ab[..., None] * x0) / safe, 0, 255)
        r0, r1 = _bc1_quantize(n0), _bc1_quantize(n1)
        ridx, rerr = _bc1_nearest(rgb, r0, r1)
        take = ok & (rerr < err)
        q0, q1 = np.where(take[..., None], r0, q0), np.where(take[..., None], r1, q1)
        idx, err = np.where(take[..., None], ridx, idx), np.where(take, rerr, err)
    for _ in range(C.BCN_BC1_NUDGE_ROUNDS):   # greedy: each channel of each endpoint one step
        for end in (0, 1):
            for c in range(3):
                for step in (-1, 1):
                    r0, r1 = q0.copy(), q1.copy()
                    r = r0 if end == 0 else r1
                    r[..., c] = np.clip(r[..., c] + step, 0, BC1_BITS[c])
                    ridx, rerr = _bc1_nearest(rgb, r0, r1)
                    take = rerr < err
                    q0, q1 = np.where(take[..., None], r0, q0), np.where(take[..., None], r1, q1)
                    idx, err = np.where(take[..., None], ridx, idx), np.where(take, rerr, err)
    u = np.uint64
    v0, v1 = _pack565(q0), _pack565(q1)
    swap = v0 < v1                       # the 4-colour mode needs c0 > c1
    v0, v1 = np.where(swap, v1, v0), np.where(swap, v0, v1)
    idx = np.where(swap[..., None], np.array([1, 0, 3, 2])[idx], idx)
    idx = np.where((v0 == v1)[..., None], 0, idx)   # one colour: index 0 everywhere
    # the 3-colour mode (c0 <= c1: their midpoint and black): texels above BLACK fitted
    t0, t1, tidx, terr = _bc1_three(rgb)
    three = terr < err
    v0, v1 = np.where(three, _pack565(t0), v0), np.where(three, _pack565(t1), v1)
    idx = np.where(three[..., None], tidx, idx).astype(u)
    bits = v0 | (v1 << u(16))
    for i in range(16):
        bits |= idx[..., i] << u(32 + 2 * i)
    out = np.zeros((*px.shape[:-2], 8), np.uint8)
    for b in range(8):
        out[..., b] = ((bits >> u(8 * b)) & u(0xFF)).astype(np.uint8)
    return out


def _bc1_three(rgb: np.ndarray):
    """The 3-colour mode for each block: (c0, c1 5:6:5 values with c0 <= c1, indices, error):
    the principal axis of the texels whose largest channel exceeds BLACK (all of them when none
    does), endpoints at their extreme projections, one least-squares refinement over them; black
    texels take index 3 (black) where it is nearest."""
    member = (rgb.max(-1) > np.float32(C.BCN_BC1_BLACK)).astype(np.float32)
    member = np.where(member.sum(-1, keepdims=True) > 0, member, np.float32(1))
    mean, axis, tmin, tmax = line_fit(rgb, member)
    q0 = _bc1_quantize(mean + tmin[..., None] * axis)
    q1 = _bc1_quantize(mean + tmax[..., None] * axis)
    idx, err = _bc1_nearest(rgb, q0, q1, True)
    a = np.array([1, 0, 0.5, 0], np.float32)[idx] * member            # c0's weight
    b = np.array([0, 1, 0.5, 0], np.float32)[idx] * member
    aa, bb, ab = (a * a).sum(-1), (b * b).sum(-1), (a * b).sum(-1)
    det = aa * bb - ab * ab
    x0, x1 = (a[..., None] * rgb).sum(-2), (b[..., None] * rgb).sum(-2)
    ok = det > np.float32(1e-3)
    safe = np.where(ok, det, np.float32(1))[..., None]
    r0 = _bc1_quantize((bb[..., None] * x0 - ab[..., None] * x1) / safe)
    r1 = _bc1_quantize((aa[..., None] * x1 - ab[..., None] * x0) / safe)
    ridx, rerr = _bc1_nearest(rgb, r0, r1, True)
    take = ok & (rerr < err)
    q0, q1 = np.where(take[..., None], r0, q0), np.where(take[..., None], r1, q1)
    idx, err = np.where(take[..., None], ridx, idx), np.where(take, rerr, err)
    swap = _pack565(q0) > _pack565(q1)   # the 3-colour mode needs c0 <= c1
    q0, q1 = np.where(swap[..., None], q1, q0), np.where(swap[..., None], q0, q1)
    idx = np.where(swap[..., None], np.array([1, 0, 2, 3])[idx], idx)
    return q0, q1, idx, err


def _pack565(q: np.ndarray) -> np.ndarray:
    """5:6:5 values [..., 3] -> the 16-bit endpoint a BC1 block stores (uint64)."""
    u = np.uint64
    return (q[..., 0].astype(u) << u(11)) | (q[..., 1].astype(u) << u(5)) | q[..., 2].astype(u)


def _bc1_quantize(e: np.ndarray) -> np.ndarray:
    """Colours [..., 3] (clamped to 0..255) rounded to 5:6:5."""
    return np.clip(np.floor(np.clip(e, 0, 255) * BC1_BITS / np.float32(255) + np.float32(0.5)),
                   0, BC1_BITS)


def encode_bc1(rgba: np.ndarray) -> bytes:
    """uint8 [H, W, 3+] (RGB used) -> BC1 blocks."""
    return bc1_blocks(blocks_of(to_rgba8(rgba[..., :3]))).tobytes()


def encode_bc7(rgba: np.ndarray, alpha: bool = True) -> bytes:
    """uint8 [H, W, 4] -> BC7 blocks (mode 1 or mode 6, whichever errs less). alpha False: the
    source has no alpha; its error is not counted (it stays within a step of 255)."""
    return bc7_blocks(blocks_of(rgba), 1.0 if alpha else 0.0).tobytes()


def encode(name: str, rgba: np.ndarray, alpha: bool = True) -> bytes:
    """Blocks of one level (uint8 [H, W, 4]) in BC4, BC5 or BC7, as the GPU encoder makes them."""
    if name == "bc1":
        return encode_bc1(rgba)
    if name == "bc4":
        return encode_bc4(rgba)
    if name == "bc5":
        return encode_bc5(rgba)
    if name == "bc7":
        return encode_bc7(rgba, alpha)
    raise ValueError(f"the GPU encoder has no {name}")
