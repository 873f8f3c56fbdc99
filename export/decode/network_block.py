"""What every shader backend (GL and CUDA) needs to know about a file's network, computed once.

The Slang decoder (shaders/ntc_decode_core.slang) reads the network as one flat float32 array of
vec4s, the NtcModel block:

    info     (colour mips - 1, at least 1; texel scale; texel offset; latent levels - 1)
    layers   per layer: weights [out_pad][in_pad] row-major, then the bias [out_pad]; widths padded
             to multiples of 4; layer 0's columns in the shader's vec4-aligned input order

The GL decoder samples raw UNORM latent texels and dequantizes them with the info's scale and
offset; the CUDA kernel reads an already dequantized table (scale 0, offset 0). `check_supported`
is the one shape check both run; numpy only, so the viewer needs no torch to use it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from shaders import constants as C

from .. import layout
from ..errors import NTCError
from ..model import NTCModel

MAX_LAYERS = C.NTC_MAX_LAYERS
MAX_WIDTH_VEC4 = C.NTC_MAX_VEC4     # widest layer, in vec4s
MAX_OUT_VEC4 = C.NTC_MAX_OUT_VEC4   # stored channels / 4: four render targets


class UnsupportedNetwork(NTCError, ValueError):
    """A network shape the shader decoders cannot run."""


def widths_vec4(dims: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(input vec4s, output vec4s) of each layer, from (inputs, outputs), padded as in the file."""
    return [(layout.pad4(i) // 4, layout.pad4(o) // 4) for i, o in dims]


def input_order(features: int, hr_sampling: str) -> list[int]:
    """For each MLP input the shader builds (vec4-aligned, see ntcDecodeWith), the file's input
    column it corresponds to, or -1 for padding. The reference's order is [hi, lo, pe, lod]
    ("bilinear") or [tap0..tap3, frac.x, frac.y, lo, pe, lod] ("gather4"); the shader keeps each
    group vec4-aligned and moves the two fractions next to lod."""
    f, pe = features, layout.PE_INPUTS
    if hr_sampling == "gather4":
        lo = 4 * f + 2
        order = list(range(4 * f)) + list(range(lo, lo + f + pe)) + [lo + f + pe, 4 * f, 4 * f + 1]
    else:
        order = list(range(2 * f + pe + 1))
    return order + [-1] * (layout.pad4(len(order)) - len(order))


def check_supported(features: int, hr_sampling: str, dims: Sequence[tuple[int, int]]) -> None:
    """Raise UnsupportedNetwork for a network the Slang decoder cannot run; `dims` are the layers'
    (inputs, outputs)."""
    if hr_sampling not in layout.HR_SAMPLINGS:
        raise UnsupportedNetwork(f"high-res sampling '{hr_sampling}' is not supported by the "
                                 "shader decoders")
    if features <= 0 or features % 4:
        raise UnsupportedNetwork(f"{features} latent features, the shader decoders need a "
                                 "multiple of 4")
    if not 1 <= len(dims) <= MAX_LAYERS:
        raise UnsupportedNetwork(f"{len(dims)} MLP layers, the shader decoders support "
                                 f"1..{MAX_LAYERS}")
    if dims[0][0] != layout.mlp_input_size(features, hr_sampling):
        raise UnsupportedNetwork("MLP input width does not match the latent features")
    if any(i != prev_out for (i, _), (_, prev_out) in zip(dims[1:], dims)):
        raise UnsupportedNetwork("MLP layer widths do not chain")
    widths = widths_vec4(dims)
    if max(max(w) for w in widths) > MAX_WIDTH_VEC4:
        raise UnsupportedNetwork(f"an MLP layer is wider than {4 * MAX_WIDTH_VEC4} channels")
    if widths[-1][1] > MAX_OUT_VEC4:
        raise UnsupportedNetwork(f"{dims[-1][1]} stored channels, at most {4 * MAX_OUT_VEC4}")


def check_model(model: NTCModel) -> None:
    check_supported(model.latent.features, model.latent.hr_sampling, model.mlp_dims)


def macs_per_decode(dims: Sequence[tuple[int, int]]) -> dict:
    """Multiply-adds of one decoded texel: the layers' own shapes ("file") and what the shader
    runs ("shader": every width padded to a multiple of 4, the decoder's vec4s)."""
    return {"file": sum(i * o for i, o in dims),
            "shader": sum(layout.pad4(i) * layout.pad4(o) for i, o in dims),
            "layers": [list(d) for d in dims]}


def weight_vec4_count(dims: Sequence[tuple[int, int]]) -> int:
    """vec4s of the layers part of the block: per layer 4*out*in weights, then out biases."""
    return sum(4 * o * i + o for i, o in widths_vec4(dims))


def weight_block(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], features: int,
                 hr_sampling: str, mips: int, levels: int, texel_scale: float = 0.0,
                 texel_offset: float = 0.0) -> np.ndarray:
    """float32 [4 + 4 n]: the NtcModel block (module docstring) from float weights [out, in] and
    biases [out] of each layer."""
    dims = [(w.shape[1], w.shape[0]) for w in weights]
    check_supported(features, hr_sampling, dims)
    order = np.array(input_order(features, hr_sampling))
    parts = [np.array([max(1, mips - 1), texel_scale, texel_offset, levels - 1], np.float32)]
    for i, (w, b) in enumerate(zip(weights, biases)):
        out_n, in_n = w.shape
        wp = np.zeros((layout.pad4(out_n), layout.pad4(in_n)), np.float32)
        wp[:out_n, :in_n] = w
        if i == 0:
            wp = np.where(order[None, :] >= 0, wp[:, np.maximum(order, 0)], 0.0)
        bp = np.zeros(layout.pad4(out_n), np.float32)
        bp[:out_n] = b
        parts += [wp.astype(np.float32).ravel(), bp]
    return np.concatenate(parts).astype(np.float32)


def model_block(model: NTCModel) -> np.ndarray:
    """The NtcModel block of a file for the GL decoder: dequantized weights, and the info's texel
    scale and offset turning a latent texel's UNORM value back into the latent value."""
    lat = model.latent
    container_max = (1 << layout.container_bits(lat.bits)) - 1
    return weight_block([lw.dequantized() for lw in model.layers],
                        [lw.bias for lw in model.layers], lat.features, lat.hr_sampling,
                        model.mips, len(lat.levels), container_max * 2.0 / lat.qmax, -1.0)


HALF_MAX = 65504.0  # the largest finite IEEE half


def half_block(block: np.ndarray) -> bytes:
    """The NtcModelHalf block (ntc_decode.slang, the 16-bit variant) from an NtcModel block: the
    same info vec4 in float32, then every weight and bias as an IEEE half in the same order, two
    weight vec4s to each 16-byte element (the last one padded with zeros)."""
    info, layers = block[:4], block[4:]
    if layers.size and float(np.abs(layers).max()) > HALF_MAX:
        raise UnsupportedNetwork(f"a weight of {float(np.abs(layers).max()):.4g} does not fit "
                                 "a 16-bit float; decode this file with 32-bit arithmetic")
    halves = np.zeros(-(-layers.size // 8) * 8, "<f2")
    halves[:layers.size] = layers
    return info.astype("<f4").tobytes() + halves.tobytes()


def decoder_constants(model: NTCModel, hw_filter: bool = False) -> dict[str, int]:
    """Values of the specialisation constants of shaders/ntc_decode.slang for `model`."""
    check_model(model)
    outs = [o for _, o in widths_vec4(model.mlp_dims)]
    consts = {"NTC_FEATURES": model.latent.features, "NTC_LAYERS": len(outs),
              "NTC_GATHER4": int(model.latent.hr_sampling == "gather4"),
              "NTC_HW_FILTER": int(bool(hw_filter)),
              "NTC_LOD_BLEND": int(model.latent.lod_blend)}
    for i in range(MAX_LAYERS):
        consts[f"NTC_OUT{i}"] = outs[i] if i < len(outs) else 0
    return consts
