"""The file decoder reproduces the trained network exactly, in every mip and channel layout."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import mean_prediction_psnr
from export import layout
from export.decode.reference import FileDecoder, positional_encoding, texel_uv
from export.format import from_bytes, to_bytes
from export.model import CONST, COPY, NORMAL_Z, STORED, ChannelInfo, TextureInfo
from trainer.evaluate import evaluate
from trainer.network import NetworkConfig, NeuralTexture
from export.pixels import rebuild_normal_z

ATOL = 1e-4  # the file and the eval-mode network run the same quantized math in float32


def _net_mip(net: NeuralTexture, m: int) -> np.ndarray:
    w, h = layout.mip_size(net.width, net.height, m)
    uv = texel_uv(w, h)
    mip = torch.full((uv.shape[0],), m, dtype=torch.long)
    net.eval()
    with torch.no_grad():
        return net(mip, uv).reshape(h, w, -1).numpy()


def test_file_decodes_to_the_trained_network_in_every_mip(trained):
    dec = FileDecoder.from_model(from_bytes(trained.data))
    assert dec.model.mips == layout.mip_count(40, 24) == 6
    for m in range(dec.model.mips):
        expected = _net_mip(trained.net, m)
        got = dec.stored_mip(m).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL, err_msg=f"mip {m}")
    # the comparison is not vacuous: the network's output has structure
    assert _net_mip(trained.net, 0).std(axis=(0, 1)).min() > 0.02


@pytest.mark.parametrize("cfg", [
    NetworkConfig(features=8, bits=3, grid_scale=2.0, hr_sampling="gather4", hidden=(16, 16),
                  weight_format="fp16"),
    NetworkConfig(features=12, bits=6, grid_scale=5.66, hr_sampling="bilinear", hidden=(32,)),
    NetworkConfig(features=4, bits=2, grid_scale=8.0, hr_sampling="gather4", hidden=(8,),
                  weight_format="int8"),
], ids=["gather4_fp16_bits3", "bilinear_int8_bits6", "gather4_int8_bits2"])
def test_export_matches_eval_forward_for_other_layouts(cfg):
    """Before latents are frozen, eval mode quantizes on the fly; export must round the same way."""
    torch.manual_seed(3)
    w, h, stored = 37, 21, 5
    net = NeuralTexture(cfg, w, h, stored)
    with torch.no_grad():  # spread the latents over the whole range so rounding matters
        net.latents.uniform_(-1, 1)
    tex = [TextureInfo("t", "t.png", "data", "linear", 8,
                       [ChannelInfo(STORED, index=i) for i in range(4)]),
           TextureInfo("u", "u.png", "height", "linear", 16, [ChannelInfo(STORED, index=4)])]
    dec = FileDecoder.from_model(from_bytes(to_bytes(net.export(tex))))
    for m in range(layout.mip_count(w, h)):
        np.testing.assert_allclose(dec.stored_mip(m).numpy(), _net_mip(net, m), rtol=0, atol=ATOL,
                                   err_msg=f"mip {m}")


def test_chunked_decode_equals_whole_decode(trained):
    dec = FileDecoder.from_model(from_bytes(trained.data))
    # (matmul blocking differs with the row count, so equal to float rounding, not bit-exact)
    np.testing.assert_allclose(dec.stored_mip(0, chunk=7).numpy(), dec.stored_mip(0).numpy(),
                               rtol=0, atol=1e-5)


def test_every_mip_has_the_source_layout(trained):
    model = from_bytes(trained.data)
    dec = FileDecoder.from_model(model)
    by_name = {t.name: t for t in model.textures}
    assert sorted(by_name) == ["mat_baseColor", "mat_normal", "mat_orm"]
    kinds = {t.name: [c.kind for c in t.channels] for t in model.textures}
    assert kinds["mat_normal"] == [STORED, STORED, NORMAL_Z]
    assert kinds["mat_orm"] == [STORED, STORED, CONST]
    for m in range(model.mips):
        mw, mh = layout.mip_size(40, 24, m)
        stored = np.clip(dec.stored_mip(m).numpy(), 0, 1)
        images = dec.textures_mip(m)
        assert len(images) == len(model.textures)
        for tex, img, chain in zip(model.textures, images, trained.targets.source_mips):
            assert img.shape == (mh, mw, len(tex.channels)) == chain[m].shape
            assert img.dtype == np.float32
            assert img.min() >= 0.0 and img.max() <= 1.0
            for i, c in enumerate(tex.channels):
                if c.kind == STORED:
                    np.testing.assert_array_equal(img[..., i], stored[..., c.index])
                elif c.kind == CONST:
                    assert np.all(img[..., i] == np.float32(c.value))
                elif c.kind == COPY:
                    np.testing.assert_array_equal(img[..., i], img[..., c.index])
                elif c.kind == NORMAL_Z:
                    z = img[..., i]
                    np.testing.assert_allclose(z, rebuild_normal_z(img[..., :2]), atol=1e-6)
                    assert z.min() >= 0.5 and z.max() <= 1.0  # tangent space: Z >= 0
        orm = images[[t.name for t in model.textures].index("mat_orm")]
        assert np.all(orm[..., 2] == 0.0)  # the constant metallic of the source, exactly


def test_trained_fixture_learned_the_set(trained):
    """The round-trip tests above are only meaningful if the network reproduces the textures."""
    q = evaluate(from_bytes(trained.data), trained.targets.source_mips)
    assert q["psnr_set"] > mean_prediction_psnr(trained.targets.source_mips) + 12.0  # measured: 31.4 vs 15.8 dB


# ----------------------------------------------------------------------------------------------
# sizes

def test_mip_chain_of_a_non_square_texture():
    assert layout.mip_count(40, 24) == 6
    assert [layout.mip_size(40, 24, m) for m in range(6)] == [
        (40, 24), (20, 12), (10, 6), (5, 3), (2, 1), (1, 1)]
    assert layout.mip_count(1, 1) == 1
    assert layout.mip_count(1024, 666) == 11
    assert layout.mip_size(1024, 666, 10) == (1, 1)
    assert layout.mip_count(1000, 1000) == 10


def test_latent_levels_examples():
    assert layout.latent_level_sizes(40, 24, 4.0) == [(10, 6), (5, 3), (2, 1), (1, 1)]
    assert layout.latent_level_sizes(1000, 1000, 2.83)[0] == (354, 354)
    assert layout.latent_level_sizes(3, 3, 8.0) == [(1, 1)]


@settings(max_examples=300, deadline=None)
@given(w=st.integers(1, 16384), h=st.integers(1, 16384),
       g=st.sampled_from([0.5, 1.0, 2.0, 2.83, 4.0, 5.66, 8.0, 64.0]))
def test_latent_levels_follow_the_gl_mip_rule(w, h, g):
    levels = layout.latent_level_sizes(w, h, g)
    lw, lh = math.ceil(w / g), math.ceil(h / g)
    assert levels[0] == (lw, lh)
    for (pw, ph), (cw, ch) in zip(levels, levels[1:]):
        assert (cw, ch) == (max(1, pw // 2), max(1, ph // 2))
    assert levels[-1] == (1, 1)
    assert len(levels) == math.floor(math.log2(max(lw, lh))) + 1
    assert len(levels) == 1 or levels[-2] != (1, 1)  # a full chain, not one level more


def test_blended_positional_encoding_stays_among_the_texel_centre_encodings():
    """Why the latent filter blends the encoding: with a latent level 4x coarser than the mip (the
    p2.7 shape), the finest octave is a constant at the mip's texel centres, the only places the
    MLP is trained; between them the raw encoding sweeps values the MLP never saw, the blend of
    the 4 nearest centres' encodings stays among theirs, and at a centre it is that centre's."""
    n = 4096
    level = torch.tensor([[128, 128]]).expand(n, 2)
    mip = torch.tensor([[512, 512]]).expand(n, 2)
    centres = positional_encoding(torch.tensor([[128, 128]]).expand(512 * 512, 2),
                                  texel_uv(512, 512), None)
    lo, hi = centres.min(0).values, centres.max(0).values
    assert len(torch.unique(centres[:, -4:], dim=0)) == 1   # finest octave: a constant
    uv = torch.rand(n, 2, generator=torch.Generator().manual_seed(0)) * 0.98 + 0.01
    raw = positional_encoding(level, uv, None)
    blended = positional_encoding(level, uv, mip.float())
    assert ((blended >= lo - 1e-6) & (blended <= hi + 1e-6)).all()
    assert ((raw < lo - 0.25) | (raw > hi + 0.25)).any(1).float().mean() > 0.5
    at_centres = texel_uv(512, 512)[torch.randint(0, 512 * 512, (n,))]
    exact = positional_encoding(level, at_centres, None)
    assert torch.allclose(positional_encoding(level, at_centres, mip.float()), exact, atol=1e-5)
