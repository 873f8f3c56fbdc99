"""Hostile and careless inputs: outputs that name inputs, outputs that are not files. Each ends in
one line on stderr and a non-zero exit before any training, with nothing written and every input
unchanged."""
from __future__ import annotations

import json
import os
import signal
import struct
import zlib
from pathlib import Path

import pytest

import trainer.compress as compress_mod
from conftest import base_color, snapshot, write_set
from gltf_scenes import textured_builder
from cli_run import FAST, one_line_error, run
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


# ----------------------------------------------------------------------------------------------
# files that are not regular files: never opened (a FIFO would block forever), always reported

@pytest.fixture
def alarm():
    """A hang becomes a failure after 30 s instead of a stuck test run."""
    def on_alarm(*_):
        raise TimeoutError("hung")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_folder_entries_that_are_not_files_are_listed_with_why(tmp_path, alarm):
    folder = write_set(tmp_path / "in", {"mat_baseColor.png": base_color})
    (folder / "x_normal.png").mkdir()
    os.mkfifo(folder / "y_orm.png")
    os.symlink(folder / "gone.png", folder / "z_roughness.png")
    rc, out, err = run(compress_cli.main, [folder, "-o", tmp_path / "o.ntc", "--report",
                                           tmp_path / "r.json", *FAST])
    assert rc == 0, err
    assert "skipped x_normal.png: a folder" in err
    assert "skipped y_orm.png: not a regular file" in err
    assert "skipped z_roughness.png: a broken link" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["not_files"]) == {"x_normal.png", "y_orm.png", "z_roughness.png"}
    assert list(report["textures"]) == ["mat_baseColor"]


def test_manifest_naming_a_fifo_is_an_error_not_a_hang(tmp_path, alarm, no_training):
    folder = write_set(tmp_path / "in")
    os.mkfifo(folder / "pipe.png")
    (folder / "ntc.json").write_text(json.dumps({"pipe.png": "normal"}))
    _compress_fails([folder, "-o", tmp_path / "o.ntc"], "not a regular file")


@pytest.mark.parametrize("which", ["image", "buffer"])
def test_scene_uri_naming_a_fifo_is_an_error_not_a_hang(tmp_path, alarm, no_training, which):
    scene = textured_builder().write(tmp_path / "s" / "x.gltf")
    doc = json.loads(scene.read_text())
    os.mkfifo(scene.parent / "pipe")
    (doc["images"][0] if which == "image" else doc["buffers"][0])["uri"] = "pipe"
    scene.write_text(json.dumps(doc))
    line = _compress_fails([scene, "-o", tmp_path / "out"], "not a regular file")
    assert "pipe" in line
    from viewer.cli import main as view_main
    rc, _, err = run(view_main, [str(scene), "--headless", "--frames", "1", "--size", "8x8",
                                 "--cache-dir", str(tmp_path / "cache")])
    assert rc == 1 and "not a regular file" in one_line_error(err, "ntc-view")


def test_scene_file_that_is_a_fifo_is_an_error_not_a_hang(tmp_path, alarm, no_training):
    os.mkfifo(tmp_path / "x.gltf")
    _compress_fails([tmp_path / "x.gltf", "-o", tmp_path / "out"], "not a regular file")


# ----------------------------------------------------------------------------------------------
# ntc-decode

def _renamed(trained, name: str) -> bytes:
    from ntc_files import assemble, split
    from test_format_rejects import _texname
    header, chunks = split(trained.data)
    return assemble(_texname(name)(header, chunks), chunks)


@pytest.mark.parametrize("name", ["bad\ud800", "two\nlines"])
def test_decode_of_a_file_with_an_unwritable_name_is_one_line(tmp_path, trained, name):
    from export import cli as decode_cli
    src = tmp_path / "x.ntc"
    src.write_bytes(_renamed(trained, name))
    rc, _, err = run(decode_cli.main, [src, "-o", tmp_path / "out"])
    assert rc == 1 and "plain file stem" in one_line_error(err, "ntc-decode")
    assert not (tmp_path / "out").exists()


def test_decode_interrupted_is_one_line_and_leaves_no_folder(tmp_path, trained, monkeypatch):
    from export import cli as decode_cli
    src = tmp_path / "x.ntc"
    src.write_bytes(trained.data)

    def interrupt(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(decode_cli.FileDecoder, "textures_mip", interrupt)
    rc, _, err = run(decode_cli.main, [src, "-o", tmp_path / "out"])
    assert rc == 130 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "ntc-decode: interrupted; every file written so far is complete, none is partial"]
    assert not (tmp_path / "out").exists()


def test_decode_into_a_folder_that_cannot_be_made_fails_before_decoding(tmp_path, trained,
                                                                        monkeypatch):
    from export import cli as decode_cli
    src = tmp_path / "x.ntc"
    src.write_bytes(trained.data)
    monkeypatch.setattr(decode_cli.FileDecoder, "from_model",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    (tmp_path / "file").write_text("x")
    rc, _, err = run(decode_cli.main, [src, "-o", tmp_path / "file" / "out"])
    assert rc == 1 and "not a folder" in one_line_error(err, "ntc-decode")
    if Path("/proc/self").exists():
        rc, _, err = run(decode_cli.main, [src, "-o", "/proc/ntc-out"])
        assert rc == 1 and "cannot write" in one_line_error(err, "ntc-decode")


# ----------------------------------------------------------------------------------------------
# sizes a small file declares: checked from headers before anything is allocated

def _png_declaring(w: int, h: int, depth: int = 8, colour: int = 6) -> bytes:
    """A tiny PNG whose IHDR declares w x h (its pixel data is a few bytes: never decoded)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_folder_image_declaring_a_huge_size_is_refused_from_its_header(tmp_path, no_training):
    folder = write_set(tmp_path / "in")
    (folder / "mat_height.png").write_bytes(_png_declaring(30000, 30000, 16, 0))
    line = _compress_fails([folder, "-o", tmp_path / "o.ntc"], "30000x30000 is larger than")
    assert "--max-size" in line


def test_folder_sizes_are_compared_before_decoding(tmp_path, no_training, monkeypatch):
    from export import images
    folder = write_set(tmp_path / "in")
    (folder / "mat_height.png").write_bytes(_png_declaring(4000, 4000, 16, 0))
    monkeypatch.setattr(images, "_decode", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    _compress_fails([folder, "-o", tmp_path / "o.ntc"], "must share one size")


def test_max_size_flag_raises_and_lowers_the_limit(tmp_path, no_training):
    folder = write_set(tmp_path / "in")   # 40 x 24
    _compress_fails([folder, "-o", tmp_path / "o.ntc", "--max-size", "32"], "larger than the limit of 32")
    _compress_fails([folder, "-o", tmp_path / "o.ntc", "--max-size", "20000"], "--max-size")


def test_scene_image_declaring_a_huge_size_is_refused(tmp_path, no_training):
    scene = textured_builder().write(tmp_path / "s" / "x.gltf")
    (scene.parent / "mat_orm.png").write_bytes(_png_declaring(12000, 12000))
    _compress_fails([scene, "-o", tmp_path / "out"], "12000x12000 is larger than")


def test_scene_accessor_without_data_cannot_declare_a_huge_count(tmp_path):
    from export.gltf import SceneError, load_scene
    b = textured_builder()
    scene = b.write(tmp_path / "s" / "x.gltf")
    doc = json.loads(scene.read_text())
    doc["accessors"].append({"componentType": 5126, "type": "VEC3", "count": 1 << 28})
    doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"] = len(doc["accessors"]) - 1
    scene.write_text(json.dumps(doc))
    with pytest.raises(SceneError, match="no bufferView and declares"):
        load_scene(scene, log=None)


def test_decode_of_a_small_file_declaring_16k_is_refused_by_default(tmp_path):
    from export import cli as decode_cli
    from export.format import to_bytes
    from export.model import ChannelInfo, TextureInfo
    from trainer.network import NetworkConfig, NeuralTexture
    tex = [TextureInfo("big", "big.png", "roughness", "linear", 8, [ChannelInfo("stored", 0)])]
    cfg = NetworkConfig(features=4, grid_scale=64.0, hr_sampling="bilinear")
    data = to_bytes(NeuralTexture(cfg, 16384, 16384, 1).export(tex))
    assert len(data) < 200_000
    (tmp_path / "big.ntc").write_bytes(data)
    rc, _, err = run(decode_cli.main, [tmp_path / "big.ntc", "-o", tmp_path / "out"])
    assert rc == 1 and "--max-size" in one_line_error(err, "ntc-decode")
    assert not (tmp_path / "out").exists()
    rc, _, err = run(decode_cli.main, [tmp_path / "big.ntc", "-o", tmp_path / "out", "--mip", "5"])
    assert rc == 0, err
    assert (tmp_path / "out" / "big_mip5.png").is_file()


def test_out_of_memory_in_training_is_one_line(tmp_path, monkeypatch):
    folder = write_set(tmp_path / "in")

    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 2304000000 bytes.")
    monkeypatch.setattr(compress_cli, "compress", oom)
    line = _compress_fails([folder, "-o", tmp_path / "o.ntc"], "not enough memory")
    assert "nothing was written" in line and not (tmp_path / "o.ntc").exists()


@pytest.mark.parametrize("key", ["extensionsRequired", "extensionsUsed"])
def test_extension_lists_given_as_a_string_are_one_clear_error(tmp_path, key):
    from export.gltf import SceneError, load_scene
    scene = textured_builder().write(tmp_path / "s" / "x.gltf")
    doc = json.loads(scene.read_text())
    doc[key] = "KHR_texture_transform"
    scene.write_text(json.dumps(doc))
    with pytest.raises(SceneError, match=f"{key} must be a list of extension names") as e:
        load_scene(scene, log=None)
    assert "K, H, R" not in str(e.value)


def test_viewer_refuses_a_scene_ntc_declaring_more_than_max_size(tmp_path, monkeypatch):
    from export import images
    from export.gltf import load_scene
    from viewer.ntc_cache import NTCCacheError, ensure_ntc
    scene_path = textured_builder().write(tmp_path / "s" / "x.gltf")
    out = tmp_path / "out"
    rc, _, err = run(compress_cli.main, [scene_path, "-o", out, *FAST])
    assert rc == 0, err
    scene = load_scene(out / "x.gltf", log=None)
    monkeypatch.setattr(images, "_max_side", 8)   # the set is 16x16
    with pytest.raises(NTCCacheError, match="larger than --max-size 8"):
        ensure_ntc(scene, scene.materials[0], None, tmp_path / "cache", log=None)
