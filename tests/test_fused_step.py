"""The fused CPU training step (trainer/fused_step.py + fused_step.c) against the reference math:
export/decode/reference.py's decode function under autograd and the reference RowAdam. Forward values,
every gradient, one whole optimiser step, the noise, the batch shape, and one-thread determinism."""
from __future__ import annotations

import pytest
import torch

from conftest import RICH_SET, write_set
from export.decode.reference import blend_inputs, decode_texels, encode_inputs
from trainer.fit import TrainConfig, fit
from trainer.sampling import uniform_rows
from trainer.fused_step import FusedStep
from trainer.network import NetworkConfig, NeuralTexture, fake_quant_int8, quantize_latents
from trainer.reference_step import AutogradStep, RowAdam
from trainer.sampling import lod_blend_points, point_jitter
from trainer.targets import (build_targets, locate, locate_points, next_mip_points, plan_channels,
                             point_targets)
from trainer.textures import load_texture_set

BATCH = 512
CPU = torch.device("cpu")
# the network most of these tests train (the gather4 cases name theirs)
BILINEAR_8 = NetworkConfig(features=8, grid_scale=3.0, hr_sampling="bilinear")


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    # 40x24 rich set: 16-bit channels, non-square, non-power-of-two (latent edges clamp)
    tset = load_texture_set(write_set(tmp_path_factory.mktemp("fused") / "set", RICH_SET))
    infos, stored = plan_channels(tset)
    tg = build_targets(tset, infos, stored)
    # a non-trivial importance map, so the weighted loss is exercised too
    gen = torch.Generator().manual_seed(3)
    tg.importance = 1 + 4 * torch.rand(tg.values.shape[0], generator=gen)
    tg.channel_weights = 0.5 + torch.rand(stored, generator=gen)
    return tg, tset.size


def _setup(targets, cfg: NetworkConfig, seed=0):
    tg, (w, h) = targets
    torch.manual_seed(seed)
    net = NeuralTexture(cfg, w, h, tg.values.shape[1])
    with torch.no_grad():  # latents and biases away from zero, so every path carries a signal
        net.latents.uniform_(-0.9, 0.9)
        for b in net.biases:
            b.uniform_(-0.5, 0.5)
    return net


def _rows(tg, n=BATCH, run=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return uniform_rows(tg.mip_offsets, tg.mip_sizes, n, 0.25, run, gen)


def _reference_loss(net, tg, table, weights, biases, rows, jitter=None, blend=None):
    """fit's loss through export's decode function, on `table` (full latent table): (loss,
    prediction, each row's weighted loss). With `jitter`, between texel centres as the latent
    filter decodes there (its blended positional code) against the source's bilinear blend; with
    `blend` too, those inputs and targets blended by t with the same places' in the next mip."""
    if jitter is None:
        mip, uv = locate(rows, tg.mip_offsets, tg.mip_sizes)
        target, pe_grid = tg.values[rows], None
    else:
        mip, uv = locate_points(rows, jitter, tg.mip_offsets, tg.mip_sizes)
        target = point_targets(tg.values, rows, jitter, tg.mip_offsets, tg.mip_sizes)
        pe_grid = tg.mip_sizes[mip]
    across = None
    if blend is not None:
        rows1, jitter1 = next_mip_points(rows, jitter, tg.mip_offsets, tg.mip_sizes)
        mip1, uv1 = locate_points(rows1, jitter1, tg.mip_offsets, tg.mip_sizes)
        target = blend_inputs(target, point_targets(tg.values, rows1, jitter1, tg.mip_offsets,
                                                    tg.mip_sizes), blend)
        across = (mip1, uv1, tg.mip_sizes[mip1], blend)
    pred = decode_texels(table, net.pyramid, weights, biases, mip, uv, pe_grid=pe_grid,
                         blend=across)
    ch_w = tg.channel_weights / tg.channel_weights.mean()
    per_texel = ((pred - target) ** 2 * ch_w).mean(1) * tg.importance[rows]
    return per_texel.mean(), pred, per_texel.detach()


def _jitter(n, seed=5, share=0.6):
    """Offsets for n rows, some at the centre; a few pushed past the texel (the clamp)."""
    j = point_jitter(n, share, torch.Generator().manual_seed(seed))
    j[::17] *= 3.0
    return j


def _points(n, mode, seed=5):
    """(jitter, blend) for "centre", "between" (_jitter) or "across" (some of those rows also
    blended with the next mip, sampling.lod_blend_points)."""
    if mode == "centre":
        return None, None
    jitter = _jitter(n, seed)
    if mode == "between":
        return jitter, None
    return lod_blend_points(jitter, n, 0.5, torch.Generator().manual_seed(seed + 1))


@pytest.mark.parametrize("hr,hidden", [("bilinear", (64, 48, 32)), ("gather4", (64, 48, 32)),
                                       ("bilinear", (300, 16))])  # 300: bias sums in 2 blocks
@pytest.mark.parametrize("quant", [False, True])
@pytest.mark.parametrize("points", ["centre", "between", "across"])
def test_gradients_match_autograd(targets, hr, hidden, quant, points):
    tg, _ = targets
    cfg = NetworkConfig(features=8, grid_scale=3.0, hr_sampling=hr, hidden=hidden)
    net = _setup(targets, cfg)
    net.quantize_weights = quant
    step = FusedStep(net, tg, CPU, BATCH, seed=7)
    rows = _rows(tg)
    jitter, blend = _points(rows.numel(), points)
    mse = step.gradients(rows, step=5, jitter=jitter, blend=blend)
    n = step.n_touched
    touched = step.touched[:n]
    # the reference reads the same noisy rows the fused step drew
    table = net.latents.detach().clone()
    table[touched] = step.compact[:n]
    table.requires_grad_()
    weights = [w.detach().clone().requires_grad_() for w in net.weights]
    used = [fake_quant_int8(w) for w in weights] if quant else weights
    biases = [b.detach().clone().requires_grad_() for b in net.biases]
    loss, pred, per_texel = _reference_loss(net, tg, table, used, biases, rows, jitter, blend)
    loss.backward()
    tol = dict(rtol=1e-4, atol=1e-7)
    target = (tg.values[rows] if jitter is None
              else point_targets(tg.values, rows, jitter, tg.mip_offsets, tg.mip_sizes))
    if blend is not None:
        rows1, jitter1 = next_mip_points(rows, jitter, tg.mip_offsets, tg.mip_sizes)
        assert bool((blend > 0).any()) and bool((blend == 0).any())
        target = blend_inputs(target, point_targets(tg.values, rows1, jitter1, tg.mip_offsets,
                                                    tg.mip_sizes), blend)
    if jitter is not None:
        torch.testing.assert_close(step.point_targets[:rows.numel()], target, rtol=0, atol=1e-6)
    assert mse == pytest.approx(float(((pred.detach() - target) ** 2).mean()), rel=1e-5)
    # each row's weighted loss, as the texel sampler reads it
    torch.testing.assert_close(step.last_texel_loss, per_texel, rtol=1e-4,
                               atol=1e-9)
    for a, b in zip(net.weights, weights):
        torch.testing.assert_close(a.grad, b.grad, **tol)
    for a, b in zip(net.biases, biases):
        torch.testing.assert_close(a.grad, b.grad, **tol)
    # every row the reference touches is in the fused step's list, with the same gradient
    ref_rows = torch.nonzero(table.grad.abs().sum(1)).flatten()
    assert set(ref_rows.tolist()) <= set(touched.tolist())
    assert n == torch.unique(touched).numel()  # no row listed twice
    torch.testing.assert_close(step.grad[:n], table.grad[touched], **tol)
    assert float(table.grad.abs().sum()) > 0


def test_latents_rounded_instead_of_noised_match_the_reference(targets):
    """With latent noise off and latents not yet frozen, both steps read the latents rounded to
    their 4-bit grid (straight-through): the same rows as network.quantize_latents, the same loss
    and latent gradients as autograd through the reference forward."""
    tg, _ = targets
    net = _setup(targets, BILINEAR_8)
    net.latent_noise = False
    step = FusedStep(net, tg, CPU, BATCH, seed=7)
    rows = _rows(tg)
    mse = step.gradients(rows, step=3)
    n = step.n_touched
    touched = step.touched[:n]
    expect = quantize_latents(net.latents.detach()[touched], net.qmax)
    torch.testing.assert_close(step.compact[:n], expect, rtol=0, atol=1e-6)
    table = net.latents.detach().clone().requires_grad_()
    loss, pred, _ = _reference_loss(net, tg, quantize_latents(table, net.qmax),
                                 [w.detach() for w in net.weights],
                                 [b.detach() for b in net.biases], rows)
    loss.backward()
    assert mse == pytest.approx(float(((pred.detach() - tg.values[rows]) ** 2).mean()), rel=1e-4)
    torch.testing.assert_close(step.grad[:n], table.grad[touched], rtol=1e-3, atol=1e-7)


def test_bfloat16_gradients_stay_close_to_float32(targets):
    """bf16 hidden-layer multiplies: every gradient within a few bf16 roundings of float32's."""
    tg, _ = targets
    grads = []
    for bf16 in (False, True):
        net = _setup(targets, BILINEAR_8, seed=4)
        step = FusedStep(net, tg, CPU, BATCH, seed=7, bf16=bf16)
        step.gradients(_rows(tg), step=0)
        grads.append([p.grad.clone() for p in step.params] + [step.grad[:step.n_touched].clone()])
    for a, b in zip(*grads):
        assert float((a - b).norm() / a.norm()) < 0.03
    # and in the fine-tuning phase (quantized weights) it is float32 again, exactly
    net = _setup(targets, BILINEAR_8, seed=4)
    net.quantize_weights = True
    ref = _setup(targets, BILINEAR_8, seed=4)
    ref.quantize_weights = True
    for n, bf16 in ((net, True), (ref, False)):
        FusedStep(n, tg, CPU, BATCH, seed=7, bf16=bf16).gradients(_rows(tg), step=0)
    for a, b in zip(net.parameters(), ref.parameters()):
        assert a.grad is None or torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("hr", ["bilinear", "gather4"])
def test_forward_inputs_match_encode_inputs(targets, hr):
    tg, _ = targets
    net = _setup(targets, NetworkConfig(features=4, grid_scale=2.5, hr_sampling=hr))
    net.freeze_latents()  # no noise: the fused step reads the table itself
    step = FusedStep(net, tg, CPU, BATCH)
    rows = torch.arange(int(tg.mip_offsets[-1]))[:BATCH]  # mip 0 and the whole small-mip tail
    rows = torch.cat([rows[: BATCH // 2], torch.arange(int(tg.mip_offsets[-1]))[-BATCH // 2:]])
    step.gradients(rows, step=0)
    mip, uv = locate(rows, tg.mip_offsets, tg.mip_sizes)
    ref = encode_inputs(net.latents.detach(), net.pyramid, mip, uv)
    torch.testing.assert_close(step.X[: rows.numel()], ref, rtol=0, atol=2e-6)


def test_noise_is_uniform_per_row_and_repeatable(targets):
    tg, _ = targets
    net = _setup(targets, BILINEAR_8)
    step = FusedStep(net, tg, CPU, BATCH, seed=1)
    rows = _rows(tg)
    noise = []
    for s in (0, 0, 1):
        step.gradients(rows, step=s)
        n = step.n_touched
        noise.append((step.compact[:n] - net.latents.detach()[step.touched[:n]]).clone())
    half = 1.0 / net.qmax  # +-half a quantization step, as the reference's uniform noise
    assert float(noise[0].abs().max()) <= half * (1 + 1e-5)
    assert torch.equal(noise[0], noise[1])          # same step, same noise
    assert not torch.equal(noise[0], noise[2])      # next step, new noise
    flat = noise[0].flatten() / half
    assert abs(float(flat.mean())) < 0.05 and abs(float(flat.var()) - 1 / 3) < 0.03


@pytest.mark.parametrize("points", ["centre", "between", "across"])
def test_one_step_matches_the_reference_step(targets, points):
    """A whole step (gradients + both optimisers) against AutogradStep. Frozen latents and
    quantized weights: the fine-tuning phase, where neither side draws noise."""
    tg, _ = targets
    cfg = BILINEAR_8
    nets = []
    for kind in (FusedStep, AutogradStep):
        net = _setup(targets, cfg, seed=2)
        net.freeze_latents()
        net.quantize_weights = True
        net.train()
        step = FusedStep(net, tg, CPU, BATCH) if kind is FusedStep else AutogradStep(net, tg, CPU)
        for s in range(3):
            jitter, blend = _points(BATCH, points, seed=s)
            step(_rows(tg, seed=s), s, 0.01 * (s + 1), 0.1, jitter, blend)
        nets.append(net)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-4, atol=1e-6)


def test_row_adam_matches_the_reference(targets):
    tg, _ = targets
    cfg = BILINEAR_8
    net = _setup(targets, cfg)
    step = FusedStep(net, tg, CPU, BATCH)
    ref_table = net.latents.detach().clone()
    ref = RowAdam(ref_table, (0.9, 0.99), 1e-15)
    for s in range(3):
        step.gradients(_rows(tg, seed=s), step=s)
        n = step.n_touched
        index, grad = step.touched[:n].clone(), step.grad[:n].clone()
        step.apply(0.0, 0.05)
        ref.step(index, grad, 0.05)
        lat = step.latent_opt
        assert float(step.grad[:n].abs().max()) == 0  # cleared for the next step
    torch.testing.assert_close(net.latents.detach(), ref_table, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lat.m, ref.m, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(lat.count, ref.count)


def test_runs_stay_in_their_image_row_and_cover_it(targets):
    tg, _ = targets
    rows = _rows(tg, n=4096, run=8)
    assert rows.numel() == 4096 and int(rows.max()) < int(tg.mip_offsets[-1])
    mip, _ = locate(rows, tg.mip_offsets, tg.mip_sizes)
    local = rows - tg.mip_offsets[mip]
    line = local // tg.mip_sizes[mip, 0]
    runs_mip, runs_line = mip.reshape(-1, 8), line.reshape(-1, 8)
    assert bool((runs_mip == runs_mip[:, :1]).all()) and bool((runs_line == runs_line[:, :1]).all())
    # every texel of mip 0 stays reachable (the run wraps within its row)
    many = _rows(tg, n=1 << 16, run=8)
    w, h = (int(v) for v in tg.mip_sizes[0])
    assert torch.unique(many[many < w * h]).numel() == w * h


@pytest.mark.parametrize("run", [8, 1])   # 1: the default, error-guided texel sampling
def test_training_is_deterministic_and_learns(targets, run):
    tg, (w, h) = targets
    cfg = BILINEAR_8
    tcfg = TrainConfig(steps=120, batch=BATCH, progress=False, run=run)
    torch.set_num_threads(1)
    runs = [fit(tg, cfg, tcfg, w, h, torch.device("cpu")) for _ in range(2)]
    (a, log_a), (b, _) = runs
    assert log_a.step_kind == "fused"
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    curve = [p for _, _, p in log_a.curve]
    assert curve[-1] > curve[0] + 5, curve


@pytest.mark.parametrize("hardware", [False, True])
def test_bf16_by_default_only_where_the_cpu_has_it(targets, monkeypatch, hardware):
    """Without bf16 in hardware torch emulates it, several times slower than float32: the
    default follows the CPU; an explicit setting wins either way."""
    from trainer import fit as fit_module
    from trainer import fused_step
    tg, (w, h) = targets
    net = NeuralTexture(BILINEAR_8, w, h, tg.values.shape[1])
    monkeypatch.setattr(fused_step, "native_bf16", lambda: hardware)
    cpu = torch.device("cpu")
    step = fit_module.make_step(net, tg, cpu, TrainConfig(batch=BATCH))
    assert step.bf16 is hardware and step.precision == ("bf16" if hardware else "float32")
    for forced in (False, True):
        assert fit_module.make_step(net, tg, cpu, TrainConfig(batch=BATCH, bf16=forced)).bf16 \
            is forced
    assert isinstance(fused_step.native_bf16(), bool)


def test_no_compiler_falls_back_to_the_reference_step(targets, monkeypatch):
    from trainer import native
    tg, (w, h) = targets

    def unavailable():
        raise native.NativeUnavailable("no C compiler found")
    monkeypatch.setattr(native, "load", unavailable)
    with pytest.warns(UserWarning, match="reference step: no C compiler"):
        _, log = fit(tg, NetworkConfig(), TrainConfig(steps=12, batch=256, progress=False),
                     w, h, torch.device("cpu"))
    assert log.step_kind == "autograd"
    with pytest.raises(native.NativeUnavailable):
        fit(tg, NetworkConfig(), TrainConfig(steps=12, batch=256, progress=False,
                                             step_kind="fused"), w, h, torch.device("cpu"))


def test_failed_compile_says_why(tmp_path, monkeypatch):
    from trainer import native
    bad = tmp_path / "cc"
    bad.write_text("#!/bin/sh\necho 'cc: error: out of cheese' >&2\nexit 1\n")
    bad.chmod(0o755)
    monkeypatch.setenv("NTC_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(native.NativeUnavailable, match="out of cheese"):
        native.build(str(bad))
    assert not list((tmp_path / "cache").glob("*.so*"))  # no half-written library left behind



def test_targets_between_centres_are_trilinear_filtering_of_the_source(targets):
    """What the rows between texel centres train towards is what trilinear filtering of the
    source gives at that uv and the row's mip (export's sample-mode twin), and a row left at its
    centre trains towards its own texel."""
    from export.decode.filters import CLAMP_TO_EDGE, sample_trilinear
    tg, _ = targets
    rows = _rows(tg, n=2048)
    jitter = _jitter(rows.numel())
    mips = [tg.values[int(tg.mip_offsets[m]):int(tg.mip_offsets[m + 1])]
            .reshape(int(h), int(w), -1) for m, (w, h) in enumerate(tg.mip_sizes.tolist())]
    mip, uv = locate_points(rows, jitter, tg.mip_offsets, tg.mip_sizes)
    expect = sample_trilinear(mips, uv, mip.float(), CLAMP_TO_EDGE)
    got = point_targets(tg.values, rows, jitter, tg.mip_offsets, tg.mip_sizes)
    torch.testing.assert_close(got, expect, rtol=0, atol=1e-6)
    still = (jitter == 0).all(1)
    assert 0 < int(still.sum()) < rows.numel()
    assert torch.equal(got[still], tg.values[rows[still]])
    assert float((got[~still] - tg.values[rows[~still]]).abs().max()) > 0.01
