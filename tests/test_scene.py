"""export.gltf.load_scene: node transforms, generated normals/tangents/indices, materials and
images, and the shared real scenes. Bad scenes: test_scene_rejects.py."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from conftest import ROOT
from gltf_scenes import (QUAD_IDX, QUAD_NRM, QUAD_POS, QUAD_UV, TEX, SceneBuilder, data_uri,
                         textured_builder)
from export.gltf import load_scene
from export.gltf.geometry import generate_tangents
from export.gltf.model import GL_CLAMP_TO_EDGE, GL_REPEAT, ImageRef

SHARED = ROOT.parent / "shared" / "data" / "scenes"


def world_positions(p) -> np.ndarray:
    return p.positions @ p.world[:3, :3].T + p.world[:3, 3]


def tree(tmp_path) -> Path:
    """root (translate 10,0,0) -> child (rotate 90 deg about Z, scale 2) -> quad;
    and a second root node instancing the same mesh with a matrix (translate 0,0,-5)."""
    b = textured_builder()
    b.doc["nodes"].clear()
    b.doc["scenes"][0]["nodes"].clear()
    s = math.sqrt(0.5)
    child = b.node(root=False, mesh=0, rotation=[0, 0, s, s], scale=[2, 2, 2], name="child")
    b.node(translation=[10, 0, 0], children=[child], name="root")
    m = np.eye(4)
    m[:3, 3] = (0, 0, -5)
    b.node(mesh=0, matrix=m.T.reshape(-1).tolist(), name="instance")
    return b.write(tmp_path / "scene" / "tree.gltf")


# ----------------------------------------------------------------------------------------------
# geometry and transforms

def test_node_hierarchy_trs_and_matrix_applied(tmp_path):
    scene = load_scene(tree(tmp_path), log=None)
    assert len(scene.primitives) == 2, "a mesh used by two nodes appears once per node"
    by_node = {p.node: p for p in scene.primitives}
    child = world_positions(by_node[0])
    # (x, y) -> rotate 90 deg -> (-y, x) -> scale 2 -> translate (10, 0, 0)
    expected = np.stack([10 - 2 * QUAD_POS[:, 1], 2 * QUAD_POS[:, 0], 2 * QUAD_POS[:, 2]], 1)
    np.testing.assert_allclose(child, expected, atol=1e-5)
    inst = world_positions(by_node[2])
    np.testing.assert_allclose(inst, QUAD_POS + [0, 0, -5], atol=1e-6)
    np.testing.assert_allclose(scene.bounds_min, [0, 0, -5], atol=1e-5)
    np.testing.assert_allclose(scene.bounds_max, [10, 2, 0], atol=1e-5)
    assert by_node[0].positions is by_node[2].positions, "instances share their vertex arrays"
    for p in scene.primitives:
        assert p.world.dtype == np.float32 and p.world.shape == (4, 4)
        assert p.indices.dtype == np.uint32 and p.positions.dtype == np.float32


def test_tangents_generated_orthonormal_with_glTF_handedness(tmp_path):
    scene = load_scene(textured_builder().write(tmp_path / "s" / "q.gltf"), log=None)
    p = scene.primitives[0]
    assert p.tangents is not None and p.tangents.shape == (4, 4)
    t, n = p.tangents[:, :3], p.normals
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.sum(t * n, axis=1), 0, atol=1e-5)
    # +u runs along +x; image-up (-v in glTF UVs) along +y = cross(N, T): handedness +1.
    np.testing.assert_allclose(t, [[1, 0, 0]] * 4, atol=1e-5)
    assert np.all(p.tangents[:, 3] == 1)
    # Mirrored U flips the handedness.
    mirrored = QUAD_UV.copy()
    mirrored[:, 0] = 1 - mirrored[:, 0]
    g = generate_tangents(QUAD_POS, QUAD_NRM, mirrored, QUAD_IDX.astype(np.uint32))
    np.testing.assert_allclose(g[:, :3], [[-1, 0, 0]] * 4, atol=1e-5)
    assert np.all(g[:, 3] == -1)


def test_tangents_on_curved_mesh_are_orthonormal(tmp_path):
    """A bumpy grid: every generated tangent is unit length and perpendicular to its normal."""
    n = 6
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / (n - 1)
    pos = np.stack([x, y, 0.2 * np.sin(3 * x) * np.cos(2 * y)], -1).reshape(-1, 3)
    nrm = np.stack([-0.6 * np.cos(3 * x) * np.cos(2 * y), 0.4 * np.sin(3 * x) * np.sin(2 * y),
                    np.ones_like(x)], -1).reshape(-1, 3)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    uv = np.stack([x, 1 - y], -1).reshape(-1, 2).astype(np.float32)
    q = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]).reshape(-1)
    idx = np.stack([q, q + 1, q + n + 1, q, q + n + 1, q + n], 1).reshape(-1).astype(np.uint32)
    b = textured_builder()
    b.doc["meshes"].clear()
    b.mesh(pos.astype(np.float32), nrm.astype(np.float32), uv, idx)
    p = load_scene(b.write(tmp_path / "s" / "grid.gltf"), log=None).primitives[0]
    t = p.tangents[:, :3]
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert np.abs(np.sum(t * p.normals, axis=1)).max() < 1e-5
    assert np.all(np.abs(p.tangents[:, 3]) == 1)
    assert np.all(t[:, 0] > 0.8), "tangents follow +u (+x) on this gently curved grid"


def test_file_tangents_kept_and_tangents_always_present(tmp_path):
    b = textured_builder()
    tan = np.tile(np.array([[0, 1, 0, -1]], np.float32), (4, 1))
    b.doc["meshes"].clear()
    b.mesh(tangents=tan)
    p = load_scene(b.write(tmp_path / "a" / "s.gltf"), log=None).primitives[0]
    np.testing.assert_array_equal(p.tangents, tan)

    b = SceneBuilder()
    b.material(name="plain", pbrMetallicRoughness={"baseColorFactor": [1, 0, 0, 1]})
    b.node(mesh=b.mesh())
    scene = load_scene(b.write(tmp_path / "b" / "s.gltf"), log=None)
    t = scene.primitives[0].tangents  # no normal map: still one vertex layout for every primitive
    assert t.shape == (4, 4) and np.allclose(np.linalg.norm(t[:, :3], axis=1), 1)
    assert scene.materials[0].slots == {}
    assert scene.materials[0].base_color_factor == (1, 0, 0, 1)


def test_missing_normals_flat_uvs_zero_indices_generated(tmp_path):
    b = SceneBuilder()
    # Non-indexed, no normals, no UVs, no material: two triangles of a tent.
    pos = np.array([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0, 0, 0], [0.5, 1, 0], [0, 0, -1]],
                   np.float32)
    b.node(mesh=b.mesh(positions=pos, normals=None, uvs=None, indices=None, material=None))
    scene = load_scene(b.write(tmp_path / "s" / "t.gltf"), log=None)
    p = scene.primitives[0]
    assert p.material == -1 and scene.material(-1).name == "default"
    np.testing.assert_array_equal(p.indices, np.arange(6, dtype=np.uint32))
    np.testing.assert_array_equal(p.uvs, np.zeros((6, 2), np.float32))
    np.testing.assert_allclose(p.normals[:3], [[0, 0, 1]] * 3, atol=1e-6)
    face2 = np.cross(pos[4] - pos[3], pos[5] - pos[3])
    np.testing.assert_allclose(p.normals[3:], [face2 / np.linalg.norm(face2)] * 3, atol=1e-6)


def test_indexed_without_normals_is_unwelded_flat(tmp_path):
    b = SceneBuilder()
    b.node(mesh=b.mesh(normals=None, material=None))
    p = load_scene(b.write(tmp_path / "s" / "t.gltf"), log=None).primitives[0]
    assert p.positions.shape == (6, 3) and p.uvs.shape == (6, 2)
    np.testing.assert_allclose(p.positions, QUAD_POS[QUAD_IDX], atol=0)
    np.testing.assert_allclose(p.uvs, QUAD_UV[QUAD_IDX], atol=0)


def test_strip_converted_lines_skipped_with_warning(tmp_path):
    b = SceneBuilder()
    strip = np.array([0, 1, 3, 2], np.uint16)
    b.node(mesh=b.mesh(indices=strip, mode=5, material=None))
    b.node(mesh=b.mesh(indices=np.array([0, 1, 1, 2], np.uint16), mode=1, material=None))
    msgs = []
    scene = load_scene(b.write(tmp_path / "s" / "m.gltf"), log=msgs.append)
    assert len(scene.primitives) == 1
    tri = scene.primitives[0].indices.reshape(-1, 3)
    np.testing.assert_array_equal(tri, [[0, 1, 3], [3, 1, 2]])
    assert any("lines" in m for m in msgs) and scene.warnings


def test_quantized_normalized_uvs_and_sparse_accessor(tmp_path):
    b = SceneBuilder()
    b.doc["extensionsUsed"] = ["KHR_mesh_quantization"]
    b.doc["extensionsRequired"] = ["KHR_mesh_quantization"]
    uv16 = (QUAD_UV * 65535).astype(np.uint16)
    b.node(mesh=b.mesh(uvs=uv16, material=None))
    b.doc["accessors"][b.doc["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"]][
        "normalized"] = True
    # Sparse: move vertex 2 of POSITION to z = 7.
    pos_acc = b.doc["accessors"][0]
    iv = b.view(np.array([2], np.uint16).tobytes())
    vv = b.view(np.array([1, 1, 7], np.float32).tobytes())
    pos_acc["sparse"] = {"count": 1, "indices": {"bufferView": iv, "componentType": 5123},
                         "values": {"bufferView": vv}}
    p = load_scene(b.write(tmp_path / "s" / "q.gltf"), log=None).primitives[0]
    np.testing.assert_allclose(p.uvs, QUAD_UV, atol=1e-6)
    np.testing.assert_allclose(p.positions[2], [1, 1, 7])
    np.testing.assert_allclose(p.positions[[0, 1, 3]], QUAD_POS[[0, 1, 3]])


def test_interleaved_buffer_view(tmp_path):
    b = SceneBuilder()
    inter = np.concatenate([QUAD_POS, QUAD_UV], axis=1).astype(np.float32)  # 20-byte stride
    view = b.view(inter.tobytes(), stride=20)
    b.doc["accessors"] += [{"bufferView": view, "componentType": 5126, "count": 4, "type": "VEC3"},
                           {"bufferView": view, "byteOffset": 12, "componentType": 5126,
                            "count": 4, "type": "VEC2"}]
    idx = b.accessor(QUAD_IDX)
    b.doc["meshes"].append({"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1},
                                            "indices": idx}]})
    b.node(mesh=0)
    p = load_scene(b.write(tmp_path / "s" / "i.gltf"), log=None).primitives[0]
    np.testing.assert_array_equal(p.positions[p.indices], QUAD_POS[QUAD_IDX])
    np.testing.assert_array_equal(p.uvs[p.indices], QUAD_UV[QUAD_IDX])


# ----------------------------------------------------------------------------------------------
# materials and images

def test_materials_slots_samplers_and_extensions(tmp_path):
    b = textured_builder(alpha_mode="MASK", emissive=True)
    b.doc["samplers"].append({"wrapS": GL_CLAMP_TO_EDGE, "wrapT": 33648, "magFilter": 9728,
                              "minFilter": 9987})
    b.doc["textures"][0]["sampler"] = 0
    mat = b.doc["materials"][0]
    mat.update(alphaCutoff=0.3, doubleSided=True, emissiveFactor=[0.5, 1, 1])
    mat["pbrMetallicRoughness"].update(metallicFactor=0.25, roughnessFactor=0.75)
    mat["normalTexture"]["scale"] = 0.5
    mat["occlusionTexture"]["strength"] = 0.8
    mat["pbrMetallicRoughness"]["baseColorTexture"]["extensions"] = {"KHR_texture_transform": {
        "offset": [0.5, 0], "scale": [2, 2], "texCoord": 1}}
    mat["extensions"] = {"KHR_materials_emissive_strength": {"emissiveStrength": 4.0}}
    b.doc["extensionsUsed"] = ["KHR_texture_transform", "KHR_materials_emissive_strength"]
    scene = load_scene(b.write(tmp_path / "s" / "m.gltf"), log=None)
    m = scene.materials[0]
    assert m.name == "Mat One" and m.alpha_mode == "MASK" and m.alpha_cutoff == pytest.approx(0.3)
    assert m.double_sided and m.metallic_factor == 0.25 and m.roughness_factor == 0.75
    assert m.normal_scale == 0.5 and m.occlusion_strength == pytest.approx(0.8)
    assert m.emissive_factor == (2.0, 4.0, 4.0) and m.emissive_strength == 4.0
    assert set(m.slots) == {"baseColor", "normal", "metallicRoughness", "occlusion", "emissive"}
    bc = m.slots["baseColor"]
    assert (bc.sampler.wrap_s, bc.sampler.wrap_t) == (GL_CLAMP_TO_EDGE, 33648)
    assert (bc.sampler.mag_filter, bc.sampler.min_filter) == (9728, 9987)
    assert bc.texcoord == 1
    np.testing.assert_allclose(bc.uv_transform @ [0.25, 0.25, 1], [1.0, 0.5, 1])
    assert m.slots["normal"].sampler.wrap_s == GL_REPEAT and m.slots["normal"].uv_transform is None
    # Rotation as the extension's GLSL (column-major mat3(c, s, 0, -s, c, 0, 0, 0, 1)):
    # u = (1, 0) turns to (cos r, sin r).
    nt = mat["normalTexture"]
    nt["extensions"] = {"KHR_texture_transform": {"rotation": math.pi / 2}}
    rot = load_scene(b.write(tmp_path / "r" / "m.gltf"), log=None).materials[0].slots["normal"]
    np.testing.assert_allclose(rot.uv_transform @ [1, 0, 1], [0, 1, 1], atol=1e-6)
    img = bc.image
    assert isinstance(img, ImageRef) and img.key == "image0" and img.name == "mat_baseColor"
    assert img.pixels.shape == (TEX, TEX, 4) and img.pixels.dtype == np.uint8
    assert img.source_path == (tmp_path / "s" / "mat_baseColor.png").resolve()
    # One image used by two slots is decoded once: the same ImageRef object.
    assert m.slots["metallicRoughness"].image is m.slots["occlusion"].image
    assert set(scene.images) == {s.image.key for s in m.slots.values()}


def test_glb_with_embedded_images_matches_gltf(tmp_path):
    b = textured_builder(emissive=True)
    g = load_scene(b.write(tmp_path / "a" / "s.gltf"), log=None)
    s = load_scene(b.write(tmp_path / "b" / "s.glb"), log=None)
    assert os.listdir(tmp_path / "b") == ["s.glb"]
    np.testing.assert_array_equal(g.primitives[0].positions, s.primitives[0].positions)
    np.testing.assert_array_equal(g.primitives[0].tangents, s.primitives[0].tangents)
    for slot, ref in g.materials[0].slots.items():
        got = s.materials[0].slots[slot].image
        np.testing.assert_array_equal(got.pixels, ref.image.pixels)
        assert got.source_path is None


def test_data_uris(tmp_path):
    b = textured_builder()
    path = b.write(tmp_path / "s" / "d.gltf")
    doc = json.loads(path.read_text())
    doc["buffers"][0]["uri"] = data_uri((path.parent / "d.bin").read_bytes())
    for im in doc["images"]:
        im["uri"] = data_uri((path.parent / im["uri"]).read_bytes(), "image/png")
    out = tmp_path / "only" / "d.gltf"
    out.parent.mkdir()
    out.write_text(json.dumps(doc))
    scene = load_scene(out, log=None)
    assert scene.materials[0].slots["baseColor"].image.pixels.shape == (TEX, TEX, 3)
    assert scene.materials[0].slots["baseColor"].image.name == "image0"


def test_sixteen_bit_png_kept_exact(tmp_path):
    from conftest import emissive16, write_png16
    b = textured_builder()
    path = b.write(tmp_path / "s" / "x.gltf")
    px = emissive16(TEX, TEX)
    write_png16(path.parent / "mat_baseColor.png", px)
    img = load_scene(path, log=None).materials[0].slots["baseColor"].image
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, px)


def test_unknown_optional_extension_is_a_warning(tmp_path):
    b = textured_builder()
    b.doc["extensionsUsed"] = ["EXT_something_optional"]
    msgs = []
    scene = load_scene(b.write(tmp_path / "s" / "x.gltf"), log=msgs.append)
    assert any("EXT_something_optional" in m for m in msgs) and scene.warnings


def test_loaded_with_pygltflib_too(tmp_path):
    """The builder writes valid glTF by pygltflib's reading too (so the fixtures are real)."""
    path = textured_builder().write(tmp_path / "s" / "x.gltf")
    g = pygltflib.GLTF2().load(str(path))
    assert len(g.meshes) == 1 and len(g.materials) == 1


# ----------------------------------------------------------------------------------------------
# the shared real scenes (skipped where ../shared/data is absent)

REAL = [SHARED / "WaterBottle" / "PF_WaterBottle_MR.gltf",
        SHARED / "FlightHelmet_512" / "FlightHelmet.gltf"]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.parent.name)
def test_real_scenes_load_and_generated_tangents_match_the_files(path):
    if not path.is_file():
        pytest.skip(f"{path} not present")
    scene = load_scene(path, log=None)
    assert scene.primitives and scene.materials and not scene.warnings
    assert np.all(scene.bounds_max > scene.bounds_min)
    for p in scene.primitives:
        assert p.tangents is not None and p.indices.max() < p.positions.shape[0]
        g = generate_tangents(p.positions, p.normals, p.uvs, p.indices)
        cos = np.sum(g[:, :3] * p.tangents[:, :3], axis=1)
        assert np.median(cos) > 0.999, p.name
        assert np.mean(g[:, 3] == p.tangents[:, 3]) > 0.98, p.name


def test_drawn_materials_in_index_order_default_and_untextured_apart(tmp_path):
    """Scene.drawn_materials: each material a primitive draws once, by index, the glTF default
    material for primitives without one; textured=True keeps those with a texture (what the
    viewer compresses), not an unused material."""
    b = textured_builder()
    b.material(name="Plain")                 # 1: no texture
    b.material(name="Unused")                # 2: drawn by nothing
    prim = b.doc["meshes"][0]["primitives"][0]
    no_material = {k: v for k, v in prim.items() if k != "material"}
    b.doc["meshes"][0]["primitives"] = [dict(prim, material=1), no_material, prim,
                                        dict(prim, material=1)]
    scene = load_scene(b.write(tmp_path / "s" / "d.gltf"), log=None)
    assert [(m.index, m.name) for m in scene.drawn_materials()] == [
        (-1, "default"), (0, "Mat One"), (1, "Plain")]
    assert [m.name for m in scene.drawn_materials(textured=True)] == ["Mat One"]
