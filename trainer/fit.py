"""The training loop: Adam, cosine learning rates, quantization-aware schedule, progress bar."""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from export.options import at_least, option, within

from . import native
from .budget import CPU_BATCH, CUDA_BATCH, DEFAULT_EFFORT, EFFORTS, effort_steps
from .hr_choice import resolve_network
from .network import NetworkConfig, NeuralTexture
from .reference_step import AutogradStep
from .sampling import TexelSampler, lod_blend_points, point_jitter
from .targets import TrainingTargets


EPS = 1e-15  # Adam's epsilon, as RTXNTC: gradients of rarely-read latent rows are tiny
# The PCA init maps this many standard deviations of each component to +-1 (bench/choices.md).
PCA_INIT_SIGMAS = 3.0



# --between-share's default per high-res sampling. It costs either some tenths of a dB at texel
# centres for several dB of the one-decode filter; without it a gather4 set's filter falls behind
# the bilinear file's, a bilinear set's does not (bench/choices.md)
BETWEEN_SHARE = {"bilinear": 0.0, "gather4": 0.25}


@dataclass
class TrainConfig:
    steps: int | None = option(None, flag="--steps", type=int, check=at_least(10),
                               help="training steps per preset (default: --effort's for the "
                                    "set's size)")
    effort: str = option(DEFAULT_EFFORT, choices=list(EFFORTS), check=lambda v: None
                         if v in EFFORTS else f"one of {', '.join(EFFORTS)}",
                         help="the steps when `steps` is None (trainer/budget.py)")
    batch: int | None = option(None, flag="--batch", type=int, check=at_least(64),
                               help=f"texels per step (default {CPU_BATCH} on the CPU, "
                                    f"{CUDA_BATCH} on CUDA)")
    lr_latents: float = 0.05  # A/Bs at 6 000 steps and at the default effort in bench/choices.md
    lr_mlp: float = 0.005
    # latents train through their 4-bit rounding (straight-through) from this share of the steps,
    # before it with +-half-step noise (RTXNTC's way; 1.0 = noise until frozen); rounding from the
    # start reached more in the same steps (bench/choices.md)
    round_latents_at: float = 0.0
    freeze_latents_at: float = 0.95   # then latents are rounded and frozen ...
    quantize_weights_at: float = 0.95  # ... and the MLP fine-tunes through fake int8 weights
    mip_uniform_share: float = 0.35  # of each batch drawn mip-uniformly, so small mips train too
    # of the by-area draw, the share that goes, within each mip, to its blocks by loss **
    # guided_power (trainer/sampling.py: steps go where the image is still wrong); 0 = uniform
    guided_share: float = 0.75
    guided_power: float = 0.5
    guided_until: float = 0.0  # > 0: the guided share falls linearly to 0 at this share of steps
    # the guided draw pays while training is step-limited; a run that visits each texel of the
    # mip chain more often than this on average (steps x batch / texels) converges, and there
    # the uniform draw keeps the middle mips (bench/choices.md)
    guided_max_visits: float = 300.0
    # "sequence": the guided draw's numbers from low-discrepancy streams carried across steps;
    # "random": independent draws each step (trainer/sampling.py, bench/choices.md)
    texel_draw: str = "sequence"
    # of each batch, the share of texels trained at a random point of their texel instead of its
    # centre, against the bilinear blend of the source there: what the latent filter (sample
    # mode's one-decode filter) decodes between texel centres; None: BETWEEN_SHARE's for the
    # high-res sampling (bench/choices.md)
    between_share: float | None = option(
        None, flag="--between-share", type=float, check=within(0, 1),
        help="share of training texels placed between texel centres: sample mode's one-decode "
             "filters (latent, auto) gain several dB, exact texels (load mode) lose some tenths "
             "(default 0 with bilinear high-res latents, 0.25 with gather4, whose one-decode "
             "filter needs it)")
    # of each batch, the share trained at a fractional LOD: one decode on the MLP inputs of the
    # row's mip and the next blended by a random t (and at a random point of the texel), against
    # the same blend of the two mips' bilinear targets; the file then says so (lod_blend), and
    # sample mode's latent filter blends across mips as trained (bench/choices.md)
    lod_blend_share: float = option(0.0, flag="--lod-blend-share", type=float,
                                    check=within(0, 1),
                                    help="share of training texels at a fractional LOD, so sample "
                                         "mode's one-decode filters (latent, auto) blend across "
                                         "mips instead of decoding the nearest; exact texels "
                                         "(load mode) lose some")
    adam_beta2: float = 0.99
    seed: int = option(0, flag="--seed", type=int, help="random seed")
    log_every: int = option(0, result=False, help="record (seconds, step, PSNR estimate) this "
                                                  "often; 0 = 20 points")
    progress: bool = option(True, result=False, help="a progress bar")
    latent_init: str = "pca"   # "pca": principal components of the set per level; "random"
    run: int = 1           # texels per horizontal run in a batch (sampling.uniform_rows)
    # fused step: the hidden layers' multiplies in bfloat16 (not the last 5 %); None = where the
    # CPU multiplies bf16 in hardware (fused_step.native_bf16), float32 elsewhere
    bf16: bool | None = None
    step_kind: str = "auto"  # "fused" (C kernels, CPU), "autograd" (any device); auto: fused on CPU
    threads: int = option(1, flag="--threads", type=int, check=within(1, 256), result=False,
                          help="CPU threads for training (default 1: one core, so a busy machine "
                               "does not stall it and the result is the same bytes every run)")

    def between_share_for(self, hr_sampling: str) -> float:
        """--between-share, else the default for the set's high-res sampling."""
        return self.between_share if self.between_share is not None else \
            BETWEEN_SHARE[hr_sampling]

    def steps_for(self, width: int, height: int) -> int:
        """The steps a width x height set trains for: `steps`, else --effort's for its size."""
        return self.steps if self.steps is not None else effort_steps(self.effort, width, height)

    def guided_share_for(self, steps: int, batch: int, texels: int) -> float:
        """guided_share, or 0 for a run of `steps` x `batch` over a chain of `texels` that visits
        each texel more than guided_max_visits times on average."""
        return self.guided_share if steps * batch <= self.guided_max_visits * texels else 0.0

    def batch_for(self, device: torch.device) -> int:
        if self.batch is not None:
            return self.batch
        return CUDA_BATCH if device.type == "cuda" else CPU_BATCH


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with n torch intra-op threads, then restore the process's setting. One by default: with
    two OpenMP threads on two cores, any other busy process stalls every parallel region and a
    run slows down tens of times; one thread leaves the other core free (bench/choices.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainLog:
    seconds: float = 0.0
    steps: int = 0
    curve: list[tuple[float, int, float]] = field(default_factory=list)  # (s, step, psnr est.)
    step_kind: str = ""
    precision: str = ""   # of the MLP's multiplies: bf16 or float32


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


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
    scale = 1.0 / (PCA_INIT_SIGMAS * evals[-k:].flip(0).clamp(min=1e-8).sqrt().float())
    start = 0
    for lw, lh in net.levels:
        level = torch.nn.functional.interpolate(img, size=(lh, lw), mode="area")
        rows = level[0].reshape(img.shape[1], -1).t()
        coeffs = ((rows - mean) @ basis * scale).clamp(-1, 1)
        net.latents.data[start:start + lw * lh, :k] = coeffs.to(net.latents.device)
        start += lw * lh


def make_step(net, targets, device, cfg: TrainConfig):
    """The fused step on CPU (falling back, with a warning, where its kernels cannot be built),
    the autograd reference step elsewhere or when asked for."""
    kind, betas = cfg.step_kind, (0.9, cfg.adam_beta2)
    if kind == "auto":
        kind = "fused" if device.type == "cpu" else "autograd"
    if kind == "fused":
        try:
            from .fused_step import FusedStep, native_bf16
            bf16 = cfg.bf16 if cfg.bf16 is not None else native_bf16()
            return FusedStep(net, targets, device, cfg.batch_for(device), betas, EPS, cfg.seed,
                             bf16)
        except native.NativeUnavailable as e:
            if cfg.step_kind == "fused":
                raise
            warnings.warn(f"training with the slower reference step: {e}", stacklevel=2)
    return AutogradStep(net, targets, device, betas, EPS)


def make_sampler(targets: TrainingTargets, cfg: TrainConfig, steps: int,
                 batch: int) -> TexelSampler:
    """The texel draw `cfg` asks for, for a run of `steps` x `batch` texels (the same for every
    device: rows are drawn on the CPU)."""
    share = cfg.guided_share_for(steps, batch, int(targets.mip_offsets[-1]))
    if cfg.texel_draw not in ("sequence", "random"):
        raise ValueError(f"texel_draw '{cfg.texel_draw}': 'sequence' or 'random'")
    return TexelSampler(targets.mip_offsets, targets.mip_sizes, cfg.mip_uniform_share,
                        share, cfg.guided_power, cfg.run, sequence=cfg.texel_draw == "sequence")


def fit(targets: TrainingTargets, net_cfg: NetworkConfig, cfg: TrainConfig,
        width: int, height: int, device: torch.device, desc: str = "training",
        on_step=None) -> tuple[NeuralTexture, TrainLog]:
    """Train a neural texture on `targets`. on_step(desc, step, steps, psnr_estimate), if given,
    is called every 10 steps and after the last (ntc-library shows where each task is)."""
    torch.manual_seed(cfg.seed)
    steps = cfg.steps_for(width, height)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    stored = targets.values.shape[1]
    net_cfg, _ = resolve_network(net_cfg, targets)
    net = NeuralTexture(net_cfg, width, height, stored, device)
    between_share = cfg.between_share_for(net_cfg.hr_sampling)
    net.lod_blend = cfg.lod_blend_share > 0
    with torch.no_grad():  # start the output layer at the mean colour
        values = targets.values
        net.biases[-1].copy_(values[:: max(1, values.shape[0] // 65536)].mean(0).to(device))
    if cfg.latent_init == "pca":
        init_latents_pca(net, targets, gen)
    train_step = make_step(net, targets, device, cfg)
    batch = cfg.batch_for(device)
    sampler = make_sampler(targets, cfg, steps, batch)
    freeze_step = int(steps * cfg.freeze_latents_at)
    round_step = int(steps * cfg.round_latents_at)
    wq_step = int(steps * cfg.quantize_weights_at)
    log_every = cfg.log_every or max(1, steps // 20)
    log = TrainLog(step_kind=train_step.name, precision=train_step.precision)
    ema, t0 = None, time.perf_counter()
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not cfg.progress,
               dynamic_ncols=True, leave=False)
    net.train()
    for step in range(steps):
        if step == round_step:
            net.latent_noise = False
        if step == freeze_step:
            net.freeze_latents()
        if step == wq_step:
            net.quantize_weights = True
        share = sampler.guided_share
        if cfg.guided_until > 0:
            share *= max(0.0, 1.0 - step / (cfg.guided_until * steps))
        rows = sampler.draw(batch, gen, share)
        jitter = point_jitter(rows.numel(), between_share, gen)
        jitter, blend = lod_blend_points(jitter, rows.numel(), cfg.lod_blend_share, gen)
        # Latents: cosine to zero over their phase; MLP: cosine over the whole run.
        mse = train_step(rows.to(device), step, cfg.lr_mlp * _cosine(step, steps),
                         cfg.lr_latents * _cosine(step, max(1, freeze_step)), jitter, blend)
        sampler.observe(train_step.last_texel_loss)
        ema = mse if ema is None else 0.95 * ema + 0.05 * mse
        if step % 10 == 0 or step == steps - 1:
            psnr = 10 * math.log10(1 / max(ema, 1e-12))
            bar.set_postfix(mse=f"{mse:.2e}", psnr=f"{psnr:.1f}dB", refresh=False)
            if on_step is not None:
                on_step(desc, step + 1, steps, psnr)
            if step % log_every == 0 or step == steps - 1:
                log.curve.append((time.perf_counter() - t0, step + 1, psnr))
        bar.update(1)
    bar.close()
    net.eval()
    log.seconds, log.steps = time.perf_counter() - t0, steps
    return net, log

