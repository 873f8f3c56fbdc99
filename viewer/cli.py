"""ntc-view: view a glTF scene with images or neural textures (decoded on load, per pixel, in tiles).

    ntc-view [SCENE] [--mode reference|load|sample|feedback] [--reference rgba8|bcn] [--load-format ...]
             [--tile-format rgba8|bc7]
             [--filter auto|latent|stochastic|trilinear|quad] [--precision auto|fp32|fp16]
             [--bpp B] [--effort fast|default|max] [--steps N] [--cache-dir DIR]
             [--headless --frames N --size WxH --stats STATS.json --screenshot OUT.png]

Without SCENE it opens the shipped default scene, assets/WaterBottle_ntc/PF_WaterBottle_MR.gltf
(512² WaterBottle whose neural textures `make assets` precompressed, so it opens in seconds). Load
and sample mode need each material's neural texture set: viewer/ntc_cache.ensure_all finds it (the
scene's own NTC_texture_set, or the cache beside the scene / in --cache-dir) or compresses it once
with --bpp and --effort (or --steps), showing progress, --jobs materials at a time.

Reference mode shows the scene's images as RGBA8 textures (--reference rgba8, the default) or as
the BCn set an engine ships (--reference bcn: BC7 colour, BC5 normals, BC4 grey; encoded by
bc7enc on first open, with progress, and cached beside the scene like the neural sets). Load mode
keeps the decoded set as RGBA8 (--load-format rgba8) or transcodes it on the GPU into the same BCn
formats (--load-format bcn; the encoder: shaders/bcn_encode.slang). Sample mode decodes the set
where each pixel samples it (--filter). Feedback mode ("inference on feedback") decodes the set in
32x32-texel tiles into a pool texture, only the tiles the frame's pixels touch, a frame after the
frame that asked for them (so the CPU reads requests the GPU has finished with; at most one decode
a pixel a frame; until a tile arrives its pixels use a coarser mip), and filters those texels
trilinearly: sample mode's exact trilinear picture from 8-bit texels (--tile-format rgba8) or BC7
ones (bc7: about 3/8 of the pool), for no decode once the view's tiles are in; --stats gives the
texels decoded after each frame.

Window (glfw + moderngl, OpenGL 4.5 core): 1 / 2 / 3 / 4 reference / load / sample / feedback,
B toggles the reference format RGBA8 / BCn, L the load format, F cycles the
sample filter, D toggles the diff view (|current - reference| heat map), O the overlay; left drag
orbits, right or middle drag pans, the wheel zooms; Esc quits. With the stochastic filter the
picture is the mean (in linear light) of the frames drawn since the view last changed (A, or
--no-accumulate, shows single frames), in the window and headless alike.

Headless (EGL, no display needed): renders --frames timed frames after one warm-up frame (which
compiles the shaders; its wall time is reported as first_frame_ms, the GPU upload before it, with
load mode's decode, as setup_ms; compressing a material is not counted; feedback mode then draws
untimed frames until its tiles are in, tiles.settle_frames), then writes --stats
(JSON: mode, filter, reference_format, load_format, frames, size, gpu_ms / cpu_ms median and p95, vram_bytes total and by
category, driver_vram_bytes or null, feedback's tiles, ...) and --screenshot (PNG of the last
frame), both atomically.
--compare adds psnr_vs_reference (the last frame against a reference-mode render of the same view
with RGBA8 textures, the original images; the diff view compares with the same).

Any problem with the scene, a .ntc file, the GL driver or the input is one line on stderr and
exit status 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from export.arguments import image_size
from export.errors import NTCError, one_line
from export.header import MAX_SIZE
from export.images import DEFAULT_MAX_SIDE, set_max_side
from export.options import add_options
from trainer.budget import DEFAULT_EFFORT, EFFORTS, effort_help

DEFAULT_SCENE = Path(__file__).resolve().parents[1] / "assets" / "WaterBottle_ntc" / \
    "PF_WaterBottle_MR.gltf"
DEFAULT_WINDOW = (1024, 768)
DEFAULT_HEADLESS = (256, 256)


class UsageError(NTCError):
    """A bad combination of flags (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    from export.decode.precision import PRECISIONS

    from .material_bindings import FORMAT_NAMES
    from .renderer import MODES
    from .sample_filters import DEFAULT_FILTER, FILTER_NAMES
    from export.decode.gl_tiles import POOL_FORMATS
    from .feedback_sets import POOL_FORMAT
    p = argparse.ArgumentParser(
        prog="ntc-view", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="keys: 1-4 mode, B reference RGBA8/BCn, L load RGBA8/BCn, F filter, A average "
               "stochastic frames, "
               "D diff, O overlay, "
               "Esc quit; mouse: left orbit, "
               "right/middle pan, wheel zoom. Without a display use --headless (EGL) or "
               "xvfb-run -a.")
    p.add_argument("scene", nargs="?", help="a .gltf or .glb file (default: the shipped "
                   "WaterBottle, assets/WaterBottle_ntc/)")
    p.add_argument("--mode", choices=MODES, default="reference",
                   help="material texture source: reference (the images), load (the neural "
                        "sets decoded once into textures), sample (decoded per pixel, --filter), "
                        "feedback (decoded in tiles as the view needs them) (default %(default)s)")
    p.add_argument("--reference", choices=FORMAT_NAMES, default="rgba8",
                   help="reference-mode textures: rgba8, the images as they are, or bcn, the "
                        "BCn set an engine ships (BC7 colour, BC5 normals, BC4 grey; encoded once "
                        "and cached beside the scene) (default %(default)s)")
    p.add_argument("--load-format", choices=FORMAT_NAMES, default="rgba8",
                   help="load-mode textures: rgba8, the decoded set as RGBA8 / R8 / RG8 (16-bit "
                        "where the source is), or bcn, the decoded set transcoded on the GPU to "
                        "BC7 / BC5 / BC4 like the BCn reference (default %(default)s)")
    p.add_argument("--filter", choices=FILTER_NAMES, default=DEFAULT_FILTER,
                   help="sample-mode filter: trilinear (8 exact texel decodes a pixel), quad "
                        "(the same result with each 2x2 pixel quad sharing its decodes: 1-7 a "
                        "pixel), stochastic (1 texel a pixel, drawn per frame), latent (1 decode on "
                        "interpolated latents), auto (1 decode a pixel: the latent frame when "
                        "the view changes, then stochastic frames averaged into it while it is "
                        "still) (default %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="sample mode's MLP arithmetic: fp32, or fp16 (16-bit floats: twice the "
                        "multiply-adds a clock on GPUs with packed half math, half the weight "
                        "bytes; needs GL_EXT_shader_explicit_arithmetic_types_float16, "
                        "GL_AMD_gpu_shader_half_float or GL_NV_gpu_shader5); auto takes fp16 where "
                        "the driver reports one of those (default %(default)s)")
    p.add_argument("--tile-format", choices=tuple(POOL_FORMATS), default=POOL_FORMAT,
                   help="feedback mode's pool of decoded tiles: rgba8 (the decoded 8-bit values "
                        "exactly, four stored channels a layer) or bc7 (three a layer, encoded on "
                        "the GPU as tiles arrive: about 3/8 of the bytes) (default %(default)s)")
    add_compress_options(p)
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIDE, metavar="N",
                   help="refuse scene images wider or taller than N texels, checked from their "
                        "headers before decoding (default %(default)s; at most 16384)")
    p.add_argument("--cache-dir", default=None,
                   help="where compressed materials are cached (default: <scene>.ntc-cache "
                        "beside the scene)")
    p.add_argument("--headless", action="store_true", help="render offscreen (EGL), no window")
    p.add_argument("--frames", type=int, default=30, help="headless: timed frames "
                   "(default %(default)s)")
    p.add_argument("--size", default=None, metavar="WxH", help="WxH of the window / headless image "
                   f"(default {DEFAULT_WINDOW[0]}x{DEFAULT_WINDOW[1]} windowed, "
                   f"{DEFAULT_HEADLESS[0]}x{DEFAULT_HEADLESS[1]} headless)")
    p.add_argument("--stats", help="headless: write frame time and VRAM figures here (JSON)")
    p.add_argument("--screenshot", help="headless: write the last frame here (PNG)")
    p.add_argument("--diff", action="store_true", help="start with the diff view on")
    p.add_argument("--no-accumulate", action="store_true",
                   help="show each stochastic-filter frame as it is, instead of the mean of the "
                        "frames since the view last changed (A toggles it in the window)")
    p.add_argument("--compare", action="store_true",
                   help="headless: add the last frame's PSNR against reference mode to --stats")
    p.add_argument("--overlay", action="store_true",
                   help="headless: draw the text overlay into the screenshot (always on in the "
                        "window; O toggles it)")
    p.add_argument("--orbit", default=None, metavar="YAW,PITCH[,ZOOM]",
                   help="start the camera YAW and PITCH degrees around the framed view and ZOOM "
                        "wheel steps closer (e.g. --orbit=-40,5,6)")
    p.add_argument("--script", default=None, help=argparse.SUPPRESS)  # window test hook
    return p


def add_compress_options(p) -> None:
    """The flags that say how a material is compressed when it has no .ntc yet (ntc-view and
    bench.viewer): derived from the trainer's settings dataclasses."""
    from trainer.compress import CompressSettings
    from trainer.fit import TrainConfig
    from trainer.network import NetworkConfig
    when = "when a material must be compressed"
    add_options(p, CompressSettings, ["bpp", "jobs"], help={
        "bpp": f"bits per texel {when} (default: ntc-compress's)",
        "jobs": "materials compressed at once when several must be, each in a process of its "
                "own (default: one per CPU core, fewer when memory is short; 1 on CUDA)"})
    p.add_argument("--effort", choices=list(EFFORTS), default=DEFAULT_EFFORT,
                   help=f"training time for quality {when}, as ntc-compress --effort: "
                        f"{effort_help()} (default %(default)s)")
    add_options(p, TrainConfig, ["steps", "between_share", "lod_blend_share"], help={
        "steps": f"training steps {when} (default: --effort's for the set's size)",
        "between_share": f"share of training texels placed between texel centres {when}, as "
                         f"ntc-compress --between-share: the latent and auto filters gain, load "
                         f"mode loses a little (default: ntc-compress's)",
        "lod_blend_share": f"share of training texels at a fractional LOD {when}, as "
                           f"ntc-compress --lod-blend-share: the latent and auto filters blend "
                           f"across mips, load mode loses a little (default: ntc-compress's)"})
    add_options(p, NetworkConfig, ["hr_sampling", "hidden"], help={
        "hr_sampling": f"high-res latent sampling {when}, as ntc-compress --hr-sampling "
                       f"(default: ntc-compress's)",
        "hidden": f"MLP hidden layer widths {when}, e.g. 64,48,32 (default: ntc-compress's)"})


def _check_args(args) -> None:
    from trainer.textures import InputError
    if args.frames < 1:
        raise InputError(f"--frames {args.frames}: at least 1")
    if not 1 <= args.max_size <= MAX_SIZE:
        raise InputError(f"--max-size {args.max_size}: expected 1..{MAX_SIZE}")
    if args.size:
        try:
            args.size = image_size(args.size)
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"--size {e}") from None
    if args.orbit:
        args.orbit = parse_orbit(args.orbit)
    if not args.headless:
        for opt in ("stats", "screenshot"):
            if getattr(args, opt):
                raise InputError(f"--{opt} needs --headless")


def parse_orbit(text: str) -> list[float]:
    import math
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if not 2 <= len(parts) <= 3 or not all(math.isfinite(v) for v in parts):
        raise UsageError(f"--orbit {text}: expected YAW,PITCH[,ZOOM], e.g. -40,5,6")
    return parts


def run_headless(scene, args, provider, log, bcn_images=None) -> dict:
    """Render offscreen; returns the stats dict (also written to --stats)."""
    from export.safe_files import atomic_write
    from export.images import encode_png

    from export.decode.gl_context import create_context
    from export.decode.precision import resolve
    from export.metrics import psnr

    from .frame_stats import FrameTimer
    from .material_bindings import TextureFormats
    from .feedback_tiles import FeedbackConfig
    from .renderer import Renderer
    size = args.size or DEFAULT_HEADLESS
    used = scene.drawn_materials()
    ctx = create_context()
    renderer = None
    try:
        resolve(ctx, args.precision)  # an --precision the driver cannot give fails before work
        if args.mode != "reference":  # compress what is missing now, outside setup_ms
            for material in scene.drawn_materials(textured=True):
                provider(material)
        if args.reference == "bcn" and bcn_images is not None:   # BCn encoding too
            bcn_images.prepare(used)
        # setup: upload (and in load mode decode) everything; finish, since GL runs lazily
        t0 = time.perf_counter()
        renderer = Renderer(ctx, scene, size, mode=args.mode, filter_mode=args.filter,
                            ntc_provider=provider, overlay=args.overlay, timer_latency=0,
                            accumulate=not args.no_accumulate, log=log,
                            formats=TextureFormats.from_args(args), bcn_images=bcn_images,
                            precision=args.precision,
                            feedback=FeedbackConfig(tile_format=args.tile_format))
        if args.orbit:
            renderer.camera.turn(*args.orbit)
        if args.diff:
            renderer.set_diff(True)
        ctx.finish()
        setup_ms = (time.perf_counter() - t0) * 1e3
        first_ms = renderer.warm_up()
        settle = renderer.settle_tiles()   # feedback: its tiles in before the timed frames
        for _ in range(args.frames):
            renderer.render()
        renderer.timer.flush()
        image = renderer.read()
        vram = renderer.vram()
        stats = {
            "mode": args.mode, "filter": args.filter, "frames": args.frames,
            "precision": renderer.programs.precision.name,
            "reference_format": args.reference, "load_format": args.load_format,
            "size": list(size),
            "gpu_ms": FrameTimer.summary(renderer.timer.gpu_ms),
            "cpu_ms": FrameTimer.summary(renderer.timer.cpu_ms),
            "vram_bytes": vram,
            "driver_vram_bytes": renderer.driver_vram(),
            "setup_ms": setup_ms,
            "first_frame_ms": first_ms,
            "diff": bool(args.diff),
            "accumulated_frames": renderer.accumulated,
            "scene": str(scene.path),
            "renderer": ctx.info.get("GL_RENDERER"),
            "vram_objects": renderer.vram_objects(),
        }
        if renderer.bindings.tiles is not None:
            stats["tiles"] = renderer.bindings.tiles.summary()
            stats["tiles"]["settle_frames"] = settle
        if args.compare:
            current = renderer.render_mode_image(args.mode)
            reference = renderer.render_mode_image("reference", TextureFormats())
            value = psnr(current, reference)
            stats["psnr_vs_reference"] = None if value == float("inf") else value
        if args.screenshot:
            atomic_write(Path(args.screenshot), encode_png(image))
        if args.stats:
            atomic_write(Path(args.stats), (json.dumps(stats, indent=2) + "\n").encode())
        return stats
    finally:
        if renderer is not None:
            renderer.release()
        ctx.release()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from export.gltf import load_scene
    from trainer.compress import settings_from_args

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        _check_args(args)
        settings = settings_from_args(args)
        set_max_side(args.max_size)
        scene_path = Path(args.scene) if args.scene else DEFAULT_SCENE
        scene = load_scene(scene_path, log=log)

        paths: dict[int, Path | None] = {}

        def provider(material):
            """The material's .ntc. The first call finds those of every material the scene
            draws, compressing (and caching) the missing ones --jobs at a time."""
            from .ntc_cache import ensure_all
            if material.index not in paths:
                wanted = {m.index: m for m in scene.drawn_materials(textured=True)
                          if m.index not in paths}
                wanted.setdefault(material.index, material)
                paths.update(ensure_all(scene, settings, args.cache_dir, log=log,
                                        materials=list(wanted.values())))
            return paths[material.index]

        from .bcn_images import BCnImages
        from .ntc_cache import cache_folder
        bcn_images = BCnImages(cache_folder(scene, args.cache_dir), log)
        if args.headless:
            stats = run_headless(scene, args, provider, log, bcn_images)
            gpu, cpu = stats["gpu_ms"], stats["cpu_ms"]
            what = {"reference": args.reference, "load": args.load_format, "sample": args.filter,
                    "feedback": "tiles"}
            print(f"{args.mode} ({what[args.mode]}) {stats['size'][0]}x{stats['size'][1]}: "
                  f"GPU {gpu['median']:.2f} ms, CPU {cpu['median']:.2f} ms (median of "
                  f"{args.frames}), VRAM {stats['vram_bytes']['total']:,} bytes"
                  + (f", PSNR vs reference {stats['psnr_vs_reference']:.2f} dB"
                     if stats.get("psnr_vs_reference") is not None else ""))
            return 0
        from .window import run_window
        size = args.size or DEFAULT_WINDOW
        return run_window(scene, args, provider, size, log, bcn_images)
    except UsageError as e:
        print(f"ntc-view: error: {e}", file=sys.stderr)
        return 2
    except NTCError as e:
        print(f"ntc-view: error: {one_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:  # writing --stats / --screenshot, reading the scene's files
        where = f" {e.filename}" if e.filename else ""
        print(f"ntc-view: error: cannot write or read{where}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except (MemoryError, RuntimeError) as e:
        from trainer.compress import is_out_of_memory
        if not is_out_of_memory(e):
            raise
        print("ntc-view: error: not enough memory for this scene's textures", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
