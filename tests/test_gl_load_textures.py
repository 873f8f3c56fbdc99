"""Load mode into ordinary GL textures: every level of every texture against the PyTorch decoder.

Each decoded GL texture is read back level by level and compared with
to_uint(FileDecoder.from_model(model).textures_mip(m), bits) (bits = 16 for the R16..RGBA16
formats, else 8): PSNR >= 50 dB and >= 99.9 % of values within +-1 per texture and mip, on 8-bit
values. Formats, padding channels, sampling state and byte counts are checked too. Tests that need
a context are marked `gl` and skip cleanly without an EGL OpenGL 4.5 context; models are tiny.
"""
from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest
import torch

from export import layout
from export.decode.reference import FileDecoder, to_uint
from export.format import NTCFormatError, from_bytes, to_bytes
from export.model import CONST, COPY, NORMAL_Z, STORED, ChannelInfo, TextureInfo
from shaders import build, glsl
from export.pixels import srgb_to_linear
from export.decode import gl_context, gl_load as gl_decode
from export.decode.gl_load import GLTextureDecoder, decode_to_textures, load_ntc_textures
from export.decode.gl_context import NTCGLError
from export.decode.gl_resources import NTCTextureGL, remap_block, texel_format

from test_gl_parity import set_model

PSNR_MIN = 50.0
WITHIN1_MIN = 0.999
GL_LINEAR_MIPMAP_LINEAR, GL_LINEAR = 0x2703, 0x2601
GL_TEXTURE_INTERNAL_FORMAT = 0x1003


def S(i):
    return ChannelInfo(STORED, index=i)


def tex(name, role, channels, colorspace="linear", bit_depth=8):
    return TextureInfo(name, f"{name}.png", role, colorspace, bit_depth, channels)


SETS = {
    # name: (width, height, textures, NetworkConfig)
    "pbr_13x7": (13, 7, [
        tex("normal", "normal", [S(0), S(1), ChannelInfo(NORMAL_Z)]),
        tex("baseColor", "baseColor", [S(2), S(3), S(4), S(5)], "srgb"),  # RGBA, alpha linear
        tex("orm", "orm", [S(6), S(7), ChannelInfo(CONST, value=0.25)]),
        tex("roughness", "roughness", [S(8)]),
    ], dict(features=8, bits=4, grid_scale=4.0, hidden=(16,))),
    "formats_5x17": (5, 17, [
        tex("grey", "baseColor", [S(0)], "srgb"),                       # SRGB8_ALPHA8, grey x3
        tex("emissive16", "emissive", [S(1), S(2), S(3)], "srgb", 16),  # no 16-bit sRGB: 8-bit
        tex("height16", "height", [S(4)], bit_depth=16),                # R16
        tex("rg", "data", [S(5), S(6)]),                                # RG8
        tex("rgb16", "data", [S(7), ChannelInfo(COPY, index=0), S(8)], bit_depth=16),  # RGBA16
        tex("la", "data", [S(9), ChannelInfo(CONST, value=1.0)], bit_depth=16),        # RG16
    ], dict(features=8, bits=3, grid_scale=2.0, hidden=(16, 16), hr_sampling="gather4",
            weight_format="fp16")),
    # 10 textures: two draws per mip (8 render targets, then 2)
    "ten_textures_24x16": (24, 16, [tex(f"t{i}", "data", [S(i)]) for i in range(9)]
                           + [tex("const", "metallic", [ChannelInfo(CONST, value=0.5)])],
                           dict(features=4, bits=5, grid_scale=4.0, hidden=(16,))),
}

EXPECTED_FORMATS = {
    "pbr_13x7": ["GL_RGBA8", "GL_SRGB8_ALPHA8", "GL_RGBA8", "GL_R8"],
    "formats_5x17": ["GL_SRGB8_ALPHA8", "GL_SRGB8_ALPHA8", "GL_R16", "GL_RG8", "GL_RGBA16",
                     "GL_RG16"],
    "ten_textures_24x16": ["GL_R8"] * 10,
}
BYTES_PER_TEXEL = {"GL_R8": 1, "GL_RG8": 2, "GL_RGBA8": 4, "GL_SRGB8_ALPHA8": 4, "GL_R16": 2,
                   "GL_RG16": 4, "GL_RGBA16": 8}


def figures(got: np.ndarray, ref: np.ndarray, bits: int) -> tuple[float, float, float]:
    """(PSNR dB, share within +-1, share exact) on 8-bit values (16-bit ones scaled to 8 bits)."""
    scale = 255.0 / ((1 << bits) - 1)
    a, b = got.astype(np.float64) * scale, ref.astype(np.float64) * scale
    mse = float(np.mean((a - b) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
    return psnr, float(np.mean(np.round(diff * scale) <= 1)), float(np.mean(diff == 0))


def check_textures(model, decoded, tag="", check_within1=True):
    """Every level of every texture against the PyTorch decoder: PSNR >= 50 dB, and with
    check_within1 >= 99.9 % within +-1, per texture and mip. Returns (share of values equal to
    the reference pooled over the 8-bit formats, share within +-1 pooled over everything); 16-bit
    values sit 256 times closer to a rounding edge, so float rounding moves some of them by one."""
    ref = FileDecoder.from_model(model)
    exact = total8 = close = total = 0
    for m in range(model.mips):
        w, h = layout.mip_size(model.width, model.height, m)
        for info, d, expected in zip(model.textures, decoded, ref.textures_mip(m)):
            got = d.read(m)
            want = to_uint(expected, d.format.bits)
            assert got.shape == want.shape == (h, w, len(info.channels))
            psnr, within1, same = figures(got, want, d.format.bits)
            where = f"{tag} mip {m} {info.name} ({d.internal_format})"
            assert psnr >= PSNR_MIN, f"{where}: PSNR {psnr:.1f} dB"
            if check_within1:
                assert within1 >= WITHIN1_MIN, f"{where}: {within1:.4%} within +-1"
            close += round(within1 * got.size)
            total += got.size
            if d.format.bits == 8:
                exact += round(same * got.size)
                total8 += got.size
    return exact / total8, close / total


@pytest.mark.gl
@pytest.mark.parametrize("name", list(SETS))
def test_every_level_of_every_texture_matches_pytorch(ctx, name):
    w, h, textures, cfg = SETS[name]
    model = set_model(w, h, textures, **cfg)
    with NTCTextureGL(model, ctx) as t:
        decoded = decode_to_textures(t)
    try:
        assert [d.name for d in decoded] == [t.name for t in model.textures]
        assert [d.internal_format for d in decoded] == EXPECTED_FORMATS[name]
        # the exact latent path and llvmpipe's round-half-even output: in practice every value
        assert check_textures(model, decoded, name)[0] >= 0.999
    finally:
        for d in decoded:
            d.release()


@pytest.mark.gl
@pytest.mark.parametrize("hw_filter", [False, True], ids=["texel_fetch", "hw_filter"])
def test_trained_set_decodes_into_textures(ctx, trained, hw_filter):
    model = from_bytes(trained.data)
    with NTCTextureGL(model, ctx) as t:
        decoded = decode_to_textures(t, hw_filter=hw_filter)
    try:
        assert [d.internal_format for d in decoded] == [texel_format(i).name
                                                        for i in model.textures]
        # GL_LINEAR quantizes the filter weights (8 bits on llvmpipe): a few values move by 2,
        # more than 0.1 % of one small mip's values, so that bar holds pooled over the set.
        _, pooled = check_textures(model, decoded, check_within1=not hw_filter)
        assert pooled >= WITHIN1_MIN
    finally:
        for d in decoded:
            d.release()


@pytest.mark.gl
def test_formats_padding_bytes_and_sampling_state(ctx):
    w, h, textures, cfg = SETS["formats_5x17"]
    model = set_model(w, h, textures, seed=1, **cfg)
    gl = gl_context.RawGL()
    with NTCTextureGL(model, ctx) as t:
        decoded = decode_to_textures(t)
    try:
        for info, d in zip(model.textures, decoded):
            fmt = d.format
            # what the driver allocated, at every level
            d.texture.use(0)
            for m in range(model.mips):
                got = ctypes.c_int(0)
                gl.glGetTexLevelParameteriv(gl_context.GL_TEXTURE_2D, m,
                                            GL_TEXTURE_INTERNAL_FORMAT, ctypes.byref(got))
                assert got.value == fmt.enum, f"{info.name} level {m}"
            sizes = [layout.mip_size(w, h, m) for m in range(model.mips)]
            assert d.levels == model.mips
            assert d.bytes == sum(a * b for a, b in sizes) * BYTES_PER_TEXEL[fmt.name]
            assert d.texture.filter == (GL_LINEAR_MIPMAP_LINEAR, GL_LINEAR)
            assert d.texture.anisotropy == max(1.0, ctx.max_anisotropy)
            # channels beyond the source's: what GL gives for a narrower format (0, 0, 1), and
            # a grey sRGB texture repeated into G and B
            peak = (1 << fmt.bits) - 1
            dtype = np.uint16 if fmt.bits == 16 else np.uint8
            full = np.frombuffer(d.texture.read(level=0), dtype).reshape(h, w, fmt.components)
            n = len(info.channels)
            if info.name == "grey":
                assert (full[..., 1] == full[..., 0]).all() and (full[..., 2] == full[..., 0]).all()
                assert (full[..., 3] == peak).all()
            elif fmt.components == 4 and n == 3:
                assert (full[..., 3] == peak).all()
    finally:
        for d in decoded:
            d.release()


@pytest.mark.gl
def test_decoder_leaves_the_context_as_it_found_it(ctx):
    w, h, textures, cfg = SETS["pbr_13x7"]
    model = set_model(w, h, textures, **cfg)
    previous = ctx.fbo
    target = ctx.texture((4, 4), 4)
    home = ctx.framebuffer([target])
    home.use()
    gl = gl_context.RawGL()
    gl.glEnable(gl_context.GL_FRAMEBUFFER_SRGB)
    try:
        with NTCTextureGL(model, ctx) as t:
            dec = GLTextureDecoder(t)
            decoded = dec.allocate()
            dec.decode_into(decoded)
            dec.release()
        assert gl.glIsEnabled(gl_context.GL_FRAMEBUFFER_SRGB)
        assert ctx.viewport == (0, 0, 4, 4)
        check_textures(model, decoded)  # sRGB encoding was off while decoding
        for d in decoded:
            d.release()
    finally:
        gl.glDisable(gl_context.GL_FRAMEBUFFER_SRGB)
        previous.use()
        home.release()
        target.release()


# ----------------------------------------------------------------------------------------------
# without a context

def test_remap_block_layout():
    w, h, textures, cfg = SETS["pbr_13x7"]
    model = set_model(w, h, textures, **cfg)
    block = remap_block(model)
    assert len(block) == 3 * 16 * 16  # int4 kind[16], int4 index[16], float4 value[16]
    kind = np.frombuffer(block[:256], np.int32).reshape(16, 4)
    index = np.frombuffer(block[256:512], np.int32).reshape(16, 4)
    value = np.frombuffer(block[512:], np.float32).reshape(16, 4)
    assert kind[0].tolist() == [0, 0, 3, 1] and index[0, :2].tolist() == [0, 1]  # normal + Z
    assert kind[2].tolist() == [0, 0, 1, 1] and value[2, 2:].tolist() == [0.25, 1.0]  # const, A=1
    assert kind[3].tolist() == [0, 1, 1, 1] and value[3, 1:].tolist() == [0.0, 0.0, 1.0]


def test_more_textures_than_the_remap_block_holds_is_a_gl_error():
    const = [tex(f"c{i}", "data", [ChannelInfo(CONST, value=0.5)]) for i in range(16)]
    textures = [tex("data", "data", [S(0)])] + const
    model = set_model(4, 4, textures, features=4, hidden=(8,))
    with pytest.raises(NTCGLError, match="17 textures, the GL decoder writes at most 16"):
        remap_block(model)


def test_rejected_file_never_reaches_gl(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(gl_decode, "NTCTextureGL", lambda *a: made.append("texture"))
    monkeypatch.setattr(gl_decode, "GLTextureDecoder", lambda *a: made.append("decoder"))
    good = to_bytes(set_model(8, 8, [tex("t", "data", [S(0)])], features=4, hidden=(8,)))
    bad = tmp_path / "bad.ntc"
    bad.write_bytes(good[:-3])  # truncated
    with pytest.raises(NTCFormatError):
        load_ntc_textures(bad, ctx=object())
    assert made == []


@pytest.mark.gl
def test_srgb_to_linear_helper_matches_the_trainer(ctx, tmp_path):
    """ntc_remap.slang's ntcSrgbToLinear (for shaders that light with decoded colour), compiled by
    slangc and rendered, against trainer/targets.py's curve."""
    try:
        build.find_slangc()
    except build.ShaderBuildError as e:
        pytest.skip(str(e))
    shutil.copy(build.SHADER_DIR / "ntc_remap.slang", tmp_path)
    src = tmp_path / "srgb_ramp.slang"
    src.write_text('import ntc_remap;\n[shader("fragment")]\n'
                   "float4 main(float4 p : SV_Position) : SV_Target0\n"
                   "{\n    float x = floor(p.x) / 255.0;\n"
                   "    return float4(ntcSrgbToLinear(float3(x, 1.0 - x, 0.04045)), 1.0);\n}\n")
    frag = build.compile_glsl(src, "main", "fragment")
    vert = glsl.load_generated(gl_decode.VERTEX)
    program = gl_context.build_program(ctx, vert, frag, "sRGB ramp")
    vbo = ctx.buffer(np.array([-1.0, -1.0, 3.0, -1.0, -1.0, 3.0], np.float32).tobytes())
    vao = ctx.vertex_array(program, [(vbo, "2f", "position_0")])
    target = ctx.texture((256, 1), 4, dtype="f4")
    fbo = ctx.framebuffer([target])
    previous = ctx.fbo
    try:
        fbo.use()
        vao.render(vertices=3)
        got = np.frombuffer(fbo.read(components=4, dtype="f4"), np.float32).reshape(256, 4)
    finally:
        previous.use()
        for obj in (fbo, target, vao, vbo, program):
            obj.release()
    x = torch.arange(256, dtype=torch.float32) / 255.0
    want = srgb_to_linear(torch.stack([x, 1.0 - x, torch.full_like(x, 0.04045)], 1)).numpy()
    np.testing.assert_allclose(got[:, :3], want, rtol=1e-5, atol=1e-7)
