"""In-memory form of a `.ntc` file: metadata dataclasses plus the quantized arrays.

The writer serialises exactly this, the reader rebuilds exactly this (after validating it), and the
PyTorch decoder consumes it. Nothing here knows about training.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import layout

# How each channel of a source texture is reproduced on decode.
STORED = "stored"      # an output channel of the MLP (index into the stored channels)
CONST = "const"        # constant across the whole texture (value in [0, 1])
COPY = "copy"          # identical to an earlier channel of the same texture (grey RGB, ...)
NORMAL_Z = "normal_z"  # rebuilt from channels 0 and 1 as the Z of a unit tangent-space normal
CHANNEL_KINDS = (STORED, CONST, COPY, NORMAL_Z)

ACTIVATIONS = ("hswish3",)  # min(x,3) * clamp(x/3 + 0.5, 0, 1), as RTXNTC
WEIGHT_FORMATS = ("int8", "fp16")


@dataclass
class ChannelInfo:
    kind: str
    index: int = 0        # STORED: stored channel; COPY: source channel copied
    value: float = 0.0    # CONST

    def to_json(self) -> dict:
        if self.kind == STORED:
            return {"kind": STORED, "index": self.index}
        if self.kind == CONST:
            return {"kind": CONST, "value": self.value}
        if self.kind == COPY:
            return {"kind": COPY, "of": self.index}
        return {"kind": NORMAL_Z}


@dataclass
class TextureInfo:
    name: str            # source file stem: decoded files are written as <name>.png
    file: str            # source file name, for the record
    role: str            # baseColor, normal, orm, ...
    colorspace: str      # "srgb" (colour channels; alpha stays linear) or "linear"
    bit_depth: int       # 8 or 16, the source's
    channels: list[ChannelInfo]
    weight: float = 1.0  # loss weight used in training (kept for the record)

    @property
    def srgb_channels(self) -> list[bool]:
        """sRGB applies to the first three channels of a colour texture, never to alpha."""
        return [self.colorspace == "srgb" and i < 3 for i in range(len(self.channels))]


@dataclass
class LatentInfo:
    features: int           # latent features per texel, a multiple of 4 (RGBA layers)
    bits: int               # quantization bits per feature, 2..8
    grid_scale: float       # texels of mip 0 per latent texel of level 0, per axis
    hr_sampling: str        # "bilinear" or "gather4" for the high-res level
    levels: list[tuple[int, int]] = field(default_factory=list)
    # sample mode's one-decode (latent) filter blends the MLP inputs of the two mips around the
    # LOD, as the network was trained (trainer --lod-blend-share); else it decodes the nearest mip
    lod_blend: bool = False

    @property
    def layers(self) -> int:
        return self.features // 4

    @property
    def qmax(self) -> int:
        return (1 << self.bits) - 1

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Latent integers 0..qmax map uniformly onto [-1, 1]."""
        return q.astype(np.float32) * (2.0 / self.qmax) - 1.0


@dataclass
class LayerWeights:
    weight: np.ndarray      # int8 [out, in] (quantized) or float16 [out, in]
    scale: np.ndarray | None  # float32 [out] per-output scale for int8, None for fp16
    bias: np.ndarray        # float32 [out]

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape

    def dequantized(self) -> np.ndarray:
        w = self.weight.astype(np.float32)
        return w * self.scale[:, None] if self.scale is not None else w


@dataclass
class NTCModel:
    width: int
    height: int
    textures: list[TextureInfo]
    stored_channels: int
    latent: LatentInfo
    latents: list[np.ndarray]   # per level: uint8 [features, h, w] with values 0..qmax
    layers: list[LayerWeights]
    activation: str = "hswish3"
    weight_format: str = "int8"
    extra: dict = field(default_factory=dict)  # free-form provenance (trainer settings), not decoded

    @property
    def mips(self) -> int:
        return layout.mip_count(self.width, self.height)

    @property
    def mlp_dims(self) -> list[tuple[int, int]]:
        return [(lw.weight.shape[1], lw.weight.shape[0]) for lw in self.layers]
