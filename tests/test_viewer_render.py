"""ntc-view's renderer and headless CLI (viewer/renderer.py, viewer/cli.py) on tiny procedural
glTF scenes (tests/viewer_scenes.py), 64x64 and smaller: llvmpipe runs sample mode's per-pixel MLP
slowly, so the networks are tiny too (one 16-wide hidden layer).

Checks: every mode (and every sample filter) draws the scene; load and sample frames against the
reference frame (PSNR printed, and bounded) and against each other; the diff view; the exact VRAM
ledger; the stats JSON; tangent-space normal mapping orientation and double-sided culling; camera
framing; one-line errors.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from viewer_scenes import TINY_CLI, frame, renderer, write_quad_scene


def background_fraction(img: np.ndarray) -> float:
    from viewer.scene_pass import BACKGROUND
    bg = np.rint(np.array(BACKGROUND) * 255)
    return float(np.mean(np.all(np.abs(img.astype(int) - bg) <= 1, axis=2)))


# ----------------------------------------------------------------------------------------------

def test_camera_frames_the_bounds():
    from viewer.camera import OrbitCamera
    lo, hi = np.array([-2.0, 0.5, -1.0]), np.array([3.0, 1.5, 4.0])
    for aspect in (1.0, 0.5, 2.0):
        cam = OrbitCamera()
        cam.frame(lo, hi, aspect)
        m = cam.view_projection(aspect).T.astype(np.float64)  # rows again
        corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        clip = corners @ m.T
        ndc = clip[:, :3] / clip[:, 3:]
        assert np.all(np.abs(ndc[:, :2]) <= 1.0) and np.all(np.abs(ndc[:, 2]) < 1.0), aspect
    cam.zoom(3)
    assert cam.distance < cam.radius / math.sin(cam.fov_y / 2) * 1.05


@pytest.mark.gl
def test_every_mode_draws_the_scene_and_matches_reference(ctx, sphere, capsys):
    scene, _, provider = sphere
    r = renderer(ctx, scene, provider)
    try:
        images = {"reference": frame(r, "reference"), "load": frame(r, "load")}
        for filt in ("latent", "stochastic", "trilinear", "quad"):
            images[f"sample/{filt}"] = frame(r, "sample", filt)
        stats = {}
        for name, img in images.items():
            assert img.shape == (64, 64, 3) and img.dtype == np.uint8
            covered = 1.0 - background_fraction(img)
            assert 0.15 < covered < 0.9, f"{name}: {covered:.0%} of the frame is the scene"
            assert img.reshape(-1, 3).std(0).min() > 10, f"{name}: flat image"
            stats[name] = covered
        from export.metrics import psnr
        ref = images["reference"]
        figures = {name: psnr(img, ref) for name, img in images.items() if name != "reference"}
        with capsys.disabled():
            print("\n  64x64 sphere, PSNR vs reference: "
                  + ", ".join(f"{k} {v:.2f} dB" for k, v in figures.items()))
        # a tiny, briefly trained set (about 22 dB on its textures): the frames still agree well
        for name, value in figures.items():
            assert value > 22.0, f"{name} vs reference: {value:.2f} dB"
        # trilinear sample mode filters the exactly decoded texels, load mode the 8-bit texels
        # with the hardware (and sRGB after linearising): close, not bit-exact
        assert psnr(images["sample/trilinear"], images["load"]) > 35.0
        # the quad filter shares decodes across each pixel quad in the PBR shader: the same frame
        # (within one 8-bit step: its sums run in another order)
        diff = np.abs(images["sample/quad"].astype(int) - images["sample/trilinear"].astype(int))
        assert diff.max() <= 1, diff.max()
    finally:
        r.release()


@pytest.mark.gl
def test_diff_view(ctx, sphere):
    scene, _, provider = sphere
    r = renderer(ctx, scene, provider)
    try:
        r.set_diff(True)
        same = frame(r, "reference")
        assert same.max() == 0, "reference against itself must be black everywhere"
        heat = frame(r, "load")
        assert heat.max() > 0 and background_fraction(heat) == 0.0
        assert np.mean(heat.sum(2) == 0) > 0.3   # the background is identical in both
        assert "reference" in r.targets
        r.set_diff(False)
        assert "reference" not in r.targets
    finally:
        r.release()


@pytest.mark.gl
def test_vram_ledger_counts_every_object_exactly(ctx, sphere):
    from export.format import read_ntc
    from export.decode.gl_resources import latent_texel_bytes, remap_block
    from export.decode.network_block import model_block
    from viewer.frame_stats import mip_chain_texels
    scene, _, provider = sphere
    model = read_ntc(provider(scene.materials[0]))
    w, h = 48, 40
    geometry = sum(p.positions.shape[0] * 18 * 4 + p.indices.size * 4 for p in scene.primitives)
    images = sum(mip_chain_texels(*img.size) * 4 for img in scene.images.values())

    r = renderer(ctx, scene, provider, size=(w, h), mode="reference")
    try:
        r.render()
        by = r.vram()["by_category"]
        assert by["geometry"] == geometry
        assert by["textures"] == images + 4            # + the white 1x1
        assert by["framebuffers"] == w * h * 4 * 3     # scene colour + depth, display colour
        assert by["decoded"] == by["latents"] == by["weights"] == 0
        assert by["overlay"] == 0                      # no overlay, no font
        assert r.vram()["total"] == sum(by.values())
    finally:
        r.release()

    r = renderer(ctx, scene, provider, size=(w, h), mode="load")
    try:
        by = r.vram()["by_category"]
        texels = mip_chain_texels(model.width, model.height)
        assert by["decoded"] == sum(texels * 4 for _ in model.textures)  # RGBA8 / SRGB8_A8
        assert by["textures"] == 4 and by["latents"] == 0
    finally:
        r.release()

    r = renderer(ctx, scene, provider, size=(w, h), mode="sample")
    try:
        r.render()
        by = r.vram()["by_category"]
        _, _, texel = latent_texel_bytes(model)
        lat = model.latent
        assert by["latents"] == sum(a * b for a, b in lat.levels) * lat.layers * texel
        assert by["weights"] == model_block(model).nbytes
        assert by["decoded"] == 0 and by["textures"] == 4
        draws = len(scene.primitives) * 29 * 16
        assert by["uniforms"] == 128 + 32 + 24 + len(remap_block(model)) + draws
        r.overlay = True
        r.render()
        assert r.vram()["by_category"]["overlay"] > 0
    finally:
        r.release()


def _brightness(ctx, scene, light, yaw: float = 0.0) -> float:
    r = renderer(ctx, scene, size=(32, 32))
    try:
        r.camera.yaw, r.camera.pitch = yaw, 0.0   # 0: straight at the quad's front (+Z)
        r.light_dir = np.asarray(light, np.float64) / np.linalg.norm(light)
        r.env_intensity = 0.0
        r.render()
        img = r.read().astype(np.float64)
        return float(img[12:20, 12:20].mean())
    finally:
        r.release()


@pytest.mark.gl
def test_normal_map_orientation(ctx, tmp_path):
    """A normal map tilted towards +X of the texture (red > 128) faces +X in the world, one
    tilted towards +Y (green > 128, glTF's 'up' = towards the top of the image) faces +Y; seen
    from behind, a double-sided surface's perturbed normal is the front's negated."""
    from export.gltf import load_scene
    flat = load_scene(write_quad_scene(tmp_path / "flat"), log=None)
    right = load_scene(write_quad_scene(tmp_path / "right", (200, 128, 210)), log=None)
    up = load_scene(write_quad_scene(tmp_path / "up", (128, 200, 210)), log=None)
    from_right, from_left = (0.8, 0.0, 0.6), (-0.8, 0.0, 0.6)
    from_top, from_bottom = (0.0, 0.8, 0.6), (0.0, -0.8, 0.6)
    assert _brightness(ctx, flat, from_right) == pytest.approx(_brightness(ctx, flat, from_left),
                                                               abs=1.0)
    assert _brightness(ctx, right, from_right) > _brightness(ctx, right, from_left) + 20
    assert _brightness(ctx, up, from_top) > _brightness(ctx, up, from_bottom) + 20
    # the back of the double-sided quad shades with the mirrored normal: it faces -X, -Z
    behind_left, behind_right = (-0.8, 0.0, -0.6), (0.8, 0.0, -0.6)
    assert _brightness(ctx, right, behind_left, math.pi) > \
        _brightness(ctx, right, behind_right, math.pi) + 20


@pytest.mark.gl
def test_back_faces_cull_unless_double_sided(ctx, tmp_path):
    from export.gltf import load_scene
    covered = {}
    for double in (True, False):
        scene = load_scene(write_quad_scene(tmp_path / str(double), double_sided=double),
                           log=None)
        r = renderer(ctx, scene, size=(32, 32))
        try:
            r.camera.yaw, r.camera.pitch = math.pi, 0.0   # from behind
            r.render()
            covered[double] = 1.0 - background_fraction(r.read())
        finally:
            r.release()
    assert covered[True] > 0.3 and covered[False] == 0.0


# ----------------------------------------------------------------------------------------------
# the headless CLI

@pytest.mark.gl
@pytest.mark.parametrize("mode", ["reference", "load", "sample"])
def test_headless_cli_writes_stats_and_screenshot(ctx, sphere, tmp_path, mode, capsys):
    from PIL import Image

    from viewer import cli
    scene, cache, _ = sphere
    stats_path, shot = tmp_path / "stats.json", tmp_path / "shot.png"
    rc = cli.main([str(scene.path), "--headless", "--mode", mode, "--filter", "stochastic",
                   "--frames", "3", "--size", "64x48", "--cache-dir", str(cache), *TINY_CLI,
                   "--stats", str(stats_path), "--screenshot", str(shot), "--compare"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.png", "stats.json"]  # no temps
    stats = json.loads(stats_path.read_text())
    assert stats["mode"] == mode and stats["filter"] == "stochastic"
    assert stats["frames"] == 3 and stats["size"] == [64, 48]
    for key in ("gpu_ms", "cpu_ms"):
        assert set(stats[key]) == {"median", "p95"}
        assert all(isinstance(v, float) and 0 <= v < 60_000 for v in stats[key].values())
    vram = stats["vram_bytes"]
    assert isinstance(vram["total"], int) and vram["total"] == sum(vram["by_category"].values())
    assert set(vram["by_category"]) >= {"textures", "decoded", "latents", "weights", "geometry",
                                        "framebuffers"}
    assert stats["driver_vram_bytes"] is None or isinstance(stats["driver_vram_bytes"], int)
    # stochastic frames are averaged in sample mode: the warm-up frame and the 3 timed ones
    assert stats["accumulated_frames"] == (4 if mode == "sample" else 0)
    expected = {"reference": "textures", "load": "decoded", "sample": "latents"}[mode]
    assert vram["by_category"][expected] > 4
    if mode == "reference":
        assert stats["psnr_vs_reference"] is None   # identical: infinite
    else:
        assert stats["psnr_vs_reference"] > 20
    img = np.asarray(Image.open(shot))
    assert img.shape == (48, 64, 3) and 1.0 - background_fraction(img) > 0.1


def test_bad_scene_is_one_line_and_exit_1(tmp_path, capsys):
    from viewer import cli
    (tmp_path / "bad.gltf").write_text("{ not json")
    for path in (tmp_path / "missing.gltf", tmp_path / "bad.gltf"):
        rc = cli.main([str(path), "--headless"])
        err = capsys.readouterr().err
        assert rc == 1 and err.startswith("ntc-view: error: ") and err.count("\n") == 1, err
    assert cli.main([str(tmp_path / "x.gltf"), "--headless", "--size", "64"]) == 2
    assert cli.main([str(tmp_path / "x.gltf"), "--headless", "--orbit=1,x"]) == 2
    assert "--orbit 1,x: expected YAW,PITCH" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "x.gltf"), "--stats", "s.json"]) == 1
    assert "needs --headless" in capsys.readouterr().err


@pytest.mark.gl
def test_bad_ntc_is_one_line_and_exit_1(sphere, tmp_path, monkeypatch, capsys):
    from viewer import cli, ntc_cache
    scene, _, _ = sphere
    bad = tmp_path / "bad.ntc"
    bad.write_bytes(b"NTC0" + b"\0" * 60)
    monkeypatch.setattr(ntc_cache, "ensure_all", lambda scene, *a, materials, **k:
                        {m.index: bad for m in materials})
    rc = cli.main([str(scene.path), "--headless", "--mode", "load", "--size", "16x16"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("ntc-view: error: ") and err.count("\n") == 1, err
