"""Helpers for the .ntc container's tests (test_format.py, test_format_rejects.py): compare two
models exactly, take a file apart and put an edited one back together with every CRC right, and
small untrained models of every layout."""
from __future__ import annotations

import json
import zlib

import numpy as np
import torch

from export.format import ALIGN, MAGIC, PREAMBLE, VERSION
from export.model import CONST, COPY, NORMAL_Z, STORED, ChannelInfo, NTCModel, TextureInfo
from trainer.network import NetworkConfig, NeuralTexture


def assert_models_equal(a: NTCModel, b: NTCModel) -> None:
    assert (a.width, a.height, a.mips) == (b.width, b.height, b.mips)
    assert a.textures == b.textures
    assert a.stored_channels == b.stored_channels
    assert a.latent == b.latent
    assert (a.activation, a.weight_format, a.extra) == (b.activation, b.weight_format, b.extra)
    assert len(a.latents) == len(b.latents)
    for qa, qb in zip(a.latents, b.latents):
        assert qa.dtype == qb.dtype == np.uint8
        assert qa.shape == qb.shape
        assert np.array_equal(qa, qb)
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert la.weight.dtype == lb.weight.dtype
        assert la.weight.shape == lb.weight.shape
        assert np.array_equal(la.weight, lb.weight)
        assert (la.scale is None) == (lb.scale is None)
        if la.scale is not None:
            assert la.scale.dtype == lb.scale.dtype == np.float32
            assert np.array_equal(la.scale, lb.scale)
        assert lb.bias.dtype == np.float32
        assert np.array_equal(la.bias, lb.bias)


def split(data: bytes) -> tuple[dict, dict[str, bytes]]:
    """A valid file -> (header dict, chunk name -> bytes)."""
    _, _, hlen, _ = PREAMBLE.unpack_from(data)
    header = json.loads(data[PREAMBLE.size:PREAMBLE.size + hlen])
    chunks = {e["name"]: data[e["offset"]:e["offset"] + e["size"]] for e in header["chunks"]}
    return header, chunks


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def assemble(header, chunks: dict[str, bytes], text=lambda b: b, version: int = VERSION) -> bytes:
    """Rebuild a file from a (possibly edited) header: chunk offsets, sizes and every CRC are
    recomputed, so the only thing wrong with the result is what the test changed on purpose.
    Chunks are laid out in the order of header["chunks"] (entries may be removed or repeated)."""
    names = [e["name"] for e in header["chunks"]] if isinstance(header, dict) else []
    hlen = 0
    for _ in range(10):
        offset, table = _align(PREAMBLE.size + hlen), []
        for name in names:
            blob = chunks[name]
            table.append({"name": name, "offset": offset, "size": len(blob),
                          "crc32": zlib.crc32(blob)})
            offset = _align(offset + len(blob))
        if isinstance(header, dict):
            header["chunks"] = table
        hb = text(json.dumps(header, separators=(",", ":")).encode())
        if len(hb) == hlen:
            break
        hlen = len(hb)
    out = bytearray(PREAMBLE.pack(MAGIC, version, len(hb), zlib.crc32(hb)) + hb)
    for name, entry in zip(names, table):
        out += b"\0" * (entry["offset"] - len(out))
        out += chunks[name]
    return bytes(out)


def with_header_bytes(data: bytes, header_bytes: bytes) -> bytes:
    """Replace the header bytes (CRC fixed up), keep everything after it."""
    _, _, hlen, _ = PREAMBLE.unpack_from(data)
    return (PREAMBLE.pack(MAGIC, VERSION, len(header_bytes), zlib.crc32(header_bytes))
            + header_bytes + data[PREAMBLE.size + hlen:])


def untrained(cfg: NetworkConfig, w: int, h: int, textures: list[TextureInfo], stored: int,
              seed: int = 0) -> NTCModel:
    torch.manual_seed(seed)
    return NeuralTexture(cfg, w, h, stored).export(textures, {"note": "untrained", "n": seed})


def _tex(name, role, channels, colorspace="linear", depth=8, weight=1.0):
    return TextureInfo(name=name, file=name + ".png", role=role, colorspace=colorspace,
                       bit_depth=depth, channels=channels, weight=weight)


# A set that uses every channel kind, 16-bit depth, an alpha channel and a non-default weight.
MIXED_TEXTURES = [
    _tex("albedo", "baseColor", [ChannelInfo(STORED, index=0), ChannelInfo(STORED, index=1),
                                 ChannelInfo(STORED, index=2), ChannelInfo(STORED, index=3)],
         colorspace="srgb"),
    _tex("nrm", "normal", [ChannelInfo(STORED, index=4), ChannelInfo(STORED, index=5),
                           ChannelInfo(NORMAL_Z)], weight=2.5),
    _tex("grey", "roughness", [ChannelInfo(STORED, index=6), ChannelInfo(COPY, index=0),
                               ChannelInfo(COPY, index=0)], depth=16),
    _tex("flat", "metallic", [ChannelInfo(CONST, value=0.37254902)]),
]

ROUND_TRIP_CASES = {
    # name: (config, width, height)
    "bits2_gather4_fp16": (NetworkConfig(features=4, bits=2, grid_scale=8.0, hr_sampling="gather4",
                                         hidden=(16,), weight_format="fp16"), 37, 5),
    "bits3_int8": (NetworkConfig(features=12, bits=3, grid_scale=2.83, hr_sampling="bilinear",
                                  hidden=(24, 8)), 40, 24),
    "bits5_int8": (NetworkConfig(features=16, bits=5, grid_scale=5.66, hr_sampling="bilinear",
                                  hidden=(8, 8, 8)), 13, 64),
    "bits6_gather4": (NetworkConfig(features=8, bits=6, grid_scale=4.0, hr_sampling="gather4",
                                    hidden=(12,)), 24, 40),
    "bits7_fp16": (NetworkConfig(features=8, bits=7, grid_scale=2.0, hr_sampling="bilinear",
                                 hidden=(20,), weight_format="fp16"), 9, 9),
    "bits8_int8": (NetworkConfig(features=4, bits=8, grid_scale=4.0, hr_sampling="bilinear",
                                  hidden=()), 16, 16),
    "one_texel": (NetworkConfig(features=4, bits=4, grid_scale=4.0, hr_sampling="bilinear",
                                 hidden=(8,)), 1, 1),
}
