"""Reference mode as an engine ships it (viewer/bcn_images.py, export/bcn/gl_texture.py): the
scene's images as BCn textures, drawn next to the RGBA8 reference on tiny scenes. Checks: frames
close to RGBA8 (a BC5 normal map's Z rebuilt in the shader, a grey BC4 image swizzled back to
grey), the exact block bytes in the VRAM ledger, the cache beside the scene (reused, a damaged
file encoded again, an unwritable folder only a warning), the CLI's stats."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from export.metrics import psnr
from viewer_scenes import renderer, write_quad_scene, write_sphere_scene


def frames(ctx, scene, size=(64, 64), setup=None) -> dict[str, np.ndarray]:
    """Reference frames of the scene with RGBA8 and BCn textures (one renderer, B toggled)."""
    from viewer.bcn_images import BCnImages
    r = renderer(ctx, scene, size=size, bcn_images=BCnImages(None, progress=False))
    try:
        if setup is not None:
            setup(r)
        out = {}
        for fmt in ("rgba8", "bcn"):
            r.set_formats(reference=fmt)
            r.render()
            out[fmt] = r.read()
        out["ledger"] = r.vram_objects()
        return out
    finally:
        r.release()


@pytest.fixture(scope="module")
def sphere_scene(tmp_path_factory):
    from export.gltf import load_scene
    return load_scene(write_sphere_scene(tmp_path_factory.mktemp("bcn") / "s"), log=None)


@pytest.mark.gl
def test_bcn_reference_matches_rgba8_and_counts_block_bytes(ctx, sphere_scene, capsys):
    from export.bcn.formats import FORMATS
    got = frames(ctx, sphere_scene)
    value = psnr(got["bcn"], got["rgba8"])
    with capsys.disabled():
        print(f"\n  64x64 sphere, reference BCn vs RGBA8: {value:.2f} dB")
    assert value > 38.0
    bcn = {o["label"]: o["bytes"] for o in got["ledger"] if " BC" in o["label"]}
    # 32x32 images, full chains: BC7 base colour (sRGB) and ORM, BC5 normal
    chain7, chain5 = FORMATS["bc7"].chain_bytes(32, 32), FORMATS["bc5"].chain_bytes(32, 32)
    assert bcn == {"sphere_baseColor BC7 sRGB": chain7, "sphere_orm BC7": chain7,
                   "sphere_normal BC5 normal XY": chain5}


def lit_from_the_right(r) -> None:
    """Camera straight at the quad's front, one light from +X, no sky (as the normal-map
    orientation test of test_viewer_render)."""
    r.camera.yaw, r.camera.pitch = 0.0, 0.0
    r.light_dir = np.array([0.8, 0.0, 0.6])
    r.env_intensity = 0.0


@pytest.mark.gl
def test_bc5_normal_map_rebuilds_z(ctx, tmp_path):
    from export.gltf import load_scene
    tilted = (191, 128, 238)     # a unit normal 60 degrees off +Z, towards +X
    centre = (slice(12, 20), slice(12, 20))
    got = frames(ctx, load_scene(write_quad_scene(tmp_path / "q", tilted), log=None), (32, 32),
                 lit_from_the_right)
    flat = frames(ctx, load_scene(write_quad_scene(tmp_path / "f"), log=None), (32, 32),
                  lit_from_the_right)
    rgba8, bcn = (got[f][centre].astype(float).mean() for f in ("rgba8", "bcn"))
    assert rgba8 > flat["rgba8"][centre].astype(float).mean() + 20   # the tilt shows
    assert abs(bcn - rgba8) < 2.0    # Z from X, Y (0 from a BC5 texture as it is sampled)


@pytest.mark.gl
def test_grey_image_in_bc4_samples_as_grey(ctx, tmp_path):
    """A grey metallicRoughness image: roughness from G, metalness from B, both the grey."""
    from export.gltf import load_scene
    path = write_sphere_scene(tmp_path / "g")
    y = np.mgrid[0:32, 0:32][0] / 32.0
    Image.fromarray(np.rint((0.2 + 0.6 * y) * 255).astype(np.uint8)).save(path.parent /
                                                                          "sphere_orm.png")
    got = frames(ctx, load_scene(path, log=None))
    assert any(o["label"] == "sphere_orm BC4" for o in got["ledger"])
    assert psnr(got["bcn"], got["rgba8"]) > 38


def test_cache_is_reused_and_damage_is_encoded_again(sphere_scene, tmp_path, monkeypatch):
    from viewer import bcn_images
    image = sphere_scene.materials[0].slots["baseColor"].image
    logs = []
    first = bcn_images.BCnImages(tmp_path, logs.append, progress=False)
    dds, swizzle = first.texture(image, True, False)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".dds" and swizzle == "rgba"

    def no_encoding(*a, **k):
        raise AssertionError("encoded although cached")
    monkeypatch.setattr(bcn_images.codec, "compress_texture", no_encoding)
    again, _ = bcn_images.BCnImages(tmp_path, logs.append, progress=False).texture(image, True,
                                                                                   False)
    assert again.levels == dds.levels and logs == []
    monkeypatch.undo()
    files[0].write_bytes(files[0].read_bytes()[:-7])
    healed, _ = bcn_images.BCnImages(tmp_path, logs.append, progress=False).texture(image, True,
                                                                                    False)
    assert healed.levels == dds.levels and "encoding again" in logs[0]
    assert files[0].read_bytes() == bcn_images.to_bytes(dds)   # the cache is whole again


def test_unwritable_cache_warns_once(sphere_scene, tmp_path):
    from viewer.bcn_images import BCnImages
    blocker = tmp_path / "not_a_folder"
    blocker.write_bytes(b"x")
    logs = []
    images = BCnImages(blocker / "cache", logs.append, progress=False)
    for slot in ("baseColor", "normal"):
        image = sphere_scene.materials[0].slots[slot].image
        images.texture(image, slot == "baseColor", slot == "normal")
    assert len(logs) == 1 and logs[0].startswith("warning: cannot cache BCn textures")
    assert blocker.read_bytes() == b"x"


@pytest.mark.gl
def test_headless_cli_reference_bcn(ctx, tmp_path, capsys):
    from viewer import cli
    scene = write_sphere_scene(tmp_path / "scene")
    stats = {}
    for fmt in ("rgba8", "bcn"):
        path = tmp_path / f"{fmt}.json"
        rc = cli.main([str(scene), "--headless", "--reference", fmt, "--frames", "1",
                       "--size", "48x48", "--stats", str(path), "--compare"])
        assert rc == 0, capsys.readouterr().err
        stats[fmt] = json.loads(path.read_text())
    assert stats["bcn"]["reference_format"] == "bcn" and stats["bcn"]["load_format"] == "rgba8"
    assert stats["rgba8"]["psnr_vs_reference"] is None          # itself
    assert 35 < stats["bcn"]["psnr_vs_reference"] < 100         # against the RGBA8 images
    tex = {f: s["vram_bytes"]["by_category"]["textures"] for f, s in stats.items()}
    assert tex["bcn"] * 3 < tex["rgba8"]     # BC7 / BC5: a quarter of RGBA8, plus the white 1x1
    cached = sorted(p.suffix for p in (tmp_path / "scene" / "sphere.ntc-cache").iterdir())
    assert cached == [".dds"] * 3


@pytest.mark.gl
def test_load_bcn_holds_the_bytes_of_reference_bcn(ctx, sphere, capsys):
    """Load mode transcoded on the GPU: the same formats and bytes as the BCn reference of the
    same images, and a frame close to load mode's RGBA8 one."""
    from viewer.bcn_images import BCnImages
    from viewer.material_bindings import TextureFormats
    scene, _, provider = sphere
    r = renderer(ctx, scene, provider, bcn_images=BCnImages(None, progress=False))
    try:
        shots = {}
        for name, formats in (("load", TextureFormats()),
                              ("load bcn", TextureFormats("bcn", "bcn")),
                              ("reference bcn", TextureFormats("bcn", "bcn"))):
            r.set_formats(reference=formats.reference, load=formats.load)
            r.set_mode(name.split()[0])
            r.render()
            shots[name] = r.read()
        objects = r.vram_objects()
    finally:
        r.release()
    def bcn(category):   # (format names, bytes) of the BCn textures in a ledger category
        found = [o for o in objects if o["category"] == category and " BC" in o["label"]]
        return (sorted(o["label"].split(" BC", 1)[1] for o in found),
                sum(o["bytes"] for o in found))
    value = psnr(shots["load bcn"], shots["load"])
    with capsys.disabled():
        print(f"\n  64x64 sphere, load BCn vs load RGBA8: {value:.2f} dB; {bcn('decoded')}")
    assert value > 35
    assert bcn("decoded") == bcn("textures") and bcn("decoded")[1] > 0
