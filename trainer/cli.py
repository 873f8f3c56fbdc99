"""ntc-compress: compress a folder of PBR textures into one neural texture file."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from export.errors import NTCError, one_line
from export.header import MAX_SIZE
from export.options import add_options
from export.images import DEFAULT_MAX_SIDE, set_max_side
from export.safe_files import (atomic_write, check_output_file, check_writable_folder,
                               refuse_overwriting)

from .budget import DEFAULT_EFFORT, EFFORTS, effort_help
from .compress import (DEFAULT_BPP, CompressSettings, compress, is_out_of_memory,
                       settings_from_args)
from .fit import TrainConfig
from .gltf import NTC_EXTENSION, compress_scene, is_scene_path
from .network import NetworkConfig
from .presets import FIT_SLACK, GATHER4_MAX_GRID, PRESETS
from .textures import MANIFEST_NAME, ROLES, InputError, load_texture_set

EPILOG = f"""\
roles from file names (case and separators ignored; first match wins):
  orm                occlusionRoughnessMetallic, occlusionRoughMetal, ORM
  metallicRoughness  metallicRoughness, metalRoughness (glTF: G roughness, B metallic)
  normal             normal, nrm          baseColor   baseColor, albedo, diffuse, color, base
  emissive           emissive, emission   roughness   roughness, rough
  metallic           metallic, metalness, metal       occlusion   occlusion, ao
  height             height, depth, displacement      opacity     opacity, alpha
Files matching nothing are listed and skipped. baseColor and emissive are sRGB, the rest linear;
alpha is always linear. A normal map is stored as X,Y with Z rebuilt (unless Z is not a unit-
normal Z, then it is stored). Constant channels and exact channel copies (grey RGB) cost nothing.

manifest ({MANIFEST_NAME} in the folder, or --manifest FILE) wins over names:
  {{"rock_metal.jpg": "normal",
   "rock_rough.jpg": {{"role": "roughness", "channels": 1, "colorspace": "linear", "weight": 2}},
   "focus.png": "mask",  "notes.png": "skip"}}
  roles: {", ".join(ROLES)}, skip. "mask" marks an importance mask (white = keep sharp).

glTF scenes: INPUT may be a .gltf or .glb file; -o then names an output FOLDER. Every textured
material becomes one set (its base colour, normal, metallic-roughness / ORM, occlusion and emissive
images; smaller ones resized up to the largest) written as OUT_DIR/<material>.ntc, and
OUT_DIR/<scene>.gltf is a copy of the scene whose materials name their .ntc through the
{NTC_EXTENSION} extension (listed in extensionsUsed, not required: the original images are copied
beside it as the fallback, so every glTF viewer still renders it). --bpp/--preset/--target-psnr
apply per material; --weight takes baseColor, normal, orm, metallicRoughness, occlusion, emissive.
  ntc-compress scene.gltf -o scene_ntc/ --bpp 4

presets (exact bpp depends on the set and is printed): {", ".join(n for n, _, _ in PRESETS)}
bpp = file bytes * 8 / texels of mip 0, for the whole set with its full mip chain. A preset is
latent features x grid scale at 4 bits; with gather4 sampling the coarse ones (grids over
{GATHER4_MAX_GRID:g} texels) use 4 features on a finer grid for the same bits.
"""


def _weights(values: list[str]) -> dict[str, float]:
    out = {}
    for v in values:
        name, sep, num = v.partition("=")
        try:
            w = float(num)
        except ValueError:
            w = -1.0
        if not sep or not name or not w > 0:
            raise InputError(f"--weight expects NAME=POSITIVE_NUMBER, got '{v}'")
        out[name] = w
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ntc-compress", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Compress a folder of PBR textures (one material, all textures the same size, "
                    "1-16 channels in all, 8/16-bit PNG or JPEG) into one .ntc neural texture "
                    "file that decodes every mip level; or every material of a glTF scene "
                    "(.gltf/.glb) into one .ntc each plus a copy of the scene that uses them.")
    p.add_argument("input", help="folder of texture images, or a .gltf/.glb scene")
    p.add_argument("-o", "--output", required=True,
                   help="output .ntc file (written atomically); for a scene, an output folder")
    rate = p.add_mutually_exclusive_group()
    add_options(rate, CompressSettings, ["bpp", "target_psnr", "preset"], help={
        "bpp": f"bits per texel budget: the richest preset within it, or the next richer one with "
               f"its latent grid coarsened to fit when that is at most "
               f"{round((FIT_SLACK - 1) * 100)}%% over (reported as e.g. p4@4); below every "
               f"preset, the smallest (default {DEFAULT_BPP})"})
    p.add_argument("--effort", choices=list(EFFORTS), default=DEFAULT_EFFORT,
                   help=effort_help() + f" (default {DEFAULT_EFFORT}: about 3 minutes for a "
                        "1K set with 9 channels on one CPU core with bf16 in hardware, about 4.5 "
                        "in float32, under a minute for fast, about 15 minutes for max; on that "
                        "set each doubling of the steps gained 1.4-2.2 dB up to 20,000, about 1 "
                        "to 40,000 and 0.6 beyond)")
    add_options(p, TrainConfig, TRAIN_OPTIONS)
    add_options(p, CompressSettings, ["device", "jobs"])
    add_options(p, NetworkConfig, NETWORK_OPTIONS)
    p.add_argument("--manifest", help=f"manifest file (default: {MANIFEST_NAME} in the folder)")
    p.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                   help="loss weight for a texture (file stem) or role, e.g. normal=2; repeatable")
    p.add_argument("--mask", help="importance mask image (white = keep sharp), same size as the set")
    add_options(p, CompressSettings, ["mask_strength"])
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIDE, metavar="N",
                   help="refuse images wider or taller than N texels, checked from their headers "
                        "before decoding (default %(default)s; at most 16384, the format's limit)."
                        " Memory grows with texels x channels: 2.2 GB peak for a 2048x2048 set of "
                        "12 channels")
    p.add_argument("--report", help="write the full report as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _check_args(a) -> None:
    if not 1 <= a.max_size <= MAX_SIZE:
        raise InputError(f"--max-size {a.max_size}: expected 1..{MAX_SIZE}")
    if is_scene_path(a.input):
        if a.manifest or a.mask:
            raise InputError("--manifest and --mask apply to a folder of textures, not to a glTF "
                             "scene (its materials say what each image is)")
        out = Path(a.output)
        if out.exists() and not out.is_dir():
            raise InputError(f"output {out} is a file; for a glTF scene -o names an output folder")
        check_writable_folder(out if out.is_dir() else out.parent,
                              "output folder" if out.is_dir() else "folder of the output")
        if a.report:
            # the scene's output folder is made by compress_scene, so the report may go into it
            rep = Path(a.report)
            if not (rep.parent.resolve() == out.resolve() and not out.exists()):
                check_output_file(rep, "--report")
        return
    outputs = {"output": check_output_file(a.output, "output")}
    if a.report:
        outputs["--report"] = check_output_file(a.report, "--report")
    refuse_overwriting(outputs, [])


def print_summary(report: dict, out: str) -> None:
    print(f"wrote {out}: {report['file_bytes']:,} bytes, {report['bpp']:.3f} bpp "
          f"({report['width']}x{report['height']}, {report['mips']} mips, "
          f"{report['stored_channels']} stored channels, preset {report['preset']}: "
          f"{report['features']} latent features at grid {report['grid_scale']:.3g}, "
          f"{report['hr_sampling']}, hidden {'-'.join(map(str, report['hidden']))})")
    print(f"{'texture':<44} {'role':<18} {'PSNR mip0':>9} {'SSIM':>6}")
    for name, t in report["textures"].items():
        ssim = f"{t['ssim']:.4f}" if t["ssim"] is not None else "-"
        print(f"{name[:44]:<44} {t['role']:<18} {t['psnr']:>9.2f} {ssim:>6}")
    mips = " ".join(f"{p:.1f}" for p in report["psnr_set_mip"])
    print(f"{'set (pooled)':<44} {'':<18} {report['psnr_set']:>9.2f}")
    print(f"set PSNR per mip: {mips}")
    print(f"{report['steps']} steps of {report['batch']} texels, {report['seconds']:.1f} s on "
          f"{report['device']} ({report['threads']} thread(s), {report['training_step']} step)")


TRAIN_OPTIONS = ["steps", "batch", "threads", "seed", "between_share", "lod_blend_share"]
NETWORK_OPTIONS = ["bits", "hr_sampling", "hidden", "weight_format"]


def _main_scene(args, settings: CompressSettings, log) -> int:
    extra = {"--report": Path(args.report)} if args.report else {}
    report = compress_scene(args.input, args.output, settings, _weights(args.weight), log,
                            extra_outputs=extra)
    if args.report:
        atomic_write(args.report, json.dumps(report, indent=2).encode())
    print(f"wrote {report['output']} (materials use {NTC_EXTENSION}; the original images are kept "
          f"as the fallback)")
    print(f"{'material':<32} {'file':<32} {'size':>9} {'bpp':>7} {'PSNR':>7}")
    for m in report["materials"]:
        if "file" in m:
            print(f"{m['material'][:32]:<32} {m['file'][:32]:<32} {m['width']}x{m['height']:<4} "
                  f"{m['bpp']:>7.3f} {m['psnr_set']:>7.2f}")
        else:
            print(f"{m['material'][:32]:<32} {'(images kept)':<32} {m['width']}x{m['height']:<4}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_args(args)
        settings = settings_from_args(args)
        set_max_side(args.max_size)
        if is_scene_path(args.input):
            log = (lambda *a, **k: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
            return _main_scene(args, settings, log)
        tset = load_texture_set(args.input, args.manifest, _weights(args.weight), args.mask)
        out = Path(args.output).resolve()
        refuse_overwriting({"output": out, **({"--report": Path(args.report)} if args.report else {})},
                           tset.input_files)
        if tset.skipped:
            print(f"skipped (unknown role): {', '.join(tset.skipped)}", file=sys.stderr)
        for name, why in tset.not_files.items():
            print(f"skipped {name}: {why}", file=sys.stderr)
        log = (lambda *a, **k: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
        result = compress(tset, settings, log)
        atomic_write(out, result.data)
        result.report["output"] = str(args.output)
        if args.report:
            atomic_write(args.report, json.dumps(result.report, indent=2).encode())
        print_summary(result.report, args.output)
        if result.report.get("target_reached") is False:
            print(f"warning: target {args.target_psnr} dB not reached", file=sys.stderr)
        return 0
    except NTCError as e:
        print(f"ntc-compress: error: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ntc-compress: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        print("ntc-compress: error: not enough memory for this set; nothing was written "
              "(smaller images, or a machine with more memory)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
