"""The shared glTF scenes the viewer benches draw (../shared/data/scenes), and what those benches
share: their scene and compression arguments (the same flags find the same cached sets as
ntc-view) and the compression settings built from them. Used by bench.viewer and bench.feedback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.arguments import image_size
from export.options import add_options

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data"
CACHE = RESULTS / "cache" / "viewer"
SCENES = {
    "WaterBottle": DATA / "scenes" / "WaterBottle" / "PF_WaterBottle_MR.gltf",
    "FlightHelmet": DATA / "scenes" / "FlightHelmet_512" / "FlightHelmet.gltf",
}
DEFAULT_SIZE = (512, 512)


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def settings_for(progress: bool = True, **flags):
    """CompressSettings as ntc-view builds them from its compression flags (trainer.compress
    .settings_from_args), given by their argparse names: main passes every flag it parsed, so
    none is dropped; an absent or None flag keeps ntc-compress's default."""
    from trainer.compress import settings_from_args
    if flags.get("hidden"):
        flags["hidden"] = tuple(flags["hidden"])
    return settings_from_args(argparse.Namespace(**flags, quiet=not progress))


def scene_list(text: str) -> list[tuple[str, Path]]:
    out = []
    for item in filter(None, (v.strip() for v in text.split(","))):
        if item in SCENES:
            out.append((item, SCENES[item]))
        elif Path(item).suffix.lower() in (".gltf", ".glb"):
            out.append((Path(item).stem, Path(item)))
        else:
            raise argparse.ArgumentTypeError(
                f"scene '{item}': expected one of {', '.join(SCENES)} or a .gltf/.glb path")
    return out


def add_scene_arguments(p: argparse.ArgumentParser) -> None:
    """--scenes, the compression flags ntc-view takes (so the same flags find the same cached
    sets), --threads and --size: what the benches that draw the shared scenes have in common."""
    p.add_argument("--scenes", type=scene_list, default=list(SCENES.items()),
                   help=f"comma-separated: {', '.join(SCENES)} or .gltf/.glb paths "
                        f"(default all)")
    from trainer.fit import TrainConfig
    from viewer.cli import add_compress_options
    add_compress_options(p)
    add_options(p, TrainConfig, ["threads"])
    p.add_argument("--size", type=image_size, default=DEFAULT_SIZE, metavar="WxH",
                   help=f"render size (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")


def check_scenes(p: argparse.ArgumentParser, scenes) -> None:
    """A usage error for a scene file that does not exist."""
    for name, path in scenes:
        if not Path(path).is_file():
            p.error(f"scene {name}: {path} does not exist")


def settings_and_context(p: argparse.ArgumentParser, args, prog: str):
    """The compression settings of the parsed flags (a usage error when they do not go together)
    and a headless GL context: (settings, ctx), or (settings, None) after a one-line error on
    stderr when no context can be made."""
    from export.decode.gl_context import create_context
    from export.errors import NTCError, one_line
    try:
        settings = settings_for(progress=not args.no_progress, **vars(args))
    except NTCError as e:
        p.error(one_line(e))
    try:
        return settings, create_context()
    except NTCError as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return settings, None
