"""Latent values as the file and the GPU hold them: small unsigned ints bit-packed LSB-first, in
texel order (layer, row, column, RGBA), so 4-bit latents are GL_RGBA4 with
GL_UNSIGNED_SHORT_4_4_4_4_REV and 8-bit ones GL_RGBA8, uploaded as they are."""
from __future__ import annotations

import numpy as np


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack small unsigned ints LSB-first: value i occupies bits [i*bits, (i+1)*bits)."""
    v = values.astype(np.uint8).ravel()
    if bits == 8:
        return v.tobytes()
    if bits == 4:
        if v.size % 2:
            v = np.append(v, np.uint8(0))
        return (v[0::2] | (v[1::2] << 4)).astype(np.uint8).tobytes()
    bitplanes = np.unpackbits(v[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(bitplanes.ravel(), bitorder="little").tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    raw = np.frombuffer(data, np.uint8)
    if bits == 8:
        return raw[:count].copy()
    if bits == 4:
        out = np.empty(raw.size * 2, np.uint8)
        out[0::2] = raw & 0x0F
        out[1::2] = raw >> 4
        return out[:count]
    flat = np.unpackbits(raw, bitorder="little")[: count * bits].reshape(count, bits)
    return (flat.astype(np.uint8) << np.arange(bits, dtype=np.uint8)).sum(axis=1, dtype=np.uint8)


def latent_to_texel_order(q: np.ndarray) -> np.ndarray:
    """[features, h, w] -> [layers, h, w, 4]: the order GL expects for an RGBA texture array."""
    f, h, w = q.shape
    return q.reshape(f // 4, 4, h, w).transpose(0, 2, 3, 1)


def latent_from_texel_order(t: np.ndarray) -> np.ndarray:
    layers, h, w, _ = t.shape
    return t.transpose(0, 3, 1, 2).reshape(layers * 4, h, w)
