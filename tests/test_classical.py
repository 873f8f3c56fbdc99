"""Tests for bench/classical.py: real BCn / ASTC encode + decode round trips on tiny images."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # so the test also runs when pytest is started outside the repo root
    sys.path.insert(0, _ROOT)

from bench import classical  # noqa: E402
from bench.classical import CODECS, SET_KINDS, roundtrip, set_codecs  # noqa: E402
from export.metrics import psnr  # noqa: E402


def _need_codecs():
    for mod in ("bc7enc", "astc_encoder", "texture2ddecoder"):
        pytest.importorskip(mod)


def _test_image(h, w, c=3, seed=0):
    """Smooth image whose channels are very different: R ramps in x, G in y, B the other diagonal,
    A a slow wave; plus a little noise so the encoders have something to do."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [
        20 + 215 * x / max(w - 1, 1),
        235 - 215 * y / max(h - 1, 1),
        128 + 100 * np.sin((x - y) / 9.0),
        160 + 80 * np.cos(x / 11.0 + y / 13.0),
    ]
    rng = np.random.default_rng(seed)
    img = np.dstack(chans[:c]) + rng.normal(0.0, 1.0, (h, w, c))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# Channels each codec is naturally used with, and a per-channel PSNR floor (dB) on the test image.
# A broken codec (zeros, swapped R/B, G/B left at zero, misplaced blocks) lands far below these.
_NATURAL_C = {"bc4": 1, "bc5": 2}
# (Measured minima over both sizes: bc1/bc3 31, bc4 48, bc5 46, bc7 37, astc 36/33/30/26; a channel
# swap gives 9-14 dB, all zeros ~5 dB.)
_FLOOR = {"bc1": 26, "bc3": 26, "bc4": 42, "bc5": 40, "bc7": 32,
          "astc4x4": 32, "astc6x6": 28, "astc8x8": 25, "astc12x12": 22}
_BLOCK = {"bc1": (4, 8), "bc3": (4, 16), "bc4": (4, 8), "bc5": (4, 16), "bc7": (4, 16),
          "astc4x4": (4, 16), "astc6x6": (6, 16), "astc8x8": (8, 16), "astc12x12": (12, 16)}


def _expected_bits(codec, h, w):
    b, nbytes = _BLOCK[codec]
    return math.ceil(w / b) * math.ceil(h / b) * nbytes * 8 / (h * w)


@pytest.mark.parametrize("hw", [(48, 64), (22, 30)])
@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip_shape_bits_quality(codec, hw):
    _need_codecs()
    h, w = hw
    img = _test_image(h, w, _NATURAL_C.get(codec, 3))
    out, bits = roundtrip(codec, img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert bits == pytest.approx(_expected_bits(codec, h, w), rel=1e-12)
    for ch in range(img.shape[2]):  # per channel: catches channel swaps / dropped channels
        assert psnr(out[..., ch], img[..., ch]) > _FLOOR[codec], (codec, ch)
    # a swapped order really would be caught: R and B of the test image are far apart
    if img.shape[2] >= 3:
        assert psnr(img[..., 0], img[..., 2]) < min(_FLOOR.values()) - 5
        assert psnr(out[..., [2, 1, 0]], img) < min(_FLOOR.values()) - 5


def test_bits_exact_values():
    _need_codecs()
    img = _test_image(22, 30, 3)
    assert roundtrip("bc1", img)[1] == 8 * 6 * 8 * 8 / (22 * 30)  # ceil(30/4)=8, ceil(22/4)=6
    assert roundtrip("astc12x12", img)[1] == 3 * 2 * 128 / (22 * 30)
    assert roundtrip("bc7", _test_image(48, 64, 3))[1] == 8.0
    assert roundtrip("astc8x8", _test_image(48, 64, 3))[1] == 2.0
    assert roundtrip("bc4", np.full((1, 1, 1), 77, np.uint8)) == (np.full((1, 1, 1), 77, np.uint8), 64.0)


@pytest.mark.parametrize("codec", CODECS)
def test_any_channel_count_and_size(codec):
    _need_codecs()
    h, w = 13, 10
    bits0 = None
    for c in (1, 2, 3, 4):
        img = _test_image(h, w, c, seed=c)
        out, bits = roundtrip(codec, img)
        assert out.shape == (h, w, c) and out.dtype == np.uint8
        assert bits0 is None or bits == bits0  # rate depends on the codec only
        bits0 = bits
        # channel 0 is always stored (R, or luminance); tiny image, so a looser floor
        assert psnr(out[..., 0], img[..., 0]) > _FLOOR[codec] - 7, (codec, c)


def test_2d_and_non_contiguous_input():
    _need_codecs()
    img = _test_image(21, 17, 3)
    gray = np.ascontiguousarray(img[..., 1])
    out, bits = roundtrip("bc4", gray)
    assert out.shape == gray.shape and psnr(out, gray) > 38
    flipped = img[::-1, ::2]  # non-contiguous view
    out, _ = roundtrip("bc7", flipped)
    assert out.shape == flipped.shape and psnr(out, flipped) > 30


def test_alpha_channel():
    _need_codecs()
    img = _test_image(24, 20, 4)
    for codec in ("bc3", "bc7", "astc4x4"):
        out, _ = roundtrip(codec, img)
        assert psnr(out[..., 3], img[..., 3]) > 30, codec
    # BC1 has no alpha: decoded alpha is what the format gives (opaque), RGB still fine
    out, _ = roundtrip("bc1", img)
    assert np.all(out[..., 3] == 255)
    assert psnr(out[..., :3], img[..., :3]) > 26


def _normal_map(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    nx = 0.5 * np.sin(x / 9.0)
    ny = 0.4 * np.cos(y / 7.0)
    nz = np.sqrt(1.0 - nx ** 2 - ny ** 2)
    return np.clip(np.floor((np.dstack([nx, ny, nz]) * 0.5 + 0.5) * 255 + 0.5), 0, 255).astype(np.uint8)


def test_bc5_normal_reconstructs_z():
    _need_codecs()
    n = _normal_map(30, 26)
    out, bits = roundtrip("bc5", n, normal=True)
    assert out.shape == n.shape and bits == _expected_bits("bc5", 30, 26)
    x = out[..., 0] / 127.5 - 1.0
    y = out[..., 1] / 127.5 - 1.0
    z = np.sqrt(np.maximum(0.0, 1.0 - x * x - y * y))
    assert np.array_equal(out[..., 2], np.floor((z * 0.5 + 0.5) * 255 + 0.5).astype(np.uint8))
    assert psnr(out, n) > 42
    # input B is not stored: garbage there must not matter
    n2 = n.copy()
    n2[..., 2] = 0
    assert np.array_equal(roundtrip("bc5", n2, normal=True)[0], out)
    # without normal=True, bc5 returns what the format samples as (B = 0)
    assert np.all(roundtrip("bc5", n)[0][..., 2] == 0)
    # other codecs compress the normal map as plain RGB
    out7, _ = roundtrip("bc7", n, normal=True)
    assert psnr(out7, n) > 36


def test_astc_srgb_and_context_cache():
    _need_codecs()
    img = _test_image(20, 28, 3)
    lin, b1 = roundtrip("astc6x6", img)
    srgb, b2 = roundtrip("astc6x6", img, srgb=True)
    assert b1 == b2 and srgb.shape == img.shape
    assert psnr(srgb, img) > _FLOOR["astc6x6"]
    assert classical._astc_context(True, 6) is classical._astc_context(True, 6)
    assert classical._astc_context(True, 6) is not classical._astc_context(False, 6)
    # reusing a cached context is deterministic
    assert np.array_equal(roundtrip("astc6x6", img)[0], lin)


@pytest.mark.parametrize("bad", [
    np.zeros((8, 8, 3), np.float32),
    np.zeros((8, 8, 5), np.uint8),
    np.zeros((8,), np.uint8),
    np.zeros((0, 8, 3), np.uint8),
    np.zeros((2, 8, 8, 3), np.uint8),
    [[1, 2], [3, 4]],
])
def test_bad_images_raise(bad):
    with pytest.raises(ValueError):
        roundtrip("bc1", bad)


def test_unknown_codec_raises():
    with pytest.raises(ValueError, match="unknown codec"):
        roundtrip("bc2", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown codec"):
        roundtrip("ASTC4x4", np.zeros((4, 4, 3), np.uint8))


def test_set_codecs():
    tex = [
        {"channels": 3, "role": "baseColor"},
        {"channels": 4, "role": "baseColor"},
        {"channels": 3, "role": "normal"},
        {"channels": 3, "role": "orm"},
        {"channels": 1, "role": "roughness"},
        {"channels": 2, "role": "metallicRoughness"},
    ]
    assert set_codecs("BC1", tex) == ["bc1", "bc3", "bc1", "bc1", "bc4", "bc5"]
    assert set_codecs("BC7", tex) == ["bc7", "bc7", "bc5", "bc7", "bc4", "bc5"]
    for kind, b in zip(SET_KINDS[2:], ("4x4", "6x6", "8x8", "12x12")):
        assert set_codecs(kind, tex) == ["astc" + b] * len(tex)
    for kind in SET_KINDS:
        assert set(set_codecs(kind, tex)) <= set(CODECS)
        assert set_codecs(kind, []) == []
    with pytest.raises(ValueError, match="unknown set kind"):
        set_codecs("BC3", tex)
    with pytest.raises(ValueError):
        set_codecs("BC1", [{"channels": 5, "role": "x"}])
    with pytest.raises(ValueError):
        set_codecs("BC7", [{"role": "normal"}])


def test_psnr():
    a = np.zeros((4, 5, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    b = a + 1
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2))
    assert psnr(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8)) == pytest.approx(0.0)
    # no uint8 wrap-around
    assert psnr(np.full((3,), 250, np.uint8), np.full((3,), 5, np.uint8)) == pytest.approx(
        10 * math.log10(255 ** 2 / 245 ** 2))
    with pytest.raises(ValueError):
        psnr(a, np.zeros((4, 5), np.uint8))
