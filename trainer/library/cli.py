"""ntc-library: compress every material of a library, one Ray task per material.

    ntc-library LIBRARY -o OUT [--bpp B | --target-psnr P | --preset NAME] [--effort ... | --steps N]
                [--address local|HOST:PORT] [--cpus N] [--cpus-per-task C] [--gpus-per-task G]
                [--include GLOB] [--exclude GLOB] [--retries N] [--list]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.errors import NTCError, one_line
from export.options import add_options
from export.safe_files import check_writable_folder

from ..budget import DEFAULT_EFFORT, EFFORTS, budget_text, effort_help
from ..compress import CompressSettings, settings_from_args
from ..fit import TrainConfig
from ..network import NetworkConfig

EPILOG = """\
materials: every folder whose images ntc-compress recognises (a manifest, or names with a role:
baseColor, normal, roughness, ...) and every .gltf / .glb scene (each of its distinct texture
sets a task of its own); OUT mirrors LIBRARY:
  LIBRARY/rocks/granite/ -> OUT/rocks/granite.ntc (+ .ntc.json, its record)
  LIBRARY/props/crate.gltf -> OUT/props/crate_ntc/ (+ OUT/props/crate.gltf.json)
A material whose record in OUT has the content key of its inputs and settings is not compressed
again: re-run after an interruption or a failure and only the rest is done. OUT gets
library_report.json / .csv / .md (and library_psnr_bpp.png with matplotlib).

Ray: without --address, Ray runs embedded on this machine (--cpus, default all cores, one torch
thread per task). On a cluster, start Ray first and pass its address. `ray start --head` turns on
token authentication: copy the head's ~/.ray/auth_token to each node and set RAY_AUTH_MODE=token
on the nodes and for ntc-library:
  head$ ray start --head --port=6379
  node$ RAY_AUTH_MODE=token ray start --address=HEAD:6379
  head$ RAY_AUTH_MODE=token ntc-library LIB -o OUT --address HEAD:6379
Every machine needs this project installed and LIBRARY and OUT at the same paths (a shared file
system).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ntc-library", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EPILOG)
    p.add_argument("library", help="folder holding the materials (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="output folder (mirrors LIBRARY)")
    rate = p.add_mutually_exclusive_group()
    add_options(rate, CompressSettings, ["bpp", "target_psnr", "preset"])
    p.add_argument("--effort", choices=list(EFFORTS), default=DEFAULT_EFFORT,
                   help="training time per material, as ntc-compress --effort: "
                        + effort_help() + " (default %(default)s)")
    add_options(p, TrainConfig, ["steps", "seed"])
    add_options(p, CompressSettings, ["device"])
    add_options(p, NetworkConfig, ["hr_sampling", "hidden"])
    p.add_argument("--address", default=None, metavar="local|HOST:PORT",
                   help="a running Ray cluster to join (default: Ray embedded on this machine)")
    p.add_argument("--cpus", type=int, default=None,
                   help="embedded Ray: CPUs to use (default: all cores)")
    p.add_argument("--cpus-per-task", type=float, default=1.0,
                   help="CPUs Ray reserves for each material (default %(default)s: one torch "
                        "thread each)")
    p.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="GPUs Ray reserves for each material (with --device cuda)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only materials whose path in LIBRARY matches (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out materials whose path in LIBRARY matches (repeatable)")
    p.add_argument("--retries", type=int, default=1,
                   help="retries of a material whose task crashed (not of bad input; default "
                        "%(default)s)")
    p.add_argument("--list", action="store_true",
                   help="list the materials and what would be skipped, compress nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _check(p, a) -> None:
    for name, v, lo in (("--cpus", a.cpus, 1), ("--cpus-per-task", a.cpus_per_task, 0.01),
                        ("--gpus-per-task", a.gpus_per_task, 0), ("--retries", a.retries, 0)):
        if v is not None and v < lo:
            p.error(f"{name} {v}: at least {lo}")


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    _check(p, a)
    log = print if not a.quiet else (lambda *x, **k: None)
    try:
        from .discover import discover
        from .jobs import content_key, finished
        # each Ray task trains one set on the CPUs Ray gave it: no processes of its own
        settings = settings_from_args(argparse.Namespace(**{**vars(a), "quiet": True, "jobs": 1}))
        library, out = Path(a.library), Path(a.output)
        found = discover(library, a.include, a.exclude, ignore=out)
        for path, why in found.skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
        if a.list:
            for m in found.materials:
                print(f"{m.kind:6s} {m.rel}")
            return 0
        if not found.materials:
            raise NTCError(f"no materials found under {library}")
        if out.exists() and not out.is_dir():
            raise NTCError(f"output {out} is not a folder")
        if out.resolve() == library.resolve():
            raise NTCError(f"output {out} is the library itself; the outputs would be written "
                           f"among the sources (choose another folder)")
        out.mkdir(parents=True, exist_ok=True)
        check_writable_folder(out)
        jobs, records = [], {}
        for m in found.materials:
            key = content_key(m, settings)
            done = finished(m, out, key)
            if done is not None:
                records[m.rel] = {**done, "status": "up to date"}
            else:
                jobs.append((m, key))
        log(f"{len(found.materials)} materials: {len(records)} up to date, {len(jobs)} to "
            f"compress", file=sys.stderr)
        if jobs:
            from .cluster import run_all, start
            ray = start(a.address, a.cpus)
            try:
                for r in run_all(ray, jobs, out, settings, a.cpus_per_task, a.gpus_per_task,
                                 a.retries, progress=not a.quiet):
                    records[r["material"]] = r
            except ray.exceptions.RayError as e:   # the cluster itself failed
                raise NTCError(f"Ray failed: {one_line(e)}; finished materials are complete "
                               f"in the output, run again to do the rest") from None
            finally:
                ray.shutdown()
        from .report import write
        ordered = [records[m.rel] for m in found.materials]
        report = write(out, ordered, found.skipped, {
            "library": str(library), "output": str(out),
            "settings": f"--bpp {settings.effective_bpp}" if settings.target_psnr is None
            and settings.preset is None else (f"--preset {settings.preset}" if settings.preset
                                              else f"--target-psnr {settings.target_psnr}"),
            "steps": budget_text(settings.train.steps, settings.train.effort),
            "network": settings.network.text()})
        t = report["totals"]
        for r in ordered:
            if r["status"] == "failed":
                print(f"failed {r['material']}: {r.get('reason')}", file=sys.stderr)
        print(f"{t['done']} of {t['materials']} materials done, {t['failed']} failed; "
              f"report: {out / 'library_report.md'}")
        return 0 if t["failed"] == 0 else 1
    except NTCError as e:
        print(f"ntc-library: error: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ntc-library: interrupted; finished materials are complete in the output, none is "
              "partial; run again to do the rest", file=sys.stderr)
        return 130
    except OSError as e:   # reading an input, writing the output folder
        where = f" {e.filename}" if e.filename else ""
        print(f"ntc-library: error: cannot read or write{where}: {e.strerror or e}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
