"""Hostile and careless inputs: outputs that name inputs, outputs that are not files. Each ends in
one line on stderr and a non-zero exit before any training, with nothing written and every input
unchanged."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

import trainer.compress as compress_mod
from conftest import snapshot, write_set
from gltf_scenes import textured_builder
from test_cli import FAST, one_line_error, run
from test_gltf_compress import tree_snapshot
from trainer import cli as compress_cli


@pytest.fixture
def no_training(monkeypatch):
    """Any compression at all fails the test: these errors must come before training."""
    def refuse(*a, **k):
        raise AssertionError("training started")
    monkeypatch.setattr(compress_cli, "compress", refuse)
    monkeypatch.setattr(compress_mod, "compress", refuse)


def _compress_fails(argv, word) -> str:
    rc, _, err = run(compress_cli.main, [*argv, *FAST])
    assert rc == 1, err
    line = one_line_error(err, "ntc-compress")
    assert word in line, line
    return line


def test_report_naming_an_input_texture_is_refused(tmp_path, no_training):
    folder = write_set(tmp_path / "in")
    before = snapshot(folder)
    _compress_fails([folder, "-o", tmp_path / "out.ntc", "--report", folder / "mat_baseColor.png"],
                    "would overwrite an input")
    assert snapshot(folder) == before and not (tmp_path / "out.ntc").exists()


def test_report_naming_the_manifest_or_the_mask_is_refused(tmp_path, monkeypatch):
    folder = write_set(tmp_path / "in")
    (folder / "ntc.json").write_text(json.dumps({"mat_orm.png": "orm"}))
    before = snapshot(folder)
    _compress_fails([folder, "-o", tmp_path / "o.ntc", "--report", folder / "ntc.json"],
                    "would overwrite an input")
    assert snapshot(folder) == before


def test_report_equal_to_the_output_is_refused(tmp_path, no_training):
    folder = write_set(tmp_path / "in")
    _compress_fails([folder, "-o", tmp_path / "x.ntc", "--report", tmp_path / "x.ntc"],
                    "name the same file")
    assert not (tmp_path / "x.ntc").exists()


def test_output_that_is_a_fifo_is_refused_and_kept(tmp_path, no_training):
    folder = write_set(tmp_path / "in")
    fifo = tmp_path / "pipe.ntc"
    os.mkfifo(fifo)
    _compress_fails([folder, "-o", fifo], "not a regular file")
    assert fifo.is_fifo()
    _compress_fails([folder, "-o", tmp_path / "x.ntc", "--report", fifo], "not a regular file")
    assert fifo.is_fifo()


def test_output_that_is_a_device_is_refused(tmp_path, no_training):
    # /dev/null exists on every machine this runs on; the check comes before anything is written
    _compress_fails([write_set(tmp_path / "in"), "-o", "/dev/null"], "not a regular file")
    assert Path("/dev/null").is_char_device()


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="no /proc")
def test_output_in_a_folder_where_nothing_can_be_created_is_refused(tmp_path, no_training):
    _compress_fails([write_set(tmp_path / "in"), "-o", "/proc/x.ntc"], "cannot write in")


def _add_external_buffer(glb: Path, uri: str, data: bytes) -> None:
    """Give a .glb a second buffer stored in a file beside it."""
    raw = glb.read_bytes()
    js_len = struct.unpack_from("<I", raw, 12)[0]
    doc = json.loads(raw[20:20 + js_len])
    rest = raw[20 + js_len:]
    doc["buffers"].append({"uri": uri, "byteLength": len(data)})
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    glb.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(js) + len(rest))
                    + struct.pack("<II", len(js), 0x4E4F534A) + js + rest)
    (glb.parent / uri).parent.mkdir(parents=True, exist_ok=True)
    (glb.parent / uri).write_bytes(data)


def test_scene_output_over_an_input_buffer_is_refused_before_training(tmp_path, no_training):
    # x.glb also reads sub/x.bin; -o s/sub would write the .glb's own BIN chunk as s/sub/x.bin
    scene = textured_builder().write(tmp_path / "s" / "x.glb")
    _add_external_buffer(scene, "sub/x.bin", b"\0\1\2\3")
    before = tree_snapshot(tmp_path)
    _compress_fails([scene, "-o", tmp_path / "s" / "sub"], "would overwrite an input")
    assert tree_snapshot(tmp_path) == before


def test_scene_report_naming_an_input_image_is_refused(tmp_path, no_training):
    scene = textured_builder().write(tmp_path / "s" / "x.gltf")
    before = tree_snapshot(tmp_path)
    _compress_fails([scene, "-o", tmp_path / "out", "--report", scene.parent / "mat_orm.png"],
                    "would overwrite an input")
    _compress_fails([scene, "-o", tmp_path / "out", "--report", scene], "would overwrite an input")
    assert tree_snapshot(tmp_path) == before
