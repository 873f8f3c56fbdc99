"""The PyTorch twin of sample mode (shaders/ntc_sample.slang): filtered stored channels at any uv.

    lod_from_derivatives(dx, dy, size, mips)     GL's LOD lambda, clamped to [0, mips - 1]
    sample_latent(decoder, uv, lod, wrap)        one decode at the nearest mip and the wrapped uv
                                                 (encoding blended over its texel centres)
    sample_trilinear(decoder_or_mips, uv, lod, wrap)
                                                 trilinear filtering of the exactly decoded mips
    sample_stochastic(decoder_or_mips, uv, lod, wrap, pixel, frame)
                                                 one texel of the trilinear footprint, drawn with
                                                 the shader's hash (the same choice, bit for bit)
    quad_decodes(uv, lod, pixel, size, mips)     MLP evaluations of each pixel under the quad
                                                 filter (its values are sample_trilinear's)

uv is [N, 2] float32 with (0, 0) at the top-left of the image as the file's arrays go; `wrap` is a
glTF sampler wrap value (the GL enum) for both axes or a (wrapS, wrapT) pair. Each function returns
[N, stored] float32 stored channels (unclamped, as ntcDecode gives them).
"""
from __future__ import annotations

import numpy as np
import torch

from shaders import constants as C
from shaders.interface import WRAPS

from .. import layout
from .reference import FileDecoder, decode_texels

REPEAT, MIRRORED_REPEAT, CLAMP_TO_EDGE = (WRAPS[w] for w in ("repeat", "mirrored_repeat",
                                                               "clamp_to_edge"))


def wrap_pair(wrap) -> tuple[int, int]:
    """(wrapS, wrapT) from one mode or a pair; modes are GL enums or WRAPS names."""
    pair = (wrap, wrap) if isinstance(wrap, (int, str)) else tuple(wrap)
    out = tuple(WRAPS[w] if isinstance(w, str) else int(w) for w in pair)
    if len(out) != 2 or not set(out) <= set(WRAPS.values()):
        raise ValueError(f"wrap {wrap!r}: expected one of {sorted(WRAPS)} or their GL enums")
    return out


def lod_from_derivatives(dx: torch.Tensor, dy: torch.Tensor, size: tuple[int, int],
                         mips: int) -> torch.Tensor:
    """lambda = log2(max(|dUV/dx * size|, |dUV/dy * size|)) clamped to [0, mips - 1] (float32)."""
    s = torch.tensor(size, dtype=torch.float32)
    dx, dy = torch.as_tensor(dx, dtype=torch.float32), torch.as_tensor(dy, dtype=torch.float32)
    rho = torch.maximum(((dx * s) ** 2).sum(-1).sqrt(), ((dy * s) ** 2).sum(-1).sqrt())
    return torch.log2(rho.clamp(min=1e-20)).clamp(0.0, float(mips - 1))


def wrap_index(i: torch.Tensor, n: int, mode: int) -> torch.Tensor:
    """GL 4.5 table 8.20 on integer texel indices of an n-texel axis."""
    if mode == CLAMP_TO_EDGE:
        return i.clamp(0, n - 1)
    if mode == MIRRORED_REPEAT:
        a = torch.remainder(i, 2 * n) - n
        return n - 1 - torch.where(a >= 0, a, -1 - a)
    return torch.remainder(i, n)


def wrap_uv(uv: torch.Tensor, size: torch.Tensor, wrap) -> torch.Tensor:
    """The latent filter's uv: wrapped into [0, 1], then clamped to the texel centres of a mip of
    `size` ([N, 2]), as ntcWrapUv does."""
    out = []
    for a, mode in enumerate(wrap_pair(wrap)):
        u = uv[:, a]
        if mode == REPEAT:
            u = u - torch.floor(u)
        elif mode == MIRRORED_REPEAT:
            t = u - 2.0 * torch.floor(u * 0.5)
            u = torch.where(t > 1.0, 2.0 - t, t)
        half = 0.5 / size[:, a].to(torch.float32)
        out.append(torch.minimum(torch.maximum(u, half), 1.0 - half))
    return torch.stack(out, 1)


def mip_sizes(width: int, height: int, mip: torch.Tensor) -> torch.Tensor:
    """[N, 2] long (w, h) of colour mip `mip` per row."""
    sizes = torch.tensor([layout.mip_size(width, height, m) for m in range(int(mip.max()) + 1)])
    return sizes[mip]


def _footprint(uv: torch.Tensor, size: torch.Tensor):
    """First texel of the bilinear footprint (before wrapping) and the second texel's weights."""
    p = uv * size.to(torch.float32) - 0.5
    p0 = torch.floor(p)
    return p0.long(), p - p0


def _stored_mips(decoder_or_mips) -> list[torch.Tensor]:
    if isinstance(decoder_or_mips, FileDecoder):
        return [decoder_or_mips.stored_mip(m) for m in range(decoder_or_mips.model.mips)]
    return [torch.as_tensor(m) for m in decoder_or_mips]


def _fetch(mips: list[torch.Tensor], mip: torch.Tensor, texel: torch.Tensor, wrap) -> torch.Tensor:
    """Stored channels of (wrapped) `texel` [N, 2] of mip `mip` [N]."""
    ws, wt = wrap_pair(wrap)
    out = torch.empty(mip.shape[0], mips[0].shape[-1])
    for m in mip.unique().tolist():
        rows = mip == m
        h, w = mips[m].shape[:2]
        x = wrap_index(texel[rows, 0], w, ws)
        y = wrap_index(texel[rows, 1], h, wt)
        out[rows] = mips[m][y, x]
    return out


def _bilinear(mips, mip: torch.Tensor, uv: torch.Tensor, wrap) -> torch.Tensor:
    size = torch.tensor([m.shape[1::-1] for m in mips])[mip]
    first, f = _footprint(uv, size)
    taps = [_fetch(mips, mip, first + torch.tensor(d), wrap)
            for d in ((0, 0), (1, 0), (0, 1), (1, 1))]
    fx, fy = f[:, :1], f[:, 1:]
    top = taps[0] + (taps[1] - taps[0]) * fx
    bottom = taps[2] + (taps[3] - taps[2]) * fx
    return top + (bottom - top) * fy


@torch.no_grad()
def sample_trilinear(decoder_or_mips, uv: torch.Tensor, lod: torch.Tensor, wrap) -> torch.Tensor:
    """Trilinear filtering of the decoded mips (a FileDecoder, or its stored_mip list): bilinear in
    mips floor(lod) and floor(lod) + 1 with the texel indices wrapped, blended by frac(lod)."""
    mips = _stored_mips(decoder_or_mips)
    lod = torch.as_tensor(lod, dtype=torch.float32).expand(uv.shape[0])
    m0 = torch.floor(lod).long()
    t = (lod - m0)[:, None]
    lo = _bilinear(mips, m0, uv, wrap)
    hi = _bilinear(mips, (m0 + 1).clamp(max=len(mips) - 1), uv, wrap)
    return lo + (hi - lo) * t


@torch.no_grad()
def sample_latent(decoder: FileDecoder, uv: torch.Tensor, lod: torch.Tensor, wrap) -> torch.Tensor:
    """One decode per row at the nearest mip round(lod) (half up) and the wrapped uv, with the
    positional encoding blended over that mip's texel centres. A file trained for it (its
    latent.lod_blend) decodes once on the MLP inputs of mips floor(lod) and floor(lod) + 1, each
    at the uv wrapped for its mip, blended by frac(lod)."""
    lod = torch.as_tensor(lod, dtype=torch.float32).expand(uv.shape[0])
    model = decoder.model
    d = decoder
    if not model.latent.lod_blend:
        mip = torch.floor(lod + 0.5).long()
        size = mip_sizes(model.width, model.height, mip)
        return decode_texels(d.table, d.pyramid, d.weights, d.biases, mip, wrap_uv(uv, size, wrap),
                             pe_grid=size, half=d.half)
    mip = torch.floor(lod).long()
    nxt = (mip + 1).clamp(max=model.mips - 1)
    size, size1 = (mip_sizes(model.width, model.height, m) for m in (mip, nxt))
    t = lod - mip.to(torch.float32)    # 0 at the last mip (lod is clamped there)
    return decode_texels(d.table, d.pyramid, d.weights, d.biases, mip, wrap_uv(uv, size, wrap),
                         pe_grid=size, half=d.half, blend=(nxt, wrap_uv(uv, size1, wrap), size1, t))


def pixel_groups(pixel: torch.Tensor, tile: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """(group [N], groups): pixels [N, 2] grouped in tile (width, height) blocks aligned at
    multiples of the tile, row-major, and how many group indices there are."""
    tw, th = tile
    group = (pixel[:, 1] // th) * (int(pixel[:, 0].max()) // tw + 1) + pixel[:, 0] // tw
    return group, int(group.max()) + 1


def footprint_union(uv: torch.Tensor, sizes: torch.Tensor, group: torch.Tensor,
                    groups: int) -> torch.Tensor:
    """[groups] distinct texels in the union of the bilinear footprints (4 texels each, before
    wrapping) of each group's pixels, at uv [N, 2] in mips of sizes [N, 2]."""
    first, _ = _footprint(uv, sizes)
    cells = torch.cat([first + torch.tensor(d) for d in ((0, 0), (1, 0), (0, 1), (1, 1))])
    key = torch.unique(torch.stack([group.repeat(4), cells[:, 0], cells[:, 1]], 1), dim=0)
    return torch.bincount(key[:, 0], minlength=groups)


def quad_decodes(uv: torch.Tensor, lod: torch.Tensor, pixel: torch.Tensor,
                 size: tuple[int, int], mips: int) -> torch.Tensor:
    """[N] MLP evaluations each pixel makes under the quad filter (ntcSample's plan): pixels are
    grouped in 2x2 quads at even window coordinates (every quad complete, as in a harness image);
    a quad whose pixels share floor(lod) decodes the union of their bilinear footprints at that mip
    and the next (the next only where some pixel's lod has a fraction), texel 4k + lane by the
    pixel in quad place `lane` (x & 1 + 2 (y & 1)), unless a footprint rectangle is wider than
    NTC_QUAD_MAX_EXTENT or sharing takes as many rounds as decoding their own (4 a level); then each
    pixel decodes its own 4 or 8. (The quad's cost on a GPU is its rounds, the largest count of its
    pixels.)"""
    lod = torch.as_tensor(lod, dtype=torch.float32).expand(uv.shape[0])
    m0 = torch.floor(lod).long()
    levels = torch.where(lod > m0, 2, 1)
    quad, n_quads = pixel_groups(pixel, (2, 2))

    def per_quad(values, reduce):
        return torch.zeros(n_quads, dtype=torch.long).scatter_reduce(0, quad, values, reduce,
                                                                     include_self=False)
    same_mip = per_quad(m0, "amax") == per_quad(m0, "amin")
    quad_levels = per_quad(levels, "amax")
    texels = torch.zeros(n_quads, dtype=torch.long)
    narrow = torch.ones(n_quads, dtype=torch.bool)
    for level in range(2):
        s = mip_sizes(size[0], size[1], (m0 + level).clamp(max=mips))
        first, _ = _footprint(uv, s)
        used = quad_levels > level
        for a in range(2):
            extent = per_quad(first[:, a], "amax") - per_quad(first[:, a], "amin") + 2
            narrow &= ~used | (extent <= C.NTC_QUAD_MAX_EXTENT)
        texels += torch.where(used, footprint_union(uv, s, quad, n_quads), 0)
    shared = same_mip & narrow & ((texels + 3) // 4 < 4 * quad_levels)
    lane = pixel[:, 0] % 2 + 2 * (pixel[:, 1] % 2)
    return torch.where(shared[quad], (texels[quad] - lane + 3).clamp(min=0) // 4, 4 * levels)


def pcg3d(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """ntcPcg3d: three 32-bit hashes of uint32 arrays (x, y, z); numpy arrays wrap like uint."""
    def mix(x, y, z):
        x = x + y * z
        y = y + z * x
        return x, y, z + x * y

    x, y, z = (np.asarray(c, np.uint32) * np.uint32(1664525) + np.uint32(1013904223)
               for c in (x, y, z))
    x, y, z = mix(x, y, z)
    x, y, z = (c ^ (c >> np.uint32(16)) for c in (x, y, z))
    return mix(x, y, z)


def stochastic_draw(pixel: torch.Tensor, frame: int) -> torch.Tensor:
    """The shader's number in [0, 1) for pixels [N, 2] in `frame`: the pixel's hash (PCG3D of
    (x, y, 0)) plus frame x NTC_GOLDEN_STEP, wrapped to 32 bits, its top 24 bits as a float."""
    px = pixel.numpy().astype(np.uint32)
    start = pcg3d(px[:, 0], px[:, 1], np.zeros(len(px), np.uint32))[0].astype(np.uint64)
    step = np.uint64(frame % (1 << 32)) * np.uint64(C.NTC_GOLDEN_STEP)
    u = (start + step) & np.uint64(0xFFFFFFFF)
    return torch.from_numpy((u >> np.uint64(8)).astype(np.float32) * np.float32(1.0 / 16777216.0))


def stochastic_texels(uv: torch.Tensor, lod: torch.Tensor, pixel: torch.Tensor, frame: int,
                      size: tuple[int, int]):
    """The shader's draw: (mip [N], texel [N, 2] before wrapping) for pixels [N, 2] in `frame`.
    The footprint's 8 texels lie end to end on [0, 1), each over an interval as long as its
    trilinear weight: mip floor(lod) + 1 on [0, frac(lod)), floor(lod) after it; within a mip's
    interval the second texel across x on its first share fx, then likewise y. The texel drawn is
    the one whose interval holds stochastic_draw, so consecutive frames of a pixel spread over the
    intervals evenly (a Kronecker sequence) rather than at random."""
    r = stochastic_draw(pixel, frame)
    lod = torch.as_tensor(lod, dtype=torch.float32).expand(uv.shape[0])
    m0 = torch.floor(lod)
    t = lod - m0
    upper = r < t
    mip = (m0 + upper.float()).long()
    a = torch.where(upper, torch.zeros_like(t), t)
    length = torch.where(upper, t, 1.0 - t)
    first, f = _footprint(uv, mip_sizes(*size, mip))
    steps = []
    for axis in range(2):
        second = length * f[:, axis]
        take = r < a + second
        steps.append(take.long())
        a = torch.where(take, a, a + second)
        length = torch.where(take, second, length - second)
    return mip, first + torch.stack(steps, 1)


@torch.no_grad()
def sample_stochastic(decoder_or_mips, uv: torch.Tensor, lod: torch.Tensor, wrap,
                      pixel: torch.Tensor, frame: int) -> torch.Tensor:
    """Stored channels of the texel the shader draws for each pixel in `frame`."""
    mips = _stored_mips(decoder_or_mips)
    h, w = mips[0].shape[:2]
    mip, texel = stochastic_texels(uv, lod, pixel, frame, (w, h))
    return _fetch(mips, mip, texel, wrap)


def harness_uv(size: tuple[int, int], origin, step_x, step_y):
    """uv [h*w, 2] (float32, the harness's own arithmetic) and pixel [h*w, 2] of a harness image
    of `size` (w, h), row-major from window row 0: uv = origin + (x+.5)*step_x + (y+.5)*step_y."""
    w, h = size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pixel = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
    fc = pixel.to(torch.float32) + 0.5
    origin, step_x, step_y = (torch.tensor(v, dtype=torch.float32)
                              for v in (origin, step_x, step_y))
    uv = origin + fc[:, :1] * step_x + fc[:, 1:] * step_y
    return uv, pixel
