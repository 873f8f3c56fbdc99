"""export.gltf.load_scene on bad scenes: a one-line SceneError for each (missing, truncated or
inconsistent files, out-of-range indices, hostile paths), and never a read outside the scene's
folder."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import snapshot
from gltf_scenes import TEX, png_bytes, textured_builder
from export.gltf import SceneError, load_scene


def _missing_file(tmp_path):
    return tmp_path / "s" / "nothere.gltf", "does not exist"


def _missing_bin(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.gltf")
    (p.parent / "x.bin").unlink()
    return p, "missing"


def _missing_image(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.gltf")
    (p.parent / "mat_normal.png").unlink()
    return p, "mat_normal.png"


def _with_doc(tmp_path, edit, glb=False):
    b = textured_builder()
    edit(b.doc)
    return b.write(tmp_path / "s" / ("x.glb" if glb else "x.gltf"))


def _outside_file(tmp_path) -> Path:
    """A real file beside (outside) the scene folder, so a loader that followed the URI would
    succeed instead of failing."""
    p = tmp_path / "secret.png"
    from conftest import base_color
    p.write_bytes(png_bytes(base_color(TEX, TEX)))
    return p


def _dotdot_image(tmp_path):
    _outside_file(tmp_path)
    return _with_doc(tmp_path, lambda d: d["images"][0].update(uri="../secret.png")), \
        "leaves the scene's folder"


def _dotdot_encoded(tmp_path):
    _outside_file(tmp_path)
    return _with_doc(tmp_path, lambda d: d["images"][0].update(uri="sub/%2E%2E/%2E%2E/secret.png")), \
        "leaves the scene's folder"


def _absolute_image(tmp_path):
    secret = _outside_file(tmp_path)
    return _with_doc(tmp_path, lambda d: d["images"][0].update(uri=str(secret))), "absolute"


def _file_scheme(tmp_path):
    secret = _outside_file(tmp_path)
    return _with_doc(tmp_path, lambda d: d["images"][0].update(uri=secret.as_uri())), \
        "not a relative file path"


def _http(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.gltf")
    doc = json.loads(p.read_text())
    doc["buffers"][0]["uri"] = "https://example.com/x.bin"
    p.write_text(json.dumps(doc))
    return p, "not a relative file path"


def _symlink_out(tmp_path):
    secret = _outside_file(tmp_path)
    p = textured_builder().write(tmp_path / "s" / "x.gltf")
    (p.parent / "mat_normal.png").unlink()
    (p.parent / "mat_normal.png").symlink_to(secret)
    return p, "leaves the scene's folder"


def _truncated_glb(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.glb")
    p.write_bytes(p.read_bytes()[:-100])
    return p, "truncated"


def _tiny_glb(tmp_path):
    p = tmp_path / "s" / "x.glb"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"glTF\x02\x00")
    return p, "truncated"


def _bad_glb_magic(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.glb")
    p.write_bytes(b"XXXX" + p.read_bytes()[4:])
    return p, "not a .glb"


def _glb_chunk_overrun(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.glb")
    data = bytearray(p.read_bytes())
    struct.pack_into("<I", data, 12, len(data))  # JSON chunk claims more than the file holds
    p.write_bytes(bytes(data))
    return p, "truncated"


def _not_json(tmp_path):
    p = tmp_path / "s" / "x.gltf"
    p.parent.mkdir(parents=True)
    p.write_text("{ this is not json")
    return p, "not valid glTF JSON"


def _gltf1(tmp_path):
    return _with_doc(tmp_path, lambda d: d["asset"].update(version="1.0")), "version 1.0"


def _required_ext(tmp_path):
    def edit(d):
        d["extensionsUsed"] = d["extensionsRequired"] = ["KHR_draco_mesh_compression"]
    return _with_doc(tmp_path, edit), "KHR_draco_mesh_compression"


def _bad_texture(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.gltf")
    (p.parent / "mat_normal.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    return p, "cannot be decoded"


def _bad_texture_glb(tmp_path):
    b = textured_builder()
    b.files["mat_normal.png"] = b"not an image at all" * 10
    return b.write(tmp_path / "s" / "x.glb"), "cannot be decoded"


def _accessor_oob(tmp_path):
    return _with_doc(tmp_path, lambda d: d["meshes"][0]["primitives"][0]["attributes"].update(
        POSITION=99)), "accessor 99 is out of range"


def _buffer_view_oob(tmp_path):
    return _with_doc(tmp_path, lambda d: d["accessors"][0].update(bufferView=42)), \
        "bufferView 42 is out of range"


def _accessor_past_view(tmp_path):
    return _with_doc(tmp_path, lambda d: d["accessors"][0].update(count=1000)), "needs"


def _view_past_buffer(tmp_path):
    return _with_doc(tmp_path, lambda d: d["bufferViews"][0].update(byteOffset=10 ** 6)), \
        "runs past the end"


def _short_bin(tmp_path):
    p = textured_builder().write(tmp_path / "s" / "x.gltf")
    (p.parent / "x.bin").write_bytes((p.parent / "x.bin").read_bytes()[:10])
    return p, "truncated"


def _index_oob(tmp_path):
    b = textured_builder()
    b.doc["meshes"].clear()
    b.mesh(indices=np.array([0, 1, 9], np.uint16))
    return b.write(tmp_path / "s" / "x.gltf"), "index 9 is out of range"


def _texture_oob(tmp_path):
    return _with_doc(tmp_path, lambda d: d["materials"][0]["normalTexture"].update(index=77)), \
        "texture 77 is out of range"


def _node_cycle(tmp_path):
    return _with_doc(tmp_path, lambda d: d["nodes"][0].update(children=[0])), "cycle"


def _no_triangles(tmp_path):
    return _with_doc(tmp_path, lambda d: d["scenes"][0].update(nodes=[])), "no triangles"


def _bad_matrix(tmp_path):
    return _with_doc(tmp_path, lambda d: d["nodes"][0].update(matrix=[1, 2, 3])), "matrix"


def _folder(tmp_path):
    (tmp_path / "dir.gltf").mkdir()
    return tmp_path / "dir.gltf", "is a folder"


def _wrong_types(tmp_path):
    return _with_doc(tmp_path, lambda d: d["meshes"][0]["primitives"][0].update(indices="x")), \
        "malformed glTF"


BAD = {
    "missing_file": _missing_file, "missing_bin": _missing_bin, "missing_image": _missing_image,
    "dotdot_uri": _dotdot_image, "dotdot_percent_encoded": _dotdot_encoded,
    "absolute_uri": _absolute_image, "file_scheme": _file_scheme, "http_buffer": _http,
    "symlink_out_of_folder": _symlink_out, "truncated_glb": _truncated_glb, "tiny_glb": _tiny_glb,
    "bad_glb_magic": _bad_glb_magic, "glb_chunk_overrun": _glb_chunk_overrun,
    "not_json": _not_json, "gltf_1": _gltf1, "required_unknown_extension": _required_ext,
    "undecodable_texture": _bad_texture, "undecodable_embedded_texture": _bad_texture_glb,
    "accessor_out_of_range": _accessor_oob, "buffer_view_out_of_range": _buffer_view_oob,
    "accessor_past_buffer_view": _accessor_past_view, "buffer_view_past_buffer": _view_past_buffer,
    "short_bin": _short_bin, "vertex_index_out_of_range": _index_oob,
    "texture_out_of_range": _texture_oob, "node_cycle": _node_cycle, "no_triangles": _no_triangles,
    "bad_matrix": _bad_matrix, "folder": _folder, "wrong_types": _wrong_types,
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_scene_one_line_error(tmp_path, case):
    path, expect = BAD[case](tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(SceneError) as info:
        load_scene(path, log=None)
    msg = str(info.value)
    assert "\n" not in msg and msg, msg
    assert expect.lower() in msg.lower(), msg
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before, "loading a scene writes nothing"


def test_nothing_outside_folder_is_opened(tmp_path, monkeypatch):
    """A good scene reads only files inside its own folder."""
    path = textured_builder(emissive=True).write(tmp_path / "s" / "x.gltf")
    folder = path.parent.resolve()
    opened = []
    real_read = Path.read_bytes

    def spy(self):
        opened.append(self.resolve())
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    before = snapshot(path.parent)
    load_scene(path, log=None)
    assert opened and all(folder in p.parents for p in opened), opened
    assert snapshot(path.parent) == before


