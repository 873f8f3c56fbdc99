"""The PyTorch twin of the shader decoder: texel = MLP(latents at a mip pair, positional code, LOD).

`decode_texels` is the one definition of the math. The trainer calls it with float parameters
(plus fake quantization); `decode_mip` calls it with the dequantized contents of a file. The Slang
shader mirrors it line by line, and the parity tests hold them together.

Per colour mip m (size w_m x h_m), texel (x, y):
    uv        = ((x + 0.5) / w_m, (y + 0.5) / h_m)
    hi, lo    = latent levels m and m + 1 (clamped to the pyramid)
    p         = uv * size(hi) - 0.5                 latent-texel coordinates, texel centres at ints
    hi feats  = bilinear(hi, p)                      or, for "gather4", the 4 nearest texels
                                                     concatenated plus frac(p) (the MLP blends)
    lo feats  = bilinear(lo, uv * size(lo) - 0.5)
    pe        = tri(2^k * (p + 0.5) + phase)  k = 0..2, phase in {0, 0.25}, x and y
    lod       = m / max(1, mips - 1)
    out       = MLP([hi, lo, pe, lod])               hswish3 between layers, linear at the end
Latent fetches clamp to the edge; tri(t) = 1 - 4 |frac(t) - 0.5| lies in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import layout
from ..model import CONST, COPY, NORMAL_Z, STORED, NTCModel


def hswish3(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, max=3.0) * torch.clamp(x / 3.0 + 0.5, 0.0, 1.0)


def triangle(t: torch.Tensor) -> torch.Tensor:
    # t - floor(t), as the shaders' frac: torch.frac keeps the sign and differs for t < 0
    return 1.0 - 4.0 * torch.abs(t - torch.floor(t) - 0.5)


@dataclass
class LatentPyramid:
    """Static description of the latent levels, flattened into one [texels, features] table."""
    sizes: torch.Tensor    # long [levels, 2] (w, h)
    offsets: torch.Tensor  # long [levels] first row of each level in the flat table
    mips: int
    hr_sampling: str

    @staticmethod
    def build(levels: list[tuple[int, int]], mips: int, hr_sampling: str,
              device: torch.device | str = "cpu") -> "LatentPyramid":
        sizes = torch.tensor(levels, dtype=torch.long, device=device)
        counts = sizes[:, 0] * sizes[:, 1]
        offsets = torch.cumsum(counts, 0) - counts
        return LatentPyramid(sizes, offsets, mips, hr_sampling)

    @property
    def texels(self) -> int:
        return int((self.sizes[:, 0] * self.sizes[:, 1]).sum())


def bilinear_taps(pyr: LatentPyramid, level: torch.Tensor, uv: torch.Tensor):
    """Rows of the 4 nearest texels around uv in `level` of a flat table of grids (the latent
    pyramid; the trainer also reads its colour mip chain so), clamped to the edge, the bilinear
    fraction and the texel coordinates p."""
    size = pyr.sizes[level].to(uv.dtype)                      # [N, 2]
    p = uv * size - 0.5
    p0 = torch.floor(p)
    frac = p - p0
    i0 = p0.long()
    w, h = pyr.sizes[level, 0], pyr.sizes[level, 1]
    x0 = i0[:, 0].clamp(0, None).minimum(w - 1)
    x1 = (i0[:, 0] + 1).clamp(0, None).minimum(w - 1)
    y0 = i0[:, 1].clamp(0, None).minimum(h - 1)
    y1 = (i0[:, 1] + 1).clamp(0, None).minimum(h - 1)
    base = pyr.offsets[level]
    idx = torch.stack([base + y0 * w + x0, base + y0 * w + x1,
                       base + y1 * w + x0, base + y1 * w + x1], 0)  # [4, N]
    return idx, frac, p


def bilinear_blend(table: torch.Tensor, idx: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """The rows of bilinear_taps blended by its fraction: [N, table columns]."""
    v = table[idx.reshape(-1)].reshape(4, idx.shape[1], table.shape[1])
    fx, fy = frac[:, :1], frac[:, 1:]
    top = v[0] + (v[1] - v[0]) * fx
    bottom = v[2] + (v[3] - v[2]) * fx
    return top + (bottom - top) * fy


def _level_pair(pyr: LatentPyramid, mip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour mip m reads latent levels m and m + 1, clamped to the pyramid."""
    last = pyr.sizes.shape[0] - 1
    return mip.clamp(max=last), (mip + 1).clamp(max=last)


def latent_rows(pyr: LatentPyramid, mip: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Every table row that decoding these texels reads (the trainer updates only those)."""
    hi, lo = _level_pair(pyr, mip)
    return torch.cat([bilinear_taps(pyr, hi, uv)[0].reshape(-1),
                      bilinear_taps(pyr, lo, uv)[0].reshape(-1)])


def positional_encoding(size: torch.Tensor, uv: torch.Tensor, pe_grid: torch.Tensor | None):
    """[N, 4 * PE_OCTAVES] triangle-wave encoding of uv in a latent level of `size` ([N, 2])
    texels. pe_grid None: at uv (texel centres). pe_grid [N, 2]: the bilinear blend of the
    encodings of the 4 centres of a pe_grid-texel grid around uv, for decoding between texel
    centres (the latent filter), where the MLP has never seen the raw encoding.
    ntc_decode_core.slang: ntcPositionalEncoding."""
    def encode(q):
        return torch.cat([triangle(q * float(1 << k) + phase)
                          for k in range(layout.PE_OCTAVES) for phase in (0.0, 0.25)], 1)
    size = size.to(uv.dtype)
    if pe_grid is None:
        return encode(uv * size)
    grid = pe_grid.to(uv.dtype)
    g = uv * grid - 0.5
    g0 = torch.floor(g)
    f = g - g0
    corner = [encode((g0 + torch.tensor(d, dtype=uv.dtype) + 0.5) / grid * size)
              for d in ((0, 0), (1, 0), (0, 1), (1, 1))]
    fx, fy = f[:, :1], f[:, 1:]
    top = corner[0] * (1 - fx) + corner[1] * fx
    bottom = corner[2] * (1 - fx) + corner[3] * fx
    return top * (1 - fy) + bottom * fy


def encode_inputs(table: torch.Tensor, pyr: LatentPyramid, mip: torch.Tensor,
                  uv: torch.Tensor, remap: torch.Tensor | None = None,
                  pe_grid: torch.Tensor | None = None) -> torch.Tensor:
    """MLP input rows for texels at `uv` of colour mips `mip` (one per row). With `remap`, `table`
    holds only some rows of the pyramid's table and remap[full row] is the row in `table`.
    pe_grid: see positional_encoding (None for texel centres)."""
    hi, lo = _level_pair(pyr, mip)
    idx_hi, frac_hi, _ = bilinear_taps(pyr, hi, uv)
    idx_lo, frac_lo, _ = bilinear_taps(pyr, lo, uv)
    if remap is not None:
        idx_hi, idx_lo = remap[idx_hi], remap[idx_lo]
    if pyr.hr_sampling == "gather4":
        v = table[idx_hi.reshape(-1)].reshape(4, uv.shape[0], table.shape[1])
        hi_feats = [v[0], v[1], v[2], v[3], frac_hi]
    else:
        hi_feats = [bilinear_blend(table, idx_hi, frac_hi)]
    pe = positional_encoding(pyr.sizes[hi], uv, pe_grid)
    lod = (mip.to(uv.dtype) / max(1, pyr.mips - 1))[:, None]
    return torch.cat(hi_feats + [bilinear_blend(table, idx_lo, frac_lo), pe, lod], 1)


def blend_inputs(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """MLP inputs across mips (a file's lod_blend): (1 - t) x0 + t x1 per row, x0 and x1 the
    encode_inputs of colour mips m and m + 1 at the same place, t = frac(LOD) [N]
    (ntc_decode_core.slang: ntcDecodeWith's second source)."""
    t = t.to(x0.dtype)[:, None]
    return (1.0 - t) * x0 + t * x1


def mlp_forward(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]):
    for i, (w, b) in enumerate(zip(weights, biases)):
        x = torch.addmm(b, x, w.t())
        if i + 1 < len(weights):
            x = hswish3(x)
    return x


def mlp_forward_half(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor],
                     chunk: int = 4096) -> torch.Tensor:
    """mlp_forward in the arithmetic of the GL decoder's 16-bit variant (ntc_decode.slang,
    NTC_HALF): inputs, weights and biases rounded to IEEE halves; each output starts at its bias
    and adds one 4-wide dot product of the inputs at a time, every product and sum rounded to
    half (a dot's four products summed in float32, then rounded: a driver may fuse them);
    hswish3 in half. Returns float32. An emulation of the rounding, not the driver's exact order
    of operations: it measures what 16-bit arithmetic costs a file (tests/test_half_precision)."""
    out = []
    for start in range(0, x.shape[0], chunk):
        a = x[start:start + chunk].half()
        for i, (w, b) in enumerate(zip(weights, biases)):
            n_out, n_in = w.shape
            pad = layout.pad4(n_in) - n_in
            wh = torch.nn.functional.pad(w, (0, pad)).half()
            ah = torch.nn.functional.pad(a, (0, pad))
            acc = b.half().expand(a.shape[0], n_out)
            for c in range(0, n_in + pad, 4):
                prod = ah[:, None, c:c + 4] * wh[None, :, c:c + 4]  # [n, out, 4], rounded
                acc = acc + prod.float().sum(-1).half()
            a = hswish3(acc) if i + 1 < len(weights) else acc
        out.append(a.float())
    return torch.cat(out, 0)


def decode_texels(table, pyr, weights, biases, mip, uv, remap=None, pe_grid=None,
                  half: bool = False, blend=None):
    """Stored-channel values (about [0, 1]) for texels at `uv` of colour mips `mip`; with `half`
    the MLP runs in the 16-bit variant's arithmetic (mlp_forward_half). blend: None, or (mip1,
    uv1, pe_grid1, t) of a second place whose MLP inputs are blended in by t [N] (blend_inputs:
    the latent filter across mips)."""
    x = encode_inputs(table, pyr, mip, uv, remap, pe_grid)
    if blend is not None:
        mip1, uv1, pe_grid1, t = blend
        x = blend_inputs(x, encode_inputs(table, pyr, mip1, uv1, remap, pe_grid1), t)
    return (mlp_forward_half if half else mlp_forward)(x, weights, biases)


def texel_uv(w: int, h: int, device="cpu") -> torch.Tensor:
    """Texel-centre uv of every texel of a w x h image, row-major, [h*w, 2]."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                            indexing="ij")
    return torch.stack([(xs.reshape(-1) + 0.5) / w, (ys.reshape(-1) + 0.5) / h], 1).float()


# ----------------------------------------------------------------------------------------------
# decoding a file

@dataclass
class FileDecoder:
    """Dequantized contents of an NTCModel as torch tensors, ready for `decode_texels`."""
    model: NTCModel
    table: torch.Tensor
    pyramid: LatentPyramid
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    half: bool = False  # the MLP in the 16-bit GL variant's arithmetic (mlp_forward_half)

    @staticmethod
    def from_model(model: NTCModel, device="cpu", half: bool = False) -> "FileDecoder":
        lat = model.latent
        rows = [torch.from_numpy(lat.dequantize(q)).reshape(lat.features, -1).t()
                for q in model.latents]
        table = torch.cat(rows, 0).contiguous().to(device)
        pyr = LatentPyramid.build(lat.levels, model.mips, lat.hr_sampling, device)
        weights = [torch.from_numpy(l.dequantized()).to(device) for l in model.layers]
        biases = [torch.from_numpy(l.bias.astype(np.float32)).to(device) for l in model.layers]
        return FileDecoder(model, table, pyr, weights, biases, half)

    @torch.no_grad()
    def stored_mip(self, mip: int, chunk: int = 1 << 16) -> torch.Tensor:
        """[h, w, stored] float values of colour mip `mip`."""
        w, h = layout.mip_size(self.model.width, self.model.height, mip)
        uv = texel_uv(w, h, self.table.device)
        mips = torch.full((uv.shape[0],), mip, dtype=torch.long, device=uv.device)
        out = [decode_texels(self.table, self.pyramid, self.weights, self.biases,
                             mips[i:i + chunk], uv[i:i + chunk], half=self.half)
               for i in range(0, uv.shape[0], chunk)]
        return torch.cat(out, 0).reshape(h, w, -1)

    def textures_mip(self, mip: int) -> list[np.ndarray]:
        """Float [h, w, C] arrays in [0, 1], one per source texture, in its channel layout."""
        return reconstruct(self.model, self.stored_mip(mip).cpu().numpy())


def reconstruct(model: NTCModel, stored: np.ndarray) -> list[np.ndarray]:
    """Turn stored channels into each source texture's channels (constants, copies, normal Z)."""
    stored = np.clip(stored, 0.0, 1.0)
    h, w = stored.shape[:2]
    out = []
    for tex in model.textures:
        chans: list[np.ndarray] = []
        for c in tex.channels:
            if c.kind == STORED:
                chans.append(stored[..., c.index])
            elif c.kind == CONST:
                chans.append(np.full((h, w), c.value, np.float32))
            elif c.kind == COPY:
                chans.append(chans[c.index])
            elif c.kind == NORMAL_Z:
                x = chans[0] * 2.0 - 1.0
                y = chans[1] * 2.0 - 1.0
                chans.append(np.sqrt(np.maximum(0.0, 1.0 - x * x - y * y)) * 0.5 + 0.5)
        out.append(np.stack(chans, -1).astype(np.float32))
    return out


def to_uint(x: np.ndarray, bit_depth: int) -> np.ndarray:
    peak = (1 << bit_depth) - 1
    return np.round(np.clip(x, 0.0, 1.0) * peak).astype(np.uint8 if bit_depth == 8 else np.uint16)
