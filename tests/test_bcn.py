"""BCn as engines ship it (export/bcn): the format table and each texture's format, the CPU encoder
round trip through an independent decoder (texture2ddecoder), DDS files read back strictly by our
reader and by Pillow's, and `ntc-decode --format dds` as a user meets it."""
from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
from PIL import Image

from conftest import RICH_SET, write_set
from export import layout
from export.bcn import FORMATS, codec, dds, format_for
from export.bcn.dds import DDSError, DDSTexture, from_bytes, to_bytes
from cli_run import one_line_error, run


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def smooth_image(h: int, w: int, channels: int = 4, seed: int = 0) -> np.ndarray:
    """uint8 [h, w, channels]: gradients and a soft wave, what real textures mostly hold."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    chans = [0.5 + 0.4 * np.sin(x / (5 + 3 * c) + y / (7 + 2 * c) + rng.random() * 6)
             for c in range(channels)]
    return np.clip(np.rint(np.stack(chans, -1) * 255), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# formats

def test_format_table_sizes():
    for f in FORMATS.values():
        assert f.level_bytes(4, 4) == f.block_bytes
        assert f.level_bytes(5, 3) == 2 * f.block_bytes        # partial blocks count whole
        assert f.level_bytes(1, 1) == f.block_bytes
        w, h = 40, 24
        levels = [f.level_bytes(*layout.mip_size(w, h, m)) for m in range(layout.mip_count(w, h))]
        assert f.chain_bytes(w, h) == sum(levels)
    assert FORMATS["bc7"].chain_bytes(2048, 2048) == 5_592_432   # baselines.md: all-BC7 / 4 maps


@pytest.mark.parametrize("channels, normal, srgb, expected", [
    (3, False, True, ("bc7", True)),     # colour
    (4, False, True, ("bc7", True)),     # colour + alpha
    (1, False, True, ("bc7", True)),     # grey colour: BC4 has no sRGB form
    (3, True, False, ("bc5", False)),    # normal: X, Y
    (1, False, False, ("bc4", False)),   # roughness, occlusion, height
    (2, False, False, ("bc5", False)),
    (3, False, False, ("bc7", False)),   # ORM
])
def test_format_for(channels, normal, srgb, expected):
    fmt, is_srgb = format_for(channels, normal, srgb)
    assert (fmt.name, is_srgb) == expected


# ---------------------------------------------------------------------------------------------
# the encoder, through an independent decoder

# Floors ~3 dB under what these images measured (BC1 34.6, BC3 35.8, BC4 39.5, BC5 40.7, BC7
# 42.6 dB at 40x24); a wrong block order or channel order measures 7-9 dB.
@pytest.mark.parametrize("name, channels, floor", [
    ("bc1", 3, 31.0), ("bc3", 4, 32.0), ("bc4", 1, 36.0), ("bc5", 2, 37.0), ("bc7", 4, 39.0)])
@pytest.mark.parametrize("size", [(24, 40), (7, 5), (1, 1)])
def test_round_trip_every_format(name, channels, floor, size):
    img = smooth_image(*size, channels)
    fmt = FORMATS[name]
    blocks = codec.encode(fmt, codec.to_rgba8(img, replicate_grey=False))
    assert len(blocks) == fmt.level_bytes(size[1], size[0])
    back = codec.decode(fmt, blocks, size[1], size[0])
    assert back.shape == (*size, 4)
    assert psnr8(back[..., :channels], img) >= floor, name
    if name == "bc4":   # what a sampler gives for the channels BC4 / BC5 do not store
        assert np.all(back[..., 1:3] == 0) and np.all(back[..., 3] == 255)
    if name == "bc5":
        assert np.all(back[..., 2] == 0) and np.all(back[..., 3] == 255)


def test_decode_refuses_a_wrong_length():
    with pytest.raises(ValueError, match="bytes, expected"):
        codec.decode("bc7", b"\0" * 15, 4, 4)


def test_compress_texture_grey_alpha_colour_is_rgba():
    grey_alpha = smooth_image(8, 8, 2)
    tex = codec.compress_texture([grey_alpha], normal=False, srgb=True)
    assert (tex.format.name, tex.srgb) == ("bc7", True)
    back = codec.decode(tex.format, tex.levels[0], 8, 8)
    for c in range(3):   # grey in R, G and B, alpha in A: as glTF samples it
        assert psnr8(back[..., c], grey_alpha[..., 0]) > 40
    assert psnr8(back[..., 3], grey_alpha[..., 1]) > 40


# ---------------------------------------------------------------------------------------------
# DDS

def chain(name: str, w: int, h: int, srgb: bool = False) -> DDSTexture:
    fmt = FORMATS[name]
    levels = []
    for m in range(layout.mip_count(w, h)):
        mw, mh = layout.mip_size(w, h, m)
        levels.append(codec.encode(fmt, codec.to_rgba8(smooth_image(mh, mw, fmt.channels, m))))
    return DDSTexture(fmt, srgb, w, h, levels)


@pytest.mark.parametrize("name, srgb", [("bc1", False), ("bc3", False), ("bc4", False),
                                        ("bc5", False), ("bc7", False), ("bc7", True)])
def test_dds_round_trip_and_pillow_reads_the_same_pixels(name, srgb):
    tex = chain(name, 40, 24, srgb)
    data = to_bytes(tex)
    back = from_bytes(data)
    assert (back.format, back.srgb, back.width, back.height) == (tex.format, srgb, 40, 24)
    assert back.levels == tex.levels and len(back.levels) == 6
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.size == (40, 24)
    got = np.asarray(img)
    ours = codec.decode(tex.format, tex.levels[0], 40, 24)
    if got.ndim == 2:
        got = got[..., None]
    np.testing.assert_array_equal(got, ours[..., :got.shape[2]])


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:100], "too short"),
    (lambda d: d[:-3], "truncated"),
    (lambda d: d + b"x", "after the last mip"),
    (lambda d: b"XXXX" + d[4:], "not a DDS"),
    (lambda d: d[:84] + b"DXT1" + d[88:], "no DX10"),
    (lambda d: d[:128] + (2).to_bytes(4, "little") + d[132:], "not BC1"),
    (lambda d: d[:28] + (99).to_bytes(4, "little") + d[32:], "mip levels"),
])
def test_dds_reader_refuses_damage(damage, message):
    data = to_bytes(chain("bc4", 8, 8))
    with pytest.raises(DDSError, match=message):
        from_bytes(damage(data), "x.dds")


def test_dds_writer_checks_level_sizes():
    tex = chain("bc7", 8, 8)
    tex.levels[1] = tex.levels[1][:-1]
    with pytest.raises(ValueError, match="level 1"):
        to_bytes(tex)


# ---------------------------------------------------------------------------------------------
# ntc-decode --format dds

@pytest.fixture(scope="module")
def small_ntc(tmp_path_factory):
    from trainer import cli as compress_cli
    root = tmp_path_factory.mktemp("dds")
    folder = write_set(root / "in", RICH_SET)
    out = root / "set.ntc"
    rc, _, err = run(compress_cli.main, [folder, "-o", out, "--steps", "60", "--batch", "512",
                                         "--preset", "p2.7", "-q"])
    assert rc == 0, err
    return out


def test_decode_dds_writes_engine_ready_files(small_ntc, tmp_path):
    from export.decode.reference import FileDecoder, to_uint
    from export.format import read_ntc
    out = tmp_path / "dds"
    rc, stdout, err = run(dds_cli(), [small_ntc, "-o", out, "--format", "dds"])
    assert rc == 0, err
    model = read_ntc(small_ntc)
    assert sorted(os.listdir(out)) == sorted(f"{t.name}.dds" for t in model.textures)
    decoder = FileDecoder.from_model(model)
    for t, ref in zip(model.textures, decoder.textures_mip(0)):
        data = (out / f"{t.name}.dds").read_bytes()
        tex = dds.from_bytes(data)
        fmt, srgb = format_for(len(t.channels), t.role == "normal", t.colorspace == "srgb")
        assert (tex.format, tex.srgb) == (fmt, srgb), t.name
        assert len(tex.levels) == model.mips
        img = Image.open(io.BytesIO(data))   # an independent reader opens it
        img.load()
        assert img.size == (model.width, model.height)
        want = to_uint(ref, 8)
        got = codec.decode(tex.format, tex.levels[0], model.width, model.height)
        kept = 2 if t.role == "normal" else len(t.channels)
        if fmt.channels == 4 and len(t.channels) == 1:
            kept = 1   # grey colour as grey RGB
        assert psnr8(got[..., :kept], want[..., :kept]) > 33, t.name


def test_decode_dds_mip_starts_the_chain_there(small_ntc, tmp_path):
    rc, _, err = run(dds_cli(), [small_ntc, "-o", tmp_path / "d", "--format", "dds",
                                 "--mip", "2"])
    assert rc == 0, err
    tex = from_bytes(next((tmp_path / "d").iterdir()).read_bytes())
    assert (tex.width, tex.height) == (10, 6) and len(tex.levels) == 4


def test_decode_dds_bad_inputs_leave_nothing(small_ntc, tmp_path):
    rc, _, err = run(dds_cli(), [small_ntc, "-o", tmp_path / "o", "--format", "ktx"])
    assert rc == 2 and "invalid choice" in err and not (tmp_path / "o").exists()
    blocker = tmp_path / "a_file"     # an output folder that cannot be made (root can write
    blocker.write_bytes(b"keep me")   # anywhere, so not a read-only folder)
    rc, _, err = run(dds_cli(), [small_ntc, "-o", blocker / "sub", "--format", "dds"])
    assert rc == 1
    one_line_error(err, "ntc-decode")
    assert blocker.read_bytes() == b"keep me" and sorted(os.listdir(tmp_path)) == ["a_file"]


def dds_cli():
    from export import cli
    return cli.main
