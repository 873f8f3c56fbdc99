"""Classical GPU texture codecs (BCn via bc7enc_rdo, ASTC via Arm astcenc) as reference points.

Everything here is real encoding followed by real decoding, so the numbers are what a GPU would
sample from the compressed texture:

* BC1 / BC3 / BC4 / BC5 / BC7: ``export.bcn.codec`` (the viewer's and ntc-decode's encoder):
  ``bc7enc-py`` (bc7enc_rdo / rgbcx) encodes, ``texture2ddecoder`` decodes. (Its BC4 beats
  ``etcpak.compress_bc4`` by ~3 dB on smooth images; etcpak's *decompress* functions segfault.)
* ASTC: ``astc-encoder-py`` with the MEDIUM preset on one thread, decoded with the library's own
  decompressor (correct for sRGB).

Public API: :data:`CODECS`, :func:`roundtrip`, :data:`SET_KINDS`, :func:`set_codecs`, :func:`psnr`.
The codec libraries are imported lazily, so ``set_codecs`` works without them.
"""

from __future__ import annotations

import threading

import numpy as np

from export.bcn import codec as bc_codec
from export.bcn.codec import to_rgba8

__all__ = ["CODECS", "SET_KINDS", "roundtrip", "set_codecs"]

CODECS = ("bc1", "bc3", "bc4", "bc5", "bc7", "astc4x4", "astc6x6", "astc8x8", "astc12x12")
SET_KINDS = ("BC1", "BC7", "ASTC4x4", "ASTC6x6", "ASTC8x8", "ASTC12x12")

_ASTC_BLOCKS = {"astc4x4": 4, "astc6x6": 6, "astc8x8": 8, "astc12x12": 12}


# ----------------------------------------------------------------------------- helpers

def _check_image(img) -> np.ndarray:
    """Validate and return a contiguous HxWxC uint8 view (2-D input becomes HxWx1)."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"image must be HxWxC (or HxW), got shape {img.shape}")
    h, w, c = img.shape
    if h < 1 or w < 1:
        raise ValueError(f"image must be at least 1x1, got shape {img.shape}")
    if not 1 <= c <= 4:
        raise ValueError(f"image must have 1..4 channels, got {c} (shape {img.shape})")
    return np.ascontiguousarray(img)


def _reconstruct_normal_z(rg: np.ndarray) -> np.ndarray:
    """Decoded 8-bit X, Y (HxWx2) -> 8-bit Z, as the renderer does it."""
    x = rg[..., 0].astype(np.float64) * (2.0 / 255.0) - 1.0
    y = rg[..., 1].astype(np.float64) * (2.0 / 255.0) - 1.0
    z = np.sqrt(np.maximum(0.0, 1.0 - x * x - y * y))
    return np.clip(np.floor((z * 0.5 + 0.5) * 255.0 + 0.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- BCn

def _bc_roundtrip(codec: str, img: np.ndarray, normal: bool) -> tuple[np.ndarray, int]:
    h, w, c = img.shape
    rgba = to_rgba8(img, replicate_grey=codec in ("bc1", "bc3", "bc7"))
    data = bc_codec.encode(codec, rgba)
    dec = bc_codec.decode(codec, data, w, h)

    if c == 1:
        out = dec[..., :1]
    else:
        out = dec[..., :c].copy()
        if codec == "bc5" and normal and c >= 3:
            out[..., 2] = _reconstruct_normal_z(dec[..., :2])
    return np.ascontiguousarray(out), len(data)


# ----------------------------------------------------------------------------- ASTC

_ASTC_CTX: dict = {}  # (srgb, block) -> (ASTCContext, lock)
_ASTC_LOCK = threading.Lock()


def _astc_context(srgb: bool, block: int):
    import astc_encoder as ae

    key = (bool(srgb), block)
    with _ASTC_LOCK:
        entry = _ASTC_CTX.get(key)
        if entry is None:
            profile = ae.ASTCProfile.LDR_SRGB if srgb else ae.ASTCProfile.LDR
            cfg = ae.ASTCConfig(profile, block, block, 1, ae.ASTCQualityPreset.MEDIUM)
            entry = (ae.ASTCContext(cfg, threads=1), threading.Lock())
            _ASTC_CTX[key] = entry
        return entry


def _astc_roundtrip(codec: str, img: np.ndarray, srgb: bool) -> tuple[np.ndarray, int]:
    import astc_encoder as ae

    block = _ASTC_BLOCKS[codec]
    h, w, c = img.shape
    # 1 channel is stored as luminance (R=G=B), which is what ASTC's L endpoint modes are for.
    rgba = to_rgba8(img, replicate_grey=True)
    ctx, lock = _astc_context(srgb, block)
    sw = ae.ASTCSwizzle.from_str("RGBA")
    with lock:  # an astcenc context must not be used by two threads at once
        data = ctx.compress(ae.ASTCImage(ae.ASTCType.U8, w, h, 1, rgba.tobytes()), sw)
        out_img = ae.ASTCImage(ae.ASTCType.U8, w, h, 1)
        ctx.decompress(data, out_img, sw)
    expected = -(-w // block) * -(-h // block) * 16
    if len(data) != expected:  # pragma: no cover - library contract check
        raise RuntimeError(f"{codec}: encoder returned {len(data)} bytes, expected {expected}")
    dec = np.frombuffer(out_img.data, np.uint8).reshape(h, w, 4)
    return np.ascontiguousarray(dec[..., :c]), len(data)


# ----------------------------------------------------------------------------- public

def roundtrip(codec: str, img: np.ndarray, srgb: bool = False, normal: bool = False) -> tuple[np.ndarray, float]:
    """Encode ``img`` with ``codec`` and decode it again.

    img: uint8 HxWxC with C in 1..4 (HxW is treated as one channel), any H, W >= 1.
    Returns ``(decoded, bits_per_texel)``: ``decoded`` has the same shape as ``img``;
    ``bits_per_texel`` = encoded mip-0 bytes (whole blocks) * 8 / (H*W).

    * BC codecs: edge-pad to multiples of 4, encode, decode, crop. ``srgb`` does not change BC
      encoding (bc7enc has no sRGB mode; sRGB/UNORM BC formats store the same bits).
      1-channel images go in R (and G, B for bc1/bc3/bc7); channels a format cannot store come
      back as the GPU would sample them (e.g. 0 for G/B in bc4, alpha 255 for bc1).
    * ``normal=True`` with bc5 (and C >= 3): only X, Y (R, G) are stored; B is the reconstructed
      Z = sqrt(max(0, 1 - x^2 - y^2)) re-encoded to 8 bits. Other codecs ignore ``normal``
      (normals are compressed as plain RGB).
    * ASTC codecs: MEDIUM preset, LDR_SRGB profile if ``srgb`` else LDR, partial blocks allowed.
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
    two_d = isinstance(img, np.ndarray) and img.ndim == 2
    arr = _check_image(img)
    h, w = arr.shape[:2]
    if codec in _ASTC_BLOCKS:
        out, nbytes = _astc_roundtrip(codec, arr, srgb)
    else:
        out, nbytes = _bc_roundtrip(codec, arr, normal)
    if two_d:
        out = out[..., 0]
    return out, nbytes * 8.0 / (h * w)


def _is_normal_role(role) -> bool:
    return isinstance(role, str) and role.lower().startswith("normal")


def set_codecs(kind: str, textures: list[dict]) -> list[str]:
    """Codec a user would pick for each texture of a set under scheme ``kind``.

    textures: dicts with 'channels' (1..4) and 'role' ('baseColor', 'normal', 'orm', ...).
    'BC1'  -> 1ch bc4, 2ch bc5, 3ch bc1, 4ch bc3.
    'BC7'  -> normal (role starting with 'normal') bc5, 1ch bc4, 2ch bc5, otherwise bc7.
    'ASTC<b>x<b>' -> that ASTC block size for every texture.
    """
    if kind not in SET_KINDS:
        raise ValueError(f"unknown set kind {kind!r}; expected one of {SET_KINDS}")
    out = []
    for i, t in enumerate(textures):
        if not isinstance(t, dict) or "channels" not in t:
            raise ValueError(f"texture {i}: expected a dict with 'channels' and 'role', got {t!r}")
        ch = t["channels"]
        if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)) or not 1 <= ch <= 4:
            raise ValueError(f"texture {i}: 'channels' must be an int in 1..4, got {ch!r}")
        role = t.get("role")
        if kind == "BC1":
            out.append({1: "bc4", 2: "bc5", 3: "bc1", 4: "bc3"}[int(ch)])
        elif kind == "BC7":
            if _is_normal_role(role) or ch == 2:
                out.append("bc5")
            elif ch == 1:
                out.append("bc4")
            else:
                out.append("bc7")
        else:
            out.append("astc" + kind[4:])
    return out
