"""PNG/JPEG pixels in and out, exactly: 8- and 16-bit, 1-4 channels. The one image decoder of
the tools (texture folders, glTF images) and the PNG writer.

pypng keeps every bit depth as stored (Pillow decodes 16-bit RGB/RGBA PNGs as 8-bit and cannot
write them), Pillow is much faster for plain 8-bit PNGs and reads JPEGs: see decode_image.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import png

from .errors import NTCError
from .safe_files import read_regular_file


class ImageError(NTCError):
    """An image that cannot be read: one line, for the user."""


# The largest width or height decoded, checked from the file's header before any pixel is
# allocated (a few-KB PNG can declare 30000 x 30000). The CLIs' --max-size sets it
# (set_max_side); the .ntc format itself stops at 16384.
DEFAULT_MAX_SIDE = 8192
_max_side = DEFAULT_MAX_SIDE


def set_max_side(n: int) -> None:
    global _max_side
    _max_side = int(n)


def max_side() -> int:
    return _max_side


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone (PNG's IHDR, or Pillow's lazy open)."""
    if data[:8] == png.signature:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("not a valid PNG (no IHDR)")
        w, h = struct.unpack(">II", data[16:24])
        return w, h
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except UnidentifiedImageError:
        raise ImageError("not a PNG or JPEG image") from None
    except Exception as e:  # Pillow raises many types for bad headers
        raise ImageError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def check_size(w: int, h: int) -> None:
    if w > _max_side or h > _max_side:
        raise ImageError(f"{w}x{h} is larger than the limit of {_max_side} texels a side "
                         f"(--max-size raises it)")


def read_pixels(path: Path) -> np.ndarray:
    """uint8 or uint16 [H, W, C], C in 1..4, of an image file (regular files only: a FIFO or
    device is an error, never a wait); see decode_image."""
    path = Path(path)
    try:
        data = read_regular_file(path)
    except OSError as e:
        raise ImageError(f"cannot read image {path.name}: {e.strerror or e}") from None
    try:
        return decode_image(data)
    except ImageError as e:
        raise ImageError(f"cannot read image {path.name}: {e}") from None


def decode_image(data: bytes) -> np.ndarray:
    """See _decode; the size is checked against the limit from the header first."""
    check_size(*image_size(data))
    return _decode(data)


def _decode(data: bytes) -> np.ndarray:
    """uint8/uint16 [H, W, C], C in 1..4: PNG at its exact bit depth, or JPEG. 8-bit grey, RGB,
    grey+alpha and RGBA PNGs go through Pillow (about 16x faster than pypng on a 2K image); every
    other PNG (16-bit, palette, 1/2/4-bit, colour-key alpha) through pypng, which keeps the stored
    bit depth; palette images become RGB(A), 1/2/4-bit grey is rescaled to 8 bits."""
    try:
        simple_png = data[:8] == png.signature and len(data) > 26 and data[12:16] == b"IHDR" \
            and data[24] == 8 and data[25] in (0, 2, 4, 6) \
            and data.find(b"tRNS", 0, max(data.find(b"IDAT"), 0)) < 0  # colour-key alpha: pypng
        if data[:8] == png.signature and not simple_png:
            w, h, rows, info = png.Reader(bytes=data).asDirect()
            planes, depth = info["planes"], info["bitdepth"]
            arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]) if h else None
            if arr is None or arr.shape != (h, w * planes):
                raise ValueError("truncated pixel data")
            arr = arr.reshape(h, w, planes)
            if depth < 8:
                arr = arr * (255 // ((1 << depth) - 1))
            img = arr if depth == 16 else arr.astype(np.uint8)
        else:
            img = _decode_with_pillow(data)
    except Exception as e:  # decoders raise many types for bad data
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(msg) from None
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or not 1 <= img.shape[2] <= 4 or img.dtype not in (np.uint8, np.uint16) \
            or img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"unsupported image layout {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)


def _decode_with_pillow(data: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except UnidentifiedImageError:
        raise ValueError("not a PNG or JPEG image") from None
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode in ("1", "I;16B", "I;16L") or im.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB") if im.mode not in (
            "1", "I;16B", "I;16L") else im.convert("L" if im.mode == "1" else "I;16")
    arr = np.asarray(im)
    return arr.astype(np.uint16) if im.mode == "I;16" else arr


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of uint8/uint16 [H, W, C] (C in 1..4), at that bit depth."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    if pixels.dtype not in (np.uint8, np.uint16) or not 1 <= c <= 4:
        raise ValueError(f"cannot write {pixels.dtype} with {c} channels as PNG")
    buf = io.BytesIO()
    if depth == 8:  # Pillow for 8-bit (the fast path, as in decode_image); pypng for 16-bit RGB
        from PIL import Image
        Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if c == 1 else pixels)).save(
            buf, format="PNG", compress_level=6)
        return buf.getvalue()
    writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=depth, compression=6)
    writer.write_array(buf, pixels.reshape(-1))
    return buf.getvalue()
