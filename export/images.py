"""PNG/JPEG pixels in and out, exactly: 8- and 16-bit, 1-4 channels.

PNGs go through pypng, which keeps every bit depth as stored (Pillow, behind imageio, decodes 16-bit
RGB/RGBA PNGs as 8-bit and cannot write them); JPEGs (always 8-bit) through imageio.
"""
from __future__ import annotations

import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import png


class ImageError(Exception):
    """An image that cannot be read: one line, for the user."""


def read_pixels(path: Path) -> np.ndarray:
    """uint8 or uint16 [H, W, C], C in 1..4; palette and low-bit-depth PNGs become 8-bit."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if head == png.signature:
            return _read_png(path)
        img = iio.imread(path, plugin="pillow")
    except OSError as e:
        raise ImageError(f"cannot read image {path.name}: {e.strerror or e}") from None
    except Exception as e:  # decoders raise many types for bad files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"cannot read image {path.name}: {msg}") from None
    return img[:, :, None] if img.ndim == 2 else img


def _read_png(path: Path) -> np.ndarray:
    try:
        w, h, rows, info = png.Reader(filename=str(path)).asDirect()
        planes, depth = info["planes"], info["bitdepth"]
        data = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]) if h else None
    except (png.Error, ValueError, EOFError) as e:
        raise ImageError(f"cannot read image {path.name}: {str(e).splitlines()[0] or 'corrupt PNG'}") from None
    if data is None or data.shape != (h, w * planes):
        raise ImageError(f"cannot read image {path.name}: truncated pixel data")
    data = data.reshape(h, w, planes)
    if depth == 16:
        return data
    if depth < 8:  # 1/2/4-bit greyscale: rescale to the 8-bit range
        data = data * (255 // ((1 << depth) - 1))
    return data.astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of uint8/uint16 [H, W, C] (C in 1..4), at that bit depth."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    if pixels.dtype not in (np.uint8, np.uint16) or not 1 <= c <= 4:
        raise ValueError(f"cannot write {pixels.dtype} with {c} channels as PNG")
    writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=depth, compression=6)
    buf = io.BytesIO()
    writer.write_array(buf, pixels.reshape(-1))
    return buf.getvalue()
