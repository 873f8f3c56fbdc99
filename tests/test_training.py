"""Training as ntc-compress runs it: one torch thread by default (restored afterwards), the
batch chosen per device, and on CUDA the reference step with GPU-sized batches (cuda-marked:
skipped where there is no CUDA device)."""
from __future__ import annotations

import pytest
import torch

from conftest import write_set
from trainer.budget import CPU_BATCH, CUDA_BATCH
from trainer.compress import CompressSettings, compress
from trainer.fit import TrainConfig, torch_threads
from trainer.fused_step import FusedStep
from trainer.network import NetworkConfig, NeuralTexture
from trainer.reference_step import AutogradStep
from trainer.targets import build_targets, plan_channels
from trainer.textures import load_texture_set

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_compress_trains_on_the_threads_it_is_given(tmp_path, monkeypatch):
    seen = []
    from trainer import compress as compress_mod
    real_fit = compress_mod.fit

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real_fit(*a, **k)
    monkeypatch.setattr(compress_mod, "fit", spy)
    tset = load_texture_set(write_set(tmp_path / "set"))
    before = torch.get_num_threads()
    settings = CompressSettings(preset="p2.7", device="cpu",
                                train=TrainConfig(steps=20, batch=256, progress=False))
    report = compress(tset, settings, log=lambda *a: None).report
    assert seen == [1] and report["threads"] == 1
    assert torch.get_num_threads() == before


def test_the_batch_follows_the_device():
    cfg = TrainConfig()
    assert cfg.batch_for(torch.device("cpu")) == CPU_BATCH
    assert cfg.batch_for(torch.device("cuda")) == CUDA_BATCH
    assert TrainConfig(batch=1000).batch_for(torch.device("cuda")) == 1000


@pytest.mark.cuda
@needs_cuda
def test_cuda_training_uses_gpu_batches_and_learns(tmp_path):
    tset = load_texture_set(write_set(tmp_path / "set"))
    settings = CompressSettings(preset="p2.7", device="cuda",
                                train=TrainConfig(steps=300, progress=False))
    report = compress(tset, settings, log=lambda *a: None).report
    assert report["device"].startswith("cuda") and report["batch"] == CUDA_BATCH
    assert report["training_step"] == "autograd"
    assert report["psnr_set"] > 30, report["psnr_set"]


@pytest.mark.cuda
@needs_cuda
def test_cuda_reference_step_matches_the_cpu_fused_step(tmp_path):
    """The same batch, frozen latents (no noise on either side): the CUDA step's MLP update
    equals the CPU fused step's."""
    tset = load_texture_set(write_set(tmp_path / "set"))
    infos, stored = plan_channels(tset)
    tg = build_targets(tset, infos, stored)
    w, h = tset.size
    rows = torch.randint(0, int(tg.mip_offsets[-1]), (2048,),
                         generator=torch.Generator().manual_seed(0))
    nets = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        net = NeuralTexture(NetworkConfig(hr_sampling="bilinear"), w, h, stored, device)
        net.freeze_latents()
        net.train()
        dev = torch.device(device)
        step = FusedStep(net, tg, dev, 2048, bf16=False) if device == "cpu" else \
            AutogradStep(net, tg, dev)
        step(rows.to(dev), 0, 0.01, 0.1)
        nets.append(net)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a.detach(), b.detach().cpu(), rtol=1e-3, atol=1e-5)


def test_compress_reports_each_preset_s_progress_to_on_step(tmp_path):
    """on_step (ntc-library's view of a running task): every 10 steps and the last, in order,
    per preset trained, with the preset's name and a PSNR estimate."""
    write_set(tmp_path / "set")
    calls = []
    compress(load_texture_set(tmp_path / "set"),
             CompressSettings(train=TrainConfig(steps=35, progress=False)),
             log=lambda *a, **k: None, on_step=lambda *a: calls.append(a))
    assert [c[1] for c in calls] == [1, 11, 21, 31, 35]
    assert all(c[2] == 35 and c[0].startswith("p") and c[3] > 0 for c in calls)


def test_effort_steps_grow_with_the_set_size():
    """--effort's steps: the table's up to 1K^2 texels, x sqrt(texels / 1K^2) above (2K^2: x2),
    at most SIZE_SCALE_MAX; --steps always wins."""
    from trainer.budget import EFFORTS, SIZE_SCALE_MAX, effort_steps
    base = EFFORTS["default"]
    assert effort_steps("default", 512, 512) == base == effort_steps("default", 1024, 1024)
    assert effort_steps("default", 2048, 2048) == 2 * base
    assert effort_steps("fast", 1024, 2048) == round(EFFORTS["fast"] * 2 ** 0.5 / 100) * 100
    assert effort_steps("max", 16384, 16384) == SIZE_SCALE_MAX * EFFORTS["max"]
    assert TrainConfig(effort="fast").steps_for(2048, 2048) == 2 * EFFORTS["fast"]
    assert TrainConfig(steps=77, effort="max").steps_for(4096, 4096) == 77


def _latent_filter_psnr(tmp_path, lod: float, trainings: dict) -> dict:
    """{name: PSNR of the latent filter at `lod` against trilinear filtering of the source} for a
    64x64 set compressed with each TrainConfig of `trainings`, at 4096 random uv."""
    import math

    from export.decode.filters import CLAMP_TO_EDGE, sample_latent, sample_trilinear
    from export.decode.reference import FileDecoder
    from export.format import from_bytes
    tset = load_texture_set(write_set(tmp_path / "set", h=64, w=64))
    infos, stored = plan_channels(tset)
    tg = build_targets(tset, infos, stored)
    mips = [tg.values[int(tg.mip_offsets[m]):int(tg.mip_offsets[m + 1])]
            .reshape(int(h), int(w), -1) for m, (w, h) in enumerate(tg.mip_sizes.tolist())]
    uv = torch.rand(4096, 2, generator=torch.Generator().manual_seed(1))
    lods = torch.full((uv.shape[0],), lod)
    reference = sample_trilinear(mips, uv, lods, CLAMP_TO_EDGE)
    psnr = {}
    for name, train in trainings.items():
        settings = CompressSettings(preset="p4", device="cpu", train=train)
        model = from_bytes(compress(tset, settings, log=lambda *a: None).data)
        assert model.latent.lod_blend == (train.lod_blend_share > 0)
        got = sample_latent(FileDecoder.from_model(model), uv, lods, CLAMP_TO_EDGE)
        mse = float(((got.clamp(0, 1) - reference) ** 2).mean())
        psnr[name] = 10 * math.log10(1 / mse)
    return psnr


def test_training_between_texel_centres_raises_the_latent_filter(tmp_path):
    """--between-share trains what the latent filter decodes between texel centres: against
    trilinear filtering of the source at uv between centres it must beat the same training at
    centres only (which never sees those points)."""
    psnr = _latent_filter_psnr(tmp_path, 0.0, {
        share: TrainConfig(steps=1500, batch=1024, between_share=share, progress=False)
        for share in (0.0, 0.5)})
    assert psnr[0.5] > psnr[0.0] + 1.0, psnr


def test_training_across_mips_raises_the_latent_filter_between_mips(tmp_path):
    """--lod-blend-share trains the latent filter's blend of two mips' inputs: at a fractional
    LOD, against trilinear filtering of the source, the file that says lod_blend must beat one
    trained between texel centres only (which decodes the nearest mip there)."""
    psnr = _latent_filter_psnr(tmp_path, 0.5, {
        share: TrainConfig(steps=600, batch=1024, between_share=0.5, lod_blend_share=share,
                           progress=False)
        for share in (0.0, 0.5)})
    assert psnr[0.5] > psnr[0.0] + 1.0, psnr
