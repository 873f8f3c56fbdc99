"""What the network must reproduce: the channel plan and the full mip chain of every texture."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from export import layout
from export.decode.reference import LatentPyramid, bilinear_blend, bilinear_taps
from export.metrics import psnr
from export.pixels import build_mips, rebuild_normal_z
from export.model import CONST, COPY, NORMAL_Z, STORED, ChannelInfo, TextureInfo

from .textures import TextureSet

# A normal map's Z is rebuilt on decode only if that reproduces the source this well (dB): object-
# space or unnormalised maps keep their Z as a stored channel.
NORMAL_Z_MIN_PSNR = 40.0


def plan_channels(tset: TextureSet) -> tuple[list[TextureInfo], int]:
    """How each source channel is reproduced: constant channels and exact copies (grey RGB) cost
    nothing, a normal's Z is rebuilt from X and Y, everything else is a stored MLP output."""
    infos, stored = [], 0
    for tex in tset.textures:
        px = tex.pixels
        chans: list[ChannelInfo] = []
        for i in range(tex.channels):
            ch = px[..., i]
            if tex.role == "normal" and i == 2 and \
                    psnr(rebuild_normal_z(px[..., :2]), ch, peak=1.0) >= NORMAL_Z_MIN_PSNR:
                chans.append(ChannelInfo(NORMAL_Z))
            elif ch.min() == ch.max():
                chans.append(ChannelInfo(CONST, value=float(ch.flat[0])))
            elif (copy := next((j for j in range(i) if np.array_equal(px[..., j], ch)), None)) is not None:
                chans.append(ChannelInfo(COPY, index=copy))
            else:
                chans.append(ChannelInfo(STORED, index=stored))
                stored += 1
        infos.append(TextureInfo(name=tex.name, file=tex.path.name, role=tex.role,
                                 colorspace=tex.colorspace, bit_depth=tex.bit_depth,
                                 channels=chans, weight=tex.weight))
    return infos, stored


def locate(rows: torch.Tensor, offsets: torch.Tensor, sizes: torch.Tensor):
    """(mip, texel-centre uv) of rows of the flattened mip chain."""
    mip = torch.searchsorted(offsets, rows, right=True) - 1
    local = rows - offsets[mip]
    w, h = sizes[mip, 0], sizes[mip, 1]
    uv = torch.stack([(local % w + 0.5) / w, (local // w + 0.5) / h], 1).float()
    return mip, uv


def locate_points(rows: torch.Tensor, jitter: torch.Tensor, offsets: torch.Tensor,
                  sizes: torch.Tensor):
    """(mip, uv) of rows moved off their texel centres by `jitter` ([N, 2], in texels of the
    row's mip), uv kept within the mip's texel centres as the latent filter keeps it
    (filters.wrap_uv)."""
    mip, uv = locate(rows, offsets, sizes)
    size = sizes[mip].to(uv.dtype)
    half = 0.5 / size
    return mip, torch.minimum(torch.maximum(uv + jitter / size, half), 1.0 - half)


def next_mip_points(rows: torch.Tensor, jitter: torch.Tensor, offsets: torch.Tensor,
                    sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, jitter) of the places locate_points gives, in the next colour mip (the last mip's
    stay in it): the texel there and the offset from its centre. The latent filter across mips
    reads both mips' inputs at one place (sampling.lod_blend_points)."""
    mip, uv = locate_points(rows, jitter, offsets, sizes)
    nxt = (mip + 1).clamp(max=sizes.shape[0] - 1)
    size = sizes[nxt].to(uv.dtype)
    p = uv * size
    texel = torch.minimum(torch.floor(p), size - 1)
    t = texel.long()
    return offsets[nxt] + t[:, 1] * sizes[nxt, 0] + t[:, 0], p - texel - 0.5


def point_targets(values: torch.Tensor, rows: torch.Tensor, jitter: torch.Tensor,
                  offsets: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """[N, stored] targets at locate_points' places: the bilinear blend of the 4 nearest texels
    of each row's mip, what trilinear filtering of the source gives there."""
    mip, uv = locate_points(rows, jitter, offsets, sizes)
    chain = LatentPyramid(sizes, offsets[:-1], sizes.shape[0], "bilinear")  # the same flat layout
    idx, frac, _ = bilinear_taps(chain, mip, uv)
    return bilinear_blend(values, idx, frac)


@dataclass
class TrainingTargets:
    """Every texel of every mip, flattened: row r of `values` is texel r of the chain."""
    values: torch.Tensor         # float32 [texels, stored]
    importance: torch.Tensor | None  # float32 [texels] per-texel loss weight, or None
    channel_weights: torch.Tensor    # float32 [stored]
    mip_offsets: torch.Tensor    # long [mips + 1]
    mip_sizes: torch.Tensor      # long [mips, 2] (w, h)
    source_mips: list[list[np.ndarray]]  # per texture, per mip, the reference in its own layout


def build_targets(tset: TextureSet, infos: list[TextureInfo], stored: int,
                  mask_strength: float = 4.0) -> TrainingTargets:
    w, h = tset.size
    mips = layout.mip_count(w, h)
    sizes = [layout.mip_size(w, h, m) for m in range(mips)]
    source_mips = [build_mips(t.pixels, t.srgb_channels, t.role == "normal") for t in tset.textures]
    per_mip, weights = [], np.ones(stored, np.float32)
    for m, (mw, mh) in enumerate(sizes):
        cols = np.zeros((mh * mw, stored), np.float32)
        for tex, info, chain in zip(tset.textures, infos, source_mips):
            for i, c in enumerate(info.channels):
                if c.kind == STORED:
                    cols[:, c.index] = chain[m][..., i].reshape(-1)
                    weights[c.index] = tex.weight
        per_mip.append(torch.from_numpy(cols))
    counts = torch.tensor([mw * mh for mw, mh in sizes])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    importance = None
    if tset.mask is not None:
        chain = build_mips(tset.mask[..., None], [False], False)
        importance = torch.cat([torch.from_numpy(1.0 + mask_strength * c.reshape(-1))
                                for c in chain]).float()
    return TrainingTargets(torch.cat(per_mip, 0), importance, torch.from_numpy(weights),
                           offsets, torch.tensor(sizes, dtype=torch.long), source_mips)
