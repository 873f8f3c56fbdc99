"""ntc-view's window (viewer/window.py) under a virtual X server: skipped unless `xvfb-run` exists.

The hidden --script option feeds key and mouse steps through the same handlers the glfw callbacks
call, one per drawn frame: every mode, the filter key, the diff view, orbit / pan / zoom, the
overlay toggle, a screenshot of the window's frame, then Esc; the process must exit 0.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from viewer_scenes import TINY_CLI, tiny_settings, write_sphere_scene

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed")
    pytest.importorskip("glfw")
    pytest.importorskip("moderngl")
    from viewer.ntc_cache import ensure_ntc
    from export.gltf import load_scene
    folder = tmp_path_factory.mktemp("window")
    path = write_sphere_scene(folder / "scene")
    s = load_scene(path, log=None)
    ensure_ntc(s, s.materials[0], tiny_settings(), folder / "cache", log=None)  # as the CLI would
    return path, folder / "cache"


def run_window(args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", LP_NUM_THREADS=os.environ.get("LP_NUM_THREADS",
                                                                               "1"))
    env.pop("DISPLAY", None)
    return subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "viewer.cli", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_window_runs_every_mode_and_quits_cleanly(scene, tmp_path):
    from PIL import Image
    path, cache = scene
    shot = tmp_path / "window.png"
    steps = ["wait", "2", "3", "f", "a", "a", "f", "f", "d", "orbit:40:10", "pan:4:-3",
             "scroll:2", "d", "o", "4", "1", "b", f"screenshot:{shot}", "b", "2", "l", "quit"]
    proc = run_window([str(path), "--size", "64x64", "--cache-dir", str(cache), *TINY_CLI,
                       "--script", ",".join(steps)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in ("mode: load", "mode: sample", "mode: feedback", "sample filter: latent", "diff view: on",
                 "averaging stochastic frames: off", "averaging stochastic frames: on",
                 "diff view: off", "mode: reference", "reference format: bcn",
                 "reference format: rgba8", "load format: bcn", "closed after 22 frames"):
        assert line in proc.stderr
    # the BCn reference frame (overlay off) after the drags: still the scene, not an empty window
    from viewer.scene_pass import BACKGROUND
    img = np.asarray(Image.open(shot)).astype(int)
    assert img.shape == (64, 64, 3)
    background = np.all(np.abs(img - np.rint(np.array(BACKGROUND) * 255)) <= 1, axis=2)
    assert 0.1 < 1.0 - background.mean() < 0.95
    assert img.reshape(-1, 3).std(0).min() > 5


def test_window_reports_bad_scene_in_one_line(tmp_path):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed")
    pytest.importorskip("glfw")
    proc = run_window([str(tmp_path / "missing.gltf"), "--script", "quit"], timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("ntc-view: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_no_display_is_one_line_and_exit_1(tmp_path):
    pytest.importorskip("glfw")
    from viewer_scenes import write_quad_scene
    path = write_quad_scene(tmp_path / "quad")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-m", "viewer.cli", str(path), "--size", "16x16"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ntc-view: error: cannot open a window"), \
        proc.stderr
