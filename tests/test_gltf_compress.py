"""Neural texture sets of glTF materials: the per-material set, the cache beside the scene
(viewer.ntc_cache) and `ntc-compress scene.gltf -o OUT_DIR` with the NTC_texture_set extension."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pygltflib
import pytest

import trainer.compress as compress_mod
from export.format import read_ntc
from gltf_scenes import TEX, SceneBuilder, textured_builder
from cli_run import one_line_error, run
from trainer import cli as compress_cli
from trainer.compress import DEFAULT_BPP, CompressSettings
from trainer.fit import TrainConfig
from export.gltf.ntc_extension import NTC_EXTENSION, material_slot_names, slot_texture_names
from trainer.gltf import material_texture_set, set_key
from viewer import ntc_cache
from viewer.ntc_cache import NTCCacheError, ensure_all, ensure_ntc
from export.gltf import load_scene

FAST = ["--steps", "30", "--batch", "256", "--device", "cpu", "-q"]


def settings(**train) -> CompressSettings:
    train = {"steps": 30, "batch": 256, "progress": False, **train}
    return CompressSettings(preset="p0.7", device="cpu", train=TrainConfig(**train))


def tree_snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def counted(monkeypatch):
    """Count compress() calls (the real one runs: tiny sets, 30 steps)."""
    calls = []
    real = compress_mod.compress

    def wrapper(tset, s, log=print, on_step=None):
        calls.append(tset)
        return real(tset, s, log, on_step)

    monkeypatch.setattr(compress_mod, "compress", wrapper)
    return calls


# ----------------------------------------------------------------------------------------------
# the set of one material

def test_set_roles_channels_and_shared_orm(tmp_path):
    scene = load_scene(textured_builder(emissive=True).write(tmp_path / "s" / "x.gltf"), log=None)
    mat = scene.materials[0]
    tset = material_texture_set(scene, mat, log=None)
    got = {t.name: (t.role, t.colorspace, t.channels) for t in tset.textures}
    assert got == {"baseColor": ("baseColor", "srgb", 3), "normal": ("normal", "linear", 3),
                   "orm": ("orm", "linear", 3), "emissive": ("emissive", "srgb", 3)}
    assert slot_texture_names(mat) == {"baseColor": "baseColor", "normal": "normal",
                                       "metallicRoughness": "orm", "occlusion": "orm",
                                       "emissive": "emissive"}
    orm = next(t for t in tset.textures if t.name == "orm")
    np.testing.assert_allclose(orm.pixels, mat.slots["occlusion"].image.pixels / 255.0, atol=1e-6)
    assert tset.size == (TEX, TEX)


def test_set_separate_occlusion_and_alpha(tmp_path):
    scene = load_scene(textured_builder(alpha_mode="BLEND", orm_shared=False)
                       .write(tmp_path / "s" / "x.gltf"), log=None)
    mat = scene.materials[0]
    tset = material_texture_set(scene, mat, log=None)
    by = {t.name: t for t in tset.textures}
    assert set(by) == {"baseColor", "normal", "metallicRoughness", "occlusion"}
    assert by["baseColor"].channels == 4, "alpha is kept for BLEND"
    assert by["occlusion"].channels == 1
    mr = by["metallicRoughness"]
    assert mr.channels == 3 and np.all(mr.pixels[..., 0] == 0), "R is unused by glTF: constant"
    np.testing.assert_allclose(mr.pixels[..., 1:], mat.slots["metallicRoughness"].image.pixels[..., 1:]
                               / 255.0, atol=1e-6)


def test_set_resizes_smaller_textures_and_says_so(tmp_path):
    scene = load_scene(textured_builder(small_normal=True).write(tmp_path / "s" / "x.gltf"),
                       log=None)
    msgs = []
    tset = material_texture_set(scene, scene.materials[0], log=msgs.append)
    assert all(t.pixels.shape[:2] == (TEX, TEX) for t in tset.textures)
    assert any("resizing normal" in m and "8x8 -> 16x16" in m for m in msgs), msgs
    n = next(t for t in tset.textures if t.name == "normal").pixels * 2 - 1
    np.testing.assert_allclose(np.linalg.norm(n, axis=2), 1, atol=1e-4)


def test_material_without_textures_has_no_set(tmp_path):
    b = SceneBuilder()
    b.material(name="plain")
    b.node(mesh=b.mesh())
    scene = load_scene(b.write(tmp_path / "s" / "x.gltf"), log=None)
    assert material_texture_set(scene, scene.materials[0]) is None
    assert ensure_ntc(scene, scene.materials[0], settings(), log=None) is None
    assert not (tmp_path / "s" / "x.ntc-cache").exists()


def test_set_key_follows_content_and_settings(tmp_path):
    scene = load_scene(textured_builder().write(tmp_path / "s" / "x.gltf"), log=None)
    mat = scene.materials[0]
    a = material_texture_set(scene, mat, log=None)
    key = set_key(a, settings())
    assert set_key(material_texture_set(scene, mat, log=None), settings()) == key
    assert set_key(a, settings(seed=1)) != key
    assert set_key(a, settings(steps=31)) != key
    assert set_key(a, replace(settings(), preset="p1.3")) != key
    assert set_key(a, replace(settings(), device="cuda")) == key, "the device is not part of it"
    by_bpp = [set_key(a, replace(settings(), preset=None, bpp=bpp))
              for bpp in (None, DEFAULT_BPP, 8.0)]
    assert by_bpp[0] == by_bpp[1] != by_bpp[2], "no --bpp is the default --bpp"
    a.textures[0].pixels[0, 0, 0] += 1 / 255
    assert set_key(a, settings()) != key


# ----------------------------------------------------------------------------------------------
# the cache beside the scene

def test_cache_is_reused_and_only_written_in_its_folder(tmp_path, counted):
    scene_path = textured_builder().write(tmp_path / "s" / "x.gltf")
    before = tree_snapshot(tmp_path)
    scene = load_scene(scene_path, log=None)
    mat = scene.materials[0]
    first = ensure_ntc(scene, mat, settings(), log=None)
    assert len(counted) == 1
    assert first.parent == tmp_path / "s" / "x.ntc-cache" and first.suffix == ".ntc"
    model = read_ntc(first)
    assert {t.name for t in model.textures} == set(material_slot_names(mat).values())
    # A later open of the same scene reuses the file: no training.
    again = ensure_ntc(load_scene(scene_path, log=None), mat, settings(), log=None)
    assert again == first and len(counted) == 1
    # Other settings are another set.
    other = ensure_ntc(scene, mat, settings(seed=3), log=None)
    assert other != first and len(counted) == 2
    after = tree_snapshot(tmp_path)
    new = sorted(set(after) - set(before))
    assert all(n.startswith("x.ntc-cache/") or n.startswith("s/x.ntc-cache/") for n in new), new
    assert {k: v for k, v in after.items() if k in before} == before, "inputs untouched"
    assert not list((tmp_path / "s" / "x.ntc-cache").glob("*.tmp"))


def test_materials_with_the_same_set_share_one_cached_file(tmp_path, counted):
    b = textured_builder()
    b.material(**dict(b.doc["materials"][0], name="Mat Two"))  # same images, another material
    b.node(mesh=b.mesh(), name="twin")
    scene = load_scene(b.write(tmp_path / "s" / "x.gltf"), log=None)
    first = ensure_ntc(scene, scene.materials[0], settings(), log=None)
    second = ensure_ntc(scene, scene.materials[1], settings(), log=None)
    assert second == first and len(counted) == 1
    assert len(list((tmp_path / "s" / "x.ntc-cache").glob("*.ntc"))) == 1


def test_damaged_cache_file_is_recompressed(tmp_path, counted):
    scene = load_scene(textured_builder().write(tmp_path / "s" / "x.gltf"), log=None)
    path = ensure_ntc(scene, scene.materials[0], settings(), log=None)
    path.write_bytes(path.read_bytes()[:100])
    assert ensure_ntc(scene, scene.materials[0], settings(), log=None) == path
    assert len(counted) == 2
    read_ntc(path)


def test_cache_dir_override(tmp_path, counted):
    scene_path = textured_builder().write(tmp_path / "s" / "x.gltf")
    before = tree_snapshot(scene_path.parent)
    scene = load_scene(scene_path, log=None)
    out = ensure_all(scene, settings(), cache_dir=tmp_path / "elsewhere", log=None)
    assert list(out) == [0] and out[0].parent == tmp_path / "elsewhere"
    assert tree_snapshot(scene_path.parent) == before


def test_read_only_cache_folder_is_a_clear_error(tmp_path, monkeypatch, counted):
    scene = load_scene(textured_builder().write(tmp_path / "s" / "x.gltf"), log=None)
    real_access = os.access
    # Tests may run as root, for whom chmod does not stop writes: deny through os.access.
    monkeypatch.setattr(ntc_cache.os, "access", lambda p, mode: False if
                        Path(p).name == "x.ntc-cache" else real_access(p, mode))
    with pytest.raises(NTCCacheError) as info:
        ensure_ntc(scene, scene.materials[0], settings(), log=None)
    msg = str(info.value)
    assert "\n" not in msg and "--cache-dir" in msg and "not writable" in msg
    assert not counted, "fails before training"


def test_unwritable_cache_parent_is_a_clear_error(tmp_path, monkeypatch, counted):
    scene = load_scene(textured_builder().write(tmp_path / "s" / "x.gltf"), log=None)

    def deny(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", deny)
    with pytest.raises(NTCCacheError, match="--cache-dir"):
        ensure_ntc(scene, scene.materials[0], settings(), log=None)
    assert not counted


# ----------------------------------------------------------------------------------------------
# ntc-compress scene.gltf -o OUT_DIR

def test_compress_gltf_writes_ntc_and_extended_copy(tmp_path):
    scene_path = textured_builder(emissive=True).write(tmp_path / "s" / "x.gltf")
    before = tree_snapshot(scene_path.parent)
    out = tmp_path / "out"
    rc, stdout, err = run(compress_cli.main, [scene_path, "-o", out, "--report",
                                              tmp_path / "r.json", *FAST])
    assert rc == 0, err
    assert tree_snapshot(scene_path.parent) == before, "the input scene is untouched"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["Mat_One.ntc", "mat_baseColor.png", "mat_emissive.png", "mat_normal.png",
                     "mat_orm.png", "x.bin", "x.gltf"], names
    for f in ("mat_baseColor.png", "x.bin"):
        assert (out / f).read_bytes() == (scene_path.parent / f).read_bytes()
    g = pygltflib.GLTF2().load(str(out / "x.gltf"))
    assert NTC_EXTENSION in g.extensionsUsed and NTC_EXTENSION not in (g.extensionsRequired or [])
    ext = g.materials[0].extensions[NTC_EXTENSION]
    assert ext["uri"] == "Mat_One.ntc"
    assert ext["textures"] == {"baseColor": "baseColor", "normal": "normal",
                               "metallicRoughness": "orm", "occlusion": "orm",
                               "emissive": "emissive"}
    model = read_ntc(out / ext["uri"])
    assert {t.name for t in model.textures} == set(ext["textures"].values())
    # The copy is a complete scene for any viewer: same images, and ours picks the .ntc up.
    copy = load_scene(out / "x.gltf", log=None)
    mat = copy.materials[0]
    assert mat.ntc is not None and mat.ntc.path == (out / "Mat_One.ntc").resolve()
    assert set(mat.slots) == {"baseColor", "normal", "metallicRoughness", "occlusion", "emissive"}
    assert ensure_ntc(copy, mat, settings(), log=None) == mat.ntc.path
    assert not (out / "x.ntc-cache").exists()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["materials"][0]["file"] == "Mat_One.ntc" and "Mat One" in stdout


def test_compress_gltf_report_may_go_into_the_new_output_folder(tmp_path):
    """`make assets` writes OUT/report.json beside the scene copy, before OUT exists."""
    scene_path = textured_builder().write(tmp_path / "s" / "x.gltf")
    out = tmp_path / "out"
    rc, _, err = run(compress_cli.main, [scene_path, "-o", out, "--report", out / "report.json",
                                         *FAST])
    assert rc == 0, err
    assert json.loads((out / "report.json").read_text())["output"] == str(out / "x.gltf")
    rc, _, err = run(compress_cli.main, [scene_path, "-o", out, "--report",
                                         tmp_path / "missing" / "r.json", *FAST])
    assert rc == 1 and "does not exist" in err


def test_compress_glb_writes_gltf_bin_and_shares_identical_sets(tmp_path, counted):
    b = textured_builder()
    mat = json.loads(json.dumps(b.doc["materials"][0]))
    mat["name"] = "Mat One"  # same name, same textures: one file, no second training
    b.material(**mat)
    b.doc["meshes"][0]["primitives"].append(dict(b.doc["meshes"][0]["primitives"][0], material=1))
    scene_path = b.write(tmp_path / "s" / "y.glb")
    out = tmp_path / "out"
    rc, _, err = run(compress_cli.main, [scene_path, "-o", out, *FAST])
    assert rc == 0, err
    assert len(counted) == 1
    assert sorted(p.name for p in out.iterdir()) == ["Mat_One.ntc", "y.bin", "y.gltf"]
    g = pygltflib.GLTF2().load(str(out / "y.gltf"))
    assert g.buffers[0].uri == "y.bin"
    assert all(im.bufferView is not None for im in g.images), "embedded images stay in the .bin"
    uris = {m.extensions[NTC_EXTENSION]["uri"] for m in g.materials}
    assert uris == {"Mat_One.ntc"}
    src, copy = load_scene(scene_path, log=None), load_scene(out / "y.gltf", log=None)
    np.testing.assert_array_equal(src.primitives[0].positions, copy.primitives[0].positions)
    for slot, s in src.materials[0].slots.items():
        np.testing.assert_array_equal(copy.materials[0].slots[slot].image.pixels, s.image.pixels)


def _bad_cli(tmp_path):
    scene = textured_builder().write(tmp_path / "s" / "x.gltf")
    (tmp_path / "file.txt").write_text("x")
    return scene


@pytest.mark.parametrize("case,expect", [
    ("same_folder", "scene's own folder"),
    ("output_is_file", "is a file"),
    ("missing_scene", "does not exist"),
    ("manifest", "--manifest"),
    ("bad_weight", "shiny"),
    ("dotdot", "leaves the scene's folder"),
])
def test_compress_gltf_errors_are_one_line(tmp_path, case, expect):
    scene = _bad_cli(tmp_path)
    args = {"same_folder": [scene, "-o", scene.parent],
            "output_is_file": [scene, "-o", tmp_path / "file.txt"],
            "missing_scene": [tmp_path / "nope.gltf", "-o", tmp_path / "o"],
            "manifest": [scene, "-o", tmp_path / "o", "--manifest", tmp_path / "file.txt"],
            "bad_weight": [scene, "-o", tmp_path / "o", "--weight", "shiny=2"],
            "dotdot": [scene, "-o", tmp_path / "o"]}[case]
    if case == "dotdot":
        (tmp_path / "secret.png").write_bytes((scene.parent / "mat_orm.png").read_bytes())
        doc = json.loads(scene.read_text())
        doc["images"][0]["uri"] = "../secret.png"
        scene.write_text(json.dumps(doc))
    before = tree_snapshot(tmp_path)
    rc, _, err = run(compress_cli.main, [*args, *FAST])
    assert rc == 1
    assert expect in one_line_error(err, "ntc-compress")
    assert tree_snapshot(tmp_path) == before, "nothing written"


def test_help_mentions_gltf():
    rc, out, _ = run(compress_cli.main, ["--help"])
    assert rc == 0 and ".gltf" in out and NTC_EXTENSION in out and "output folder" in out


def test_constant_material_keeps_its_images(tmp_path):
    b = SceneBuilder()
    flat = b.image_file("flat_baseColor.png", np.full((TEX, TEX, 3), 90, np.uint8))
    b.material(name="flat", pbrMetallicRoughness={"baseColorTexture": {"index": b.texture(flat)}})
    b.node(mesh=b.mesh())
    scene_path = b.write(tmp_path / "s" / "c.gltf")
    rc, out, err = run(compress_cli.main, [scene_path, "-o", tmp_path / "out", *FAST])
    assert rc == 0, err
    assert "(images kept)" in out
    doc = json.loads((tmp_path / "out" / "c.gltf").read_text())
    assert "extensions" not in doc["materials"][0] and "extensionsUsed" not in doc
    assert not list((tmp_path / "out").glob("*.ntc"))
    scene = load_scene(scene_path, log=None)
    assert ensure_ntc(scene, scene.materials[0], settings(), log=None) is None


def test_invalid_ntc_named_by_scene_falls_back_to_cache(tmp_path, counted):
    scene_path = textured_builder().write(tmp_path / "s" / "x.gltf")
    doc = json.loads(scene_path.read_text())
    doc["materials"][0]["extensions"] = {NTC_EXTENSION: {"uri": "broken.ntc",
                                                         "textures": {"baseColor": "nope"}}}
    doc["extensionsUsed"] = [NTC_EXTENSION]
    scene_path.write_text(json.dumps(doc))
    (scene_path.parent / "broken.ntc").write_bytes(b"NTCF" + b"\0" * 40)
    scene = load_scene(scene_path, log=None)
    mat = scene.materials[0]
    assert mat.ntc is not None
    path = ensure_ntc(scene, mat, settings(), log=None)
    assert path.parent.name == "x.ntc-cache" and len(counted) == 1
    assert material_slot_names(mat) == slot_texture_names(mat)
