"""Sample mode: ntcSample (shaders/ntc_sample.slang, rendered through its harness on llvmpipe)
against its PyTorch twin export/decode/filters.py.

Each harness pixel samples uv = origin + (x + .5) * step_x + (y + .5) * step_y, so the derivatives,
and with them the LOD, are known exactly. The uv transforms cover magnification, minification with
a fractional LOD (between mips, rotated and mirrored footprints), minification past the last mip,
and uv far outside [0, 1], for every glTF wrap mode. Bars, on the textures reconstructed from the
stored channels: PSNR >= 50 dB and >= 99.9 % of 8-bit values within +-1 (the exact latent fetch
path in fact matches to float rounding, also asserted). Stochastic filtering must return one of the
8 trilinear footprint texels exactly, the same one as the twin, and average to the trilinear
result over frames.

Targets are 32x32 and the networks tiny, so a render takes milliseconds on llvmpipe after the
program's first draw.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.decode.reference import FileDecoder, reconstruct
from export.format import from_bytes
from export.decode.filters import (CLAMP_TO_EDGE, MIRRORED_REPEAT, REPEAT, harness_uv,
                           lod_from_derivatives, quad_decodes, sample_latent, sample_stochastic,
                           sample_trilinear, stochastic_texels, wrap_index, wrap_pair)
from test_gl_parity import eight_bit_figures, random_model
from export.decode.gl_load import decode_mips_gl
from export.decode.gl_resources import NTCTextureGL
from export.decode.gl_sample import GLSampleHarness

PSNR_MIN = 50.0
WITHIN1_MIN = 0.999
EXACT_ATOL = 1e-4  # GL vs PyTorch float32 decodes of the same texel differ by ~1e-7
SIZE = (32, 32)
FRAMES = 64

WRAPS = {"repeat": REPEAT, "mirrored_repeat": MIRRORED_REPEAT, "clamp_to_edge": CLAMP_TO_EDGE,
         "repeat_u_clamp_v": (REPEAT, CLAMP_TO_EDGE)}

# name: (uv origin, uv change per pixel along x and along y, in mip-0 texels); LODs kept away
# from .5 so that round(lambda) cannot differ between GL and PyTorch
TRANSFORMS = {
    "magnify_across_corner": ((-0.1, 0.9), (0.3, 0.05), (-0.05, 0.3)),       # lambda < 0 -> 0
    "minify_lod1.4_rotated": ((-0.6, -0.35), (2.64, 0.3), (-0.2, 1.5)),     # 1.41
    "minify_lod2.7_mirrored": ((1.7, 2.2), (-6.5, 0.0), (0.0, -4.0)),       # 2.70, uv in [-3.5, 2]
    "past_last_mip": ((0.3, 0.2), (90.0, 10.0), (5.0, 70.0)),               # clamped to mips - 1
}

MODELS = {  # name: (width, height, stored channels, NetworkConfig)
    "bits4_f8": (40, 24, 5, dict(features=8, bits=4, grid_scale=4.0, hidden=(16,))),
    "gather4_fp16": (37, 21, 7, dict(features=8, bits=3, grid_scale=2.0, hidden=(16, 16),
                                     hr_sampling="gather4", weight_format="fp16")),
    # the coarse presets' gather4 layout: 4 features, one latent texture layer
    "gather4_f4": (40, 24, 9, dict(features=4, bits=4, grid_scale=4.0, hidden=(16, 16),
                                   hr_sampling="gather4")),
}


class Setup:
    """One model on the GL side (texture + harness) and the PyTorch side (decoder, stored mips)."""

    def __init__(self, model, ctx):
        self.model = model
        self.decoder = FileDecoder.from_model(model)
        self.mips = [self.decoder.stored_mip(m) for m in range(model.mips)]
        self.tex = NTCTextureGL(model, ctx)
        self.harness = GLSampleHarness(self.tex)

    def steps(self, transform: str):
        """(origin, step_x, step_y) in uv units, and lambda."""
        origin, sx, sy = TRANSFORMS[transform]
        size = (self.model.width, self.model.height)
        step_x = (sx[0] / size[0], sx[1] / size[1])
        step_y = (sy[0] / size[0], sy[1] / size[1])
        lod = lod_from_derivatives(torch.tensor(step_x), torch.tensor(step_y), size,
                                   self.model.mips)
        return (origin, step_x, step_y), lod

    def release(self):
        self.harness.release()
        self.tex.release()


@pytest.fixture(scope="module")
def setups(ctx, trained):
    made = {name: Setup(random_model(w, h, stored, seed=3, **cfg), ctx)
            for name, (w, h, stored, cfg) in MODELS.items()}
    made["trained"] = Setup(from_bytes(trained.data), ctx)
    yield made
    for s in made.values():
        s.release()


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a ** 2)))


def check_close(model, got: np.ndarray, expected: np.ndarray, what: str,
                atol: float = EXACT_ATOL):
    """Stored channels [h, w, stored] within atol, and the 8-bit bars on every texture.
    Returns the smallest PSNR."""
    assert np.isfinite(got).all()
    worst = float(np.abs(got - expected).max())
    assert worst <= atol, f"{what}: stored channels differ by up to {worst:.2e}"
    psnrs = []
    for tex, (psnr, share) in zip(model.textures, eight_bit_figures(reconstruct(model, got),
                                                                    reconstruct(model, expected))):
        assert psnr >= PSNR_MIN, f"{what} {tex.name}: PSNR {psnr:.1f} dB"
        assert share >= WITHIN1_MIN, f"{what} {tex.name}: {share:.4%} within +-1"
        psnrs.append(psnr)
    return min(psnrs)


# ----------------------------------------------------------------------------------------------
# the reference's own rules

def test_wrap_index_follows_gl_table_8_20():
    i = torch.arange(-7, 8)
    assert wrap_index(i, 3, REPEAT).tolist() == [2, 0, 1] * 5
    assert wrap_index(i, 3, CLAMP_TO_EDGE).tolist() == [0] * 7 + [0, 1, 2] + [2] * 5
    # mirrored: ... 0 | 0 1 2 | 2 1 0 | 0 1 2 | 2 1 0 | 0 1 ..., texel -1 is texel 0
    assert wrap_index(i, 3, MIRRORED_REPEAT).tolist() == [0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0,
                                                          0, 1]


def test_lod_is_gl_rho_clamped():
    lod = lod_from_derivatives(torch.tensor([[1 / 40, 0.0], [0.0, 0.0], [4 / 40, 3 / 24]]),
                               torch.tensor([[0.0, 1 / 24], [0.0, 0.0], [0.0, 0.0]]), (40, 24), 6)
    assert lod.tolist() == pytest.approx([0.0, 0.0, np.log2(5.0)])
    assert lod_from_derivatives(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), (40, 24),
                                6).item() == 5.0


def test_stochastic_draws_have_the_trilinear_weights_as_probabilities():
    # one pixel position in many pixels and frames: the draw's frequencies are the weights
    n = 1 << 14
    pixel = torch.stack([torch.arange(n) % 128, torch.arange(n) // 128], 1)
    uv = torch.tensor([[0.3 / 8, 1.8 / 4]]).expand(n, 2)  # mip 0 footprint (-0.2, 1.3) of 8x4
    lod = torch.tensor(0.25)
    draws = [stochastic_texels(uv, lod, pixel, frame, (8, 4)) for frame in range(4)]
    mip = torch.cat([d[0] for d in draws])
    texel = torch.cat([d[1] for d in draws])
    assert abs((mip == 1).float().mean().item() - 0.25) < 0.01
    base = mip == 0
    assert abs((texel[base, 0] == 0).float().mean().item() - 0.8) < 0.01  # x: -1 (0.2), 0 (0.8)
    assert abs((texel[base, 1] == 1).float().mean().item() - 0.7) < 0.01  # y: 1 (0.7), 2 (0.3)


def test_consecutive_stochastic_frames_pick_each_texel_by_its_weight_within_a_few_counts():
    # the draw walks a Kronecker sequence: over any N consecutive frames (here from 0, from an
    # arbitrary frame and across the 32-bit wrap) each footprint texel's count stays within a
    # few of N x its weight; independent draws would stray by several standard deviations
    # (sqrt(N w (1 - w)), up to 2.8 at 32 frames) among these 4096 pixels
    n, frames = 4096, 32
    g = torch.Generator().manual_seed(0)
    pixel = torch.randint(0, 4000, (n, 2), generator=g)
    uv = torch.rand(n, 2, generator=g)
    size = (64, 32)
    for lod in (0.0, 0.3, 1.7):
        m0, t = int(np.floor(lod)), lod - np.floor(lod)
        for start in (0, 123456789, (1 << 32) - 10):
            draws = [stochastic_texels(uv, torch.tensor(lod), pixel, (start + k) % (1 << 32),
                                       size) for k in range(frames)]
            for mip, mip_weight in ((m0, 1.0 - t), (m0 + 1, t)):
                p = uv * torch.tensor([size[0] >> mip, size[1] >> mip]).float() - 0.5
                first, f = torch.floor(p).long(), p - torch.floor(p)
                for d in ((0, 0), (1, 0), (0, 1), (1, 1)):
                    weight = mip_weight * torch.where(torch.tensor(d).bool(), f, 1.0 - f).prod(1)
                    count = sum(((m == mip) & (texel == first + torch.tensor(d)).all(1)).long()
                                for m, texel in draws)
                    worst = (count - frames * weight).abs().max().item()
                    assert worst <= 3.0, f"lod {lod}, start {start}, mip {mip}, texel {d}: " \
                                         f"{worst:.2f} off its expected count"


# ----------------------------------------------------------------------------------------------
# GL against the twin

@pytest.mark.gl
@pytest.mark.parametrize("wrap", list(WRAPS))
@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("model_name", [*MODELS, "trained"])
def test_trilinear_and_latent_match_pytorch(setups, model_name, transform, wrap):
    s = setups[model_name]
    (origin, step_x, step_y), lod = s.steps(transform)
    uv, _ = harness_uv(SIZE, origin, step_x, step_y)
    shape = (SIZE[1], SIZE[0], s.model.stored_channels)
    for filt, expected in (("trilinear", sample_trilinear(s.mips, uv, lod, WRAPS[wrap])),
                           ("latent", sample_latent(s.decoder, uv, lod, WRAPS[wrap]))):
        got = s.harness.render(SIZE, origin, step_x, step_y, filt, WRAPS[wrap])
        check_close(s.model, got, expected.reshape(shape).numpy(), f"{filt} {transform} {wrap}")


@pytest.fixture(scope="module")
def blend_setups(ctx):
    """MODELS' networks in files that say they were trained across mips (lod_blend): the GL side
    must blend as the twin does whatever the weights."""
    made = {}
    for name, (w, h, stored, cfg) in MODELS.items():
        model = random_model(w, h, stored, seed=3, **cfg)
        model.latent.lod_blend = True
        made[name] = Setup(model, ctx)
    yield made
    for s in made.values():
        s.release()


@pytest.mark.gl
@pytest.mark.parametrize("wrap", ["repeat", "mirrored_repeat", "repeat_u_clamp_v"])
@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_latent_filter_across_mips_matches_pytorch(setups, blend_setups, model_name, transform,
                                                   wrap):
    """A lod_blend file's latent filter: one decode a pixel on the MLP inputs of mips
    floor(lambda) and floor(lambda) + 1 blended by frac(lambda), as filters.sample_latent; where
    lambda has a fraction it differs from the nearest mip's decode."""
    s, plain = blend_setups[model_name], setups[model_name]
    (origin, step_x, step_y), lod = s.steps(transform)
    uv, _ = harness_uv(SIZE, origin, step_x, step_y)
    shape = (SIZE[1], SIZE[0], s.model.stored_channels)
    expected = sample_latent(s.decoder, uv, lod, WRAPS[wrap]).reshape(shape).numpy()
    got, decodes = s.harness.render(SIZE, origin, step_x, step_y, "latent", WRAPS[wrap],
                                    decodes=True)
    check_close(s.model, got, expected, f"latent across mips {transform} {wrap}")
    assert (decodes == 1).all()
    nearest = plain.harness.render(SIZE, origin, step_x, step_y, "latent", WRAPS[wrap])
    fraction = float(lod - torch.floor(lod)) > 0.01 and float(lod) < s.model.mips - 1
    assert (np.abs(got - nearest).max() > 1e-3) == fraction


@pytest.mark.gl
@pytest.mark.parametrize("wrap", list(WRAPS))
@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("model_name", [*MODELS, "trained"])
def test_quad_filter_is_trilinear_with_fewer_decodes(setups, model_name, transform, wrap):
    """The quad filter (decodes shared in each 2x2 quad through fine derivatives) gives the
    trilinear twin's values, and each pixel makes the decodes export.decode.filters.quad_decodes
    plans: fewer than trilinear's wherever footprints overlap, never more."""
    s = setups[model_name]
    (origin, step_x, step_y), lod = s.steps(transform)
    uv, pixel = harness_uv(SIZE, origin, step_x, step_y)
    shape = (SIZE[1], SIZE[0], s.model.stored_channels)
    expected = sample_trilinear(s.mips, uv, lod, WRAPS[wrap]).reshape(shape).numpy()
    got, decodes = s.harness.render(SIZE, origin, step_x, step_y, "quad", WRAPS[wrap],
                                    decodes=True)
    check_close(s.model, got, expected, f"quad {transform} {wrap}")
    _, own = s.harness.render(SIZE, origin, step_x, step_y, "trilinear", WRAPS[wrap],
                              decodes=True)
    plan = quad_decodes(uv, lod, pixel, (s.model.width, s.model.height), s.model.mips)
    assert np.array_equal(decodes, plan.reshape(SIZE[1], SIZE[0]).numpy())
    assert (decodes <= own).all() and np.isin(own, (4, 8)).all()
    if transform != "past_last_mip":   # there every pixel reads its own far-apart texels
        assert decodes.mean() <= 0.6 * own.mean()


@pytest.mark.gl
def test_quad_filter_with_hardware_derivatives(setups):
    s = setups["trained"]
    steps, _ = s.steps("minify_lod1.4_rotated")
    explicit = s.harness.render(SIZE, *steps, "trilinear", REPEAT)
    derived = s.harness.render(SIZE, *steps, "quad", REPEAT, hardware_derivatives=True)
    check_close(s.model, derived, explicit, "quad ddx/ddy")


@pytest.mark.gl
@pytest.mark.parametrize("filt", ["trilinear", "latent"])
def test_hardware_derivatives_give_the_same_lod(setups, filt):
    s = setups["trained"]
    for transform in ("magnify_across_corner", "minify_lod1.4_rotated"):
        steps, _ = s.steps(transform)
        explicit = s.harness.render(SIZE, *steps, filt, REPEAT)
        derived = s.harness.render(SIZE, *steps, filt, REPEAT, hardware_derivatives=True)
        check_close(s.model, derived, explicit, f"{filt} ddx/ddy {transform}")


@pytest.mark.gl
def test_hardware_latent_filtering_in_every_mode(setups):
    # GL_LINEAR latents (NTC_HW_FILTER) with neighbouring pixels on different mips (stochastic):
    # the filter weights are quantized (8 bits on llvmpipe), so only close, not exact
    s = setups["trained"]
    steps, lod = s.steps("minify_lod1.4_rotated")
    uv, pixel = harness_uv(SIZE, *steps)
    shape = (SIZE[1], SIZE[0], s.model.stored_channels)
    harness = GLSampleHarness(s.tex, hw_filter=True)
    try:
        for filt, expected in (
                ("trilinear", sample_trilinear(s.mips, uv, lod, REPEAT)),
                ("latent", sample_latent(s.decoder, uv, lod, REPEAT)),
                ("stochastic", sample_stochastic(s.mips, uv, lod, REPEAT, pixel, 5))):
            got = harness.render(SIZE, *steps, filt, REPEAT, frame=5)
            check_close(s.model, got, expected.reshape(shape).numpy(), f"hw {filt}", atol=2e-2)
    finally:
        harness.release()


@pytest.mark.gl
@pytest.mark.parametrize("filt", ["trilinear", "latent", "stochastic"])
def test_texel_centres_of_a_mip_give_load_mode_texels(ctx, filt):
    # power-of-two size: lambda = m exactly and every footprint weight is 0 or 1
    model = random_model(32, 16, 6, seed=4, features=4, bits=4, grid_scale=4.0, hidden=(16,))
    loaded = decode_mips_gl(model, ctx=ctx)
    with NTCTextureGL(model, ctx) as tex:
        harness = GLSampleHarness(tex)
        try:
            for m in range(model.mips):
                h, w = loaded[m].shape[:2]
                got = harness.render((w, h), (0.0, 0.0), (1 / w, 0.0), (0.0, 1 / h), filt,
                                     REPEAT, frame=m)
                np.testing.assert_array_equal(got, loaded[m], err_msg=f"mip {m}")
        finally:
            harness.release()


@pytest.mark.gl
@pytest.mark.parametrize("wrap", ["repeat", "mirrored_repeat", "clamp_to_edge"])
@pytest.mark.parametrize("model_name", ["bits4_f8", "trained"])
def test_stochastic_picks_footprint_texels_and_averages_to_trilinear(setups, model_name, wrap):
    s = setups[model_name]
    (origin, step_x, step_y), lod = s.steps("minify_lod1.4_rotated")
    uv, pixel = harness_uv(SIZE, origin, step_x, step_y)
    trilinear = sample_trilinear(s.mips, uv, lod, WRAPS[wrap]).numpy()
    # the 8 texels of every pixel's footprint, decoded exactly
    ws, wt = wrap_pair(WRAPS[wrap])
    m0 = int(torch.floor(lod))
    candidates = []
    for m in (m0, m0 + 1):
        h, w = s.mips[m].shape[:2]
        first = torch.floor(uv * torch.tensor([w, h]) - 0.5).long()
        for d in ((0, 0), (1, 0), (0, 1), (1, 1)):
            t = first + torch.tensor(d)
            candidates.append(s.mips[m][wrap_index(t[:, 1], h, wt), wrap_index(t[:, 0], w, ws)])
    candidates = torch.stack(candidates, 1).numpy()  # [N, 8, stored]
    total, same, first_frame = 0.0, 0, None
    for frame in range(FRAMES):
        got = s.harness.render(SIZE, origin, step_x, step_y, "stochastic", WRAPS[wrap], frame)
        got = got.reshape(-1, s.model.stored_channels)
        nearest = np.abs(candidates - got[:, None]).max(2).min(1)
        assert nearest.max() <= EXACT_ATOL, f"frame {frame}: not a footprint texel"
        twin = sample_stochastic(s.mips, uv, lod, WRAPS[wrap], pixel, frame).numpy()
        same += int((np.abs(got - twin).max(1) <= EXACT_ATOL).sum())
        total = total + got
        first_frame = got if first_frame is None else first_frame
    # the shader's hash is the twin's: only a float tie at a weight threshold could differ
    assert same >= WITHIN1_MIN * FRAMES * uv.shape[0]
    one, mean = rms(first_frame - trilinear), rms(total / FRAMES - trilinear)
    # independent draws would leave about 1/sqrt(64) = 0.125 of one frame's error (0.03 here)
    assert mean <= 0.06 * one, f"mean of {FRAMES} frames: rms {mean:.4f} vs one frame {one:.4f}"
