"""The fused CPU training step: the reference step's math (reference_step.AutogradStep) with the
backward pass written out. The MLP's matrix multiplies go to torch's BLAS; everything between
them (latent taps and noise, positional code, activations, loss, the latent gradient scatter and
the row-wise Adam) runs in the C kernels of fused_step.c, a few loops instead of ~150 small torch
ops and autograd's bookkeeping. tests/test_fused_step.py holds it to the reference."""
from __future__ import annotations

import ctypes

import torch

from export import layout

from . import native
from .network import fake_quant_fp16, fake_quant_int8
from .reference_step import TrainingStep


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class FusedStep(TrainingStep):
    name = "fused"

    def __init__(self, net, targets, mlp_opt, latent_opt, device, batch: int, seed: int = 0):
        super().__init__(net, targets, mlp_opt, latent_opt, device)
        if device.type != "cpu":
            raise ValueError("the fused step runs on the CPU")
        self.lib = native.load()
        self.seed, self.tag, self.n_touched = seed, 0, 0
        cfg, pyr = net.cfg, net.pyramid
        F = cfg.features
        self._keep = [t.contiguous() for t in (self.offsets, self.sizes.reshape(-1),
                                               pyr.offsets, pyr.sizes.reshape(-1))]
        o, s, lo, ls = self._keep
        self.layout = native.Layout(o.data_ptr(), s.data_ptr(), s.numel() // 2,
                                    lo.data_ptr(), ls.data_ptr(), ls.numel() // 2, F,
                                    int(pyr.hr_sampling == "gather4"), layout.PE_OCTAVES)
        self.values = self.values.contiguous()
        self.ch_w = self.ch_w.contiguous()
        rows = net.latents.shape[0]
        cap = min(8 * batch, rows)
        self.stamp = torch.full((rows,), -1, dtype=torch.int32)
        self.slot = torch.zeros(rows, dtype=torch.int32)
        self.compact = torch.zeros(cap, F)
        self.grad = torch.zeros(cap, F)
        self.touched = torch.zeros(cap, dtype=torch.int64)
        self.tap_slots = torch.zeros(batch, 8, dtype=torch.int32)
        self.tap_fracs = torch.zeros(batch, 4)
        dims = [layout.mlp_input_size(F, pyr.hr_sampling), *cfg.hidden, net.stored]
        # latent columns of the MLP input: high-res taps (+ gather4's fractions), low-res taps
        self.latent_cols = dims[0] - layout.PE_INPUTS - layout.LOD_INPUTS
        self.X = torch.empty(batch, dims[0])
        self.Z = [torch.empty(batch, d) for d in dims[1:]]        # pre-activations
        self.A = [torch.empty(batch, d) for d in dims[1:-1]]      # activations
        self.dA = [torch.empty(batch, d) for d in dims[1:-1]]     # their gradients, then dZ
        self.dpred = torch.empty(batch, dims[-1])
        self.dX = torch.empty(batch, self.latent_cols)
        for p in list(net.weights) + list(net.biases):
            p.grad = torch.zeros_like(p)
        self.batch = batch

    def __call__(self, rows: torch.Tensor, step: int, lr_mlp: float, lr_latents: float) -> float:
        """One optimisation step on training rows `rows`; returns the batch's plain MSE."""
        mse = self.gradients(rows, step)
        self.apply(lr_mlp, lr_latents)
        return mse

    @torch.no_grad()
    def gradients(self, rows: torch.Tensor, step: int) -> float:
        """Forward and backward: the MLP's gradients land in its parameters' .grad, the latent
        rows' in self.grad[:self.n_touched] (rows self.touched[:self.n_touched], read through
        their noisy copies self.compact). Returns the batch's plain MSE."""
        net, lib, n = self.net, self.lib, rows.numel()
        if n > self.batch:
            raise ValueError(f"batch {n} exceeds the {self.batch} this step was built for")
        rows = rows.contiguous()
        train_latents = not net.latents_frozen
        noise = 2.0 / net.qmax if train_latents and net.latent_noise else 0.0
        self.tag += 1
        X = self.X[:n]
        self.n_touched = lib.ntc_encode_forward(
            ctypes.byref(self.layout), rows.data_ptr(), n, net.latents.data_ptr(),
            int(train_latents), noise, self.seed, step, self.stamp.data_ptr(),
            self.slot.data_ptr(), self.tag, self.compact.data_ptr(), self.touched.data_ptr(),
            self.tap_slots.data_ptr(), self.tap_fracs.data_ptr(), X.data_ptr(), X.shape[1])
        weights = [w.detach() for w in net.weights]
        if net.quantize_weights:
            fq = fake_quant_int8 if net.cfg.weight_format == "int8" else fake_quant_fp16
            weights = [fq(w) for w in weights]
        inputs, last = [X], len(weights) - 1
        for i, (w, b) in enumerate(zip(weights, net.biases)):
            z = self.Z[i][:n]
            torch.addmm(b.detach(), inputs[-1], w.t(), out=z)
            if i < last:
                a = self.A[i][:n]
                lib.ntc_hswish_forward(z.data_ptr(), a.data_ptr(), z.numel())
                inputs.append(a)
        pred, dz = self.Z[last][:n], self.dpred[:n]
        mse = ctypes.c_double()
        lib.ntc_loss(pred.data_ptr(), rows.data_ptr(), n, self.values.data_ptr(),
                     self.values.shape[1], self.ch_w.data_ptr(), _ptr(self.importance),
                     dz.data_ptr(), ctypes.byref(mse))
        for i in range(last, -1, -1):
            torch.mm(dz.t(), inputs[i], out=net.weights[i].grad)
            torch.sum(dz, 0, out=net.biases[i].grad)
            if i > 0:
                da = self.dA[i - 1][:n]
                torch.mm(dz, weights[i], out=da)
                lib.ntc_hswish_backward(self.Z[i - 1][:n].data_ptr(), da.data_ptr(),
                                        da.data_ptr(), da.numel())
                dz = da
            elif train_latents:
                dx = self.dX[:n]
                torch.mm(dz, weights[0][:, :self.latent_cols], out=dx)
                lib.ntc_encode_backward(ctypes.byref(self.layout), n, dx.data_ptr(),
                                        dx.shape[1], self.tap_slots.data_ptr(),
                                        self.tap_fracs.data_ptr(), self.grad.data_ptr())
        return mse.value

    @torch.no_grad()
    def apply(self, lr_mlp: float, lr_latents: float) -> None:
        """The optimisers' step on the gradients of `gradients` (which it then clears)."""
        self.mlp_opt.param_groups[0]["lr"] = lr_mlp
        self.mlp_opt.step()
        if not self.net.latents_frozen:
            opt = self.latent_opt
            self.lib.ntc_row_adam(self.net.latents.data_ptr(), opt.m.data_ptr(), opt.v.data_ptr(),
                                  opt.count.data_ptr(), self.touched.data_ptr(), self.n_touched,
                                  self.grad.data_ptr(), self.net.cfg.features, lr_latents,
                                  opt.b1, opt.b2, opt.eps)
