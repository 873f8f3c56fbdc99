"""bench/viewer.py keeps running: its core function (`measure`) on the tiny procedural sphere scene
(tests/viewer_scenes.py) at 32x32 with one timed frame per row and a 30-step, 16-wide network,
and the markdown report over the result. What the figures are is the benchmark's business; here
they only have to exist, be finite and hang together."""
from __future__ import annotations

import json
import math

import pytest

from viewer_scenes import write_sphere_scene

STILL = (1, 3)

pytestmark = pytest.mark.gl

SIZE = (32, 32)
ROW_KEYS = {"name", "mode", "filter", "frames", "gpu_ms", "cpu_ms", "wall_ms", "process_cpu_ms",
            "setup_ms", "first_frame_ms", "vram_bytes", "texture_vram_bytes",
            "driver_vram_bytes", "vram_objects", "object_fraction", "timer_covers_work",
            "psnr_vs_reference", "psnr_vs_reference_object", "texture_vram_vs_reference",
            "texture_vram_vs_block_formats", "frame_time_vs_reference", "screenshot"}


def test_measure_and_report(ctx, tmp_path):
    from bench import scenes, viewer
    from viewer.frame_stats import CATEGORIES
    scene = write_sphere_scene(tmp_path / "scene")
    before = sorted(p.name for p in scene.parent.iterdir())
    settings = scenes.settings_for(steps=30, hidden=[16], progress=False)
    out = viewer.measure(ctx, [("sphere", scene)], settings, size=SIZE, frames=1,
                         cache_dir=tmp_path / "cache", shots_dir=tmp_path / "shots", log=None,
                         still_frames=STILL)
    assert sorted(p.name for p in scene.parent.iterdir()) == before   # nothing beside the scene
    assert out["device"] and out["settings"]["steps"] == 30 and out["settings"]["bpp"] == 4.0
    (s,) = out["scenes"]
    assert [r["name"] for r in s["rows"]] == [r[0] for r in viewer.ROWS]
    assert [m["material"] for m in s["materials"]] == ["sphere"]   # the glass quad is untextured
    assert s["materials"][0]["file_bytes"] > 0 and s["materials"][0]["steps"] == 30
    assert list((tmp_path / "cache" / "sphere").glob("sphere-*.ntc"))
    assert s["identical_sets"] == []
    for r in s["rows"]:
        assert ROW_KEYS <= set(r), r["name"]
        assert set(r["vram_bytes"]["by_category"]) == set(CATEGORIES)
        assert r["vram_bytes"]["total"] == sum(r["vram_bytes"]["by_category"].values())
        assert r["texture_vram_bytes"] > 0
        for k in ("gpu_ms", "cpu_ms", "wall_ms", "process_cpu_ms"):
            assert math.isfinite(r[k]["median"]) and r[k]["median"] >= 0
        assert (tmp_path / "shots" / f"sphere_{r['name']}.png").is_file()
        assert r["object_fraction"] > 0.1     # the sphere is in the picture (19 % at 32x32)
        if r["mode"] != "reference":
            for k in ("psnr_vs_reference", "psnr_vs_reference_object"):
                assert math.isfinite(r[k]) and r[k] > 10, (r["name"], k)
            for v in r["frame_time_vs_reference"].values():
                assert v is None or (math.isfinite(v) and v >= 0)
            assert r["frame_time_vs_reference"]["wall_ms"] > 0
    by = {r["name"]: r for r in s["rows"]}
    assert by["reference"]["vram_bytes"]["by_category"]["latents"] == 0
    assert by["load"]["vram_bytes"]["by_category"]["decoded"] > 0
    assert by["sample_latent"]["vram_bytes"]["by_category"]["latents"] > 0
    # feedback: drawn until no tile waits before it is timed, so the timed frame decodes nothing
    tiles = by["feedback"]["tiles"]
    assert isinstance(tiles["settle_frames"], int) and tiles["waiting"] == 0
    assert tiles["decoded_texels_per_frame"][-1] == 0
    assert by["feedback"]["vram_bytes"]["by_category"]["tiles"] > 0
    # frames=1: the stochastic row is the mean of the warm-up and the timed frame, as ntc-view
    # shows it; the _1 row one frame
    assert by["sample_stochastic"]["accumulated_frames"] == 2
    assert by["sample_stochastic_1"]["accumulated_frames"] == 0
    # three 32x32 images (baseColor, normal, ORM for both slots): BC7 x2 + BC5, 6 levels each
    formats = sorted(t["format"] for t in s["block_format_textures"])
    assert formats == ["BC5", "BC7", "BC7"]
    assert s["block_format_bytes"] == 3 * 16 * (64 + 16 + 4 + 1 + 1 + 1)
    ratios = s["ratios"]
    for k in ("texture_vram_sample_over_reference", "texture_vram_sample_over_block_formats",
              "texture_vram_load_over_reference", "texture_vram_load_over_block_formats"):
        assert math.isfinite(ratios[k]) and ratios[k] > 0, k
    assert isinstance(ratios["texture_vram_sample_meets_target"], bool)
    assert ratios["frame_time_sample_over_reference"]["wall_ms"] > 0
    # the transcoded set holds the bytes of the BCn images, which are the computed block bytes
    bcn = ratios["load_bcn_vs_reference_bcn"]["texture_vram_bytes"]
    assert bcn[0] == bcn[1] == s["block_format_bytes"] + 4      # + the 1x1 white texture
    assert by["reference_bcn"]["psnr_vs_reference"] > 30
    json.dumps(out)   # viewer.json can hold it

    md = viewer.report(out)
    assert md.startswith("# ntc-view on the shared scenes")
    assert "## sphere" in md and "--steps 30" in md
    for label in ("| reference |", "| load |", "| sample (trilinear) |",
                  "| sample (stochastic, mean of 2 frames) |", "| sample (stochastic, one frame) |",
                  "| sample (latent) |"):
        assert label in md
    assert "Sample mode / reference texture VRAM" in md
    # per filter: decodes and MACs a pixel from the written model, not typed in
    from export.decode.network_block import macs_per_decode
    from export.format import read_ntc
    macs = macs_per_decode(read_ntc(s["materials"][0]["file"]).mlp_dims)["shader"]
    assert s["materials"][0]["macs_per_decode"] == macs
    assert f"| sample (trilinear) | 8 | {8 * macs:,} |" in md
    assert f"| sample (latent) | 1 | {macs:,} |" in md
    # the still view: the displayed mean after N frames of each averaged filter
    assert [n for n, _ in s["still_view"]["auto"]] == list(STILL)
    assert "Still view: PSNR against the reference frame" in md


def test_scene_sets_are_compressed_together(tmp_path, monkeypatch):
    """measure_scene hands every textured material it draws to ntc_cache.ensure_all in one call,
    so missing sets compress --jobs at a time as ntc-view's do (not one material after another)."""
    from bench import scenes, viewer
    from viewer import ntc_cache

    class Recorded(Exception):
        pass

    calls = []

    def record(scene, settings, cache_dir, log=None, materials=None, **kwargs):
        calls.append(([m.name for m in materials], settings.jobs_here()))
        raise Recorded

    monkeypatch.setattr(ntc_cache, "ensure_all", record)
    scene = write_sphere_scene(tmp_path / "scene")
    settings = scenes.settings_for(steps=30, hidden=[16], progress=False, jobs=2)
    with pytest.raises(Recorded):
        viewer.measure_scene(None, "sphere", scene, settings, cache_dir=tmp_path / "cache",
                             log=None)
    assert calls == [(["sphere"], 2)]   # the untextured glass quad is not asked for
