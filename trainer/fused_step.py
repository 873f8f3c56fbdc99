"""The fused CPU training step: the reference step's math (reference_step.AutogradStep) with the
backward pass written out. The MLP's matrix multiplies go to torch's BLAS; everything between
them (latent taps and noise, positional code, activations, loss, the latent gradient scatter) runs
in the C kernels of fused_step.c, the two Adams in optimisers.c: a few loops instead of ~150
small torch ops and autograd's bookkeeping. tests/test_fused_step.py holds it to the reference."""
from __future__ import annotations

import ctypes
import platform

import torch

from export import layout
from export.decode.reference import blend_inputs

from . import native
from .network import fake_quant_fp16, fake_quant_int8
from .reference_step import TrainingStep
from .targets import next_mip_points


MAX_PE_OCTAVES = 8  # fused_step.c's scratch for the blended positional code
OUT_COLUMNS = 16
# Row Adam's bias corrections are looked up for update counts below this (b2 = 0.99's is 1 in
# float32 from about 4 000 updates on)
BIAS_CORRECTIONS = 4096


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX on x86, the BF16
    extension elsewhere through oneDNN's check). Where it does not, torch emulates bf16 matmuls
    several times slower than float32, so the fused step's default keeps float32 there
    (bench/choices.md)."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(check()) if check is not None else False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _bf(t: torch.Tensor) -> int:
    return int(t.dtype == torch.bfloat16)


class FusedStep(TrainingStep):
    name = "fused"

    def __init__(self, net, targets, device, batch: int, betas=(0.9, 0.99), eps=1e-15,
                 seed: int = 0, bf16: bool = False):
        super().__init__(net, targets, device, betas, eps)
        if device.type != "cpu":
            raise ValueError("the fused step runs on the CPU")
        self.lib = native.load()
        if layout.PE_OCTAVES > MAX_PE_OCTAVES:
            raise ValueError(f"the fused step encodes at most {MAX_PE_OCTAVES} octaves")
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
        # a step encodes up to twice its batch: rows blended across mips add the same places in
        # the next mip (TrainingStep's blend)
        cap = min(16 * batch, rows)
        self.mark = torch.zeros(rows, dtype=torch.int64)  # (step tag << 32 | slot), see the C
        self.compact = torch.zeros(cap, F)
        self.grad = torch.zeros(cap, F)
        self.touched = torch.zeros(cap, dtype=torch.int64)
        self.tap_rows = torch.zeros(2 * batch, 8, dtype=torch.int64)
        self.tap_slots = torch.zeros(2 * batch, 8, dtype=torch.int32)
        self.tap_fracs = torch.zeros(2 * batch, 4)
        dims = [layout.mlp_input_size(F, pyr.hr_sampling), *cfg.widths, net.stored]
        # latent columns of the MLP input: high-res taps (+ gather4's fractions), low-res taps
        self.latent_cols = dims[0] - layout.PE_INPUTS - layout.LOD_INPUTS
        self.X = torch.empty(2 * batch, dims[0])
        self.dX = torch.empty(2 * batch, self.latent_cols)
        self.dpred = torch.empty(batch, dims[-1])
        self.texel_loss = torch.empty(batch)
        self.point_targets = torch.empty(2 * batch, net.stored)
        # per layer and precision: inputs, pre-activations, gradients of the inputs
        types = (torch.float32, torch.bfloat16)
        self.inputs = [{t: torch.empty(batch, d, dtype=t) for t in types} for d in dims[:-1]]
        self.Z = [{t: torch.empty(batch, d, dtype=t) for t in types} for d in dims[1:]]
        self.dinputs = [{t: torch.empty(batch, d, dtype=t) for t in types} for d in dims[:-1]]
        # the output layer's forward multiplies OUT_COLUMNS-wide (zero rows past the stored
        # channels): BLAS runs a few odd widths several times slower (bench/choices.md)
        padded = -(-dims[-1] // OUT_COLUMNS) * OUT_COLUMNS
        self.out_weight = torch.zeros(padded, dims[-2])
        self.out_bias = torch.zeros(padded)
        self.out_z = torch.empty(batch, padded)
        # the first layer's weight gradient as input^T @ dz, then transposed: BLAS handles the
        # odd input width better on that side (bench/choices.md)
        self.first_grad_t = torch.empty(dims[0], dims[1])
        self.bf16 = bf16
        self.precision = "bf16" if bf16 else "float32"   # of the hidden layers' multiplies
        # the MLP's Adam (torch.optim.Adam's rule, in C): moments per parameter, one step count
        # plain lists: indexing a ParameterList costs microseconds, a dozen times a step
        self.weights, self.biases = list(net.weights), list(net.biases)
        self.params = self.weights + self.biases
        for p in self.params:
            p.grad = torch.zeros_like(p)
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self.mlp_steps = 0
        self.batch = batch
        opt = self.latent_opt
        self.corrections = torch.empty(BIAS_CORRECTIONS, 2)   # row Adam's, by update count
        self.lib.ntc_bias_corrections(opt.b1, opt.b2, BIAS_CORRECTIONS,
                                      self.corrections.data_ptr())

    def __call__(self, rows: torch.Tensor, step: int, lr_mlp: float, lr_latents: float,
                 jitter: torch.Tensor | None = None, blend: torch.Tensor | None = None) -> float:
        """One optimisation step on training rows `rows` (moved off their texel centres by
        `jitter`, blended across mips by `blend`: see TrainingStep); returns the batch's plain
        MSE."""
        mse = self.gradients(rows, step, jitter, blend)
        self.apply(lr_mlp, lr_latents)
        return mse

    @torch.no_grad()
    def gradients(self, rows: torch.Tensor, step: int, jitter: torch.Tensor | None = None,
                  blend: torch.Tensor | None = None) -> float:
        """Forward and backward: the MLP's gradients land in its parameters' .grad, the latent
        rows' in self.grad[:self.n_touched] (rows self.touched[:self.n_touched], read through
        their noisy copies self.compact). Returns the batch's plain MSE."""
        net, lib, n = self.net, self.lib, rows.numel()
        if n > self.batch:
            raise ValueError(f"batch {n} exceeds the {self.batch} this step was built for")
        rows = rows.contiguous()
        # rows blended across mips: their places in the next mip are encoded after the batch
        # (rows n..n_all), their inputs and targets blended into the batch's, and their input
        # gradient split back by (1 - t, t) before the latent scatter
        n_all, across, lod_t = n, None, None
        if blend is not None and jitter is not None:
            across = torch.nonzero(blend > 0).squeeze(1)
            if across.numel():
                lod_t = blend[across].to(torch.float32)
                rows1, jitter1 = next_mip_points(rows[across], jitter[across], self.offsets,
                                                 self.sizes)
                rows, jitter = torch.cat([rows, rows1]), torch.cat([jitter, jitter1])
                n_all = n + across.numel()
            else:
                across = None
        if jitter is not None:
            jitter = jitter.contiguous()
            lib.ntc_point_targets(ctypes.byref(self.layout), rows.data_ptr(), n_all,
                                  jitter.data_ptr(), self.values.data_ptr(), self.values.shape[1],
                                  self.point_targets.data_ptr())
            if across is not None:
                pt = self.point_targets
                pt[across] = blend_inputs(pt[across], pt[n:n_all], lod_t)
        train_latents = not net.latents_frozen
        # the C side's noise_amp: +step for noise, -step for rounding (see encode_forward)
        noise = (2.0 if net.latent_noise else -2.0) / net.qmax if train_latents else 0.0
        self.tag += 1
        X = self.X[:n_all]
        self.n_touched = lib.ntc_encode_forward(
            ctypes.byref(self.layout), rows.data_ptr(), n_all, net.latents.data_ptr(),
            int(train_latents), noise, self.seed, step, self.mark.data_ptr(), self.tag,
            self.compact.data_ptr(), self.touched.data_ptr(), self.tap_rows.data_ptr(),
            self.tap_slots.data_ptr(), self.tap_fracs.data_ptr(), X.data_ptr(), X.shape[1],
            _ptr(jitter))
        if across is not None:
            X[across] = blend_inputs(X[across], X[n:n_all], lod_t)
        X = self.X[:n]
        weights = [w.detach() for w in self.weights]
        if net.quantize_weights:
            fq = fake_quant_int8 if net.cfg.weight_format == "int8" else fake_quant_fp16
            weights = [fq(w) for w in weights]
        last = len(weights) - 1
        # bfloat16 for the hidden layers' multiplies, except while the quantized weights fine-tune;
        # the output layer (and so the loss) stays float32
        low = self.bf16 and not net.quantize_weights
        types = [torch.bfloat16 if low and i < last else torch.float32 for i in range(last + 1)]
        used = [w.to(t) for w, t in zip(weights, types)]
        inputs = [self.inputs[i][t][:n] for i, t in enumerate(types)]
        zs = [self.Z[i][t][:n] for i, t in enumerate(types)]
        if types[0] is torch.float32:
            inputs[0] = X
        else:
            inputs[0].copy_(X)
        for i in range(last + 1):
            if i == last:
                stored = zs[i].shape[1]
                self.out_weight[:stored].copy_(used[i])
                self.out_bias[:stored].copy_(self.biases[i].detach())
                z = self.out_z[:n]
                torch.addmm(self.out_bias, inputs[i], self.out_weight.t(), out=z)
                zs[i].copy_(z[:, :stored])
            else:
                torch.addmm(self.biases[i].detach().to(types[i]), inputs[i], used[i].t(),
                            out=zs[i])
            if i < last:
                lib.ntc_hswish_forward(zs[i].data_ptr(), _bf(zs[i]), inputs[i + 1].data_ptr(),
                                       _bf(inputs[i + 1]), zs[i].numel())
        dz = self.dpred[:n]
        mse = ctypes.c_double()
        # the kernels that write a layer's output gradient also sum it into the bias gradient
        lib.ntc_loss(zs[last].data_ptr(), rows.data_ptr(), n, self.values.data_ptr(),
                     self.values.shape[1], self.ch_w.data_ptr(), _ptr(self.importance),
                     dz.data_ptr(), ctypes.byref(mse), self.biases[last].grad.data_ptr(),
                     self.texel_loss.data_ptr(),
                     None if jitter is None else self.point_targets.data_ptr())
        self.last_texel_loss = self.texel_loss[:n]
        for i in range(last, -1, -1):
            grad_w = self.weights[i].grad
            if i == 0 and types[i] is torch.float32:
                torch.mm(inputs[i].t(), dz, out=self.first_grad_t)
                grad_w.copy_(self.first_grad_t.t())
            elif types[i] is torch.float32:
                torch.mm(dz.t(), inputs[i], out=grad_w)
            else:
                grad_w.copy_(torch.mm(dz.t(), inputs[i]))
            if i > 0:
                da = self.dinputs[i][types[i]][:n]
                torch.mm(dz, used[i], out=da)
                dz_prev = self.dinputs[i][types[i - 1]][:n]  # da itself where types agree
                lib.ntc_hswish_backward(zs[i - 1].data_ptr(), _bf(zs[i - 1]), da.data_ptr(),
                                        _bf(da), dz_prev.data_ptr(), _bf(dz_prev), da.numel(),
                                        da.shape[1], self.biases[i - 1].grad.data_ptr())
                dz = dz_prev
            elif train_latents:
                dx = self.dX[:n]
                if types[0] is torch.float32:
                    torch.mm(dz, used[0][:, :self.latent_cols], out=dx)
                else:
                    dx.copy_(torch.mm(dz, used[0][:, :self.latent_cols]))
                if across is not None:   # blend_inputs' gradient: (1 - t) and t of the blend's
                    g = dx[across]
                    self.dX[n:n_all] = g * lod_t[:, None]
                    dx[across] = g * (1.0 - lod_t)[:, None]
                dx = self.dX[:n_all]
                lib.ntc_encode_backward(ctypes.byref(self.layout), n_all, dx.data_ptr(),
                                        dx.shape[1], self.tap_slots.data_ptr(),
                                        self.tap_fracs.data_ptr(), self.grad.data_ptr())
        return mse.value

    @torch.no_grad()
    def apply(self, lr_mlp: float, lr_latents: float) -> None:
        """The optimisers' step on the gradients of `gradients` (which it then clears)."""
        self.mlp_steps += 1
        b1, b2 = self.betas
        for p, (m, v) in zip(self.params, self.moments):
            self.lib.ntc_adam(p.data_ptr(), p.grad.data_ptr(), m.data_ptr(), v.data_ptr(),
                              p.numel(), self.mlp_steps, lr_mlp, b1, b2, self.eps)
        if not self.net.latents_frozen:
            opt = self.latent_opt
            self.lib.ntc_row_adam(self.net.latents.data_ptr(), opt.state.data_ptr(), opt.stride,
                                  self.touched.data_ptr(), self.n_touched,
                                  self.grad.data_ptr(), self.net.cfg.features, lr_latents,
                                  opt.b1, opt.b2, opt.eps, self.corrections.data_ptr(),
                                  BIAS_CORRECTIONS)
