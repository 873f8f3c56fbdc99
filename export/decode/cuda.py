"""The CUDA twin of the decoder: shaders/ntc_torch.slang built into a kernel by slangtorch.

The kernel runs ntcDecodeWith from shaders/ntc_decode_core.slang -- the Slang function the GL
shaders are generated from -- over PyTorch tensors, with the contract of
`export.decode.reference.decode_texels`: stored-channel values for texels at `uv` of colour mips `mip`.

    from export.decode.cuda import decode_texels_cuda
    stored = decode_texels_cuda(model, mip, uv)     # NTCModel, FileDecoder or CudaDecodeTensors

    # float parameters (the trainer): the same arguments decode_texels takes
    tensors = pack_tensors(table, pyramid, weights, biases)
    stored = decode_texels_cuda(tensors, mip, uv)

Inference only: the kernel has no backward pass, its output carries no autograd history.

Nothing here imports slangtorch or touches CUDA before a kernel is needed, so CPU machines import
this module freely; `load_kernels` raises CudaDecoderError naming the reason when CUDA or
slangtorch is missing or the build fails. slangtorch.loadModule writes its build cache
(.slangtorch_cache/) and a lock file next to the Slang source, so the sources are first staged
into a cache folder ($NTC_SLANGTORCH_DIR, else $XDG_CACHE_HOME/ntc/slangtorch or
~/.cache/ntc/slangtorch) rather than built inside the repository or an installed package.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from shaders.build import SHADER_DIR

from .. import layout
from ..errors import NTCError
from ..model import NTCModel
from .network_block import UnsupportedNetwork, weight_block, widths_vec4
from .reference import FileDecoder, LatentPyramid, texel_uv

MODULE = "ntc_torch.slang"
SOURCES = (MODULE, "ntc_decode_core.slang")  # the module and everything it imports
KERNEL = "ntc_decode_texels"
BLOCK_SIZE = 128  # threads per CUDA block, one texel each

_kernels = None


class CudaDecoderError(NTCError, RuntimeError):
    """The CUDA decoder cannot run here (no CUDA, no slangtorch, build failed, bad input)."""


# ----------------------------------------------------------------------------------------------
# tensors in the kernel's layout (shaders/ntc_torch.slang)

@dataclass
class CudaDecodeTensors:
    """What the kernel reads, on one device (see shaders/ntc_torch.slang)."""
    table: torch.Tensor   # float32 [texels, features] dequantized latents, level after level
    levels: torch.Tensor  # int32 [levels, 3]: width, height, first row in `table`
    block: torch.Tensor   # float32 [4 + 4 n]: network_block.weight_block (texel scale, offset 0)
    shape: torch.Tensor   # int32 [3 + layers]: features, gather4, layers, output vec4s per layer
    stored: int           # stored channels (the last layer's true width)

    def to(self, device) -> "CudaDecodeTensors":
        return CudaDecodeTensors(self.table.to(device), self.levels.to(device),
                                 self.block.to(device), self.shape.to(device), self.stored)

    @property
    def device(self) -> torch.device:
        return self.table.device


def pack_tensors(table: torch.Tensor, pyr: LatentPyramid, weights: list[torch.Tensor],
                 biases: list[torch.Tensor]) -> CudaDecodeTensors:
    """The kernel's tensors from decode_texels' arguments (on the table's device). Raises
    CudaDecoderError for shapes the kernel cannot run (network_block.check_supported, the one
    shape check the GL decoder runs too)."""
    features = int(table.shape[1])
    hr = pyr.hr_sampling
    try:
        block = weight_block([w.detach().float().cpu().numpy() for w in weights],
                             [b.detach().float().cpu().numpy() for b in biases], features, hr,
                             pyr.mips, int(pyr.sizes.shape[0]))
    except UnsupportedNetwork as e:
        raise CudaDecoderError(f"the CUDA decoder cannot run this network: {e}") from None
    dev = table.device
    levels = torch.stack([pyr.sizes[:, 0], pyr.sizes[:, 1], pyr.offsets], 1)
    outs = [o for _, o in widths_vec4([(w.shape[1], w.shape[0]) for w in weights])]
    shape = [features, int(hr == "gather4"), len(outs)] + outs
    return CudaDecodeTensors(table.detach().float().contiguous(),
                             levels.to(device=dev, dtype=torch.int32).contiguous(),
                             torch.from_numpy(block).to(dev),
                             torch.tensor(shape, dtype=torch.int32, device=dev),
                             int(weights[-1].shape[0]))


def tensors_for(source, device="cuda") -> CudaDecodeTensors:
    """CudaDecodeTensors on `device` for an NTCModel, a FileDecoder or CudaDecodeTensors."""
    if isinstance(source, CudaDecodeTensors):
        return source.to(device)
    if isinstance(source, NTCModel):
        source = FileDecoder.from_model(source)
    if isinstance(source, FileDecoder):
        packed = pack_tensors(source.table, source.pyramid, source.weights, source.biases)
        return packed.to(device)
    raise TypeError(f"expected NTCModel, FileDecoder or CudaDecodeTensors, got "
                    f"{type(source).__name__}")


# ----------------------------------------------------------------------------------------------
# the kernel

def cache_dir() -> Path:
    """Where the Slang sources are staged and slangtorch builds them."""
    override = os.environ.get("NTC_SLANGTORCH_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ntc" / "slangtorch"


def stage_sources(folder: Path | None = None) -> Path:
    """Copy the module's Slang sources into `folder` (unchanged files keep their mtime, so
    slangtorch's dependency check does not rebuild); returns the path of the module."""
    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        text = (SHADER_DIR / name).read_text()
        dst = folder / name
        if not dst.is_file() or dst.read_text() != text:
            tmp = dst.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, dst)
    return folder / MODULE


def load_kernels(verbose: bool = False):
    """The slangtorch module of shaders/ntc_torch.slang (built once, then cached). Needs CUDA
    PyTorch, nvcc and slangtorch; raises CudaDecoderError naming what is missing."""
    global _kernels
    if _kernels is not None:
        return _kernels
    if not torch.cuda.is_available():
        raise CudaDecoderError("CUDA is not available (torch.cuda.is_available() is False)")
    try:
        import slangtorch
    except Exception as e:  # ImportError, or slangtorch's own RuntimeError (no slangc)
        raise CudaDecoderError(f"slangtorch cannot be imported: {e}") from None
    path = stage_sources()
    try:
        module = slangtorch.loadModule(str(path), verbose=verbose)
    except Exception as e:  # slangc, nvcc or the torch extension build failed
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CudaDecoderError(f"slangtorch could not build {MODULE}: {msg}") from e
    if not hasattr(module, KERNEL):
        raise CudaDecoderError(f"slangtorch built {MODULE} without the {KERNEL} kernel")
    _kernels = module
    return module


def _device(source, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(source, CudaDecodeTensors) and source.device.type == "cuda":
        return source.device
    return torch.device("cuda")


def decode_texels_cuda(source, mip: torch.Tensor, uv: torch.Tensor,
                       block_size: int = BLOCK_SIZE, device=None) -> torch.Tensor:
    """float32 [N, stored] stored-channel values for texels at `uv` ([N, 2]) of colour mips `mip`
    ([N]), on the GPU: export.decode.reference.decode_texels run by the Slang kernel. `source` is an
    NTCModel, a FileDecoder or CudaDecodeTensors (pack_tensors; pack once and reuse them, they are
    used as they are when already on `device`). `device`: the source's when it is on CUDA, else
    the current CUDA device."""
    kernels = load_kernels()
    device = _device(source, device)
    t = tensors_for(source, device)
    if mip.dim() != 1 or uv.shape != (mip.shape[0], 2):
        raise ValueError(f"mip [N] and uv [N, 2] expected, got {tuple(mip.shape)} and "
                         f"{tuple(uv.shape)}")
    n = int(mip.shape[0])
    mip = mip.to(device=device, dtype=torch.int32).contiguous()
    uv = uv.to(device=device, dtype=torch.float32).contiguous()
    out = torch.empty((n, t.stored), dtype=torch.float32, device=device)
    if n == 0:
        return out
    getattr(kernels, KERNEL)(table=t.table, levels=t.levels, block=t.block, shape=t.shape,
                             mip=mip, uv=uv, output=out).launchRaw(
        blockSize=(block_size, 1, 1), gridSize=((n + block_size - 1) // block_size, 1, 1))
    return out


def stored_mip_cuda(source, mip: int, width: int, height: int, device=None) -> torch.Tensor:
    """[h, w, stored] stored channels of colour mip `mip` of a width x height set, on the GPU
    (FileDecoder.stored_mip's twin; `source` and `device` as for decode_texels_cuda)."""
    device = _device(source, device)
    w, h = layout.mip_size(width, height, mip)
    uv = texel_uv(w, h, device)
    mips = torch.full((uv.shape[0],), mip, dtype=torch.int32, device=device)
    return decode_texels_cuda(source, mips, uv, device=device).reshape(h, w, -1)
