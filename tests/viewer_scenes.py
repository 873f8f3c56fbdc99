"""Tiny procedural glTF scenes for the viewer tests (no shared data needed).

`write_sphere_scene(folder)` writes sphere.gltf (buffers as a data: URI) and three 32x32 PNGs
(or `tex` x `tex`):
a textured UV sphere (baseColor with a pattern, a bumpy tangent-space normal map, an ORM image
feeding both metallicRoughness and occlusion, a CLAMP_TO_EDGE / MIRRORED_REPEAT sampler) and a
small double-sided, alpha-blended, untextured quad in front of it.
"""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

TEX = 32


def sphere(rings: int = 12, segments: int = 24):
    pos, nrm, uv, tan = [], [], [], []
    for r in range(rings + 1):
        v = r / rings
        theta = v * math.pi
        for s in range(segments + 1):
            u = s / segments
            phi = u * 2 * math.pi
            n = (math.sin(theta) * math.cos(phi), math.cos(theta), -math.sin(theta) * math.sin(phi))
            pos.append(n)
            nrm.append(n)
            uv.append((u * 2.0, v))  # u wraps twice: exercises the sampler's wrap mode
            tan.append((-math.sin(phi), 0.0, -math.cos(phi), 1.0))  # dP/du direction
    idx = []
    for r in range(rings):
        for s in range(segments):
            a = r * (segments + 1) + s
            b = a + segments + 1
            idx += [a, b, a + 1, a + 1, b, b + 1]
    return (np.array(pos, np.float32), np.array(nrm, np.float32), np.array(uv, np.float32),
            np.array(tan, np.float32), np.array(idx, np.uint32))


def images(size: int = TEX):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    checker = ((np.floor(x * 4) + np.floor(y * 4)) % 2)
    base = np.stack([0.25 + 0.6 * x, 0.3 + 0.4 * checker, 0.8 - 0.5 * y], -1)
    dx = 0.5 * np.cos(2 * math.pi * 3 * x)
    dy = 0.5 * np.sin(2 * math.pi * 2 * y)
    n = np.stack([-dx, -dy, np.ones_like(x)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    orm = np.stack([0.7 + 0.3 * checker, 0.25 + 0.6 * y, 0.8 * (x > 0.5)], -1)
    to8 = lambda a: np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return {"sphere_baseColor.png": to8(base), "sphere_normal.png": to8(n * 0.5 + 0.5),
            "sphere_orm.png": to8(orm)}


def write_sphere_scene(folder: Path, tex: int = TEX) -> Path:
    """The sphere scene with `tex` x `tex` images."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in images(tex).items():
        Image.fromarray(img).save(folder / name)
    pos, nrm, uv, tan, idx = sphere()
    quad_pos = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]],
                        np.float32)
    quad_nrm = np.tile(np.array([[0, 0, 1]], np.float32), (4, 1))
    quad_idx = np.array([0, 1, 2, 0, 2, 3], np.uint32)
    buffer, views, accessors = _gltf_buffers([pos, nrm, uv, tan, idx, quad_pos, quad_nrm,
                                              quad_idx])
    doc = {
        "asset": {"version": "2.0", "generator": "ntc tests"},
        "buffers": [buffer],
        "bufferViews": views,
        "accessors": accessors,
        "images": [{"uri": n} for n in images()],
        "samplers": [{"wrapS": 33648, "wrapT": 33071, "magFilter": 9729, "minFilter": 9987}],
        "textures": [{"source": i, "sampler": 0} for i in range(3)],
        "materials": [
            {"name": "sphere",
             "pbrMetallicRoughness": {"baseColorTexture": {"index": 0},
                                      "metallicRoughnessTexture": {"index": 2}},
             "normalTexture": {"index": 1, "scale": 1.0},
             "occlusionTexture": {"index": 2, "strength": 0.8}},
            {"name": "glass", "alphaMode": "BLEND", "doubleSided": True,
             "pbrMetallicRoughness": {"baseColorFactor": [0.9, 0.3, 0.2, 0.45],
                                      "metallicFactor": 0.0, "roughnessFactor": 0.3},
             "emissiveFactor": [0.05, 0.0, 0.0]},
        ],
        "meshes": [
            {"name": "sphere", "primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1,
                                                              "TEXCOORD_0": 2, "TANGENT": 3},
                                               "indices": 4, "material": 0}]},
            {"name": "quad", "primitives": [{"attributes": {"POSITION": 5, "NORMAL": 6},
                                             "indices": 7, "material": 1}]},
        ],
        "nodes": [{"mesh": 0}, {"mesh": 1, "translation": [0.45, -0.35, 1.1],
                                "rotation": [0.0, 0.3826834, 0.0, 0.9238795]}],
        "scenes": [{"nodes": [0, 1]}],
        "scene": 0,
    }
    path = folder / "sphere.gltf"
    path.write_text(json.dumps(doc))
    return path


def _gltf_buffers(arrays):
    """(buffer, bufferViews, accessors) JSON for float32 / uint32 arrays, one view each."""
    data, views, accessors = b"", [], []
    types = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}
    for a in arrays:
        raw = np.ascontiguousarray(a).tobytes()
        views.append({"buffer": 0, "byteOffset": len(data), "byteLength": len(raw)})
        acc = {"bufferView": len(views) - 1, "count": int(a.shape[0]),
               "type": types[1 if a.ndim == 1 else a.shape[1]],
               "componentType": 5125 if a.dtype == np.uint32 else 5126}
        if a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 3:
            acc["min"] = a.min(0).tolist()
            acc["max"] = a.max(0).tolist()
        accessors.append(acc)
        data += raw + b"\0" * (-len(raw) % 4)
    buffer = {"byteLength": len(data),
              "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}
    return buffer, views, accessors


def write_quad_scene(folder: Path, normal_rgb=(128, 128, 255), double_sided: bool = True) -> Path:
    """A unit quad in the XY plane facing +Z (uv (0, 0) at its top-left, as glTF images go:
    u along +X, v along -Y; tangent +X, w = +1), grey, rough, with a constant normal map."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), normal_rgb, np.uint8)).save(folder / "quad_normal.png")
    pos = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32)
    nrm = np.tile(np.array([[0, 0, 1]], np.float32), (4, 1))
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    tan = np.tile(np.array([[1, 0, 0, 1]], np.float32), (4, 1))
    idx = np.array([0, 1, 2, 0, 2, 3], np.uint32)
    buffer, views, accessors = _gltf_buffers([pos, nrm, uv, tan, idx])
    doc = {
        "asset": {"version": "2.0"}, "buffers": [buffer], "bufferViews": views,
        "accessors": accessors, "images": [{"uri": "quad_normal.png"}],
        "textures": [{"source": 0}],
        "materials": [{"name": "bumpy", "doubleSided": double_sided,
                       "pbrMetallicRoughness": {"baseColorFactor": [0.6, 0.6, 0.6, 1.0],
                                                "metallicFactor": 0.0, "roughnessFactor": 1.0},
                       "normalTexture": {"index": 0}}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2,
                                                   "TANGENT": 3},
                                    "indices": 4, "material": 0}]}],
        "nodes": [{"mesh": 0}], "scenes": [{"nodes": [0]}], "scene": 0,
    }
    path = folder / "quad.gltf"
    path.write_text(json.dumps(doc))
    return path


TINY_STEPS = 150
TINY_CLI = ["--steps", str(TINY_STEPS), "--hidden", "16"]   # the same settings through ntc-view


def tiny_settings():
    """Compression settings small enough for tests: 150 steps, one 16-wide hidden layer (a
    sample-mode program compiles in about a second on llvmpipe)."""
    from trainer.compress import CompressSettings
    from trainer.fit import TrainConfig
    from trainer.network import NetworkConfig
    return CompressSettings(train=TrainConfig(steps=TINY_STEPS, progress=False),
                            network=NetworkConfig(hidden=(16,)))


# ----------------------------------------------------------------------------------------------
# drawing them: a renderer on a test context, and a mode's frame

def renderer(ctx, scene, provider=None, size=(64, 64), **kw):
    """A viewer.renderer.Renderer for tests: no log, timer results read at once."""
    from viewer.renderer import Renderer
    return Renderer(ctx, scene, size, ntc_provider=provider, log=None, timer_latency=0, **kw)


def frame(r, mode: str, filt: str = "trilinear", frames: int = 2):
    """The image after `frames` frames of `mode` with sample filter `filt` (uint8 [H, W, 3])."""
    r.set_mode(mode)
    r.set_filter(filt)
    for _ in range(frames):
        r.render()
    return r.read()
