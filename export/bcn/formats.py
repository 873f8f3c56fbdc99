"""The block-compressed formats engines ship (BC1, BC3, BC4, BC5, BC7), their numbers in GL and
DXGI, and which one a texture takes.

A texture's format follows what a desktop engine picks for it:
- a normal map: BC5 (X and Y; Z is rebuilt where it is sampled, as for neural normals);
- sRGB colour: BC7 sRGB, whatever its channels (a grey one as grey RGB, grey + alpha as RGBA);
- one channel (occlusion, roughness, height, ...): BC4;
- two channels: BC5;
- any other 3 or 4 channels: BC7.
BC1 and BC3 are in the table for the classical bench's BC1 set; no texture is given them here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import layout

BLOCK = 4  # texels per block side, every BC format


@dataclass(frozen=True)
class BCFormat:
    name: str            # "bc1", "bc3", "bc4", "bc5", "bc7"
    block_bytes: int     # bytes per 4x4 block
    channels: int        # channels it stores (BC1 / BC7: RGBA)
    gl_unorm: int        # GL internal format
    gl_srgb: int | None  # its sRGB twin, where GL has one
    dxgi_unorm: int      # DXGI_FORMAT of a DDS DX10 header
    dxgi_srgb: int | None

    def gl_format(self, srgb: bool) -> int:
        return self.gl_srgb if srgb and self.gl_srgb is not None else self.gl_unorm

    def dxgi_format(self, srgb: bool) -> int:
        return self.dxgi_srgb if srgb and self.dxgi_srgb is not None else self.dxgi_unorm

    def level_bytes(self, width: int, height: int) -> int:
        """Bytes of one level: whole blocks, edge blocks padded."""
        return (-(-width // BLOCK)) * (-(-height // BLOCK)) * self.block_bytes

    def chain_bytes(self, width: int, height: int, levels: int | None = None) -> int:
        """Bytes of the first `levels` mips (default: the full chain down to 1x1)."""
        n = layout.mip_count(width, height) if levels is None else levels
        return sum(self.level_bytes(*layout.mip_size(width, height, m)) for m in range(n))


FORMATS = {f.name: f for f in (
    BCFormat("bc1", 8, 4, 0x83F1, 0x8C4D, 71, 72),     # COMPRESSED_RGBA_S3TC_DXT1 / SRGB_ALPHA
    BCFormat("bc3", 16, 4, 0x83F3, 0x8C4F, 77, 78),    # COMPRESSED_RGBA_S3TC_DXT5 / SRGB_ALPHA
    BCFormat("bc4", 8, 1, 0x8DBB, None, 80, None),     # COMPRESSED_RED_RGTC1
    BCFormat("bc5", 16, 2, 0x8DBD, None, 83, None),    # COMPRESSED_RG_RGTC2
    BCFormat("bc7", 16, 4, 0x8E8C, 0x8E8D, 98, 99),    # COMPRESSED_RGBA_BPTC_UNORM / SRGB_ALPHA
)}
BY_DXGI = {dxgi: (f, dxgi == f.dxgi_srgb) for f in FORMATS.values()
           for dxgi in (f.dxgi_unorm, f.dxgi_srgb) if dxgi is not None}


def format_for(channels: int, normal: bool, srgb: bool) -> tuple[BCFormat, bool]:
    """(format, sRGB) an engine ships a texture of `channels` channels in (module docstring)."""
    if normal:
        return FORMATS["bc5"], False
    if srgb:
        return FORMATS["bc7"], True
    if channels == 1:
        return FORMATS["bc4"], False
    if channels == 2:
        return FORMATS["bc5"], False
    return FORMATS["bc7"], False
