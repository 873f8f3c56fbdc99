"""Which texels each training step trains on: rows of the flattened mip chain.

`uniform_rows` is the plain draw: most rows uniform over texels (mips by area, as RTXNTC), a share
with the mip drawn uniformly, else the smallest mips would barely be seen; optionally in horizontal
runs of neighbours (RTXNTC's batches; measured and not kept, see bench/choices.md).

`TexelSampler` adds error guidance: a share of the by-area draw goes, within each mip, to blocks
of texels in proportion to a power of their recent loss, so the steps go where the image is still
wrong rather than to flat regions it already reproduces. Each mip keeps its expected share of the
batch (by area, plus the mip-uniform share), and the rest of the by-area draw stays uniform, so
every texel keeps being seen. The per-block loss is an exponential average of the per-texel losses
the training step reports (`observe`); the guided draw's table is rebuilt every REFRESH steps
(drawing from it is a search per row). The per-row loops run in C (sampling.c, built by
trainer/native.py) where a compiler is found; the torch code here is their reference and fallback.

The guided sampler's numbers (where in the loss table, where in a block, which plain row, which
mip and where in it) come by default from low-discrepancy streams (`Kronecker`) that continue
from step to step instead of independent draws: over a run the rows spread over the chain and
over the loss-weighted blocks evenly, each texel visited at nearly even intervals, which trained
a little further in the same steps (bench/choices.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import native

BLOCK = 64      # texels per block (consecutive rows of one mip)
REFRESH = 16    # steps between rebuilds of the draw's cumulative table
DECAY = 0.9     # a block's loss average keeps this much of its last value per observation


# steps of the Kronecker sequences: 1 / golden ratio in one dimension, the R2 pair (1 / plastic
# number and its square) in two (Roberts, "The unreasonable effectiveness of quasirandom
# sequences", 2018)
GOLDEN_STEP = (0.6180339887498949,)
R2_STEP = (0.7548776662466927, 0.5698402909980532)


class Kronecker:
    """A low-discrepancy stream in [0, 1)^d: frac(start + j * step) for j = 0, 1, 2 ... over all
    calls, from a random start (drawn from `gen` once, here). The phase is carried from call to
    call in float64, so j * step never grows large and the values keep their precision over
    any run."""

    def __init__(self, step: tuple[float, ...], gen, lib=None):
        self.step = torch.tensor(step, dtype=torch.float64)
        self.phase = torch.rand(len(step), generator=gen, dtype=torch.float64)
        self.lib = lib   # the C kernels (sampling.c's ntc_kronecker), or None: torch

    def take(self, n: int) -> torch.Tensor:
        """The next n points, float64 [n, d]."""
        if self.lib is not None:
            out = torch.empty(n, self.step.numel(), dtype=torch.float64)
            self.lib.ntc_kronecker(self.phase.data_ptr(), self.step.data_ptr(), self.step.numel(),
                                   n, out.data_ptr())
            return out
        j = torch.arange(n, dtype=torch.float64)[:, None]
        out = torch.frac(self.phase + j * self.step)
        self.phase = torch.frac(self.phase + n * self.step)
        return out


def unit_float(v: torch.Tensor) -> torch.Tensor:
    """float64 values in [0, 1) as float32 in [0, 1) (24 bits, as torch.rand's): rounding to
    float32 alone could give 1.0."""
    return (torch.floor(v * 16777216.0) / 16777216.0).float().contiguous()


def uniform_rows(offsets: torch.Tensor, sizes: torch.Tensor, n: int, uniform_share: float,
                 run: int, gen) -> torch.Tensor:
    """n rows: uniform over texels, except int(n * uniform_share) with the mip drawn uniformly.
    With run > 1, n // run texels are drawn so and each starts a run of `run` horizontal
    neighbours (wrapping within its image row)."""
    starts = max(1, n // run)
    total = int(offsets[-1])
    n_mip = int(starts * uniform_share)
    rows = torch.randint(0, total, (starts - n_mip,), generator=gen)
    rows = torch.cat([rows, mip_uniform_rows(offsets, n_mip, gen)])
    if run <= 1:
        return rows
    mip = torch.searchsorted(offsets, rows, right=True) - 1
    base, w = offsets[mip], sizes[mip, 0]
    local = rows - base
    line, x = local - local % w, local % w
    step = torch.arange(run)
    return (base[:, None] + line[:, None] + (x[:, None] + step) % w[:, None]).reshape(-1)[:n]


def point_jitter(n: int, share: float, gen) -> torch.Tensor | None:
    """[n, 2] offsets from the texel centre (in texels of the row's mip): about `share` of the
    rows moved uniformly within their texel, the rest left at the centre (zeros); None for
    share 0 (and no draw from `gen`). Rows between centres train the latent filter, which decodes
    there (reference_step.TrainingStep)."""
    if share <= 0:
        return None
    moved = (torch.rand(n, generator=gen) < share).float()[:, None]
    return (torch.rand(n, 2, generator=gen) - 0.5) * moved


def lod_blend_points(jitter: torch.Tensor | None, n: int, share: float, gen):
    """(jitter, blend) for training the latent filter across mips: about `share` of the rows get
    a fraction t uniform in (0, 1) (blend [n], 0 elsewhere; None for share 0, and no draw from
    `gen`) and a place uniform within their texel (the filter decodes anywhere); `jitter` is
    point_jitter's, extended. The step decodes those rows on the MLP inputs of their mip and the
    next, blended by t (reference.blend_inputs), against the same blend of the two mips' targets."""
    if share <= 0:
        return jitter, None
    blended = torch.rand(n, generator=gen) < share
    t = torch.rand(n, generator=gen) * blended
    moved = torch.rand(n, 2, generator=gen) - 0.5
    jitter = torch.zeros(n, 2) if jitter is None else jitter.clone()
    jitter[blended] = moved[blended]
    return jitter, t


def mip_uniform_rows(offsets: torch.Tensor, n: int, gen) -> torch.Tensor:
    """n rows, each of a mip drawn uniformly, uniform within it."""
    return place_in_mips(offsets, *mip_uniform_draws(offsets, n, gen))


def mip_uniform_draws(offsets: torch.Tensor, n: int, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """The random draws of mip_uniform_rows: each row's mip and its fraction of that mip."""
    mips = torch.randint(0, offsets.numel() - 1, (n,), generator=gen)
    return mips, torch.rand(n, generator=gen)


def place_in_mips(offsets: torch.Tensor, mips: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The row at fraction u of mip `mips` (each in [0, 1))."""
    counts = offsets[mips + 1] - offsets[mips]
    local = (u * counts).long().minimum(counts - 1)
    return offsets[mips] + local


@dataclass(frozen=True)
class Blocks:
    """The mip chain cut into blocks of at most BLOCK consecutive rows, none across two mips."""
    start: torch.Tensor   # long [blocks] first row
    length: torch.Tensor  # float [blocks] rows
    mip: torch.Tensor     # long [blocks]

    @staticmethod
    def of(offsets: torch.Tensor) -> "Blocks":
        counts = offsets[1:] - offsets[:-1]
        per_mip = (counts + BLOCK - 1) // BLOCK
        mip = torch.repeat_interleave(torch.arange(counts.numel()), per_mip)
        first = torch.cumsum(per_mip, 0) - per_mip         # first block of each mip
        index = torch.arange(mip.numel()) - first[mip]     # block index within its mip
        start = offsets[mip] + index * BLOCK
        length = torch.minimum(offsets[mip + 1] - start, torch.tensor(BLOCK)).float()
        return Blocks(start, length, mip)


class TexelSampler:
    """Training rows for each step, error-guided within each mip (module docstring). With
    guided_share 0, or runs of neighbours (run > 1), it draws exactly as uniform_rows (same
    generator calls)."""

    def __init__(self, offsets: torch.Tensor, sizes: torch.Tensor, uniform_share: float,
                 guided_share: float = 0.0, power: float = 0.5, run: int = 1,
                 kernels: bool = True, sequence: bool = True):
        self.offsets, self.sizes = offsets.long().contiguous(), sizes  # as the C loops read them
        self.uniform_share, self.guided_share, self.power, self.run = (
            uniform_share, guided_share, power, run)
        self.guided = guided_share > 0 and run <= 1
        # the guided draw's numbers from Kronecker streams (module docstring), else independent
        self.sequence = sequence
        self._streams: dict[str, Kronecker] | None = None
        self._last: tuple[torch.Tensor, int] | None = None  # (blocks of the by-area rows, n)
        self._cdf: torch.Tensor | None = None
        self._guide: torch.Tensor | None = None  # the C search's start per bucket of the cdf
        self._draws = 0
        if self.guided:
            self.blocks = Blocks.of(offsets)
            counts = (offsets[1:] - offsets[:-1]).float()
            self._mip_share = counts / counts.sum()
            per_mip = torch.bincount(self.blocks.mip, minlength=counts.numel())
            self._first_block = torch.cumsum(per_mip, 0) - per_mip
            # a block nobody has seen yet counts as the worst seen so far (so it gets drawn)
            self.loss = torch.full((self.blocks.mip.numel(),), float("inf"))
            self.lib = None
            if kernels:
                try:
                    self.lib = native.load()
                except native.NativeUnavailable:
                    pass  # the torch code draws the same rows, a little slower

    def draw(self, n: int, gen, share: float | None = None) -> torch.Tensor:
        """n rows: `share` (default guided_share) of the by-area part by loss (each mip's share of
        it kept), the rest of it uniform over texels, then the mip-uniform share."""
        if not self.guided:
            return uniform_rows(self.offsets, self.sizes, n, self.uniform_share, self.run, gen)
        n_mip = int(n * self.uniform_share)
        n_guided = int((n - n_mip) * (self.guided_share if share is None else share))
        if n_guided and (self._cdf is None or self._draws % REFRESH == 0):
            self._cdf = self._table()
            if self.lib is not None:
                self._guide = torch.empty(self._cdf.numel(), dtype=torch.long)
                self.lib.ntc_guide_table(self._cdf.data_ptr(), self._cdf.numel(),
                                         self._guide.data_ptr())
        self._draws += 1
        if self.sequence:
            u1, u2, plain, mips, u3 = self._sequence_draws(n_guided, n - n_mip - n_guided, n_mip,
                                                           gen)
        else:
            u1 = torch.rand(n_guided, generator=gen) if n_guided else torch.zeros(0)
            u2 = torch.rand(n_guided, generator=gen) if n_guided else torch.zeros(0)
            plain = torch.randint(0, int(self.offsets[-1]), (n - n_mip - n_guided,),
                                  generator=gen)
            mips, u3 = mip_uniform_draws(self.offsets, n_mip, gen)
        draw = self._rows_native if self.lib is not None else self._rows_torch
        rows, blocks = draw(u1, u2, plain, mips, u3)
        self._last = (blocks, n - n_mip)
        return rows

    def _sequence_draws(self, n_guided: int, n_plain: int, n_mip: int, gen):
        """draw's numbers from the Kronecker streams, started from `gen` at the first draw: the
        guided rows' (place in the loss table, place in the block) in two dimensions, the plain
        rows' in one, the mip-uniform rows' (mip, place in it) in two."""
        if self._streams is None:
            self._streams = {"guided": Kronecker(R2_STEP, gen, self.lib),
                             "plain": Kronecker(GOLDEN_STEP, gen, self.lib),
                             "mip": Kronecker(R2_STEP, gen, self.lib)}
        g = self._streams["guided"].take(n_guided)
        p = self._streams["plain"].take(n_plain)
        m = self._streams["mip"].take(n_mip)
        total, levels = int(self.offsets[-1]), self.offsets.numel() - 1
        if self.lib is None:
            plain = (p[:, 0] * total).long().clamp_(max=total - 1)
            mips = (m[:, 0] * levels).long().clamp_(max=levels - 1)
            return unit_float(g[:, 0]), unit_float(g[:, 1]), plain, mips, unit_float(m[:, 1])
        # the same arithmetic in C: a dozen small torch ops cost more than the rest of the draw
        u1, u2, u3 = (torch.empty(k) for k in (n_guided, n_guided, n_mip))
        plain, mips = torch.empty(n_plain, dtype=torch.long), torch.empty(n_mip, dtype=torch.long)
        for values, col, out in ((g, 0, u1), (g, 1, u2), (m, 1, u3)):
            self.lib.ntc_unit_floats(values.data_ptr() + 8 * col, values.shape[1], out.numel(),
                                     out.data_ptr())
        for values, count, out in ((p, total, plain), (m, levels, mips)):
            self.lib.ntc_scaled_index(values.data_ptr(), values.shape[1], out.numel(), count,
                                      out.data_ptr())
        return u1, u2, plain, mips, u3

    def _rows_torch(self, u1, u2, plain, mips, u3):
        """The rows (guided, plain, mip-uniform) and the blocks of the first two kinds: the
        reference of ntc_sample_rows."""
        if u1.numel():
            u = u1 * float(self._cdf[-1])
            b = torch.searchsorted(self._cdf, u.double(), right=True)
            b = b.clamp_(max=self._cdf.numel() - 1)
            local = (u2 * self.blocks.length[b]).long()
        else:
            b = local = torch.zeros(0, dtype=torch.long)
        # the plain rows' blocks: their mip, then their place in it
        mip = torch.searchsorted(self.offsets, plain, right=True) - 1
        blocks = torch.cat([b, self._first_block[mip] + (plain - self.offsets[mip]) // BLOCK])
        return torch.cat([self.blocks.start[b] + local, plain,
                          place_in_mips(self.offsets, mips, u3)]), blocks

    def _rows_native(self, u1, u2, plain, mips, u3):
        n_area = u1.numel() + plain.numel()
        rows = torch.empty(n_area + mips.numel(), dtype=torch.long)
        blocks = torch.empty(n_area, dtype=torch.long)
        cdf, guide, bl = self._cdf, self._guide, self.blocks
        if cdf is None:  # nothing guided yet: no table, and no row searches one
            cdf, guide = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.long)
        self.lib.ntc_sample_rows(cdf.data_ptr(), guide.data_ptr(), cdf.numel(),
                                 bl.start.data_ptr(), bl.length.data_ptr(), u1.data_ptr(),
                                 u2.data_ptr(), u1.numel(), plain.data_ptr(), plain.numel(),
                                 mips.data_ptr(), u3.data_ptr(), mips.numel(),
                                 self.offsets.data_ptr(), self.offsets.numel() - 1,
                                 self._first_block.data_ptr(), BLOCK, rows.data_ptr(),
                                 blocks.data_ptr())
        return rows, blocks

    def _table(self) -> torch.Tensor:
        """Cumulative draw weights of the guided rows' blocks: each mip's area share, split
        inside the mip by loss ** power."""
        bl = self.blocks
        seen = torch.isfinite(self.loss)
        worst = float(self.loss[seen].max()) if bool(seen.any()) else 1.0
        loss = torch.where(seen, self.loss, torch.tensor(worst)).clamp(min=1e-12)
        guided = bl.length * loss ** self.power
        guided_sum = torch.zeros(self._mip_share.numel()).index_add_(0, bl.mip, guided)
        return torch.cumsum((self._mip_share[bl.mip] * guided / guided_sum[bl.mip]).double(), 0)

    def observe(self, texel_loss: torch.Tensor | None) -> None:
        """The per-texel loss of the rows last drawn (in their order), from the training step."""
        if not self.guided or self._last is None or texel_loss is None:
            return
        b, n_area = self._last
        loss = texel_loss[:n_area].float().cpu().contiguous()
        if self.lib is not None:
            scratch = torch.empty(n_area)
            self.lib.ntc_observe_loss(self.loss.data_ptr(), b.data_ptr(), loss.data_ptr(), n_area,
                                      DECAY, 1 - DECAY, scratch.data_ptr())
            return
        old = self.loss[b]
        self.loss[b] = torch.where(torch.isfinite(old), DECAY * old + (1 - DECAY) * loss, loss)
