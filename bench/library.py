"""ntc-library on Ray against the same materials compressed one after another in one process.

    python -m bench.library [--materials 8] [--size 256] [--steps N] [--checks] [--out DIR]

Materials: --size² crops of the shared sets (bench.rate_distortion.SETS, two crops of each in
turn until --materials), written as folders of PNGs named by role into a temporary library. Then,
on this machine, with one torch thread per compression and the same settings and seed:
  sequential  every material compressed in this process, one after another (load_texture_set +
              compress, as ntc-compress does)
  ntc-library the library through `ntc-library` (Ray embedded, one task per material, --cpus
              all cores)
Wall seconds of each, their ratio (issue 15's target: >= 1.6x on 2 cores), and whether every
.ntc is byte for byte the same either way. With --checks also: a two-node run (a Ray head and a
second node started on this machine with `ray start`, ntc-library joined to them: the nodes the
records name) and the interrupt checks (SIGINT, then SIGKILL, to ntc-library after --kill-after
seconds: finished materials, partial files, and what a re-run compresses). Writes
bench/results/library.md / .json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.output import check_out_folder, machine, write_results
from trainer.budget import EFFORTS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGET = 1.6


def make_library(folder: Path, count: int, size: int) -> list[str]:
    """`count` crop materials under `folder`; their names."""
    from bench.rate_distortion import SETS, load_set
    from export.decode.reference import to_uint
    from export.images import encode_png
    names, sets = [], {}
    for i in range(count):
        name = list(SETS)[i % len(SETS)]
        tset = sets.setdefault(name, load_set(name))
        h, w = tset.textures[0].pixels.shape[:2]
        y0, x0 = ((h - size) // 3, (w - size) // 3) if i < len(SETS) else \
            (2 * (h - size) // 3, 2 * (w - size) // 3)
        mat = folder / f"{name}_{i}"
        mat.mkdir(parents=True)
        for t in tset.textures:
            px = to_uint(t.pixels[y0:y0 + size, x0:x0 + size], t.bit_depth)
            (mat / f"{t.role}.png").write_bytes(encode_png(px if px.shape[2] > 1 else px[..., 0]))
        names.append(mat.name)
    return names


def sequential(library: Path, names: list[str], out: Path, settings) -> float:
    from trainer.compress import compress
    from trainer.textures import load_texture_set
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for n in names:
        result = compress(load_texture_set(library / n), settings, lambda *a, **k: None)
        (out / f"{n}.ntc").write_bytes(result.data)
    return time.perf_counter() - t0


def two_nodes(library: Path, out: Path, steps: int, port: int = 6391) -> dict:
    """A Ray head and a second node started on this machine (`ray start`, one CPU each, token
    authentication as `ray start --head` sets it up), ntc-library joined to them; the nodes the
    records name. Both are stopped after."""
    import subprocess
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    base = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        *base], env=env, check=True, capture_output=True, timeout=180)
        subprocess.run([ray_bin, "start", f"--address=127.0.0.1:{port}", *base], env=env,
                       check=True, capture_output=True, timeout=180)
        r = subprocess.run([str(Path(sys.executable).with_name("ntc-library")), str(library),
                            "-o", str(out), "--steps", str(steps), "--address",
                            f"127.0.0.1:{port}", "-q"], env=env, capture_output=True, text=True,
                           timeout=1800)
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=180)
    records = json.loads((out / "library_report.json").read_text())["materials"] \
        if (out / "library_report.json").is_file() else []
    return {"rc": r.returncode, "done": sum(x["status"] == "done" for x in records),
            "materials": len(records), "nodes": sorted({x.get("node") for x in records})}


def resume(library: Path, out: Path, steps: int, after_s: float) -> list[dict]:
    """ntc-library interrupted after `after_s` seconds (SIGINT, then a fresh run SIGKILLed),
    each followed by a re-run: what was finished, partial files left, what the re-run did."""
    import signal
    import subprocess
    exe = str(Path(sys.executable).with_name("ntc-library"))
    rows = []
    for sig in (signal.SIGINT, signal.SIGKILL):
        target = out / sig.name
        # SIGINT's default action, even when this bench runs in the background (which ignores it)
        proc = subprocess.Popen([exe, str(library), "-o", str(target), "--steps", str(steps),
                                 "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(after_s)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        finished = sorted(p.name for p in target.glob("*.ntc.json")) if target.is_dir() else []
        partial = [str(p) for p in target.rglob("*") if ".tmp" in p.name] if target.is_dir() \
            else []
        again = subprocess.run([exe, str(library), "-o", str(target), "--steps", str(steps)],
                               capture_output=True, text=True, timeout=1800)
        line = next((ln for ln in again.stderr.splitlines() if "up to date" in ln), "")
        rows.append({"signal": sig.name, "rc": proc.returncode, "finished": len(finished),
                     "partial_files": partial, "message": err.strip().splitlines()[-1:],
                     "rerun_rc": again.returncode, "rerun": line})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.library", description=__doc__.splitlines()[0])
    p.add_argument("--materials", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=EFFORTS["fast"],
                   help="training steps a material (default: ntc-compress --effort fast's)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--checks", action="store_true",
                   help="also a two-node run (ray start twice on this machine) and the "
                        "interrupt / resume checks (SIGINT and SIGKILL after --kill-after s)")
    p.add_argument("--kill-after", type=float, default=70.0,
                   help="--checks: seconds before each interrupt (default %(default)s)")
    a = p.parse_args(argv)
    if a.materials < 1 or a.size < 16 or a.steps < 10:
        p.error("--materials >= 1, --size >= 16, --steps >= 10")
    check_out_folder(p, a.out)
    from trainer.compress import CompressSettings
    from trainer.fit import TrainConfig
    from trainer.library import cli
    settings = CompressSettings(train=TrainConfig(steps=a.steps, progress=False))
    with tempfile.TemporaryDirectory(prefix="ntc-library-bench-") as tmp:
        tmp = Path(tmp)
        names = make_library(tmp / "lib", a.materials, a.size)
        seq_s = sequential(tmp / "lib", names, tmp / "seq", settings)
        t0 = time.perf_counter()
        rc = cli.main([str(tmp / "lib"), "-o", str(tmp / "ray"), "--steps", str(a.steps), "-q"])
        ray_s = time.perf_counter() - t0
        same = [n for n in names if (tmp / "seq" / f"{n}.ntc").read_bytes()
                == (tmp / "ray" / f"{n}.ntc").read_bytes()]
        records = json.loads((tmp / "ray" / "library_report.json").read_text())["materials"]
        task_s = [r["seconds"] for r in records if r.get("seconds") is not None]
        checks = {}
        if a.checks:
            checks["two_nodes"] = two_nodes(tmp / "lib", tmp / "nodes", a.steps)
            checks["resume"] = resume(tmp / "lib", tmp / "resume", a.steps, a.kill_after)
    out = {"machine": machine(), "materials": names, "size": a.size, "steps": a.steps,
           "sequential_s": seq_s, "library_s": ray_s, "library_rc": rc,
           "speedup": seq_s / ray_s, "target": TARGET, "identical": len(same),
           "cpus": os.cpu_count(), "task_seconds": task_s,
           "ideal_s": max(sum(task_s) / (os.cpu_count() or 1), max(task_s, default=0)),
           **checks}
    md = "\n".join([
        "# ntc-library against one process", "",
        f"Generated by `python -m bench.library` on {out['machine']}: {len(names)} materials "
        f"({a.size}² crops of the shared sets: {', '.join(names)}), {a.steps} steps each, one "
        f"torch thread per compression, the same seed.", "",
        "| run | wall s |", "|---|---:|",
        f"| one after another, one process | {seq_s:.1f} |",
        f"| ntc-library (Ray embedded, {os.cpu_count()} CPUs, one task per material; start-up "
        f"included) | {ray_s:.1f} |", "",
        f"Inside the Ray tasks the materials took {sum(task_s):.1f} s in all ({min(task_s):.1f}"
        f"-{max(task_s):.1f} s each): spread evenly over {os.cpu_count()} CPUs that is "
        f"{out['ideal_s']:.1f} s; the rest of ntc-library's wall time is Ray's start, its "
        f"workers' start (each imports torch) and the last tasks' tail.", "",
        f"Speed-up {out['speedup']:.2f}x (target >= {TARGET}x: "
        f"{'met' if out['speedup'] >= TARGET else 'NOT met'}); {len(same)} of {len(names)} "
        f".ntc files byte for byte the same either way; ntc-library exit status {rc}."]
        + check_lines(checks)) + "\n"
    write_results(a.out, "library", out, md)
    return 0


def check_lines(checks: dict) -> list[str]:
    lines = []
    n = checks.get("two_nodes")
    if n:
        lines += ["", f"Two nodes on this machine (`ray start --head` and `ray start --address`, one "
                      f"CPU each): ntc-library exit status {n['rc']}, {n['done']} of "
                      f"{n['materials']} materials done, on nodes {', '.join(map(str, n['nodes']))}."]
    for r in checks.get("resume", []):
        lines += ["", f"{r['signal']} to ntc-library midway: exit status {r['rc']}, "
                      f"{r['finished']} materials finished, {len(r['partial_files'])} partial files"
                      f"{'; said: ' + r['message'][0] if r['message'] else ''}. Re-run: exit "
                      f"status {r['rerun_rc']}, `{r['rerun']}`."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
