"""Geometry helpers of the loader: node rotations, flat normals, generated tangents and triangle
lists from strips and fans."""
from __future__ import annotations

import math

import numpy as np


def quat_to_matrix(q) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n == 0:
        return np.eye(3)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _normalize(v: np.ndarray, eps: float = 1e-20) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    ok = n[..., 0] > eps
    return np.where(n > eps, v / np.maximum(n, eps), 0.0), ok


def flat_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per-face normals of an *unwelded* triangle list (indices 0..N-1)."""
    tri = positions[indices.reshape(-1, 3)].astype(np.float64)
    n, ok = _normalize(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]))
    n[~ok] = (0.0, 0.0, 1.0)
    out = np.zeros((positions.shape[0], 3))
    out[indices.reshape(-1, 3)] = n[:, None, :]
    return out.astype(np.float32)


def generate_tangents(positions: np.ndarray, normals: np.ndarray, uvs: np.ndarray,
                      indices: np.ndarray) -> np.ndarray:
    """float32 [N, 4] tangents for glTF UVs: per-triangle dP/du and dP/dv accumulated per vertex
    (weighted by the triangle's area in position space, as MikkTSpace's default), Gram-Schmidt
    against the normal, and w = +1 when cross(N, T) points along image-up (-v in glTF's top-left
    UV convention), else -1. Degenerate UVs get an arbitrary tangent perpendicular to N."""
    tri = indices.reshape(-1, 3)
    p = positions.astype(np.float64)[tri]
    t = uvs.astype(np.float64)[tri]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    good = np.abs(det) > 1e-20
    inv = np.where(good, 1.0 / np.where(good, det, 1.0), 0.0)[:, None]
    sdir = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * inv     # dP/du
    tdir = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * inv     # dP/dv
    # Weight by area over the UV-normalised magnitude so large triangles count more, whatever
    # their UV density: use unit directions times position-space area.
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)[:, None]
    sdir, _ = _normalize(sdir)
    tdir, _ = _normalize(tdir)
    sdir *= area
    tdir *= area
    n_vert = positions.shape[0]
    tan = np.zeros((n_vert, 3))
    bit = np.zeros((n_vert, 3))
    for k in range(3):
        np.add.at(tan, tri[:, k], sdir)
        np.add.at(bit, tri[:, k], tdir)
    n, _ = _normalize(normals.astype(np.float64))
    tan = tan - n * np.sum(n * tan, axis=1, keepdims=True)
    tan, ok = _normalize(tan, 1e-12)
    if not ok.all():  # no usable UV gradient: any unit vector perpendicular to N
        nb = n[~ok]
        helper = np.where(np.abs(nb[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        alt = helper - nb * np.sum(nb * helper, axis=1, keepdims=True)
        tan[~ok] = _normalize(alt)[0]
    w = np.where(np.sum(np.cross(n, tan) * -bit, axis=1) < 0, -1.0, 1.0)
    return np.concatenate([tan, w[:, None]], axis=1).astype(np.float32)


def _triangle_indices(mode: int, idx: np.ndarray) -> np.ndarray:
    if mode == 4:
        return idx[: idx.size // 3 * 3]
    n = idx.size - 2
    if n <= 0:
        return idx[:0]
    i = np.arange(n)
    if mode == 5:  # strip: alternate winding
        a, b, c = idx[i], idx[i + 1], idx[i + 2]
        odd = (i % 2) == 1
        a, b = np.where(odd, b, a), np.where(odd, a, b)
    else:          # fan
        a, b, c = np.full(n, idx[0]), idx[i + 1], idx[i + 2]
    return np.stack([a, b, c], axis=1).reshape(-1)
