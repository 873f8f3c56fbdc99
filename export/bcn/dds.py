"""DDS files of BCn textures with full mip chains: the DX10 header (DXGI format, sRGB flag) that
engines and texture tools read, written and read back strictly.

Layout: "DDS " magic, DDS_HEADER (124 bytes), DDS_HEADER_DXT10 (20 bytes), then each mip level's
blocks, largest first. Only what this project writes is read back (2D, one array slice, a BC
format of export.bcn.formats); anything else is a DDSError naming what is wrong, so a damaged
cache file is recompressed instead of sampled.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .. import layout
from ..errors import NTCError
from .formats import BY_DXGI, BCFormat

MAGIC = b"DDS "
HEADER_SIZE, PIXELFORMAT_SIZE = 124, 32
DDSD_CAPS, DDSD_HEIGHT, DDSD_WIDTH = 0x1, 0x2, 0x4
DDSD_PIXELFORMAT, DDSD_MIPMAPCOUNT, DDSD_LINEARSIZE = 0x1000, 0x20000, 0x80000
DDPF_FOURCC = 0x4
DDSCAPS_COMPLEX, DDSCAPS_TEXTURE, DDSCAPS_MIPMAP = 0x8, 0x1000, 0x400000
D3D10_RESOURCE_DIMENSION_TEXTURE2D = 3
DDS_ALPHA_MODE_STRAIGHT = 1
_HEADER = struct.Struct("<4s7I44s2I4s5I5I")   # magic .. caps4, reserved2 (4 + 124 bytes)
_DX10 = struct.Struct("<5I")


class DDSError(NTCError):
    """A DDS file that is not a 2D BCn texture as this project writes it, or is damaged."""


@dataclass
class DDSTexture:
    format: BCFormat
    srgb: bool
    width: int
    height: int
    levels: list[bytes]   # blocks of mip 0, 1, ... (each format.level_bytes of its size)


def to_bytes(tex: DDSTexture) -> bytes:
    """The DDS file of `tex` (every level present, sizes checked)."""
    n = len(tex.levels)
    if not 1 <= n <= layout.mip_count(tex.width, tex.height):
        raise ValueError(f"{n} levels for a {tex.width}x{tex.height} texture")
    for m, blocks in enumerate(tex.levels):
        expected = tex.format.level_bytes(*layout.mip_size(tex.width, tex.height, m))
        if len(blocks) != expected:
            raise ValueError(f"level {m}: {len(blocks)} bytes, expected {expected}")
    flags = DDSD_CAPS | DDSD_HEIGHT | DDSD_WIDTH | DDSD_PIXELFORMAT | DDSD_LINEARSIZE
    caps = DDSCAPS_TEXTURE
    if n > 1:
        flags |= DDSD_MIPMAPCOUNT
        caps |= DDSCAPS_COMPLEX | DDSCAPS_MIPMAP
    header = _HEADER.pack(MAGIC, HEADER_SIZE, flags, tex.height, tex.width, len(tex.levels[0]),
                          0, n, b"\0" * 44, PIXELFORMAT_SIZE, DDPF_FOURCC, b"DX10",
                          0, 0, 0, 0, 0, caps, 0, 0, 0, 0)
    alpha = DDS_ALPHA_MODE_STRAIGHT if tex.format.channels == 4 else 0
    dx10 = _DX10.pack(tex.format.dxgi_format(tex.srgb), D3D10_RESOURCE_DIMENSION_TEXTURE2D, 0, 1,
                      alpha)
    return header + dx10 + b"".join(tex.levels)


def from_bytes(data: bytes, what: str = "DDS file") -> DDSTexture:
    """Parse a DDS file this project writes; DDSError naming `what` on anything else."""
    def fail(msg: str):
        raise DDSError(f"{what}: {msg}")

    if len(data) < _HEADER.size + _DX10.size:
        fail(f"{len(data)} bytes, too short for a DDS header")
    f = _HEADER.unpack_from(data)
    magic, size, flags, height, width, _, _, mips = f[:8]
    pf_size, pf_flags, fourcc = f[9:12]
    if magic != MAGIC or size != HEADER_SIZE or pf_size != PIXELFORMAT_SIZE:
        fail("not a DDS file")
    if not pf_flags & DDPF_FOURCC or fourcc != b"DX10":
        fail("no DX10 header (only DX10 BCn files are read)")
    dxgi, dim, _, array, _ = _DX10.unpack_from(data, _HEADER.size)
    if dxgi not in BY_DXGI:
        fail(f"DXGI format {dxgi} is not BC1/BC3/BC4/BC5/BC7")
    if dim != D3D10_RESOURCE_DIMENSION_TEXTURE2D or array != 1:
        fail("not a single 2D texture")
    if not (1 <= width <= 1 << 16 and 1 <= height <= 1 << 16):
        fail(f"size {width}x{height}")
    levels = mips if flags & DDSD_MIPMAPCOUNT and mips > 0 else 1
    if levels > layout.mip_count(width, height):
        fail(f"{levels} mip levels for {width}x{height}")
    fmt, srgb = BY_DXGI[dxgi]
    pos, out = _HEADER.size + _DX10.size, []
    for m in range(levels):
        n = fmt.level_bytes(*layout.mip_size(width, height, m))
        if pos + n > len(data):
            fail(f"truncated in mip {m}")
        out.append(bytes(data[pos:pos + n]))
        pos += n
    if pos != len(data):
        fail(f"{len(data) - pos} bytes after the last mip")
    return DDSTexture(fmt, srgb, width, height, out)
