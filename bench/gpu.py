"""Every figure that needs a GPU, in one call: one markdown report.

    python -m bench.gpu [--out DIR]
                        [--parts env,tests,decode,viewer,feedback,training,lag0,transcode,quad]
                        [--budget SECONDS] [--quick]

Parts (each timed and reported even when it fails or has nothing to run on):
  env       the GPU (nvidia-smi), torch and CUDA, the OpenGL renderer EGL gives
  tests     the cuda-marked tests (pytest -m cuda): the slangtorch decoder kernel, CUDA training
  decode    bench.decode on the EGL context: load mode, plain texture() sampling, every sample-mode
            filter at 1920x1080, absolute ms by GL timer queries; each filter again with the MLP in
            16-bit floats where the driver reports an extension for them (--precision fp16)
  viewer    bench.viewer on the shipped default scene (assets/WaterBottle_ntc: its .ntc ships, so
            nothing trains) at 1920x1080: frame time and VRAM of every mode and filter
  feedback  bench.feedback on the same scene at 1920x1080: feedback mode along a moving camera
            (decodes a frame, PSNR against trilinear, GL timer ms) beside sample mode's auto
  quad      bench.quad_filter on the EGL context: the quad filter's decodes and rounds a quad against
            per-pixel trilinear by zoom, frame times on the GPU (1024x1024 harness images)
  transcode bench.transcode on the EGL context: the GPU BCn encoder against bc7enc on the shipped
            assets/WaterBottle textures, and decode + transcode of the shipped .ntc on load
  training  CUDA training of the shipped assets/WaterBottle set: ms a step of the reference step at
            the CUDA batch, and PSNR of the written file against seconds for a few step counts
  lag0      bench.feedback again with the request bits read right after the frame that wrote them
            (--readback-lag 0) instead of a frame late: the CPU's wait for the GPU, against the
            feedback part's

--budget SECONDS bounds the whole run (a lent GPU machine gives a command minutes, not hours): a
part starts only while enough of it is left, its commands get what is left as their timeout, and
the training part sizes its runs to it. The report is rewritten after every part, so a run that is
stopped still leaves the figures of the parts it finished.

Everything it needs travels with the repository (the default scene and set ship in assets/), so
it runs on a machine that has only this checkout. Writes DIR/gpu.md and DIR/gpu.json (default
bench/results/gpu/), and the decode, viewer, quad and transcode benches' own reports beside them.
On a machine without CUDA or with a software GL renderer the parts say so in the report rather
than fail. See bench/README.md for preparing a GPU machine (bench/gpu_prepare.sh).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.output import check_out_folder, machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "gpu"
SCENE = ROOT / "assets" / "WaterBottle_ntc" / "PF_WaterBottle_MR.gltf"
TEXTURE_SET = ROOT / "assets" / "WaterBottle"
# in the order they run: what the issues ask for first, the extras last (see --budget)
PARTS = ("env", "tests", "decode", "viewer", "feedback", "training", "lag0", "transcode", "quad")
MIN_PART_SECONDS = 30   # a part is not started with less of the budget left
NTC_FILE = ROOT / "assets" / "WaterBottle_ntc" / "M_WaterBottle_MR.ntc"
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast")


class Budget:
    """Seconds left of --budget (None: unbounded)."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.perf_counter() + seconds

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.perf_counter()

    def timeout(self, wanted: float) -> float:
        return max(1.0, min(wanted, self.left()))


def _run(cmd: list[str], timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:   # its output arrives as bytes even with text=True
        out = e.stdout or ""
        rc, text = "timeout", out.decode(errors="replace") if isinstance(out, bytes) else out
    return {"command": " ".join(cmd), "rc": rc, "seconds": time.perf_counter() - t0,
            "tail": text[-3000:]}


def part_env() -> dict:
    out: dict = {"machine": machine(), "python": sys.version.split()[0]}
    smi = shutil.which("nvidia-smi")
    if smi:
        out["nvidia_smi"] = _run([smi, "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader"], 60)["tail"].strip()
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    try:
        from export.decode.gl_context import create_context
        ctx = create_context()
        out["gl_renderer"] = ctx.info.get("GL_RENDERER")
        out["gl_version"] = ctx.info.get("GL_VERSION")
        ctx.release()
    except Exception as e:  # noqa: BLE001 - the report says what happened
        out["gl_renderer"] = None
        out["gl_error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    out["gl_is_software"] = bool(out.get("gl_renderer")) and any(
        s in out["gl_renderer"].lower() for s in SOFTWARE_GL)
    return out


def part_tests(quick: bool, budget: Budget) -> dict:
    return _run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "-p",
                 "no:cacheprovider"], budget.timeout(300 if quick else 600))


def part_decode(work: Path, quick: bool, budget: Budget) -> dict:
    size = "640x360" if quick else "1920x1080"
    r = _run([sys.executable, "-m", "bench.decode", "--size", size, "--repeats", "5",
              "--sample-repeats", "1" if quick else "5", "--out", str(work / "decode")],
             budget.timeout(900))
    r["report"] = work / "decode" / "decode.md"
    return r


def part_viewer(work: Path, quick: bool, budget: Budget) -> dict:
    size = "320x240" if quick else "1920x1080"
    r = _run([sys.executable, "-m", "bench.viewer", "--scenes", str(SCENE), "--size", size,
              "--frames", "3" if quick else "20", "--cache-dir", str(work / "cache"),
              "--out", str(work / "viewer"), "--no-progress"], budget.timeout(900))
    r["report"] = work / "viewer" / "viewer.md"
    return r


def part_feedback(work: Path, quick: bool, budget: Budget, lag: int | None = None) -> dict:
    """bench.feedback at 1080p; `lag`: its --readback-lag (None: the default), in a folder of
    its own."""
    size = "320x240" if quick else "1920x1080"
    folder = work / ("feedback" if lag is None else f"feedback-lag{lag}")
    lag_args = [] if lag is None else ["--readback-lag", str(lag)]
    r = _run([sys.executable, "-m", "bench.feedback", "--scenes", str(SCENE), "--size", size,
              "--path-frames", "4" if quick else "24",
              "--trilinear-every", "4" if lag is None else "100", *lag_args,
              "--cache-dir", str(work / "cache"), "--out", str(folder),
              "--no-progress"], budget.timeout(600))
    r["report"] = folder / "feedback.md"
    return r


def part_quad(work: Path, quick: bool, budget: Budget) -> dict:
    r = _run([sys.executable, "-m", "bench.quad_filter", "--size", "64" if quick else "1024",
              "--out", str(work / "quad")], budget.timeout(900))
    r["report"] = work / "quad" / "quad_filter.md"
    return r


def part_transcode(work: Path, quick: bool, budget: Budget) -> dict:
    r = _run([sys.executable, "-m", "bench.transcode", "--sets", str(TEXTURE_SET), "--ntc",
              str(NTC_FILE), "--repeats", "1" if quick else "10",
              "--out", str(work / "transcode")], budget.timeout(900))
    r["report"] = work / "transcode" / "transcode.md"
    return r


def part_training(quick: bool, budget: Budget) -> dict:
    import torch
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    from bench.training import make_step, time_steps
    from trainer.compress import CompressSettings, compress
    from trainer.fit import TrainConfig
    from trainer.targets import build_targets, plan_channels
    from trainer.textures import load_texture_set
    tset = load_texture_set(TEXTURE_SET)
    infos, stored = plan_channels(tset)
    targets = build_targets(tset, infos, stored)
    cuda = torch.device("cuda")
    batch = TrainConfig().batch_for(cuda)
    step = make_step("reference (autograd)", targets, stored, tset.size, cuda, batch)
    speed = time_steps(step, targets, cuda, batch, 300, min(20.0, budget.left() / 4))
    runs, left_out = [], []
    for steps in ((500, 2000) if quick else (2000, 8000, 32000)):
        # a run costs its steps at the measured speed, plus evaluation and start-up
        needed = steps * speed["ms_step"] / 1e3 * 1.3 + 20
        if needed > budget.left():
            left_out.append(steps)
            continue
        settings = CompressSettings(device="cuda", train=TrainConfig(steps=steps, progress=False))
        t0 = time.perf_counter()
        rep = compress(tset, settings, log=lambda *a, **k: None).report
        runs.append({"steps": steps, "wall_s": time.perf_counter() - t0,
                     "train_s": rep["train_seconds"], "psnr_set": rep["psnr_set"],
                     "bpp": rep["bpp"], "preset": rep["preset"], "batch": rep["batch"]})
    return {"device": torch.cuda.get_device_name(), "set": str(TEXTURE_SET.relative_to(ROOT)),
            "size": list(tset.size), "batch": batch, "step": speed, "convergence": runs,
            "left_out": left_out}


def report(out: dict) -> str:
    env = out.get("env", {})
    lines = ["# GPU figures", "",
             f"Generated by `python -m bench.gpu` on {env.get('machine', '?')}; GPU "
             f"{env.get('nvidia_smi') or env.get('cuda') or 'none'}; torch {env.get('torch')}; "
             f"OpenGL: {env.get('gl_renderer') or env.get('gl_error')}.", ""]
    if out.get("budget_s"):
        lines += [f"Run with `--budget {out['budget_s']:g}`: parts that would not fit say so.", ""]
    if env.get("gl_is_software"):
        lines += ["**The OpenGL renderer is a software one: the decode and viewer figures below "
                  "are CPU figures, not a GPU's.**", ""]
    for name in out["parts"]:
        r = out.get(name)
        if name == "env" or r is None:
            continue
        lines.append(f"## {name}")
        lines.append("")
        if "skipped" in r:
            lines += [f"Skipped: {r['skipped']}.", ""]
            continue
        if "command" in r:
            lines.append(f"`{r['command']}`: exit {r['rc']}, {r['seconds']:.0f} s.")
            lines.append("")
        if r.get("report_text"):
            # the bench's own headings, two levels down under this part's
            lines += ["##" + ln if ln.startswith("#") else ln
                      for ln in r["report_text"].splitlines()] + [""]
        elif "tail" in r:
            lines += ["```", r["tail"].strip()[-2000:], "```", ""]
        if name == "training" and "step" in r:
            s = r["step"]
            lines += [f"{r['device']}, set {r['set']} {r['size'][0]}x{r['size'][1]}, batch "
                      f"{r['batch']}: reference step {s['ms_step']:.2f} ms "
                      f"({r['batch'] / s['ms_step'] / 1e3:.1f} M texels/s).", "",
                      "| steps | set PSNR (dB) | bpp (preset) | train s | wall s |",
                      "|---|---|---|---|---|"]
            lines += [f"| {c['steps']:,} | {c['psnr_set']:.2f} | {c['bpp']:.3f} ({c['preset']}) | "
                      f"{c['train_s']:.1f} | {c['wall_s']:.1f} |" for c in r["convergence"]]
            lines.append("")
            if r.get("left_out"):
                lines += [f"Not run (they would not have fitted the time budget): "
                          f"{', '.join(f'{n:,}' for n in r['left_out'])} steps.", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="folder for gpu.md, gpu.json and the benches' reports")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated, of " +
                   ", ".join(PARTS))
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="bound the whole run: parts start only while at least "
                        f"{MIN_PART_SECONDS} s of it is left, in the order of --parts' default, "
                        "and get what is left as their timeout (default: no bound)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few steps: checks that every part runs")
    a = p.parse_args(argv)
    if a.budget is not None and a.budget <= 0:
        p.error("--budget must be positive")
    parts = [s for s in a.parts.split(",") if s]
    bad = [s for s in parts if s not in PARTS]
    if bad:
        p.error(f"unknown parts {bad}; known: {', '.join(PARTS)}")
    check_out_folder(p, a.out)
    parts = [n for n in PARTS if n in parts]   # run, and reported, in PARTS' order
    out: dict = {"parts": parts, "quick": a.quick, "budget_s": a.budget}
    budget = Budget(a.budget)
    from bench.output import write_results
    with tempfile.TemporaryDirectory(prefix="ntc-gpu-") as tmp:
        work = Path(tmp)
        for name in ["env"] + [n for n in parts if n != "env"]:
            print(f"== {name}", flush=True)
            t0 = time.perf_counter()
            try:
                if name != "env" and budget.left() < MIN_PART_SECONDS:
                    r = {"skipped": f"out of the time budget ({a.budget:g} s)"}
                else:
                    r = {"env": part_env, "tests": lambda: part_tests(a.quick, budget),
                         "decode": lambda: part_decode(work, a.quick, budget),
                         "viewer": lambda: part_viewer(work, a.quick, budget),
                         "feedback": lambda: part_feedback(work, a.quick, budget),
                         "quad": lambda: part_quad(work, a.quick, budget),
                         "lag0": lambda: part_feedback(work, a.quick, budget, lag=0),
                         "transcode": lambda: part_transcode(work, a.quick, budget),
                         "training": lambda: part_training(a.quick, budget)}[name]()
            except Exception as e:  # noqa: BLE001 - a part that breaks is reported, not fatal
                r = {"error": f"{type(e).__name__}: {e}", "tail": f"{type(e).__name__}: {e}"}
            r.setdefault("seconds", time.perf_counter() - t0)
            rep = r.pop("report", None)
            if rep is not None and Path(rep).is_file():
                r["report_text"] = Path(rep).read_text()
                a.out.mkdir(parents=True, exist_ok=True)
                # the benches' own reports beside gpu.md (lag0's is bench.feedback's again)
                copy_name = "feedback-lag0.md" if name == "lag0" else Path(rep).name
                shutil.copy(rep, a.out / copy_name)
            out[name] = r
            print(f"   {name}: {r.get('rc', r.get('skipped', 'done'))} "
                  f"({r['seconds']:.0f} s)", flush=True)
            # after every part: a run stopped from outside keeps what it finished
            write_results(a.out, "gpu", out, report(out), echo=False)
    print(report(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
