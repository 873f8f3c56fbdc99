"""Builds and loads the trainer's C kernels (fused_step.c, optimisers.c, sampling.c) with the
system C compiler, into one library.

Plain C with no Python or torch headers, so it compiles in about a second; the library is cached
per source, compiler and CPU (it is built with -march=native) under $NTC_CACHE_DIR, else
$XDG_CACHE_HOME/ntc, else ~/.cache/ntc. Where no compiler is found, `load()` raises
NativeUnavailable and the trainer falls back to the reference (autograd) step.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from export.errors import NTCError

SOURCES = tuple(Path(__file__).with_name(n) for n in ("fused_step.c", "optimisers.c",
                                                      "sampling.c"))
HEADERS = (Path(__file__).with_name("kernels.h"),)  # included by the sources: part of the key
FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math",
         "-ffp-contract=off"]


class NativeUnavailable(NTCError, RuntimeError):
    """The C kernels cannot be built here (no compiler, or it failed); the message says why."""


class Layout(ctypes.Structure):
    _fields_ = [("mip_offsets", ctypes.c_void_p), ("mip_sizes", ctypes.c_void_p),
                ("mips", ctypes.c_int64),
                ("level_offsets", ctypes.c_void_p), ("level_sizes", ctypes.c_void_p),
                ("levels", ctypes.c_int64), ("features", ctypes.c_int64),
                ("gather4", ctypes.c_int64), ("pe_octaves", ctypes.c_int64)]


_P, _I, _F, _U = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_uint64
_SIGNATURES = {
    "ntc_encode_forward": (_I, [ctypes.POINTER(Layout), _P, _I, _P, _I, _F, _U, _U, _P, _I,
                                _P, _P, _P, _P, _P, _P, _I, _P]),
    "ntc_encode_backward": (None, [ctypes.POINTER(Layout), _I, _P, _I, _P, _P, _P]),
    "ntc_hswish_forward": (None, [_P, _I, _P, _I, _I]),
    "ntc_hswish_backward": (None, [_P, _I, _P, _I, _P, _I, _I, _I, _P]),
    "ntc_loss": (ctypes.c_double, [_P, _P, _I, _P, _I, _P, _P, _P, ctypes.POINTER(ctypes.c_double),
                                  _P, _P, _P]),
    "ntc_point_targets": (None, [ctypes.POINTER(Layout), _P, _I, _P, _P, _I, _P]),
    "ntc_adam": (None, [_P, _P, _P, _P, _I, _I, _F, _F, _F, _F]),
    "ntc_row_adam": (None, [_P, _P, _I, _P, _I, _P, _I, _F, _F, _F, _F, _P, _I]),
    "ntc_bias_corrections": (None, [_F, _F, _I, _P]),
    "ntc_guide_table": (None, [_P, _I, _P]),
    "ntc_sample_rows": (None, [_P, _P, _I, _P, _P, _P, _P, _I, _P, _I, _P, _P, _I, _P, _I, _P,
                               _I, _P, _P]),
    "ntc_observe_loss": (None, [_P, _P, _P, _I, _F, _F, _P]),
    "ntc_kronecker": (None, [_P, _P, _I, _I, _P]),
    "ntc_unit_floats": (None, [_P, _I, _I, _P]),
    "ntc_scaled_index": (None, [_P, _I, _I, _I, _P]),
}
_lib: ctypes.CDLL | None = None


def cache_dir() -> Path:
    if os.environ.get("NTC_CACHE_DIR"):
        return Path(os.environ["NTC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ntc"


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise NativeUnavailable("no C compiler found (install gcc, or set CC)")
    return cc


def _cpu_key() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def build(cc: str | None = None) -> Path:
    """Compile the kernels (if not cached) into one library and return its path."""
    cc = cc or _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"C compiler {cc} does not run: {e}") from None
    texts = [s.read_text() for s in SOURCES + HEADERS]
    key = hashlib.sha256("\0".join([*texts, *FLAGS, version, _cpu_key(),
                                    platform.machine()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"ntc_kernels-{key}.so"
    if out.exists():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
    except OSError as e:
        raise NativeUnavailable(f"cannot write the kernel cache {out.parent}: {e}") from None
    try:
        res = subprocess.run([cc, *FLAGS, "-o", tmp, *map(str, SOURCES), "-lm"],
                             capture_output=True, text=True, timeout=300)
        if res.returncode != 0:  # e.g. a compiler without -march=native: build portable code
            portable = [f for f in FLAGS if f != "-march=native"]
            res = subprocess.run([cc, *portable, "-o", tmp, *map(str, SOURCES), "-lm"],
                                 capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            first = (res.stderr.strip().splitlines() or ["(no message)"])[0]
            raise NativeUnavailable(f"{cc} failed to compile the trainer's kernels: {first}")
        os.replace(tmp, out)  # atomic: concurrent builders each write their own temp file
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"{cc} failed to compile the trainer's kernels: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load() -> ctypes.CDLL:
    """The kernels, built on first use; NativeUnavailable if they cannot be."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(build()))
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        _lib = lib
    return _lib
