"""The reference training step: export's decode function under autograd, lazy Adam on the latent
rows a batch reads. It runs on any device; on CPU the fused step (fused_step.py) does the same
math several times faster and is tested against this one."""
from __future__ import annotations

import torch

from export.decode.reference import blend_inputs

from .network import NeuralTexture
from .targets import TrainingTargets, locate, locate_points, next_mip_points, point_targets


class RowAdam:
    """Adam for the latent table that moves only the rows a step read ("lazy" Adam, as
    torch.optim.SparseAdam): a step costs the batch, not the table, which at 2K and rich presets
    is 5-10x the rest of the step. Bias correction counts each row's own updates; rows stay in
    the quantizer's range [-1, 1]."""

    def __init__(self, table: torch.Tensor, betas: tuple[float, float], eps: float):
        self.table, (self.b1, self.b2), self.eps = table, betas, eps
        # One row of state per latent row: m, v and the update count side by side, padded to
        # whole 64-byte lines, so a row's update reads one place in memory, not three.
        features = table.shape[1]
        self.stride = (2 * features + 1 + 15) // 16 * 16
        self.state = torch.zeros(table.shape[0], self.stride, device=table.device)
        self.m = self.state[:, :features]
        self.v = self.state[:, features:2 * features]
        self.count = self.state[:, 2 * features:2 * features + 1]

    @torch.no_grad()
    def step(self, index: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        m = self.m[index].mul_(self.b1).add_(grad, alpha=1 - self.b1)
        v = self.v[index].mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        n = self.count[index] + 1
        self.m[index], self.v[index], self.count[index] = m, v, n
        update = (m / (1 - self.b1 ** n)) / ((v / (1 - self.b2 ** n)).sqrt() + self.eps)
        self.table[index] = (self.table[index] - lr * update).clamp_(-1, 1)


class TrainingStep:
    """What both steps share: the network, its targets on the training device, Adam's settings
    and the latent rows' optimiser. After each step, last_texel_loss holds each row's weighted
    loss (for trainer.sampling.TexelSampler).

    A step's `jitter` ([N, 2] or None) moves rows off their texel centres (in texels of the row's
    mip, targets.locate_points) to train what the latent filter decodes there: the positional
    code blended over the mip's texel centres as that filter blends it, against the bilinear
    blend of the source (targets.point_targets). Its `blend` ([N] or None, with jitter) trains the
    latent filter across mips: rows with t > 0 decode once on their MLP inputs blended with those
    of the same place in the next mip (targets.next_mip_points), against the same blend of the
    two mips' targets."""
    last_texel_loss: torch.Tensor | None = None
    precision = "float32"   # of the MLP's multiplies (reports name it)

    def __init__(self, net: NeuralTexture, targets: TrainingTargets, device: torch.device,
                 betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-15):
        self.net, self.betas, self.eps = net, betas, eps
        self.latent_opt = RowAdam(net.latents, betas, eps)
        self.values = targets.values.to(device)
        self.importance = (targets.importance.to(device)
                           if targets.importance is not None else None)
        ch_w = targets.channel_weights.to(device)
        self.ch_w = ch_w / ch_w.mean()
        self.offsets, self.sizes = targets.mip_offsets.to(device), targets.mip_sizes.to(device)


class AutogradStep(TrainingStep):
    name = "autograd"

    def __init__(self, net, targets, device, betas=(0.9, 0.99), eps=1e-15):
        super().__init__(net, targets, device, betas, eps)
        self.mlp_opt = torch.optim.Adam(list(net.weights) + list(net.biases), betas=betas, eps=eps)

    def __call__(self, rows: torch.Tensor, step: int, lr_mlp: float, lr_latents: float,
                 jitter: torch.Tensor | None = None, blend: torch.Tensor | None = None) -> float:
        """One optimisation step on training rows `rows`; returns the batch's plain MSE."""
        net = self.net
        across = None
        if jitter is None:
            mip, uv = locate(rows, self.offsets, self.sizes)
            target, pe_grid = self.values[rows], None
        else:
            jitter = jitter.to(self.values.device)
            mip, uv = locate_points(rows, jitter, self.offsets, self.sizes)
            target = point_targets(self.values, rows, jitter, self.offsets, self.sizes)
            pe_grid = self.sizes[mip]
            if blend is not None:   # the same places in the next mip, blended in by t
                t = blend.to(self.values.device)
                rows1, jitter1 = next_mip_points(rows, jitter, self.offsets, self.sizes)
                mip1, uv1 = locate_points(rows1, jitter1, self.offsets, self.sizes)
                target = blend_inputs(target, point_targets(self.values, rows1, jitter1,
                                                            self.offsets, self.sizes), t)
                across = (mip1, uv1, self.sizes[mip1], t)
        touched = None
        if not net.latents_frozen:
            touched = net.gather_rows(mip, uv) if across is None else \
                net.gather_rows(torch.cat([mip, across[0]]), torch.cat([uv, across[1]]))
        pred = net(mip, uv, touched, pe_grid, across)
        err = (pred - target) ** 2
        per_texel = (err * self.ch_w).mean(1)
        if self.importance is not None:
            per_texel = per_texel * self.importance[rows]
        loss = per_texel.mean()
        self.last_texel_loss = per_texel.detach()
        self.mlp_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.mlp_opt.param_groups[0]["lr"] = lr_mlp
        self.mlp_opt.step()
        if touched is not None:
            self.latent_opt.step(touched.index, touched.values.grad, lr_latents)
        return float(err.detach().mean())
