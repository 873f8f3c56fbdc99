"""bench/feedback.py keeps running: its scene measurement on the procedural sphere with 192x192
images (several tiles at its finer mips) at 48x48 along a 2-frame path, a 30-step 16-wide
network, and the report over it; and its CLI's argument errors."""
from __future__ import annotations

import json
import math

import pytest

from viewer.feedback_tiles import FeedbackConfig
from viewer_scenes import write_sphere_scene


@pytest.mark.gl
def test_measure_scene_and_report(ctx, tmp_path):
    from bench import feedback, scenes
    scene = write_sphere_scene(tmp_path / "scene", tex=192)
    settings = scenes.settings_for(steps=30, hidden=[16], progress=False)
    s = feedback.measure_scene(ctx, "sphere", scene, settings, (48, 48), 2, 20.0, 1.0,
                               tmp_path / "cache", log=None, trilinear_every=1,
                               feedback=FeedbackConfig(pin_mip_tiles=1))
    cold = s["cold_start"]
    assert cold["texels"] > 0 and cold["frames"] >= 2 and cold["per_frame"][-1] == 0
    assert [f["view"] for f in s["feedback"]] == [1, 2]
    assert [a["view"] for a in s["auto"]] == [0, 1, 2]
    for f in s["feedback"] + s["auto"]:
        assert math.isfinite(f["psnr"]) and f["psnr"] > 10 and f["cpu_ms"] >= 0
    m = s["motion"]
    assert m["frames"] == 2 and 0 <= m["decodes_per_pixel_mean"] <= m["decodes_per_pixel_max"]
    # the working set: tiles the frames read asked for, the pinned ones among them, in the pool
    assert 0 < m["requested_max"] <= m["pool_slots"]
    assert all(f["read_ms"] >= 0 for f in s["feedback"])
    st = s["still"]
    assert st["feedback"]["psnr"] > 10 and st["sample_trilinear"]["vs_feedback"] > 35
    assert s["feedback_vram"]["by_category"]["tiles"] > 0
    assert [x["view"] for x in s["against_trilinear"]] == [1, 2]
    for x in s["against_trilinear"]:
        assert x["trilinear"] > 10 and math.isfinite(x["feedback"]) and math.isfinite(x["auto"])
    out = {"device": ctx.info.get("GL_RENDERER"),
           "settings": {"size": [48, 48], "path_frames": 2, "yaw": 20.0, "zoom": 1.0,
                        "sets": "test"}, "scenes": [s]}
    md = feedback.report(out)
    assert "| sphere |" in md and "Cold start" in md and "| sphere | 1 / 2 |" in md
    assert "GL timer" not in md                  # llvmpipe: the timer misses the work
    out["device"] = "a hardware renderer"
    assert "GL timer, ms a frame" in feedback.report(out)
    json.dumps(out)


def test_cli_rejects_bad_arguments(capsys):
    from bench import feedback
    with pytest.raises(SystemExit) as e:
        feedback.main(["--path-frames", "0"])
    assert e.value.code == 2 and "--path-frames" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        feedback.main(["--scenes", "nowhere.txt"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        feedback.main(["--readback-lag", "3"])
    assert e.value.code == 2 and "--readback-lag" in capsys.readouterr().err
