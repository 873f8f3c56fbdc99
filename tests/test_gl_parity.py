"""The generated GLSL decoder (rendered offscreen, Mesa llvmpipe is fine) against the PyTorch twin.

Every texture and every mip: PSNR >= 50 dB and >= 99.9 % of 8-bit values within +-1. Two latent
fetch variants: the exact path (the default; 4 texelFetch + float lerps, decoder.py's own math),
which must also match the stored channels to float rounding, and hardware GL_LINEAR filtering
(GPUs quantize the filter weights, so a little error is expected: held to PSNR >= 50 dB everywhere
and to 99.9 % within +-1 pooled over a trained set).

Tests that need a context are marked `gl` and skip cleanly when no EGL OpenGL 4.5 context can be
created. Cold cost is the driver compiling the decoder at first draw (loops, not unrolled code:
well under a second per program on llvmpipe); every model here is tiny.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export import layout
from export.cli import main as ntc_decode
from export.decode.reference import FileDecoder, reconstruct
from export.format import NTCFormatError, from_bytes, read_ntc, to_bytes
from export.model import NORMAL_Z, STORED, ChannelInfo, TextureInfo
from trainer.network import NetworkConfig, NeuralTexture
from export.decode import gl_load as gl_decode
from export.decode.gl_load import decode_file_gl, decode_mips_gl, decode_ntc_gl
from export.decode.gl_context import NTCGLError, build_program
from export.decode.gl_resources import NTCTextureGL

PSNR_MIN = 50.0
WITHIN1_MIN = 0.999
EXACT_ATOL = 1e-5  # the texelFetch path runs decoder.py's float32 math in another order


def set_model(w, h, textures, seed=0, **cfg):
    """A file-exact NTCModel of `textures` with latents over the whole range and outputs spread
    around 0.5 (some clip)."""
    stored = 1 + max(c.index for t in textures for c in t.channels if c.kind == STORED)
    torch.manual_seed(seed)
    net = NeuralTexture(NetworkConfig(**{"hr_sampling": "bilinear", **cfg}), w, h, stored)
    with torch.no_grad():
        net.latents.uniform_(-1, 1)
        net.weights[-1].mul_(0.5)
        net.biases[-1].fill_(0.5)
    return from_bytes(to_bytes(net.export(textures)))


def random_model(w, h, stored, seed=0, **cfg):
    """set_model with `stored` channels: a normal (XY + rebuilt Z) when stored >= 2, then data
    textures of up to 4 channels."""
    chans = [ChannelInfo(STORED, index=i) for i in range(stored)]
    if stored >= 2:
        textures = [TextureInfo("nrm", "nrm.png", "normal", "linear", 8,
                                chans[:2] + [ChannelInfo(NORMAL_Z)])]
        chans = chans[2:]
    else:
        textures = []
    for i in range(0, len(chans), 4):
        textures.append(TextureInfo(f"t{i}", f"t{i}.png", "data", "linear", 8, chans[i:i + 4]))
    return set_model(w, h, textures, seed, **cfg)


def eight_bit_figures(got: list[np.ndarray], ref: list[np.ndarray]):
    """Per texture: (PSNR dB, share of 8-bit values within +-1)."""
    out = []
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        a8 = np.round(np.clip(a, 0, 1) * 255.0)
        b8 = np.round(np.clip(b, 0, 1) * 255.0)
        mse = float(np.mean((a8 - b8) ** 2))
        psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
        out.append((psnr, float(np.mean(np.abs(a8 - b8) <= 1))))
    return out


def check_parity(model, ctx, hw_filter: bool, atol: float | None = None,
                 check_within1: bool = True):
    """PSNR >= 50 dB for every texture and mip; with check_within1 also >= 99.9 % of 8-bit values
    within +-1 for every texture and mip. Returns (largest stored-channel difference, share of
    8-bit values within +-1 pooled over the set)."""
    ref = FileDecoder.from_model(model)
    stored = decode_mips_gl(model, ctx=ctx, hw_filter=hw_filter)
    assert len(stored) == model.mips
    worst, close, total = 0.0, 0, 0
    for m, got in enumerate(stored):
        expected = ref.stored_mip(m).numpy()
        assert got.shape == expected.shape == (*layout.mip_size(model.width, model.height, m)[::-1],
                                                model.stored_channels)
        assert np.isfinite(got).all()
        worst = max(worst, float(np.abs(got - expected).max()))
        got_t, exp_t = reconstruct(model, got), reconstruct(model, expected)
        for tex, a, b, (psnr, share) in zip(model.textures, got_t, exp_t,
                                            eight_bit_figures(got_t, exp_t)):
            assert psnr >= PSNR_MIN, f"mip {m} {tex.name}: PSNR {psnr:.1f} dB"
            if check_within1:
                assert share >= WITHIN1_MIN, f"mip {m} {tex.name}: {share:.4%} within +-1"
            close += round(share * a.size)
            total += a.size
    if atol is not None:
        assert worst <= atol, f"stored channels differ by up to {worst:.2e}"
    return worst, close / total


# ----------------------------------------------------------------------------------------------
# parity

@pytest.mark.gl
@pytest.mark.parametrize("hw_filter", [True, False], ids=["hw_filter", "texel_fetch"])
def test_trained_file_matches_pytorch_in_every_texture_and_mip(ctx, trained, hw_filter):
    model = from_bytes(trained.data)
    if not hw_filter:
        check_parity(model, ctx, hw_filter, EXACT_ATOL)
        return
    # GL_LINEAR quantizes the filter weights (8 bits on llvmpipe): a few 8-bit values move by 2,
    # which on the tiny mips of a 40x24 set is more than 0.1 % of one texture's values.
    worst, pooled = check_parity(model, ctx, hw_filter, check_within1=False)
    assert worst < 2e-2 and pooled >= WITHIN1_MIN


VARIANTS = {  # every latent container, both weight formats, both hr samplings, 1..16 channels
    # name: (width, height, stored channels, NetworkConfig, also check hardware filtering)
    "bits2_f4_stored5": (40, 24, 5, dict(features=4, bits=2, grid_scale=8.0, hidden=(16,)), True),
    "bits6_f12_fp16_stored16": (37, 21, 16, dict(features=12, bits=6, grid_scale=5.66,
                                                 hidden=(32, 16), weight_format="fp16"), False),
    "bits8_f32_stored1": (19, 33, 1, dict(features=32, bits=8, grid_scale=2.0, hidden=(32, 16)),
                          True),
    "gather4_bits3_fp16": (37, 21, 5, dict(features=8, bits=3, grid_scale=2.0, hidden=(16, 16),
                                           hr_sampling="gather4", weight_format="fp16"), True),
    # the coarse presets' gather4 layout: 4 features, one latent texture layer
    "gather4_f4_bits4": (40, 24, 9, dict(features=4, bits=4, grid_scale=4.0, hidden=(16, 16),
                                         hr_sampling="gather4"), False),
    "1x1_eight_layers": (1, 1, 3, dict(features=8, bits=5, grid_scale=1.0, hidden=(8,) * 7), False),
}


@pytest.mark.gl
@pytest.mark.parametrize("name", list(VARIANTS))
def test_file_layouts_match_pytorch(ctx, name):
    w, h, stored, cfg, hw = VARIANTS[name]
    model = random_model(w, h, stored, **cfg)
    check_parity(model, ctx, hw_filter=False, atol=EXACT_ATOL)
    if hw:
        # Hardware filtering quantizes the bilinear weights (8 bits on llvmpipe): on these random,
        # high-gain networks with coarse latents up to ~1 % of 8-bit values move by 1-2; PSNR
        # stays above 50 dB.
        worst, _ = check_parity(model, ctx, hw_filter=True, check_within1=False)
        assert worst < 2e-2


@pytest.mark.gl
def test_decode_file_gl_is_the_twin_of_textures_mip(ctx):
    model = random_model(40, 24, 8, seed=2, features=8, bits=4, grid_scale=4.0, hidden=(16,))
    ref = FileDecoder.from_model(model)
    for m in (0, model.mips - 1):
        got = decode_file_gl(model, m, ctx=ctx, hw_filter=False)
        expected = ref.textures_mip(m)
        assert [g.shape for g in got] == [e.shape for e in expected]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=0, atol=EXACT_ATOL)
    with pytest.raises(ValueError, match="mips 0.."):
        decode_file_gl(model, model.mips, ctx=ctx)


@pytest.mark.gl
def test_cli_gl_backend_writes_what_the_torch_backend_writes(ctx, trained, tmp_path):
    import imageio.v3 as iio
    src = tmp_path / "set.ntc"
    src.write_bytes(trained.data)
    assert ntc_decode([str(src), "-o", str(tmp_path / "torch"), "--mip", "1"]) == 0
    assert ntc_decode([str(src), "-o", str(tmp_path / "gl"), "--mip", "1", "--backend", "gl"]) == 0
    names = sorted(p.name for p in (tmp_path / "torch").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "gl").iterdir()) and names
    for n in names:
        a = iio.imread(tmp_path / "torch" / n).astype(np.int64)
        b = iio.imread(tmp_path / "gl" / n).astype(np.int64)
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1, n  # the exact path: only float rounding at .5 edges


# ----------------------------------------------------------------------------------------------
# resources and errors

@pytest.mark.gl
def test_gl_objects_and_their_bytes(ctx):
    model = random_model(40, 24, 5, features=8, bits=4, grid_scale=4.0, hidden=(16,))
    with NTCTextureGL(model, ctx) as tex:
        sizes = tex.vram_bytes()
        texels = sum(w * h for w, h in model.latent.levels)
        assert sizes["latents"] == texels * model.latent.layers * 2  # GL_RGBA4: 2 bytes a texel
        assert sizes["weights"] == tex.weights.size == 16 * (1 + tex.weight_vec4)
        assert tex.driver_bits in (4, 8)
    model8 = random_model(40, 24, 5, features=8, bits=6, grid_scale=4.0, hidden=(16,))
    with NTCTextureGL(model8, ctx) as tex:
        assert tex.vram_bytes()["latents"] == texels * model8.latent.layers * 4  # GL_RGBA8
        assert tex.driver_bits == 8
    assert tex.texture == 0 and tex.weights is None  # released


@pytest.mark.gl
def test_shader_compile_error_is_a_clear_gl_error(ctx):
    model = random_model(8, 8, 4, features=4, bits=4, grid_scale=4.0, hidden=(8,))
    vert, frag = gl_decode.load_shaders(model)
    broken = frag.replace("void main()", "void main() { this is not glsl; }\nvoid unused()", 1)
    with pytest.raises(NTCGLError, match=r"load-mode decoder shader failed to compile "
                                         r"\(fragment shader\): .*error") as info:
        build_program(ctx, vert, broken, "load-mode decoder")
    assert "\n" not in str(info.value) and info.value.log
    with pytest.raises(NTCGLError, match=r"failed to link: .*nowhere"):
        build_program(ctx, vert, frag.replace("void main()\n{", "in vec4 nowhere;\nvoid main()\n{"
                                              "\n    if (nowhere.x > 2.0) discard;", 1),
                      "load-mode decoder")


@pytest.mark.gl
def test_files_the_decoder_cannot_run_raise_before_uploading(ctx):
    # gather4 with 32 features and a wide MLP needs more than a 64 KiB uniform block
    model = random_model(16, 16, 16, features=32, bits=4, grid_scale=2.0, hidden=(64, 48, 32),
                         hr_sampling="gather4")
    with pytest.raises(NTCGLError, match="uniform block"):
        NTCTextureGL(model, ctx)


def test_context_below_4_5_is_a_clear_gl_error():
    class OldContext:
        version_code = 330
        info = {"GL_RENDERER": "old renderer"}
    with pytest.raises(NTCGLError, match=r"OpenGL 4\.5 is required, the context gives 3\.3"):
        NTCTextureGL(random_model(8, 8, 4, features=4, hidden=(8,)), OldContext())


def test_rejected_file_raises_format_error_before_any_gl_object(tmp_path, monkeypatch, capsys):
    made = []
    monkeypatch.setattr(gl_decode, "create_context", lambda: made.append("context"))
    monkeypatch.setattr(gl_decode, "NTCTextureGL", lambda *a: made.append("texture"))
    good = to_bytes(random_model(8, 8, 4, features=4, hidden=(8,)))
    bad = tmp_path / "bad.ntc"
    bad.write_bytes(good[:-3])  # truncated
    with pytest.raises(NTCFormatError, match="truncated|unexpected|checksum"):
        decode_ntc_gl(bad)
    with pytest.raises(NTCFormatError):
        read_ntc(bad)
    assert ntc_decode([str(bad), "-o", str(tmp_path / "out"), "--backend", "gl"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ntc-decode: error: ") and err.count("\n") == 1
    assert made == [] and not (tmp_path / "out").exists()


def test_cli_reports_gl_errors_on_one_line(tmp_path, monkeypatch, capsys):
    def no_context():
        raise NTCGLError("cannot create a headless OpenGL 4.5 context through EGL: no device")
    monkeypatch.setattr(gl_decode, "create_context", no_context)
    src = tmp_path / "ok.ntc"
    src.write_bytes(to_bytes(random_model(8, 8, 4, features=4, hidden=(8,))))
    assert ntc_decode([str(src), "-o", str(tmp_path / "out"), "--backend", "gl"]) == 1
    assert capsys.readouterr().err == ("ntc-decode: error: cannot create a headless OpenGL 4.5 "
                                      "context through EGL: no device\n")
    assert not (tmp_path / "out").exists()
