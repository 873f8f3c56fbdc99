"""Shared fixtures: tiny synthetic texture sets on disk and one small model trained once per session.

Everything is deliberately small (40x24, a few hundred texels per mip chain) so the whole suite
stays fast on a 2-core machine that is busy with other work.
"""
from __future__ import annotations

import math
import os
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

# One intra-op thread, for this process and for the CLI subprocesses the tests start. Measured on
# this 2-core machine while a benchmark occupied both cores: 50 training steps took 1.3 s with one
# torch thread and 21.8 s with two (the OpenMP workers spin against the other load).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so the tests also run when pytest is started outside the repo
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(1)

# Reproducible property tests, and nothing of Hypothesis' written into the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ntc-tests-hypothesis")
hypothesis_settings.register_profile("ntc", database=None, deadline=None, derandomize=True)
hypothesis_settings.load_profile("ntc")

from export.format import from_bytes, to_bytes  # noqa: E402
from export.model import NTCModel  # noqa: E402
from trainer.fit import TrainConfig, fit  # noqa: E402
from trainer.network import NetworkConfig, NeuralTexture  # noqa: E402
from trainer.targets import TrainingTargets, build_targets, plan_channels  # noqa: E402
from trainer.textures import TextureSet, load_texture_set  # noqa: E402

W, H = 40, 24  # non-square, not a power of two: mips 40x24, 20x12, 10x6, 5x3, 2x1, 1x1


# ----------------------------------------------------------------------------------------------
# synthetic images (uint8 / uint16 arrays, [H, W] or [H, W, C])

def _grid(h: int, w: int):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x, y


def base_color(h: int = H, w: int = W) -> np.ndarray:
    """RGB with structure in both axes: a ramp, waves and a checker, each channel different."""
    x, y = _grid(h, w)
    checker = ((x // 5 + y // 4) % 2) * 0.25
    r = 0.15 + 0.6 * x / max(w - 1, 1) + checker * 0.5
    g = 0.5 + 0.35 * np.sin(y / 3.0 + x / 7.0)
    b = 0.5 + 0.3 * np.cos(x / 4.0) * np.sin(y / 5.0) + checker * 0.3
    return np.clip(np.rint(np.dstack([r, g, b]) * 255), 0, 255).astype(np.uint8)


def normal_map(h: int = H, w: int = W) -> np.ndarray:
    """A real tangent-space unit normal map (from a bumpy height field), encoded as RGB."""
    x, y = _grid(h, w)
    dx = 0.45 * np.cos(x / 4.0) * np.cos(y / 6.0)
    dy = -0.35 * np.sin(x / 4.0) * np.sin(y / 6.0)
    n = np.dstack([-dx, -dy, np.ones_like(x)])
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    return np.clip(np.rint((n * 0.5 + 0.5) * 255), 0, 255).astype(np.uint8)


def orm(h: int = H, w: int = W, metallic: int = 0) -> np.ndarray:
    """Occlusion, roughness vary; metallic is constant (so it costs nothing)."""
    x, y = _grid(h, w)
    occ = 0.6 + 0.35 * np.sin(x / 6.0 + y / 5.0)
    rough = 0.2 + 0.6 * y / max(h - 1, 1)
    out = np.clip(np.rint(np.dstack([occ, rough, np.zeros_like(x)]) * 255), 0, 255).astype(np.uint8)
    out[..., 2] = metallic
    return out


def grey(h: int = H, w: int = W) -> np.ndarray:
    """8-bit single-channel image."""
    x, y = _grid(h, w)
    return np.clip(np.rint((0.5 + 0.4 * np.sin(x / 3.0) * np.cos(y / 4.0)) * 255), 0, 255).astype(np.uint8)


def height16(h: int = H, w: int = W) -> np.ndarray:
    """16-bit single-channel image using the low bits too (not an 8-bit image scaled up)."""
    x, y = _grid(h, w)
    v = 0.5 + 0.3 * np.sin(x / 5.0) + 0.15 * np.cos(y / 3.0) + 0.001 * ((x * 7 + y * 13) % 11)
    return np.clip(np.rint(v * 65535), 0, 65535).astype(np.uint16)


def emissive16(h: int = H, w: int = W) -> np.ndarray:
    """16-bit RGB (Pillow would read it as 8-bit): exercises the exact PNG path."""
    return (base_color(h, w).astype(np.uint16)[..., ::-1] * 257 + 77).astype(np.uint16)


def rgba(h: int = H, w: int = W) -> np.ndarray:
    x, y = _grid(h, w)
    a = np.clip(np.rint((0.5 + 0.45 * np.sin((x + y) / 6.0)) * 255), 0, 255).astype(np.uint8)
    return np.dstack([base_color(h, w), a])


def write_png16(path: Path, a: np.ndarray) -> None:
    """Minimal 16-bit PNG writer (Pillow cannot write 16-bit RGB/RGBA)."""
    a = a if a.ndim == 3 else a[:, :, None]
    h, w, c = a.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n"
                           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


DEFAULT_SET = {
    "mat_baseColor.png": base_color,
    "mat_normal.png": normal_map,
    "mat_orm.png": orm,
}
RICH_SET = {
    **DEFAULT_SET,
    "mat_height.png": height16,     # 16-bit greyscale
    "mat_roughness.png": grey,      # 8-bit greyscale
    "mat_emissive.png": emissive16,  # 16-bit RGB
}


def write_set(folder: Path, files: dict | None = None, h: int = H, w: int = W) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in (files or DEFAULT_SET).items():
        img = make(h, w)
        if img.dtype == np.uint16:
            write_png16(folder / name, img)
        else:
            iio.imwrite(folder / name, img)
    return folder


@pytest.fixture
def texture_set(tmp_path) -> Path:
    """baseColor (RGB), normal (unit normals), ORM with a constant metallic channel; 40x24."""
    return write_set(tmp_path / "set")


@pytest.fixture
def rich_texture_set(tmp_path) -> Path:
    """The default set plus a 16-bit greyscale height map and an 8-bit greyscale roughness."""
    return write_set(tmp_path / "rich", RICH_SET)


@pytest.fixture(scope="module")
def ctx():
    """A headless OpenGL 4.5 context (EGL; Mesa llvmpipe is fine), one per test module; tests that
    take it skip cleanly where none can be created."""
    pytest.importorskip("moderngl")
    from export.decode import gl_context  # GL imports only where GL is used
    try:
        c = gl_context.create_context()
    except gl_context.NTCGLError as e:
        pytest.skip(f"no OpenGL 4.5 context: {e}")
    yield c
    c.release()


@pytest.fixture(scope="session")
def sphere(tmp_path_factory):
    """(scene, cache dir, provider): the tiny sphere scene of tests/viewer_scenes.py with its
    material compressed once (tiny settings) for every ntc-view test that draws it."""
    from export.gltf import load_scene
    from viewer.ntc_cache import ensure_ntc
    from viewer_scenes import tiny_settings, write_sphere_scene
    folder = tmp_path_factory.mktemp("sphere")
    scene = load_scene(write_sphere_scene(folder / "scene"), log=None)
    cache, settings = folder / "cache", tiny_settings()

    def provider(material):
        return ensure_ntc(scene, material, settings, cache, log=None)

    provider(scene.materials[0])  # compress now, outside any timing
    return scene, cache, provider


def mean_prediction_psnr(source_mips) -> float:
    """Set PSNR at mip 0 of predicting each channel's mean: what a network that learned nothing gets."""
    sq, n = 0.0, 0
    for chain in source_mips:
        ref = np.round(chain[0] * 255) / 255
        pred = np.round(ref.mean(axis=(0, 1), keepdims=True) * 255) / 255
        sq += float(((ref - pred) ** 2).sum())
        n += ref.size
    return 10 * math.log10(n / sq)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Contents and mtime (ns) of every file in a folder."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------------------------
# one small trained model for the whole session

@dataclass
class Trained:
    data: bytes               # the .ntc file
    model: NTCModel           # net.export(...) (in memory, before serialisation)
    targets: TrainingTargets
    net: NeuralTexture        # in eval mode, latents frozen
    tset: TextureSet


TINY_STEPS, TINY_BATCH = 150, 1024


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    folder = write_set(tmp_path_factory.mktemp("trained") / "set")
    tset = load_texture_set(folder)
    infos, stored = plan_channels(tset)
    targets = build_targets(tset, infos, stored)
    w, h = tset.size
    net, _ = fit(targets, NetworkConfig(), TrainConfig(steps=TINY_STEPS, batch=TINY_BATCH,
                                                       progress=False),
                 w, h, torch.device("cpu"))
    model = net.export(infos, {"preset": "test", "steps": TINY_STEPS})
    data = to_bytes(model)
    from_bytes(data)  # the fixture itself must be a valid file
    return Trained(data, model, targets, net, tset)
