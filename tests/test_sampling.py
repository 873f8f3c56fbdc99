"""trainer/sampling.py: the blocks tile the mip chain, each mip keeps its share of a batch, loss
steers the draw within a mip without starving any texel, and with guidance off the draw is the
plain uniform one; the guided draw's low-discrepancy streams continue from step to step and
spread the visits far more evenly than independent draws."""
from __future__ import annotations

import pytest
import torch

from export import layout
from trainer.sampling import (BLOCK, DECAY, GOLDEN_STEP, R2_STEP, Blocks, Kronecker,
                              TexelSampler, unit_float, uniform_rows)


def chain(width: int, height: int):
    mips = layout.mip_count(width, height)
    sizes = torch.tensor([layout.mip_size(width, height, m) for m in range(mips)])
    counts = sizes[:, 0] * sizes[:, 1]
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    return offsets, sizes


def test_blocks_tile_the_chain_without_crossing_mips():
    offsets, _ = chain(100, 37)
    bl = Blocks.of(offsets)
    assert int(bl.length.sum()) == int(offsets[-1]) and int(bl.length.max()) <= BLOCK
    ends = bl.start + bl.length.long()
    assert torch.equal(bl.start[1:], ends[:-1]) and int(bl.start[0]) == 0
    assert bool((bl.start >= offsets[bl.mip]).all()) and bool((ends <= offsets[bl.mip + 1]).all())


def test_without_guidance_it_is_the_uniform_draw():
    offsets, sizes = chain(64, 48)
    sampler = TexelSampler(offsets, sizes, 0.25, guided_share=0.0)
    a = sampler.draw(1000, torch.Generator().manual_seed(3))
    b = uniform_rows(offsets, sizes, 1000, 0.25, 1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    sampler.observe(torch.ones(1000))  # nothing to track


def _per_mip(rows, offsets):
    mip = torch.searchsorted(offsets, rows, right=True) - 1
    return torch.bincount(mip, minlength=offsets.numel() - 1).float()


def test_loss_steers_the_draw_within_each_mip_only():
    offsets, sizes = chain(256, 128)
    n, share = 8192, 0.25
    sampler = TexelSampler(offsets, sizes, share, guided_share=0.5, power=1.0)
    gen = torch.Generator().manual_seed(0)
    sampler.draw(n, gen)
    # every block seen once with a small loss, one block of mip 0 with 100x that
    bl = sampler.blocks
    sampler.loss[:] = 1e-4
    hot = 5
    sampler.loss[hot] = 1e-2
    sampler._cdf = None
    counts_hot, counts_cold, area = 0, 0, torch.zeros(offsets.numel() - 1)
    for _ in range(40):
        rows = sampler.draw(n, gen)
        main = rows[: n - int(n * share)]
        area += _per_mip(main, offsets)
        b = sampler._last[0]
        assert bool((main >= bl.start[b]).all()) and bool((main < bl.start[b] + bl.length[b]).all())
        counts_hot += int((b == hot).sum())
        counts_cold += int((b == hot + 1).sum())
    # each mip keeps its share of the by-area part
    texels = (offsets[1:] - offsets[:-1]).float()
    expected = texels / texels.sum() * 40 * (n - int(n * share))
    big = expected > 2000
    assert torch.allclose(area[big], expected[big], rtol=0.05)
    # the hot block: (1 - 0.5) / blocks of mip 0 + 0.5 * 100 / (blocks - 1 + 100) of its draws;
    # a cold neighbour keeps its uniform half
    blocks0 = int((bl.mip == 0).sum())
    mip0_draws = float(expected[0])
    want_hot = mip0_draws * (0.5 / blocks0 + 0.5 * 100 / (blocks0 - 1 + 100))
    want_cold = mip0_draws * (0.5 / blocks0 + 0.5 / (blocks0 - 1 + 100))
    assert abs(counts_hot - want_hot) < 0.15 * want_hot
    assert abs(counts_cold - want_cold) < 0.3 * want_cold + 20


def test_observed_loss_is_averaged_per_block_and_unseen_blocks_count_as_worst():
    offsets, sizes = chain(32, 32)
    sampler = TexelSampler(offsets, sizes, 0.25, guided_share=0.5)
    gen = torch.Generator().manual_seed(1)
    rows = sampler.draw(64, gen)
    n_area = 64 - 16
    assert rows.numel() == 64 and sampler._last[1] == n_area
    sampler.observe(torch.full((64,), 2.0))
    seen = torch.unique(sampler._last[0])
    assert torch.equal(sampler.loss[seen], torch.full((seen.numel(),), 2.0))
    # only the by-area rows are tracked (the mip-uniform ones are not guided)
    assert int(torch.isfinite(sampler.loss).sum()) == seen.numel()
    cdf = sampler._table()
    assert bool(torch.isfinite(cdf).all()) and bool((cdf[1:] >= cdf[:-1]).all())
    # a block seen again keeps DECAY of its old average
    b = sampler._last[0][0]
    sampler._last = (sampler._last[0][:1], 1)
    sampler.observe(torch.tensor([4.0]))
    assert float(sampler.loss[b]) == pytest.approx(DECAY * 2.0 + (1 - DECAY) * 4.0)


def test_a_share_of_zero_draws_no_guided_rows():
    """fit anneals the guided share (TrainConfig.guided_until): at 0 the by-area rows are all
    uniform and the loss table is never built."""
    offsets, sizes = chain(64, 64)
    sampler = TexelSampler(offsets, sizes, 0.25, guided_share=0.75)
    rows = sampler.draw(400, torch.Generator().manual_seed(2), share=0.0)
    assert sampler._cdf is None and rows.numel() == 400
    assert sampler._last[1] == 300 and sampler._last[0].numel() == 300
    sampler.draw(400, torch.Generator().manual_seed(2), share=0.5)
    assert sampler._cdf is not None


@pytest.mark.parametrize("sequence", [True, False])
def test_the_c_loops_draw_and_average_as_the_torch_reference(sequence):
    """sampling.c against the torch code it replaces: the same rows, blocks and loss table over
    a run of draws (tables rebuilt, shares changing, blocks drawn twice in one step), with the
    draw's numbers from the streams or independent."""
    from trainer import native
    try:
        native.load()
    except native.NativeUnavailable as e:
        pytest.skip(f"no C kernels here: {e}")
    offsets, sizes = chain(300, 170)
    fast = TexelSampler(offsets, sizes, 0.3, guided_share=0.75, power=0.5, sequence=sequence)
    slow = TexelSampler(offsets, sizes, 0.3, guided_share=0.75, power=0.5, kernels=False,
                        sequence=sequence)
    assert fast.lib is not None and slow.lib is None
    gf, gs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    loss_gen = torch.Generator().manual_seed(8)
    for step in range(40):
        share = (0.0, None, 0.4)[step % 3]
        a, b = fast.draw(2048, gf, share), slow.draw(2048, gs, share)
        assert torch.equal(a, b), step
        assert torch.equal(fast._last[0], slow._last[0]) and fast._last[1] == slow._last[1]
        # losses spanning decades, so the draw's table is far from uniform
        loss = torch.rand(2048, generator=loss_gen) ** 4 * 10 ** (step % 5)
        fast.observe(loss)
        slow.observe(loss)
        assert torch.equal(fast.loss, slow.loss), step
    assert int(torch.bincount(fast._last[0]).max()) > 1  # duplicates were exercised


def test_the_guided_draw_stops_where_a_run_converges():
    """The guided draw is for step-limited runs: a run that visits each texel of the chain more
    than guided_max_visits times on average draws uniformly (bench/choices.md)."""
    from types import SimpleNamespace
    from trainer.fit import TrainConfig, make_sampler
    cfg = TrainConfig()
    for size, steps, guided in (((1024, 1024), 40000, True), ((2048, 2048), 80000, True),
                                ((512, 512), 40000, False), ((512, 512), 20000, True),
                                ((1024, 1024), 160000, False)):
        offsets, sizes = chain(*size)
        targets = SimpleNamespace(mip_offsets=offsets, mip_sizes=sizes)
        sampler = make_sampler(targets, cfg, steps, 4096)
        assert sampler.guided is guided, (size, steps)
        assert sampler.guided_share == (cfg.guided_share if guided else 0.0)
    assert TrainConfig(guided_max_visits=1e9).guided_share_for(10 ** 6, 4096, 100) \
        == cfg.guided_share


def test_a_kronecker_stream_continues_across_calls_and_stays_in_the_unit_square():
    a = Kronecker(R2_STEP, torch.Generator().manual_seed(4))
    b = Kronecker(R2_STEP, torch.Generator().manual_seed(4))
    parts = torch.cat([a.take(5), a.take(0), a.take(1000), a.take(37)])
    whole = b.take(1042)
    assert torch.allclose(parts, whole, atol=1e-12, rtol=0)
    assert bool((whole >= 0).all()) and bool((whole < 1).all())
    # 1024 consecutive points fill most cells of a 32 x 32 grid (79 % here); independent points
    # would fill about 1 - 1/e = 63 %
    cells = (whole[:1024] * 32).long()
    assert torch.unique(cells[:, 0] * 32 + cells[:, 1]).numel() > 0.72 * 1024
    assert float(unit_float(torch.tensor([1.0 - 1e-12], dtype=torch.float64))) < 1.0


def test_the_c_kronecker_stream_is_the_torch_one():
    from trainer import native
    try:
        lib = native.load()
    except native.NativeUnavailable as e:
        pytest.skip(f"no C kernels here: {e}")
    for step in (GOLDEN_STEP, R2_STEP):
        fast = Kronecker(step, torch.Generator().manual_seed(5), lib)
        slow = Kronecker(step, torch.Generator().manual_seed(5))
        for n in (3, 0, 4096, 1, 777):
            assert torch.equal(fast.take(n), slow.take(n))
        assert torch.equal(fast.phase, slow.phase)


def test_the_sequence_spreads_visits_evenly_where_independent_draws_scatter_them():
    """The same equal losses everywhere, 50 steps: each mip-0 block's visits stay within a few
    of the mean with the streams; independent draws scatter them by their Poisson spread."""
    offsets, sizes = chain(256, 128)
    spread = {}
    for sequence in (True, False):
        sampler = TexelSampler(offsets, sizes, 0.25, guided_share=0.5, sequence=sequence)
        gen = torch.Generator().manual_seed(0)
        counts = torch.zeros(sampler.blocks.mip.numel())
        for _ in range(50):
            sampler.draw(1024, gen)
            sampler.observe(torch.ones(1024))
            counts += torch.bincount(sampler._last[0], minlength=counts.numel()).float()
        mip0 = counts[sampler.blocks.mip == 0]
        expected = 50 * (1024 - 256) * float(sampler._mip_share[0]) / mip0.numel()
        assert float(mip0.mean()) == pytest.approx(expected, rel=0.05)
        spread[sequence] = float(mip0.std())
    assert spread[True] < 0.25 * spread[False], spread
