"""BCn blocks on the CPU: encoded by bc7enc_rdo (the PyPI package bc7enc-py: rgbcx for BC1 / BC3 /
BC4 / BC5, bc7enc for BC7), decoded by texture2ddecoder, an independent decoder, so a round trip
here is what a GPU samples from the blocks.

BC4 has no entry point in bc7enc-py, but its BC5 encoder is two independent rgbcx BC4 encodes (R
block then G block, 8 bytes each): BC5 of the R channel twice, first 8 bytes of every block.
"""
from __future__ import annotations

import numpy as np

from .formats import BLOCK, FORMATS, BCFormat

BC1_LEVEL = 10        # rgbcx quality level for BC1 / BC3 colour (bc7enc's default)
BC7_UBER = 1          # bc7enc uber level (0..4): what the classical bench and baselines.md use
BC7_MAX_PARTITIONS = 64


def to_rgba8(pixels: np.ndarray, replicate_grey: bool = True) -> np.ndarray:
    """uint8 [H, W, C] (C 1..4) -> [H, W, 4]: 1 channel in R (and G, B when `replicate_grey`),
    2 in R, G (B 0), alpha 255 unless the image has one."""
    h, w, c = pixels.shape
    if c == 4:
        return np.ascontiguousarray(pixels)
    out = np.zeros((h, w, 4), np.uint8)
    out[..., 3] = 255
    if c == 1:
        out[..., :3 if replicate_grey else 1] = pixels[..., :1]
    else:
        out[..., :c] = pixels
    return out


def pad_to_blocks(rgba: np.ndarray) -> np.ndarray:
    """Edge-replicate to whole 4x4 blocks (what the texels of a partial edge block hold does not
    matter to a sampler; repeating the edge keeps them from costing the block's precision)."""
    h, w = rgba.shape[:2]
    ph, pw = (-h) % BLOCK, (-w) % BLOCK
    if ph or pw:
        rgba = np.pad(rgba, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return np.ascontiguousarray(rgba)


def encode(fmt: BCFormat | str, rgba: np.ndarray) -> bytes:
    """Blocks of one image, uint8 [H, W, 4] of any size, row 0 the top row, in `fmt`."""
    import bc7enc
    fmt = FORMATS[fmt] if isinstance(fmt, str) else fmt
    padded = pad_to_blocks(rgba)
    h, w = padded.shape[:2]
    raw = padded.tobytes()
    if fmt.name == "bc1":
        data = bc7enc.pack_dds(raw, w, h, "DXT1", level=BC1_LEVEL)
    elif fmt.name == "bc3":
        data = bc7enc.pack_dds(raw, w, h, "DXT5", level=BC1_LEVEL)
    elif fmt.name == "bc5":
        data = bc7enc.pack_dds(raw, w, h, "BC5", chan0=0, chan1=1)
    elif fmt.name == "bc4":
        bc5 = bc7enc.pack_dds(raw, w, h, "BC5", chan0=0, chan1=0)
        data = np.frombuffer(bc5, np.uint8).reshape(-1, 16)[:, :8].tobytes()
    elif fmt.name == "bc7":
        p = bc7enc.bc7enc_compress_block_params_init()
        p.m_uber_level = BC7_UBER
        p.m_max_partitions = BC7_MAX_PARTITIONS
        p.m_perceptual = False          # linear error on the stored bytes: the PSNR optimum
        p.m_weights[:] = [1, 1, 1, 1]
        data = bc7enc.pack_dds(raw, w, h, "BC7", params=p)
    else:
        raise ValueError(f"no encoder for {fmt.name}")
    if len(data) != fmt.level_bytes(w, h):  # the library's contract
        raise RuntimeError(f"{fmt.name}: the encoder returned {len(data)} bytes, expected "
                           f"{fmt.level_bytes(w, h)}")
    return data


def decode(fmt: BCFormat | str, data: bytes, width: int, height: int) -> np.ndarray:
    """uint8 [height, width, 4] RGBA of one level's blocks, as a GPU samples them: BC4 gives
    (R, 0, 0, 255), BC5 (R, G, 0, 255). texture2ddecoder returns BGRA; reordered here."""
    import texture2ddecoder as t2d
    fmt = FORMATS[fmt] if isinstance(fmt, str) else fmt
    pw, ph = -(-width // BLOCK) * BLOCK, -(-height // BLOCK) * BLOCK
    if len(data) != fmt.level_bytes(width, height):
        raise ValueError(f"{fmt.name} {width}x{height}: {len(data)} bytes, expected "
                         f"{fmt.level_bytes(width, height)}")
    fn = {"bc1": t2d.decode_bc1, "bc3": t2d.decode_bc3, "bc4": t2d.decode_bc4,
          "bc5": t2d.decode_bc5, "bc7": t2d.decode_bc7}[fmt.name]
    bgra = np.frombuffer(fn(data, pw, ph), np.uint8).reshape(ph, pw, 4)
    return np.ascontiguousarray(bgra[:height, :width, [2, 1, 0, 3]])


def encode_chain(fmt: BCFormat | str, levels: list[np.ndarray], progress=None) -> list[bytes]:
    """Blocks of every level of a mip chain (uint8 [h, w, 4] each); `progress(texels)` after
    each level, for a progress bar."""
    out = []
    for rgba in levels:
        out.append(encode(fmt, rgba))
        if progress is not None:
            progress(rgba.shape[0] * rgba.shape[1])
    return out


def block_input(pixels: np.ndarray, fmt: BCFormat) -> np.ndarray:
    """uint8 [H, W, 4] an encoder of `fmt` takes for a texture's channels (uint8 [H, W, C]): a
    4-channel format gets grey + alpha as (g, g, g, a), as glTF samples it; otherwise
    to_rgba8."""
    if fmt.channels == 4 and pixels.shape[2] == 2:
        pixels = pixels[..., [0, 0, 0, 1]]
    return to_rgba8(pixels)


def compress_texture(levels: list[np.ndarray], normal: bool, srgb: bool, progress=None):
    """A texture's mip chain (uint8 [h, w, C] per level, C 1..4) as the BCn texture an engine
    ships (formats.format_for): a dds.DDSTexture holding every level's blocks."""
    from .dds import DDSTexture
    from .formats import format_for
    h, w, channels = levels[0].shape
    fmt, srgb = format_for(channels, normal, srgb)
    blocks = encode_chain(fmt, [block_input(level, fmt) for level in levels], progress)
    return DDSTexture(fmt, srgb, w, h, blocks)
