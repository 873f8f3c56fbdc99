"""Trainable neural texture: float latents + MLP, trained through export's decode function."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from export import layout
from export.decode.reference import LatentPyramid, decode_texels, latent_rows
from export.model import LatentInfo, LayerWeights, NTCModel, TextureInfo
from export.options import option


def hidden_widths(text: str) -> tuple[int, ...]:
    """'64,48,32' -> (64, 48, 32): the MLP's hidden layer widths."""
    try:
        widths = tuple(int(v) for v in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected widths like 64,48,32")
    return widths


# MLP hidden widths when --hidden is not given. gather4's input holds 4 taps of the high-res
# features: with 8 or more (38 values wider than bilinear's at 12) its first layer is narrower, for
# about the same MACs a decode; with 4 (the coarse presets' layout) it is no wider than bilinear's.
DEFAULT_HIDDEN = (64, 48, 32)
GATHER4_WIDE_HIDDEN = (44, 48, 32)


def default_hidden(hr_sampling: str, features: int) -> tuple[int, ...]:
    """The hidden widths trained when --hidden is not given."""
    return GATHER4_WIDE_HIDDEN if hr_sampling == "gather4" and features > 4 else DEFAULT_HIDDEN


@dataclass
class NetworkConfig:
    features: int = 8
    bits: int = option(4, flag="--bits", type=int, choices=range(2, 9), metavar="{2..8}",
                       help="latent quantization bits")
    grid_scale: float = 4.0
    hr_sampling: str = option("auto", flag="--hr-sampling",
                              choices=("auto", *layout.HR_SAMPLINGS),
                              help="how the MLP reads the high-res latents: their bilinear "
                                   "blend, or the 4 nearest (gather4: finer detail, for sets "
                                   "with texture detail everywhere); auto picks per set by the "
                                   "statistics of its texel differences")
    hidden: tuple[int, ...] | None = option(None, flag="--hidden", type=hidden_widths,
                                            check=lambda v: None if v and min(v) >= 1
                                            else "widths like 64,48,32",
                                            help="MLP hidden layer widths, e.g. 64,48,32 "
                                                 "(default 64,48,32; 44,48,32 with gather4 "
                                                 "sampling of 8 or more latent features)")
    weight_format: str = option("int8", flag="--weights-format", choices=("int8", "fp16"),
                                help="MLP weight storage (int8 with per-output scales, or fp16)")

    @property
    def widths(self) -> tuple[int, ...]:
        """The hidden widths trained: --hidden, else default_hidden for the chosen sampling and
        the preset's feature count."""
        if self.hidden is not None:
            return self.hidden
        if self.hr_sampling not in layout.HR_SAMPLINGS:
            raise ValueError("hr_sampling 'auto' is chosen per set (hr_choice.resolve_network) "
                             "before a network is built")
        return default_hidden(self.hr_sampling, self.features)

    def text(self) -> str:
        """The sampling and widths asked for, as reports print them."""
        widths = ",".join(map(str, self.hidden)) if self.hidden is not None else \
            f"{','.join(map(str, DEFAULT_HIDDEN))} (gather4 of 8+ features: " \
            f"{','.join(map(str, GATHER4_WIDE_HIDDEN))})"
        return f"high-res sampling {self.hr_sampling}, hidden layers {widths}"


def quantize_latents(z: torch.Tensor, qmax: int) -> torch.Tensor:
    """Round latents in [-1, 1] to the nearest of qmax+1 levels (straight-through gradient)."""
    zq = torch.round((z.clamp(-1, 1) + 1) * (qmax / 2)) * (2 / qmax) - 1
    return z + (zq - z).detach()


def fake_quant_int8(w: torch.Tensor) -> torch.Tensor:
    """Per-output-row symmetric int8, straight-through, exactly as the exporter rounds."""
    scale = (w.detach().abs().amax(1, keepdim=True) / 127).clamp(min=1e-12)
    return w + (torch.round(w / scale).clamp(-127, 127) * scale - w).detach()


def fake_quant_fp16(w: torch.Tensor) -> torch.Tensor:
    return w + (w.half().float() - w).detach()


@dataclass
class LatentRows:
    """The rows of the latent table one training batch reads (see NeuralTexture.gather_rows)."""
    index: torch.Tensor   # long [R] rows of the full table, sorted, unique
    values: torch.Tensor  # [R, features] leaf copy of those rows
    remap: torch.Tensor   # long [table rows]: full row -> row of `values` (valid for `index`)


class NeuralTexture(nn.Module):
    def __init__(self, cfg: NetworkConfig, width: int, height: int, stored: int,
                 device: torch.device | str = "cpu"):
        super().__init__()
        if cfg.hr_sampling not in layout.HR_SAMPLINGS:
            raise ValueError(f"hr_sampling '{cfg.hr_sampling}': choose it per set first "
                             "(hr_choice.resolve_network)")
        self.cfg, self.width, self.height, self.stored = cfg, width, height, stored
        self.levels = layout.latent_level_sizes(width, height, cfg.grid_scale)
        self.pyramid = LatentPyramid.build(self.levels, layout.mip_count(width, height),
                                           cfg.hr_sampling, device)
        self.qmax = (1 << cfg.bits) - 1
        step = 2.0 / self.qmax
        self.latents = nn.Parameter(
            (torch.rand(self.pyramid.texels, cfg.features, device=device) - 0.5) * 4 * step)
        dims = [layout.mlp_input_size(cfg.features, cfg.hr_sampling), *cfg.widths, stored]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(dims[:-1], dims[1:]):
            bound = 1 / math.sqrt(n_in)
            self.weights.append(nn.Parameter(torch.empty(n_out, n_in, device=device)
                                             .uniform_(-bound, bound) * math.sqrt(3)))
            self.biases.append(nn.Parameter(torch.zeros(n_out, device=device)))
        self.latent_noise = True      # +-half-step uniform noise stands in for rounding (else
        # training rounds them, straight-through: fit's TrainConfig.round_latents_at)
        self.latents_frozen = False   # latents rounded for good; only the MLP still trains
        self.quantize_weights = False  # fake-quantize weights as the exporter will
        self._remap: torch.Tensor | None = None  # full row -> row of this step's LatentRows
        self.lod_blend = False  # trained for the latent filter across mips (LatentInfo.lod_blend)

    def freeze_latents(self) -> None:
        with torch.no_grad():
            self.latents.copy_(quantize_latents(self.latents, self.qmax))
        self.latents.requires_grad_(False)
        self.latents_frozen = True
        self.latent_noise = False

    def forward(self, mip: torch.Tensor, uv: torch.Tensor, rows: LatentRows | None = None,
                pe_grid: torch.Tensor | None = None, blend=None) -> torch.Tensor:
        """Decode texels. With `rows` (training), only the latent rows this batch reads take part:
        noise is drawn for them and their gradient lands in rows.values.grad, so a step costs the
        same whatever the table size (the full table would be noised and updated every step).
        pe_grid: as decode_texels' (between texel centres, the latent filter's encoding).
        blend: as decode_texels' (the latent filter across mips)."""
        table, remap = self.latents, None  # already on the quantization grid once frozen
        if rows is not None:
            table, remap = rows.values, rows.remap
        if not self.latents_frozen:
            if self.training and self.latent_noise:
                table = table + (torch.rand_like(table) - 0.5) * (2.0 / self.qmax)
            else:
                table = quantize_latents(table, self.qmax)
        weights = list(self.weights)
        if self.quantize_weights or not self.training:
            fq = fake_quant_int8 if self.cfg.weight_format == "int8" else fake_quant_fp16
            weights = [fq(w) for w in weights]
        return decode_texels(table, self.pyramid, weights, list(self.biases), mip, uv, remap,
                             pe_grid, blend=blend)

    def gather_rows(self, mip: torch.Tensor, uv: torch.Tensor) -> LatentRows:
        """The latent rows a batch reads, as a fresh leaf tensor to train this step."""
        index = torch.unique(latent_rows(self.pyramid, mip, uv))
        if self._remap is None:
            self._remap = torch.zeros(self.latents.shape[0], dtype=torch.long,
                                      device=self.latents.device)
        self._remap[index] = torch.arange(index.numel(), device=index.device)
        values = self.latents.detach()[index].requires_grad_()
        return LatentRows(index, values, self._remap)

    def export(self, textures: list[TextureInfo], extra: dict | None = None) -> NTCModel:
        """Quantize into the file's in-memory form; decoding it reproduces eval-mode forward."""
        cfg = self.cfg
        with torch.no_grad():
            z = self.latents.detach().clamp(-1, 1).cpu()
            q = torch.round((z + 1) * (self.qmax / 2)).to(torch.uint8)
            latents, start = [], 0
            for w, h in self.levels:
                rows = q[start:start + w * h]
                latents.append(rows.t().reshape(cfg.features, h, w).numpy().copy())
                start += w * h
            layers = []
            for w, b in zip(self.weights, self.biases):
                w = w.detach().cpu().float()
                bias = b.detach().cpu().float().numpy().astype(np.float32)
                if cfg.weight_format == "int8":
                    scale = (w.abs().amax(1) / 127).clamp(min=1e-12)
                    wq = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
                    layers.append(LayerWeights(wq.numpy(), scale.numpy().astype(np.float32), bias))
                else:
                    layers.append(LayerWeights(w.half().numpy(), None, bias))
        return NTCModel(width=self.width, height=self.height, textures=textures,
                        stored_channels=self.stored,
                        latent=LatentInfo(cfg.features, cfg.bits, float(cfg.grid_scale),
                                          cfg.hr_sampling, list(self.levels), self.lod_blend),
                        latents=latents, layers=layers, weight_format=cfg.weight_format,
                        extra=extra or {})
