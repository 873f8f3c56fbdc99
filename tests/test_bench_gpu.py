"""bench.gpu: the one command for GPU figures runs its parts and reports what it had to run on,
also where there is no GPU (as in CI)."""
from __future__ import annotations

import json

import pytest
import torch

from bench import gpu


def test_gpu_bench_reports_each_part_and_the_machine(tmp_path):
    assert gpu.main(["--parts", "env,training", "--quick", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "gpu.md").read_text()
    out = json.loads((tmp_path / "gpu.json").read_text())
    assert md.startswith("# GPU figures") and "## training" in md
    assert out["env"]["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert out["training"] == {"skipped": "no CUDA device", "seconds": out["training"]["seconds"]}
        assert "Skipped: no CUDA device." in md
    if out["env"]["gl_is_software"]:
        assert "software one" in md


def test_a_bench_report_is_nested_under_its_part():
    out = {"parts": ["env", "decode"], "env": {"machine": "m", "torch": "t"},
           "decode": {"command": "x", "rc": 0, "seconds": 1.0,
                      "report_text": "# Decode throughput\n\n## Rows\nbody"}}
    md = gpu.report(out)
    assert "## decode" in md and "### Decode throughput" in md and "#### Rows" in md


def test_a_part_that_broke_is_reported_not_fatal():
    out = {"parts": ["env", "training"], "env": {"machine": "m", "torch": "t"},
           "training": {"error": "RuntimeError: boom", "tail": "RuntimeError: boom",
                        "seconds": 1.0}}
    md = gpu.report(out)
    assert "## training" in md and "RuntimeError: boom" in md


def test_a_budget_skips_the_parts_that_would_not_fit_and_says_so(tmp_path):
    assert gpu.main(["--parts", "env,decode,training", "--budget", "1", "--out",
                     str(tmp_path)]) == 0
    out = json.loads((tmp_path / "gpu.json").read_text())
    assert out["budget_s"] == 1
    for part in ("decode", "training"):
        assert out[part]["skipped"] == "out of the time budget (1 s)"
    md = (tmp_path / "gpu.md").read_text()
    assert "`--budget 1`" in md and md.count("Skipped: out of the time budget (1 s).") == 2


def test_the_report_is_written_after_every_part(tmp_path, monkeypatch):
    """A run stopped from outside (the lent machine's time limit) keeps the parts it finished."""
    seen = {}

    def training(quick, budget):
        seen.update(json.loads((tmp_path / "gpu.json").read_text()))
        return {"skipped": "checked"}
    monkeypatch.setattr(gpu, "part_training", training)
    assert gpu.main(["--parts", "training,env", "--out", str(tmp_path)]) == 0
    assert seen["env"]["torch"] == torch.__version__ and "training" not in seen
    assert json.loads((tmp_path / "gpu.json").read_text())["training"]["skipped"] == "checked"


def test_bad_budget_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as e:
        gpu.main(["--budget", "0", "--out", str(tmp_path)])
    assert e.value.code == 2
