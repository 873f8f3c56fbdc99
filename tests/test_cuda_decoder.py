"""The slangtorch CUDA decoder (shaders/ntc_torch.slang, export/decode/cuda.py).

Tests marked `cuda` build the kernel with slangtorch and hold it to the PyTorch twin
(export/decode/reference.py) on random and trained models, every mip: max abs difference <= 1e-4. They
skip where torch.cuda.is_available() is False or slangtorch cannot build the module.

The rest runs everywhere: the module translates with the bundled slangc for the CUDA target (and
for slangtorch's host binding), so a syntax or type error in the CUDA path fails CI without a GPU;
where nvcc is on PATH the generated CUDA source is compiled too (no GPU needed for that). The
weight block the kernel reads is held to the GL one (export/decode/network_block.py). And the
CUDA path's own Slang (ntc_torch.slang's ntcDecodeTexel over NtcTableLatents / NtcBlockWeights,
ntc_decode_core.slang's ntcDecodeWith with a run-time shape) runs on the CPU through slangc's C++
target (tests/ntc_cpu_decode.slang, StructuredBuffers in place of TensorViews), held to the PyTorch
twin with bounds checks on every buffer and array read. What that leaves to the `cuda` tests: the
TensorView reads and stores, the thread indexing, nvcc's float code and the slangtorch build.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from export import layout
from export.decode import cuda as cuda_decoder
from export.decode.cuda import (CudaDecoderError, decode_texels_cuda, pack_tensors,
                                 stored_mip_cuda, tensors_for)
from export.decode.reference import FileDecoder, LatentPyramid, decode_texels, texel_uv
from export.format import from_bytes
from shaders import build
from test_gl_parity import VARIANTS, random_model
from export.decode.network_block import model_block

CUDA_ATOL = 1e-4
ROOT = build.SHADER_DIR.parent


def _slangc():
    try:
        return build.find_slangc()
    except build.ShaderBuildError as e:
        pytest.skip(str(e))


def _translate(tmp_path, target: str, suffix: str) -> str:
    """slangc's translation of ntc_torch.slang for `target` (what slangtorch.loadModule runs
    first; no nvcc, no GPU)."""
    out = tmp_path / f"ntc_torch{suffix}"
    cmd = [str(_slangc()), str(build.SHADER_DIR / cuda_decoder.MODULE),
           "-I", str(build.SHADER_DIR), "-target", target, "-o", str(out),
           "-ignore-capabilities", "-line-directive-mode", "none"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out.is_file(), \
        f"slangc -target {target} failed:\n{proc.stderr}{proc.stdout}"
    return out.read_text()


# ----------------------------------------------------------------------------------------------
# everywhere: the CUDA path compiles, and its inputs are the GL ones

def test_torch_module_translates_for_cuda_with_the_kernel_entry_point(tmp_path):
    cu = _translate(tmp_path, "cuda", ".cu")
    assert f"__global__ void __kernel__{cuda_decoder.KERNEL}(" in cu
    binding = _translate(tmp_path, "torch-binding", ".cpp")
    assert f'm.def("{cuda_decoder.KERNEL}"' in binding
    # the argument names slangtorch binds are the keywords decode_texels_cuda passes
    info = binding[binding.index(f"__funcinfo__{cuda_decoder.KERNEL}()"):]
    names = re.findall(r'toTerminatedSlice\("(\w*)"\)', info[:info.index("\n}")])
    assert names[:9] == ["__blockSize", "__gridSize", "table", "levels", "block", "shape", "mip",
                         "uv", "output"]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_generated_cuda_source_compiles_with_nvcc(tmp_path):
    cu = tmp_path / "ntc_torch.cu"
    cu.write_text(_translate(tmp_path, "cuda", ".cu"))
    # slangtorch's own flags for the kernel file (slangtorch.slangtorch.DEFAULT_CUDA_CFLAGS)
    flags = ["-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
             "-U__CUDA_NO_HALF2_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
             "-DSLANG_CUDA_ENABLE_HALF=1"]
    proc = subprocess.run(["nvcc", "-ptx", "-std=c++17", "-w", *flags, str(cu), "-o",
                           str(tmp_path / "ntc_torch.ptx")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"nvcc failed:\n{proc.stderr[-4000:]}"
    ptx = (tmp_path / "ntc_torch.ptx").read_text()
    assert f"__kernel__{cuda_decoder.KERNEL}" in ptx and ".entry" in ptx


@pytest.mark.parametrize("name", list(VARIANTS))
def test_packed_tensors_are_the_gl_weight_block_and_the_file_pyramid(name):
    w, h, stored, cfg, _ = VARIANTS[name]
    model = random_model(w, h, stored, **cfg)
    t = tensors_for(model, "cpu")
    gl = model_block(model)
    block = t.block.numpy()
    assert block.dtype == np.float32 and block.shape == gl.shape
    np.testing.assert_array_equal(block[4:], gl[4:])  # every weight and bias, same order
    assert block[0] == gl[0] and block[3] == gl[3]     # lod divisor, last latent level
    lat = model.latent
    counts = [lw * lh for lw, lh in lat.levels]
    assert t.levels.dtype == torch.int32
    assert t.levels.tolist() == [[lw, lh, int(np.sum(counts[:j]))]
                                 for j, (lw, lh) in enumerate(lat.levels)]
    outs = [layout.pad4(o) // 4 for _, o in model.mlp_dims]
    assert t.shape.tolist() == [lat.features, int(lat.hr_sampling == "gather4"), len(outs), *outs]
    assert t.table.shape == (sum(counts), lat.features) and t.stored == model.stored_channels


def test_pack_rejects_what_the_kernel_cannot_run():
    pyr = LatentPyramid.build([(4, 4), (2, 2), (1, 1)], 3, "bilinear")
    n_in = layout.mlp_input_size(8, "bilinear")
    table = torch.zeros(pyr.texels, 8)
    ok = [torch.zeros(16, n_in), torch.zeros(4, 16)], [torch.zeros(16), torch.zeros(4)]
    pack_tensors(table, pyr, *ok)
    with pytest.raises(CudaDecoderError, match="multiple of 4"):
        pack_tensors(torch.zeros(pyr.texels, 6), pyr, *ok)
    with pytest.raises(CudaDecoderError, match="input width"):
        pack_tensors(table, pyr, [torch.zeros(16, n_in + 4), torch.zeros(4, 16)], ok[1])
    with pytest.raises(CudaDecoderError, match="17 stored channels"):
        pack_tensors(table, pyr, [torch.zeros(16, n_in), torch.zeros(17, 16)],
                     [torch.zeros(16), torch.zeros(17)])
    with pytest.raises(CudaDecoderError, match="wider than 256"):
        pack_tensors(table, pyr, [torch.zeros(260, n_in), torch.zeros(4, 260)],
                     [torch.zeros(260), torch.zeros(4)])
    with pytest.raises(TypeError, match="NTCModel, FileDecoder"):
        tensors_for("model.ntc")


def test_without_cuda_the_error_says_so(monkeypatch):
    monkeypatch.setattr(cuda_decoder, "_kernels", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CudaDecoderError, match=r"CUDA is not available"):
        cuda_decoder.load_kernels()
    with pytest.raises(CudaDecoderError, match=r"CUDA is not available"):
        decode_texels_cuda(random_model(8, 8, 4, features=4, hidden=(8,)),
                           torch.zeros(1, dtype=torch.long), torch.full((1, 2), 0.5))


def test_importing_the_cuda_decoder_needs_neither_cuda_nor_slangtorch():
    code = ("import sys, export.decode.cuda; "
            "assert 'slangtorch' not in sys.modules, 'slangtorch imported eagerly'")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_sources_are_staged_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("NTC_SLANGTORCH_DIR", str(tmp_path / "st"))
    path = cuda_decoder.stage_sources()
    assert path == tmp_path / "st" / cuda_decoder.MODULE
    for name in cuda_decoder.SOURCES:
        assert (tmp_path / "st" / name).read_text() == (build.SHADER_DIR / name).read_text()
    before = path.stat().st_mtime_ns
    cuda_decoder.stage_sources()
    assert path.stat().st_mtime_ns == before  # unchanged sources: slangtorch need not rebuild
    # everything ntc_torch.slang imports travels with it
    imports = set()
    for name in cuda_decoder.SOURCES:
        for line in (build.SHADER_DIR / name).read_text().splitlines():
            words = line.split()
            if words[:1] == ["import"] or words[:2] == ["__exported", "import"]:
                imports.add(words[-1].rstrip(";") + ".slang")
    assert imports <= set(cuda_decoder.SOURCES)


# ----------------------------------------------------------------------------------------------
# everywhere: the CUDA path's Slang run on the CPU (slangc -target cpp + the host C++ compiler)

class _Buffer(ctypes.Structure):  # the C++ prelude's StructuredBuffer<T>
    _fields_ = [("data", ctypes.c_void_p), ("count", ctypes.c_size_t)]


class _CpuParams(ctypes.Structure):  # cpuDecode's uniform parameters, in order
    _fields_ = [(name, _Buffer) for name in
                ("table", "levels", "block", "shape", "mip", "uv", "output")] + \
               [("features", ctypes.c_uint32), ("channels", ctypes.c_uint32)]


class _Uint3(ctypes.Structure):
    _fields_ = [("x", ctypes.c_uint32), ("y", ctypes.c_uint32), ("z", ctypes.c_uint32)]


class _Varying(ctypes.Structure):  # ComputeVaryingInput: groups [start, end)
    _fields_ = [("start", _Uint3), ("end", _Uint3)]


# Out-of-range reads of any buffer or local array are counted (and read element 0) instead of
# being undefined: the tests require none.
_CPU_MAIN = """
static int ntcBoundErrors = 0;
#define SLANG_PRELUDE_ASSERT(VALUE) do { if (!(VALUE)) ++ntcBoundErrors; } while (0)
#define SLANG_ENABLE_BOUND_ZERO_INDEX 1
#include "ntc_cpu_decode.cpp"
extern "C" SLANG_PRELUDE_EXPORT int ntcCpuBoundErrors() { return ntcBoundErrors; }
"""


class CpuDecoder:
    """tests/ntc_cpu_decode.slang compiled for the CPU: decode(CudaDecodeTensors, mip, uv)."""

    def __init__(self, folder):
        cpp = folder / "ntc_cpu_decode.cpp"
        cmd = [str(_slangc()), str(ROOT / "tests" / "ntc_cpu_decode.slang"),
               "-I", str(build.SHADER_DIR), "-target", "cpp", "-entry", "cpuDecode",
               "-stage", "compute", "-line-directive-mode", "none", "-o", str(cpp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"slangc -target cpp failed:\n{proc.stderr}{proc.stdout}"
        (folder / "main.cpp").write_text(_CPU_MAIN)
        lib = folder / "ntc_cpu_decode.so"
        cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
        proc = subprocess.run([cxx, "-std=c++17", "-O1", "-shared", "-fPIC", "-w",
                               str(folder / "main.cpp"), "-o", str(lib)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{cxx} failed:\n{proc.stderr[-4000:]}"
        self.lib = ctypes.CDLL(str(lib))
        self.lib.cpuDecode.argtypes = [ctypes.POINTER(_Varying), ctypes.POINTER(_CpuParams),
                                       ctypes.c_void_p]
        self.lib.cpuDecode.restype = None
        self.lib.ntcCpuBoundErrors.restype = ctypes.c_int

    def decode(self, t, mip: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        arrays = [t.table.numpy(), t.levels.numpy(), t.block.numpy(), t.shape.numpy(),
                  mip.to(torch.int32).numpy(), uv.float().numpy()]
        arrays = [np.ascontiguousarray(a) for a in arrays]
        n = int(mip.shape[0])
        out = np.full((n, t.stored), np.nan, np.float32)
        bufs = [_Buffer(a.ctypes.data, a.size) for a in arrays + [out]]
        params = _CpuParams(*bufs, t.table.shape[1], t.stored)
        before = self.lib.ntcCpuBoundErrors()
        self.lib.cpuDecode(ctypes.byref(_Varying(_Uint3(0, 0, 0), _Uint3(n, 1, 1))),
                           ctypes.byref(params), None)
        assert self.lib.ntcCpuBoundErrors() == before, "out-of-range reads in the Slang decoder"
        return torch.from_numpy(out)


@pytest.fixture(scope="module")
def cpu_decoder(tmp_path_factory):
    _slangc()
    if not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")):
        pytest.skip("no host C++ compiler (c++, g++ or $CXX)")
    return CpuDecoder(tmp_path_factory.mktemp("ntc-cpu-decode"))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_cuda_path_slang_on_the_cpu_matches_pytorch_in_every_mip(cpu_decoder, name):
    w, h, stored, cfg, _ = VARIANTS[name]
    model = random_model(w, h, stored, **cfg)
    ref = FileDecoder.from_model(model)
    t = tensors_for(ref, "cpu")
    for m in range(model.mips):
        mw, mh = layout.mip_size(model.width, model.height, m)
        uv = texel_uv(mw, mh)
        mip = torch.full((uv.shape[0],), m, dtype=torch.long)
        got = cpu_decoder.decode(t, mip, uv)
        expected = ref.stored_mip(m).reshape(-1, stored)
        diff = float((got - expected).abs().max())
        assert diff <= CUDA_ATOL, f"mip {m}: stored channels differ by up to {diff:.2e}"


@pytest.mark.parametrize("hr", layout.HR_SAMPLINGS)
def test_cuda_path_slang_on_the_cpu_at_any_uv_with_float_parameters(cpu_decoder, hr):
    expected, tensors, mip, uv = float_parameter_case(hr, "cpu")
    got = cpu_decoder.decode(tensors, mip, uv)
    assert float((got - expected).abs().max()) <= CUDA_ATOL


def test_cuda_path_slang_on_the_cpu_decodes_the_trained_file(cpu_decoder, trained):
    model = from_bytes(trained.data)
    ref = FileDecoder.from_model(model)
    t = tensors_for(ref, "cpu")
    for m in range(model.mips):
        mw, mh = layout.mip_size(model.width, model.height, m)
        uv = texel_uv(mw, mh)
        got = cpu_decoder.decode(t, torch.full((uv.shape[0],), m, dtype=torch.long), uv)
        assert float((got - ref.stored_mip(m).reshape(got.shape)).abs().max()) <= CUDA_ATOL


class _FakeKernels:
    """load_kernels' module as slangtorch wraps it, running the CPU build of the same Slang: holds
    decode_texels_cuda's side (keywords, dtypes, launch size, output) to the binding."""

    def __init__(self, cpu):
        self.cpu, self.launches = cpu, []

    def ntc_decode_texels(self, **kw):
        assert list(kw) == ["table", "levels", "block", "shape", "mip", "uv", "output"]
        ints = ("levels", "shape", "mip")
        for name, v in kw.items():  # make_tensor_view's checks
            assert v.dtype == (torch.int32 if name in ints else torch.float32), name
        fake = self

        class Launchable:
            def launchRaw(self, blockSize, gridSize):
                assert all(isinstance(x, int) for x in blockSize + gridSize)
                n = kw["output"].shape[0]
                assert blockSize[0] * gridSize[0] >= n > blockSize[0] * (gridSize[0] - 1)
                fake.launches.append((blockSize, gridSize))
                t = cuda_decoder.CudaDecodeTensors(kw["table"], kw["levels"], kw["block"],
                                                   kw["shape"], kw["output"].shape[1])
                kw["output"].copy_(fake.cpu.decode(t, kw["mip"], kw["uv"]))
        return Launchable()


def test_decode_texels_cuda_drives_the_binding_as_slangtorch_expects(cpu_decoder, monkeypatch):
    fake = _FakeKernels(cpu_decoder)
    monkeypatch.setattr(cuda_decoder, "load_kernels", lambda: fake)
    expected, tensors, mip, uv = float_parameter_case("bilinear", "cpu")
    got = decode_texels_cuda(tensors, mip, uv.double(), block_size=64, device="cpu")
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert float((got - expected).abs().max()) <= CUDA_ATOL
    assert fake.launches == [((64, 1, 1), ((mip.shape[0] + 63) // 64, 1, 1))]
    model = random_model(19, 9, 3, features=4, bits=4, grid_scale=2.0, hidden=(8,))
    ref = FileDecoder.from_model(model)
    got = stored_mip_cuda(model, 1, model.width, model.height, device="cpu")
    assert float((got - ref.stored_mip(1)).abs().max()) <= CUDA_ATOL
    assert decode_texels_cuda(tensors, mip[:0], uv[:0], device="cpu").shape == (0, 7)
    with pytest.raises(ValueError, match=r"mip \[N\] and uv \[N, 2\]"):
        decode_texels_cuda(tensors, mip, uv[:, :1], device="cpu")


def float_parameter_case(hr: str, device: str):
    """The trainer's case: float tensors (no file), uv anywhere (not only texel centres; -0.1 to
    1.1, where the taps clamp and the positional encoding sees negative coordinates), mixed mips.
    Returns (decode_texels' result on the CPU, packed tensors on `device`, mip, uv)."""
    model = random_model(37, 21, 7, seed=5, features=8, bits=4, grid_scale=2.0, hidden=(16, 16),
                         hr_sampling=hr)
    ref = FileDecoder.from_model(model)
    g = torch.Generator().manual_seed(0)
    weights = [wt + 0.01 * torch.randn(wt.shape, generator=g) for wt in ref.weights]
    n = 3000
    mip = torch.randint(0, model.mips, (n,), generator=g)
    uv = torch.rand(n, 2, generator=g) * 1.2 - 0.1
    expected = decode_texels(ref.table, ref.pyramid, weights, ref.biases, mip, uv)
    pyr = ref.pyramid
    tensors = pack_tensors(ref.table.to(device),
                           LatentPyramid(pyr.sizes.to(device), pyr.offsets.to(device), pyr.mips,
                                         hr),
                           [wt.to(device) for wt in weights], [b.to(device) for b in ref.biases])
    return expected, tensors, mip, uv


# ----------------------------------------------------------------------------------------------
# CUDA: the kernel against the PyTorch twin

@pytest.fixture(scope="module")
def kernels():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    try:
        return cuda_decoder.load_kernels()
    except CudaDecoderError as e:
        pytest.skip(f"slangtorch cannot build the CUDA decoder: {e}")


def check_every_mip(model):
    ref = FileDecoder.from_model(model)
    tensors = tensors_for(model, "cuda")
    worst = 0.0
    for m in range(model.mips):
        expected = ref.stored_mip(m).numpy()
        got = stored_mip_cuda(tensors, m, model.width, model.height).cpu().numpy()
        assert got.shape == expected.shape
        assert np.isfinite(got).all()
        diff = float(np.abs(got - expected).max())
        assert diff <= CUDA_ATOL, f"mip {m}: stored channels differ by up to {diff:.2e}"
        worst = max(worst, diff)
    return worst


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(VARIANTS))
def test_random_models_match_pytorch_in_every_mip(kernels, name):
    w, h, stored, cfg, _ = VARIANTS[name]
    check_every_mip(random_model(w, h, stored, **cfg))


@pytest.mark.cuda
def test_trained_file_matches_pytorch_in_every_mip(kernels, trained):
    check_every_mip(from_bytes(trained.data))


@pytest.mark.cuda
@pytest.mark.parametrize("hr", layout.HR_SAMPLINGS)
def test_float_parameters_at_any_uv_match_decode_texels(kernels, hr):
    expected, tensors, mip, uv = float_parameter_case(hr, "cuda")
    got = decode_texels_cuda(tensors, mip.cuda(), uv.cuda())
    assert got.device.type == "cuda" and got.shape == expected.shape
    assert float((got.cpu() - expected).abs().max()) <= CUDA_ATOL
    empty = decode_texels_cuda(tensors, mip[:0], uv[:0])
    assert empty.shape == (0, 7)
