"""Texture sets: roles from real file names, manifests, skipped files, and the channel plan."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from conftest import (DEFAULT_SET, H, W, base_color, grey, height16, normal_map, orm, write_png16,
                      write_set)
from export.model import CONST, COPY, NORMAL_Z, STORED
from trainer.targets import plan_channels
from trainer.textures import infer_role, load_texture_set, read_image


# File names as they are in ../shared/data (see its README.md for the intended roles).
@pytest.mark.parametrize("name, role", [
    ("PF_WaterBottle_MR_occlusionRoughnessMetallic.png", "orm"),
    ("PF_WaterBottle_MR_baseColor.png", "baseColor"),
    ("PF_WaterBottle_MR_normal.png", "normal"),
    ("PF_WaterBottle_MR_emissive.png", "emissive"),
    ("benchMat_occlusionRoughnessMetallic.png", "orm"),
    ("FlightHelmet_Materials_LensesMat_OcclusionRoughMetal.png", "orm"),
    ("FlightHelmet_Materials_LensesMat_BaseColor.png", "baseColor"),
    ("FlightHelmet_Materials_RubberWoodMat_Normal.png", "normal"),
    ("Leaves_metallicRoughness.png", "metallicRoughness"),
    ("Trunk_baseColor.png", "baseColor"),
    ("DesertSand1_1024_normal.png", "normal"),
    ("rock_albedo.jpg", "baseColor"),
    ("rock_ao.jpg", "occlusion"),
    ("rock_rough.jpg", "roughness"),
    ("rock_depth.jpg", "height"),
    ("rock_metal.jpg", "metallic"),  # really a normal map: only a manifest can say so
    ("texture_bricks.jpg", None),
    ("texture_bricks_normal.jpg", "normal"),
    ("texture_bricks_metal.jpg", "metallic"),
    ("texture_rock_albedo.png", "baseColor"),
    ("brick_base_gray.jpg", "baseColor"),
    ("brick_roughness.jpg", "roughness"),
    ("brick_mask.jpg", None),
    ("brick_dirt_mask.jpg", None),
    ("brick_variation_mask.jpg", None),
])
def test_role_from_real_file_names(name, role):
    assert infer_role(name) == role


def _write(folder, name, img):
    folder.mkdir(parents=True, exist_ok=True)
    iio.imwrite(folder / name, img)


def test_manifest_wins_over_file_names(tmp_path):
    folder = tmp_path / "rock"
    _write(folder, "x_metal.jpg", normal_map())
    _write(folder, "x_albedo.png", base_color())
    by_name = {t.path.name: t for t in load_texture_set(folder).textures}
    assert by_name["x_metal.jpg"].role == "metallic"
    (folder / "ntc.json").write_text(json.dumps({"x_metal.jpg": "normal"}))
    by_name = {t.path.name: t for t in load_texture_set(folder).textures}
    assert by_name["x_metal.jpg"].role == "normal"
    assert by_name["x_metal.jpg"].colorspace == "linear"
    assert by_name["x_albedo.png"].role == "baseColor"  # files the manifest omits keep their names
    assert by_name["x_albedo.png"].colorspace == "srgb"


def test_manifest_given_by_path_with_details(tmp_path):
    folder = tmp_path / "set"
    _write(folder, "a.png", base_color())
    _write(folder, "b.png", orm())
    _write(folder, "focus.png", grey())
    _write(folder, "notes.png", grey())
    manifest = tmp_path / "elsewhere.json"
    manifest.write_text(json.dumps({
        "a.png": {"role": "emissive", "colorspace": "linear", "weight": 2},
        "b.png": {"role": "roughness", "channels": 1},
        "focus.png": "mask",
        "notes.png": "skip",
    }))
    tset = load_texture_set(folder, manifest=manifest)
    by_name = {t.path.name: t for t in tset.textures}
    assert sorted(by_name) == ["a.png", "b.png"]
    assert (by_name["a.png"].role, by_name["a.png"].colorspace, by_name["a.png"].weight) == \
        ("emissive", "linear", 2.0)
    assert by_name["b.png"].role == "roughness" and by_name["b.png"].channels == 1
    assert np.array_equal(by_name["b.png"].pixels[..., 0], orm()[..., 0] / np.float32(255))
    assert tset.mask is not None and tset.mask.shape == (H, W)
    assert "notes.png" in tset.skipped


def test_unknown_files_are_skipped_and_listed(tmp_path):
    folder = tmp_path / "set"
    _write(folder, "mat_baseColor.png", base_color())
    _write(folder, "brick_mask.jpg", grey())
    _write(folder, "notes.png", grey())
    (folder / "readme.txt").write_text("not an image")
    tset = load_texture_set(folder)
    assert [t.path.name for t in tset.textures] == ["mat_baseColor.png"]
    assert sorted(tset.skipped) == ["brick_mask.jpg", "notes.png"]
    assert tset.mask is None


def test_colour_spaces_and_bit_depths(tmp_path):
    folder = write_set(tmp_path / "set", {**DEFAULT_SET, "mat_height.png": height16,
                                          "mat_emissive.png": base_color})
    by_role = {t.role: t for t in load_texture_set(folder).textures}
    assert {r: t.colorspace for r, t in by_role.items()} == {
        "baseColor": "srgb", "emissive": "srgb", "normal": "linear", "orm": "linear",
        "height": "linear"}
    h = by_role["height"]
    assert h.bit_depth == 16 and h.pixels.shape == (H, W, 1)
    np.testing.assert_array_equal(h.pixels[..., 0], height16().astype(np.float32) / 65535)
    assert by_role["baseColor"].bit_depth == 8 and by_role["baseColor"].pixels.shape == (H, W, 3)


def test_palette_png_becomes_rgb(tmp_path):
    rgb = base_color()
    Image.fromarray(rgb).quantize(colors=16).save(tmp_path / "pal.png")
    expected = np.asarray(Image.open(tmp_path / "pal.png").convert("RGB"))
    pixels, depth = read_image(tmp_path / "pal.png")
    assert depth == 8 and pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(np.rint(pixels * 255).astype(np.uint8), expected)


def test_16_bit_rgb_png_keeps_16_bits(tmp_path):
    src = (normal_map().astype(np.uint16) * 257 + 100).astype(np.uint16)
    write_png16(tmp_path / "n16_normal.png", src)
    pixels, depth = read_image(tmp_path / "n16_normal.png")
    assert depth == 16
    np.testing.assert_array_equal(np.rint(pixels * 65535).astype(np.uint16), src)


# ----------------------------------------------------------------------------------------------
# the channel plan

def _plan(folder):
    tset = load_texture_set(folder)
    infos, stored = plan_channels(tset)
    return {i.name: [(c.kind, c.index if c.kind in (STORED, COPY) else c.value)
                     for c in i.channels] for i in infos}, stored


def test_plan_default_set(texture_set):
    plan, stored = _plan(texture_set)
    assert plan == {
        "mat_baseColor": [(STORED, 0), (STORED, 1), (STORED, 2)],
        "mat_normal": [(STORED, 3), (STORED, 4), (NORMAL_Z, 0.0)],
        "mat_orm": [(STORED, 5), (STORED, 6), (CONST, 0.0)],
    }
    assert stored == 7


def test_plan_grey_rgb_constant_and_alpha(tmp_path):
    folder = tmp_path / "set"
    g = grey()
    _write(folder, "m_roughness.png", np.dstack([g, g, g]))          # grey stored as RGB
    _write(folder, "m_orm.png", orm(metallic=128))                   # constant metallic 128/255
    rgba = np.dstack([base_color(), np.full((H, W), 255, np.uint8)])  # opaque alpha
    _write(folder, "m_baseColor.png", rgba)
    plan, stored = _plan(folder)
    assert plan["m_roughness"] == [(STORED, plan["m_roughness"][0][1]), (COPY, 0), (COPY, 0)]
    assert plan["m_orm"][2] == (CONST, pytest.approx(128 / 255, abs=1e-7))
    assert plan["m_baseColor"][3] == (CONST, 1.0)
    assert stored == 3 + 2 + 1


def test_plan_stores_a_z_that_is_not_a_unit_normal(tmp_path):
    folder = tmp_path / "set"
    n = normal_map()
    n[..., 2] = grey()  # Z unrelated to X, Y: rebuilding it would be wrong
    _write(folder, "m_normal.png", n)
    plan, stored = _plan(folder)
    assert plan["m_normal"] == [(STORED, 0), (STORED, 1), (STORED, 2)]
    assert stored == 3


def test_plan_of_a_constant_set_stores_nothing(tmp_path):
    folder = tmp_path / "set"
    _write(folder, "m_baseColor.png", np.full((H, W, 3), 77, np.uint8))
    plan, stored = _plan(folder)
    assert stored == 0
    assert plan["m_baseColor"] == [(CONST, pytest.approx(77 / 255, abs=1e-7))] * 3


def test_every_role_the_names_give_is_a_role_the_file_holds():
    from export.header import ROLES as FILE_ROLES
    from trainer.textures import _NAME_RULES, ROLES
    assert ROLES == list(FILE_ROLES)
    assert {role for role, _, _ in _NAME_RULES} <= set(FILE_ROLES)
