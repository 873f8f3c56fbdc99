"""The training loop: Adam, cosine learning rates, quantization-aware schedule, progress bar."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .network import NetworkConfig, NeuralTexture
from .targets import TrainingTargets, locate


@dataclass
class TrainConfig:
    steps: int = 10000
    batch: int = 4096
    lr_latents: float = 0.1
    lr_mlp: float = 0.005
    freeze_latents_at: float = 0.85   # then latents are rounded and frozen ...
    quantize_weights_at: float = 0.85  # ... and the MLP fine-tunes through fake int8 weights
    mip_uniform_share: float = 0.25  # of each batch drawn mip-uniformly, so small mips train too
    seed: int = 0
    log_every: int = 0     # record (seconds, step, PSNR estimate) this often; 0 = 20 points
    progress: bool = True
    latent_init: str = "pca"   # "pca": principal components of the set per level; "random"


@dataclass
class TrainLog:
    seconds: float = 0.0
    steps: int = 0
    curve: list[tuple[float, int, float]] = field(default_factory=list)  # (s, step, psnr est.)


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def _sample_rows(offsets: torch.Tensor, n: int, uniform_share: float, gen) -> torch.Tensor:
    """Rows of the flattened mip chain: most uniform over texels (mips by area, as RTXNTC), the
    rest with the mip drawn uniformly, else the smallest mips would barely be seen."""
    total = int(offsets[-1])
    n_mip = int(n * uniform_share)
    rows = torch.randint(0, total, (n - n_mip,), generator=gen)
    mips = torch.randint(0, offsets.numel() - 1, (n_mip,), generator=gen)
    counts = offsets[mips + 1] - offsets[mips]
    local = (torch.rand(n_mip, generator=gen) * counts).long().minimum(counts - 1)
    return torch.cat([rows, offsets[mips] + local])


class RowAdam:
    """Adam for the latent table that moves only the rows a step read ("lazy" Adam, as
    torch.optim.SparseAdam): a step costs the batch, not the table, which at 2K and rich presets
    is 5-10x the rest of the step. Bias correction counts each row's own updates; rows stay in
    the quantizer's range [-1, 1]."""

    def __init__(self, table: torch.Tensor, betas: tuple[float, float], eps: float):
        self.table, (self.b1, self.b2), self.eps = table, betas, eps
        self.m = torch.zeros_like(table)
        self.v = torch.zeros_like(table)
        self.count = torch.zeros(table.shape[0], 1, device=table.device)

    @torch.no_grad()
    def step(self, index: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        m = self.m[index].mul_(self.b1).add_(grad, alpha=1 - self.b1)
        v = self.v[index].mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        n = self.count[index] + 1
        self.m[index], self.v[index], self.count[index] = m, v, n
        update = (m / (1 - self.b1 ** n)) / ((v / (1 - self.b2 ** n)).sqrt() + self.eps)
        self.table[index] = (self.table[index] - lr * update).clamp_(-1, 1)


@torch.no_grad()
def init_latents_pca(net: NeuralTexture, targets: TrainingTargets, gen) -> None:
    """Start each latent level as the set's principal components at that level's resolution, so
    the MLP starts from latents that already carry the image instead of noise: a large head start
    when the step budget is small (CPU). Features beyond the channel count stay random."""
    w, h = int(targets.mip_sizes[0, 0]), int(targets.mip_sizes[0, 1])
    img = targets.values[: w * h].reshape(h, w, -1).permute(2, 0, 1)[None]   # [1, S, H, W]
    flat = img[0].reshape(img.shape[1], -1).t()
    sample = flat[torch.randint(0, flat.shape[0], (min(flat.shape[0], 1 << 18),), generator=gen)]
    mean = sample.mean(0)
    cov = (sample - mean).t() @ (sample - mean) / sample.shape[0]
    evals, evecs = torch.linalg.eigh(cov.double())
    k = min(net.cfg.features, flat.shape[1])
    basis = evecs[:, -k:].flip(1).float()                      # [S, k], strongest first
    scale = 1.0 / (3.0 * evals[-k:].flip(0).clamp(min=1e-8).sqrt().float())
    start = 0
    for lw, lh in net.levels:
        level = torch.nn.functional.interpolate(img, size=(lh, lw), mode="area")
        rows = level[0].reshape(img.shape[1], -1).t()
        coeffs = ((rows - mean) @ basis * scale).clamp(-1, 1)   # ~3 sigma -> +-1
        net.latents.data[start:start + lw * lh, :k] = coeffs.to(net.latents.device)
        start += lw * lh


def fit(targets: TrainingTargets, net_cfg: NetworkConfig, cfg: TrainConfig,
        width: int, height: int, device: torch.device, desc: str = "training") -> tuple[NeuralTexture, TrainLog]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    stored = targets.values.shape[1]
    net = NeuralTexture(net_cfg, width, height, stored, device)
    values = targets.values.to(device)
    importance = targets.importance.to(device) if targets.importance is not None else None
    ch_w = targets.channel_weights.to(device)
    ch_w = ch_w / ch_w.mean()
    cpu_offsets = targets.mip_offsets
    offsets, sizes = cpu_offsets.to(device), targets.mip_sizes.to(device)
    with torch.no_grad():  # start the output layer at the mean colour
        net.biases[-1].copy_(values[:: max(1, values.shape[0] // 65536)].mean(0))
    if cfg.latent_init == "pca":
        init_latents_pca(net, targets, gen)
    betas, eps = (0.9, 0.99), 1e-15
    opt = torch.optim.Adam(list(net.weights) + list(net.biases), lr=cfg.lr_mlp, betas=betas, eps=eps)
    latent_opt = RowAdam(net.latents, betas, eps)
    freeze_step = int(cfg.steps * cfg.freeze_latents_at)
    wq_step = int(cfg.steps * cfg.quantize_weights_at)
    log_every = cfg.log_every or max(1, cfg.steps // 20)
    log, ema, t0 = TrainLog(), None, time.perf_counter()
    bar = tqdm(total=cfg.steps, desc=desc, unit="step", disable=not cfg.progress,
               dynamic_ncols=True, leave=False)
    net.train()
    for step in range(cfg.steps):
        if step == freeze_step:
            net.freeze_latents()
        if step == wq_step:
            net.quantize_weights = True
        rows = _sample_rows(cpu_offsets, cfg.batch, cfg.mip_uniform_share, gen).to(device)
        mip, uv = locate(rows, offsets, sizes)
        touched = None if net.latents_frozen else net.gather_rows(mip, uv)
        pred = net(mip, uv, touched)
        err = (pred - values[rows]) ** 2
        per_texel = (err * ch_w).mean(1)
        if importance is not None:
            per_texel = per_texel * importance[rows]
        loss = per_texel.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # Latents: cosine to zero over their phase; MLP: cosine over the whole run.
        opt.param_groups[0]["lr"] = cfg.lr_mlp * _cosine(step, cfg.steps)
        opt.step()
        if touched is not None:
            latent_opt.step(touched.index, touched.values.grad,
                            cfg.lr_latents * _cosine(step, max(1, freeze_step)))
        mse = float(err.detach().mean())
        ema = mse if ema is None else 0.95 * ema + 0.05 * mse
        if step % 10 == 0 or step == cfg.steps - 1:
            psnr = 10 * math.log10(1 / max(ema, 1e-12))
            bar.set_postfix(loss=f"{float(loss.detach()):.2e}", psnr=f"{psnr:.1f}dB", refresh=False)
            if step % log_every == 0 or step == cfg.steps - 1:
                log.curve.append((time.perf_counter() - t0, step + 1, psnr))
        bar.update(1)
    bar.close()
    net.eval()
    log.seconds, log.steps = time.perf_counter() - t0, cfg.steps
    return net, log

