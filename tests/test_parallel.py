"""Several texture sets compressed at once (trainer/parallel.py): a scene's materials through
ntc-compress and the viewer's cache, the same bytes as one at a time, bounded by --jobs and memory,
workers stopped when the caller leaves early."""
from __future__ import annotations

import json
import multiprocessing
import time

import numpy as np
import pytest

from conftest import base_color, write_set
from gltf_scenes import TEX, textured_builder
from cli_run import run
from trainer import cli as compress_cli
from trainer import parallel
from trainer.compress import CompressSettings, compress
from trainer.fit import TrainConfig
from trainer.parallel import SetCompressor
from trainer.textures import ConstantSetError, load_texture_set
from viewer.ntc_cache import ensure_all
from export.gltf import load_scene

FAST = ["--steps", "30", "--batch", "256", "--device", "cpu", "-q"]


def settings(steps: int = 30) -> CompressSettings:
    return CompressSettings(preset="p0.7", device="cpu",
                            train=TrainConfig(steps=steps, batch=256, progress=False))


def three_material_scene(tmp_path):
    """Materials 0 and 2 share their images; material 1 has its own (base colour reversed)."""
    b = textured_builder()
    one = json.loads(json.dumps(b.doc["materials"][0]))
    other = b.image_file("other_baseColor.png", base_color(TEX, TEX)[::-1, ::-1].copy())
    two = dict(one, name="Mat Two")
    two["pbrMetallicRoughness"] = dict(one["pbrMetallicRoughness"],
                                       baseColorTexture={"index": b.texture(other)})
    b.material(**two)
    b.material(**dict(one, name="Mat Three"))
    prim = b.doc["meshes"][0]["primitives"][0]
    b.doc["meshes"][0]["primitives"] += [dict(prim, material=1), dict(prim, material=2)]
    return b.write(tmp_path / "s" / "x.gltf")


def test_scene_jobs_write_the_same_files(tmp_path):
    scene_path = three_material_scene(tmp_path)
    outs = {}
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        rc, _, err = run(compress_cli.main, [scene_path, "-o", out, "--jobs", str(jobs),
                                             "--report", tmp_path / f"r{jobs}.json", *FAST])
        assert rc == 0, err
        outs[jobs] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        report = json.loads((tmp_path / f"r{jobs}.json").read_text())
        assert [m["material"] for m in report["materials"]] == ["Mat One", "Mat Two", "Mat Three"]
        assert [m["file"] for m in report["materials"]] == ["Mat_One.ntc", "Mat_Two.ntc",
                                                            "Mat_One.ntc"]
    assert {n for n in outs[1] if n.endswith(".ntc")} == {"Mat_One.ntc", "Mat_Two.ntc"}
    assert outs[1] == outs[2]
    assert outs[1]["Mat_One.ntc"] != outs[1]["Mat_Two.ntc"]


def test_viewer_cache_jobs_write_the_same_files(tmp_path):
    scene_path = three_material_scene(tmp_path)
    caches = {}
    for jobs in (1, 2):
        scene = load_scene(scene_path, log=None)
        lines = []
        paths = ensure_all(scene, settings(), tmp_path / f"cache{jobs}", log=lines.append,
                           jobs=jobs)
        assert paths[0] == paths[2] and paths[0] != paths[1]
        # Mat Three shares Mat One's images: said so, not announced as a second compression
        assert "material 'Mat Three': the same textures as 'Mat One', one set for both" in lines
        assert not any(line.startswith("material 'Mat Three': compressing") for line in lines)
        caches[jobs] = {p.name: p.read_bytes() for p in sorted(paths[0].parent.glob("*.ntc"))}
    assert len(caches[1]) == 2 and caches[1] == caches[2]


def sets_of(tmp_path):
    """Two texture sets that train, one whose every channel is constant."""
    a = write_set(tmp_path / "a", h=TEX, w=TEX)
    b = write_set(tmp_path / "b", {"x_baseColor.png": lambda h, w: base_color(h, w)[::-1].copy()},
                  h=TEX, w=TEX)
    flat = write_set(tmp_path / "flat", {"flat_baseColor.png": lambda h, w: np.full(
        (h, w, 3), 90, np.uint8)}, h=TEX, w=TEX)
    return [load_texture_set(p) for p in (a, b, flat)]


def test_results_match_compress_and_errors_come_back(tmp_path):
    tsets = sets_of(tmp_path)
    with SetCompressor(compress, settings(), 2, log=lambda *a: None) as c:
        for i, t in enumerate(tsets):
            c.submit(str(i), t, f"set {i}")
        done = c.results()
    for i in (0, 1):
        assert done[str(i)].data == compress(tsets[i], settings(), lambda *a: None).data
    assert isinstance(done["2"], ConstantSetError)


def test_memory_bounds_the_sets_in_flight(tmp_path, monkeypatch):
    tsets = sets_of(tmp_path)[:2]
    both = sum(parallel.set_bytes(t) for t in tsets)
    monkeypatch.setattr(parallel, "available_memory", lambda: both - 1)
    in_flight = []
    with SetCompressor(compress, settings(), 2, log=lambda *a: None) as c:
        for i, t in enumerate(tsets):
            c.submit(str(i), t, f"set {i}")
            in_flight.append(len(c.running))
        done = c.results()
    assert in_flight == [0, 1]     # the first waits for the second; then one at a time
    assert all(not isinstance(r, Exception) for r in done.values())


def test_leaving_early_stops_the_workers(tmp_path):
    tsets = sets_of(tmp_path)[:2]
    t0 = time.monotonic()
    with pytest.raises(KeyError):
        with SetCompressor(compress, settings(steps=200_000), 2, log=lambda *a: None) as c:
            for i, t in enumerate(tsets):
                c.submit(str(i), t, f"set {i}")
            while not all(r["step"] > 0 for r in c.board.snapshot().values()):  # both training
                assert time.monotonic() - t0 < 60
                time.sleep(0.2)
                c._drain_progress()
            raise KeyError("the caller gives up")
    assert time.monotonic() - t0 < 90
    assert not multiprocessing.active_children()


def test_ctrl_c_stops_a_scene_cleanly(tmp_path):
    """SIGINT while two materials train: one line, exit 130, no output, no process left."""
    import signal
    import subprocess
    import sys
    from pathlib import Path
    scene_path = three_material_scene(tmp_path)
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "trainer.cli", str(scene_path), "-o", str(out),
                             "--steps", "1000000", "--batch", "256", "--jobs", "2"], cwd=root,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:    # the status line comes once both are submitted
        lines.append(line)
        if line.startswith("running 2:"):
            break
    time.sleep(3)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    workers = [p for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(workers) == 2, children
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, "".join(lines) + rest
    assert rest == "ntc-compress: interrupted; nothing was written\n", rest
    assert not out.exists()
    time.sleep(0.5)
    assert not [p for p in workers if Path(f"/proc/{p}").exists()], "a worker outlived ntc-compress"


def test_a_failing_material_stops_the_scene_at_once(tmp_path, monkeypatch):
    import trainer.compress as compress_mod
    from trainer.textures import InputError
    calls = []

    def failing(tset, s, log=print, on_step=None):
        calls.append(tset)
        raise InputError("bad set")
    monkeypatch.setattr(compress_mod, "compress", failing)
    scene_path = three_material_scene(tmp_path)
    rc, _, err = run(compress_cli.main, [scene_path, "-o", tmp_path / "out", "--jobs", "1",
                                         *FAST])
    assert rc == 1 and "material 'Mat One': bad set" in err
    assert len(calls) == 1 and not (tmp_path / "out").exists()


def test_bench_trains_missing_runs_at_once_and_caches_each(tmp_path, monkeypatch):
    from bench import rate_distortion as rd
    monkeypatch.setattr(rd, "RESULTS", tmp_path / "results")
    tsets = sets_of(tmp_path)[:2]
    runs = [(f"s{i}", t, p, 20) for i, t in enumerate(tsets) for p in ("p0.7", "p1.3")]
    rd.train_missing(runs, 0, False, 2)
    cached = sorted((tmp_path / "results" / "cache").glob("*.json"))
    assert len(cached) == 4
    mtimes = [p.stat().st_mtime_ns for p in cached]
    rd.train_missing(runs, 0, False, 2)          # all cached: nothing trains again
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    rep = rd.neural_run("s1", tsets[1], "p1.3", 20, 0, False)     # read from the cache
    again = compress(tsets[1], rd._run_settings("p1.3", 20, 0), lambda *a: None).report
    assert rep["psnr_set"] == again["psnr_set"] and rep["file_bytes"] == again["file_bytes"]
