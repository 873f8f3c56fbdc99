"""ntc-library (trainer/library/): discovery rules, the content-key skip, failure isolation, bad
flags, and the report's totals from the written files, with Ray embedded on 2 CPUs and tiny
sets (40x24, 30 steps)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import write_set
from cli_run import run

TINY = ["--steps", "30", "--cpus", "2", "-q"]


def library(root: Path) -> Path:
    """rocks/a and rocks/b (texture sets), metal (a set), junk (an image named like nothing),
    broken (a 'baseColor' that is not an image), .hidden (a set, not searched)."""
    write_set(root / "rocks" / "a")
    write_set(root / "rocks" / "b")
    write_set(root / "metal")
    write_set(root / ".hidden")
    (root / "junk").mkdir()
    (root / "junk" / "holiday.png").write_bytes((root / "metal" / "mat_baseColor.png").read_bytes())
    (root / "broken").mkdir()
    (root / "broken" / "x_baseColor.png").write_bytes(b"not a png")
    return root


def test_discovery_rules(tmp_path):
    from trainer.library.discover import discover
    lib = library(tmp_path / "lib")
    (lib / "scene").mkdir()
    (lib / "scene" / "s.gltf").write_text("{}")
    (lib / "scene" / "s_baseColor.png").write_bytes(b"x")
    found = discover(lib, ignore=lib / "metal")
    assert [(m.kind, m.rel) for m in found.materials] == [
        ("folder", "broken"), ("folder", "rocks/a"), ("folder", "rocks/b"), ("scene", "scene/s.gltf")]
    why = dict(found.skipped)
    assert "no image is named like a PBR texture" in why["junk"]
    assert "belong to the scene" in why["scene"]
    found = discover(lib, include=["rocks/*"], exclude=["*/b"])
    assert [m.rel for m in found.materials] == ["rocks/a"]
    assert dict(found.skipped)["rocks/b"].startswith("matched by --exclude")


def test_library_run_resume_and_report(tmp_path, capsys):
    from trainer.library import cli
    lib, out = library(tmp_path / "lib"), tmp_path / "out"
    rc, stdout, err = run(cli.main, [lib, "-o", out, *TINY])
    assert rc == 1                                       # one material failed ...
    assert "failed broken: image x_baseColor.png" in err  # ... with its one-line reason
    for rel in ("rocks/a", "rocks/b", "metal"):          # ... and the others finished
        assert (out / f"{rel}.ntc").is_file() and (out / f"{rel}.ntc.json").is_file()
    assert not (out / "broken.ntc").exists() and not (out / ".hidden.ntc").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]     # no partial file anywhere
    report = json.loads((out / "library_report.json").read_text())
    t = report["totals"]
    assert (t["materials"], t["done"], t["failed"]) == (4, 3, 1)
    written = sum((out / f"{r}.ntc").stat().st_size for r in ("rocks/a", "rocks/b", "metal"))
    assert t["ntc_bytes"] == written
    sources = sum(p.stat().st_size for r in ("rocks/a", "rocks/b", "metal")
                  for p in (lib / r).iterdir())
    assert t["source_bytes"] == sources
    assert t["rgba8_mips_bytes"] == 3 * 3 * 4 * (40 * 24 + 20 * 12 + 10 * 6 + 5 * 3 + 2 + 1)
    assert 0 < t["bcn_mips_bytes"] < t["rgba8_mips_bytes"]
    rows = (out / "library_report.csv").read_text().splitlines()
    assert rows[0].startswith("material,kind,status") and len(rows) == 5
    assert "| rocks/a | done |" in (out / "library_report.md").read_text()
    # a re-run compresses nothing that is up to date; a changed input is compressed again
    before = {r: (out / f"{r}.ntc").stat().st_mtime_ns for r in ("rocks/a", "rocks/b", "metal")}
    os.remove(lib / "broken" / "x_baseColor.png")
    data = (lib / "rocks" / "b" / "mat_orm.png").read_bytes()
    (lib / "rocks" / "b" / "mat_orm.png").write_bytes(data)          # same bytes: still done
    write_set(lib / "metal", h=16, w=16)                              # new pixels: again
    rc, stdout, err = run(cli.main, [lib, "-o", out, *TINY])
    assert rc == 0, err
    after = {r: (out / f"{r}.ntc").stat().st_mtime_ns for r in before}
    assert after["rocks/a"] == before["rocks/a"] and after["rocks/b"] == before["rocks/b"]
    assert after["metal"] != before["metal"]
    status = {r["material"]: r["status"] for r in
              json.loads((out / "library_report.json").read_text())["materials"]}
    assert status == {"rocks/a": "up to date", "rocks/b": "up to date", "metal": "done"}


def test_library_bad_flags_and_paths(tmp_path):
    from trainer.library import cli
    rc, _, err = run(cli.main, [tmp_path / "missing", "-o", tmp_path / "o"])
    assert rc == 1 and err.strip() == f"ntc-library: error: library {tmp_path / 'missing'} " \
                                       f"does not exist"
    assert not (tmp_path / "o").exists()
    for flags in (["--cpus", "0"], ["--retries", "-1"], ["--bpp", "2", "--preset", "p4"]):
        with pytest.raises(SystemExit) as e:
            cli.main([str(tmp_path), "-o", str(tmp_path / "o"), *flags])
        assert e.value.code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run(cli.main, [empty, "-o", tmp_path / "o"])
    assert rc == 1 and "no materials found" in err and not (tmp_path / "o").exists()
    lib = library(tmp_path / "lib")
    before = sorted(p.relative_to(lib) for p in lib.rglob("*"))
    rc, _, err = run(cli.main, [lib, "-o", lib, *TINY])
    assert rc == 1 and "is the library itself" in err
    assert sorted(p.relative_to(lib) for p in lib.rglob("*")) == before   # nothing written
    rc, stdout, _ = run(cli.main, [lib, "-o", tmp_path / "o", "--list"])
    assert rc == 0 and "folder rocks/a" in stdout and not (tmp_path / "o").exists()


def test_a_scene_s_materials_are_tasks_of_their_own(tmp_path):
    """A scene with two materials (distinct images): its copy with both .ntc files, its record,
    and each set compressed once through the Ray path (the same bytes as ntc-compress's)."""
    from conftest import base_color, normal_map, orm
    from gltf_scenes import TEX, textured_builder
    from trainer.library import cli
    b = textured_builder()
    bc = b.image_file("two_baseColor.png", base_color(TEX, TEX)[..., ::-1].copy())
    nm = b.image_file("two_normal.png", normal_map(TEX, TEX)[::-1].copy())
    om = b.image_file("two_orm.png", orm(TEX, TEX, metallic=50))
    b.material(name="Mat Two", pbrMetallicRoughness={
        "baseColorTexture": {"index": b.texture(bc)},
        "metallicRoughnessTexture": {"index": b.texture(om)}},
        normalTexture={"index": b.texture(nm)})
    b.node(mesh=b.mesh(material=1, name="quad2"), name="quad2")
    lib = tmp_path / "lib"
    b.write(lib / "props" / "pair.gltf")
    out = tmp_path / "out"
    rc, _, err = run(cli.main, [lib, "-o", out, *TINY[:-1]])   # with the progress display
    assert rc == 0, err
    assert "done props/pair.gltf: 2 materials" in err
    record = json.loads((out / "props" / "pair.gltf.json").read_text())
    assert record["status"] == "done"
    assert sorted(m["file"] for m in record["materials"]) == ["Mat_One.ntc", "Mat_Two.ntc"]
    assert (out / "props" / "pair_ntc" / "pair.gltf").is_file()
    # its bytes: the image files, both sets as RGBA8 / BCn with mips, the two .ntc files
    from export import layout
    b = record["bytes"]
    assert b["source"] == sum(p.stat().st_size for p in (lib / "props").glob("*.png"))
    assert b["ntc"] == sum(p.stat().st_size for p in (out / "props" / "pair_ntc").glob("*.ntc"))
    texels = sum(w * h for w, h in (layout.mip_size(TEX, TEX, m)
                                    for m in range(layout.mip_count(TEX, TEX))))
    copy = json.loads((out / "props" / "pair_ntc" / "pair.gltf").read_text())
    n_textures = sum(len(set(m["extensions"]["NTC_texture_set"]["textures"].values()))
                     for m in copy["materials"])
    assert b["rgba8_mips"] == n_textures * texels * 4
    assert 0 < b["bcn_mips"] < b["rgba8_mips"]
    # the same files as ntc-compress writes in one process
    from trainer import cli as compress_cli
    rc, _, err = run(compress_cli.main, [lib / "props" / "pair.gltf", "-o", tmp_path / "one",
                                         "--steps", "30", "-q"])
    assert rc == 0, err
    for name in ("Mat_One.ntc", "Mat_Two.ntc"):
        assert (out / "props" / "pair_ntc" / name).read_bytes() == \
            (tmp_path / "one" / name).read_bytes()


def test_the_progress_board_names_each_running_task_its_node_and_step():
    from trainer.library.progress import Board, reporter, running_line

    class Handle:  # stands in for the Ray actor handle: .method.remote(...) calls the method
        def __init__(self, obj):
            self.obj = obj

        def __getattr__(self, name):
            return type("M", (), {"remote": staticmethod(getattr(self.obj, name))})
    board = Board()
    on_step = reporter(Handle(board), "rocks/a", "vm/1234abcd", every=3600)
    assert board.snapshot()["rocks/a"]["phase"] == "starting"
    on_step("p4 (4.02 bpp)", 1, 500, 20.0)      # the first report goes at once ...
    on_step("p4 (4.02 bpp)", 11, 500, 25.0)     # ... then at most every `every` seconds ...
    assert board.snapshot()["rocks/a"]["step"] == 1
    on_step("p4 (4.02 bpp)", 500, 500, 38.25)   # ... and a preset's last step always
    board.update("props/s.gltf [set 1/2]", "vm/9", "p2.7", 7, 10, None)
    line = running_line(board.snapshot())
    assert line.startswith("running 2: rocks/a on vm/1234abcd p4 500/500 38.2 dB | "
                           "props/s.gltf [set 1/2] on vm/9 p2.7 7/10")
    assert len(running_line(board.snapshot(), width=50)) == 50
    board.update("props/s.gltf", "vm/9", "waiting on 2 texture sets")
    board.finish("props/s.gltf")                 # a scene takes its set tasks with it
    assert list(board.snapshot()) == ["rocks/a"]
    assert running_line({}) == "running: none"
