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
(drawing from it is a binary search per row).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCK = 64      # texels per block (consecutive rows of one mip)
REFRESH = 16    # steps between rebuilds of the draw's cumulative table
DECAY = 0.9     # a block's loss average keeps this much of its last value per observation


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


def mip_uniform_rows(offsets: torch.Tensor, n: int, gen) -> torch.Tensor:
    """n rows, each of a mip drawn uniformly, uniform within it."""
    mips = torch.randint(0, offsets.numel() - 1, (n,), generator=gen)
    counts = offsets[mips + 1] - offsets[mips]
    local = (torch.rand(n, generator=gen) * counts).long().minimum(counts - 1)
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
                 guided_share: float = 0.0, power: float = 0.5, run: int = 1):
        self.offsets, self.sizes = offsets, sizes
        self.uniform_share, self.guided_share, self.power, self.run = (
            uniform_share, guided_share, power, run)
        self.guided = guided_share > 0 and run <= 1
        self._last: tuple[torch.Tensor, int] | None = None  # (blocks of the by-area rows, n)
        self._cdf: torch.Tensor | None = None
        self._draws = 0
        if self.guided:
            self.blocks = Blocks.of(offsets)
            counts = (offsets[1:] - offsets[:-1]).float()
            self._mip_share = counts / counts.sum()
            per_mip = torch.bincount(self.blocks.mip, minlength=counts.numel())
            self._first_block = torch.cumsum(per_mip, 0) - per_mip
            # a block nobody has seen yet counts as the worst seen so far (so it gets drawn)
            self.loss = torch.full((self.blocks.mip.numel(),), float("inf"))

    def draw(self, n: int, gen, share: float | None = None) -> torch.Tensor:
        """n rows: `share` (default guided_share) of the by-area part by loss (each mip's share of
        it kept), the rest of it uniform over texels, then the mip-uniform share."""
        if not self.guided:
            return uniform_rows(self.offsets, self.sizes, n, self.uniform_share, self.run, gen)
        n_mip = int(n * self.uniform_share)
        n_guided = int((n - n_mip) * (self.guided_share if share is None else share))
        if n_guided and (self._cdf is None or self._draws % REFRESH == 0):
            self._cdf = self._table()
        self._draws += 1
        if n_guided:
            u = torch.rand(n_guided, generator=gen) * self._cdf[-1]
            b = torch.searchsorted(self._cdf, u, right=True).clamp_(max=self._cdf.numel() - 1)
            local = (torch.rand(n_guided, generator=gen) * self.blocks.length[b]).long()
        else:
            b = local = torch.zeros(0, dtype=torch.long)
        plain = torch.randint(0, int(self.offsets[-1]), (n - n_mip - n_guided,), generator=gen)
        # the plain rows' blocks: their mip, then their place in it
        mip = torch.searchsorted(self.offsets, plain, right=True) - 1
        self._last = (torch.cat([b, self._first_block[mip]
                                 + (plain - self.offsets[mip]) // BLOCK]), n - n_mip)
        return torch.cat([self.blocks.start[b] + local, plain,
                          mip_uniform_rows(self.offsets, n_mip, gen)])

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
        loss = texel_loss[:n_area].float().cpu()
        old = self.loss[b]
        self.loss[b] = torch.where(torch.isfinite(old), DECAY * old + (1 - DECAY) * loss, loss)
