"""bench/training.py keeps working: every part on a tiny set with tiny budgets (the real run is
`python -m bench.training`, see bench/README.md)."""
from __future__ import annotations

from dataclasses import replace

from bench import training
from bench.training_report import psnr_at, seconds_to, write_training_report
from conftest import write_set
from trainer.textures import load_texture_set


def test_every_part_runs_and_the_report_is_written(tmp_path):
    tset = load_texture_set(write_set(tmp_path / "set"))
    rows = training.throughput(tset, max_steps=20, max_seconds=0.2, threads=(1,), passes=1,
                               neighbours={"idle": None, "busy loop": "while True: pass"},
                               batch=256, log=lambda *a: None)
    assert {(r["beside"], r["step"]) for r in rows} == {
        (b, s) for b in ("idle", "busy loop") for s in training.STEPS}
    assert all(r["ms_step"] > 0 and r["steps"] >= 20 for r in rows)
    runs = [training.convergence_run(tset, label, replace(cfg, batch=256), steps, True,
                                     cache_dir=tmp_path / "cache")
            for label, cfg in (("old", training.OLD), ("new", training.NEW)) for steps in (20, 40)]
    assert all(10 < r["psnr_set"] < 100 and r["wall_s"] > 0 for r in runs)
    assert {r["step"] for r in runs} == {"autograd", "fused"}
    out = {"set": "tiny", "preset": "p4", "size": list(tset.size), "channels": 7,
           "machine": "test", "throughput": rows, "convergence": runs}
    write_training_report(out, tmp_path)
    text = (tmp_path / "training.md").read_text()
    assert "## Step throughput" in text and "## Convergence" in text
    assert f"at lr {training.NEW.lr_latents:g}, frozen" in text  # recorded with each run
    assert (tmp_path / "training.png").stat().st_size > 0


def test_reading_targets_off_the_curve():
    runs = [{"wall_s": 10.0, "psnr_set": 30.0}, {"wall_s": 100.0, "psnr_set": 40.0}]
    assert abs(psnr_at(runs, 31.6227766) - 35.0) < 1e-6     # halfway in log-time
    assert abs(seconds_to(runs, 35.0) - 31.6227766) < 1e-6
    assert seconds_to(runs, 41.0) is None and psnr_at(runs, 5.0) is None
    assert seconds_to(runs, 25.0) == 10.0
