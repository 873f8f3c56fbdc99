"""Feedback mode in motion and at rest: decodes a frame, quality and frame time against sample
mode's one-decode default (auto) along the same camera path.

    python -m bench.feedback [--scenes WaterBottle,FlightHelmet] [--size WxH] [--path-frames N]
                             [--yaw DEG] [--zoom STEPS] [--tile-format rgba8|bc7]
                             [--readback-lag 0|1|2] [--cache-dir DIR] [compression flags]

For each scene (bench.viewer's, its sets from bench.viewer's cache: the same flags give the same
files, compressed now where missing) the camera starts at ntc-view's initial view and moves
every frame by --yaw degrees around the scene and --zoom wheel steps closer, for --path-frames
frames, then stays still. Three passes over that path, each a fresh renderer (viewer/renderer.py)
on one context, one frame a view:

    reference  the images (RGBA8): the frame every other one is compared with
    feedback   the tiles each frame touched decoded --readback-lag frames after it (at most one
               decode a pixel a frame, feedback_tiles.DECODES_PER_PIXEL), the next frame drawing
               with them: per frame the texels decoded, tiles asked for and still waiting, the
               wall ms of reading the request bits, PSNR against the reference frame of that view
    auto       sample mode's default: in motion every frame is a new view, so the latent filter's
               frame (one decode a pixel every frame); PSNR likewise

sample mode's trilinear frame (8 exact decodes a pixel: the picture feedback mode filters the same
way from 8-bit texels) at every --trilinear-every-th view and the last; then at the last view,
still: feedback after its tiles are in (no decodes), against that trilinear frame, and frame times (this process's CPU time per frame: on llvmpipe the rendering work;
feedback's includes its tile decodes). Decodes are counted in texels (one MLP evaluation each);
auto's are one per pixel of the frame.

Writes bench/results/feedback.md and feedback.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.clocks import cpu_is_work
from bench.output import check_out_folder, write_results
from bench.scenes import (CACHE, RESULTS, add_scene_arguments, check_scenes, log_stderr,
                          settings_and_context)
from export.decode.gl_tiles import POOL_FORMATS
from export.metrics import psnr
from viewer.feedback_sets import POOL_FORMAT, READBACK_LAG, READBACK_LAGS
from viewer.feedback_tiles import FeedbackConfig

PATH_FRAMES = 24
YAW_STEP = 3.0      # degrees a frame
ZOOM_STEP = 0.25    # wheel steps closer a frame (OrbitCamera.zoom: 0.9 ** steps the distance)
STILL_TIMED = 3     # timed frames at the last view, once its tiles are in
TRILINEAR_EVERY = 8  # sample mode's trilinear frame at every 8th view of the path (and the last)


def _camera_path(r, yaw: float, zoom: float):
    """A function moving `r`'s camera to view k of the path (0: the initial view)."""
    start = (r.camera.yaw, r.camera.pitch, r.camera.distance)

    def place(k: int) -> None:
        r.camera.yaw, r.camera.pitch, r.camera.distance = start
        r.camera.turn(yaw * k, 0.0, zoom * k)
    return place


def _gpu_ms(r) -> float | None:
    """The GL timer's figure for `r`'s last frame (timer_latency 0: read at once)."""
    return r.timer.gpu_ms[-1] if r.timer.gpu_ms else None


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _pass(ctx, scene, provider, size, mode: str, filt: str, views, yaw: float, zoom: float,
          per_frame, before=None, feedback: FeedbackConfig = FeedbackConfig()) -> dict:
    """One renderer drawing one frame at each view of `views` in turn; per_frame(k, renderer,
    image, cpu_ms) after each; before(renderer, image of view 0 after one frame), when given, first."""
    from viewer.renderer import Renderer
    r = Renderer(ctx, scene, size, mode=mode, filter_mode=filt, ntc_provider=provider,
                 overlay=False, timer_latency=0, log=None, feedback=feedback)
    try:
        place = _camera_path(r, yaw, zoom)
        if before is not None:
            place(0)
            before(r)
        for k in views:
            place(k)
            c0 = time.process_time()
            r.render()
            image = r.read()
            per_frame(k, r, image, (time.process_time() - c0) * 1e3)
        return {"vram": r.vram()}
    finally:
        r.release()


def measure_scene(ctx, name: str, scene_path, settings, size, frames: int, yaw: float,
                  zoom: float, cache_dir, log=log_stderr,
                  trilinear_every: int = TRILINEAR_EVERY,
                  feedback: FeedbackConfig = FeedbackConfig()) -> dict:
    from export.gltf import load_scene
    from viewer.ntc_cache import ensure_all
    log = log or (lambda *a: None)
    scene = load_scene(Path(scene_path), log=log)
    drawn = scene.drawn_materials(textured=True)
    paths = ensure_all(scene, settings, cache_dir, log=log, materials=drawn) if drawn else {}

    def provider(material):
        return paths.get(material.index)

    pixels = size[0] * size[1]
    views = range(frames + 1)   # the initial view, then one a frame; the last is kept still
    last = frames
    refs: list[np.ndarray] = []
    ref_ms: list[float] = []
    ref_gpu: list[float | None] = []
    log(f"{name}: reference along the path ({len(views)} views)")
    _pass(ctx, scene, provider, size, "reference", "trilinear", views, yaw, zoom,
          lambda k, r, img, ms: (refs.append(img), ref_ms.append(ms), ref_gpu.append(_gpu_ms(r))))

    fb = []
    log(f"{name}: feedback along the path")

    def feedback_frame(k, r, img, ms):
        t = r.bindings.tiles.stats
        fb.append({"view": k, "psnr": psnr(img, refs[k]), "cpu_ms": ms, "gpu_ms": _gpu_ms(r),
                   "read_ms": t.read_ms, "decoded_texels": t.decoded_texels,
                   "requested": t.requested, "waiting": t.waiting, "resident": t.resident,
                   "pool_slots": r.bindings.tiles.pool.slots})
    cold = {}

    def settle(r):
        """A cold start at view 0: its first frame, then frames until its tiles are in."""
        r.render()
        cold["first_psnr"] = psnr(r.read(), refs[0])
        frames = 1 + r.settle_tiles()
        texels = list(r.bindings.tiles.history)
        cold.update(frames=frames, texels=int(sum(texels)), per_frame=texels,
                    settled_psnr=psnr(r.read(), refs[0]))
    fb_vram = _pass(ctx, scene, provider, size, "feedback", "trilinear", views[1:], yaw, zoom,
                    feedback_frame, before=settle, feedback=feedback)["vram"]

    log(f"{name}: auto along the path")
    auto = []
    _pass(ctx, scene, provider, size, "sample", "auto", views, yaw, zoom,
          lambda k, r, img, ms: auto.append({"view": k, "psnr": psnr(img, refs[k]),
                                             "cpu_ms": ms, "gpu_ms": _gpu_ms(r)}))

    # still at the last view: feedback until nothing waits, timed; trilinear once
    log(f"{name}: still at the last view")
    from viewer.renderer import Renderer
    still = {}
    r = Renderer(ctx, scene, size, mode="feedback", ntc_provider=provider, overlay=False,
                 timer_latency=0, log=None, feedback=feedback)
    try:
        _camera_path(r, yaw, zoom)(last)
        r.render()
        settled = 1 + r.settle_tiles()
        arrival = list(r.bindings.tiles.history)
        timed, timed_gpu = [], []
        for _ in range(STILL_TIMED):
            c0 = time.process_time()
            r.render()
            img = r.read()
            timed.append((time.process_time() - c0) * 1e3)
            timed_gpu.append(_gpu_ms(r))
        still["feedback"] = {"psnr": psnr(img, refs[last]), "cpu_ms": float(np.median(timed)),
                             "gpu_ms": _median(timed_gpu),
                             "frames_to_settle": settled, "texels": int(sum(arrival))}
        fb_image = img
    finally:
        r.release()
    # sample mode's trilinear frame (8 exact decodes a pixel) at every `trilinear_every`-th view
    # of the path and at the last: what feedback's and auto's frames fall short of in motion
    log(f"{name}: sample trilinear at some views")
    tri_views = sorted({k for k in views[1:] if k % trilinear_every == 0} | {last})
    tri = {}
    _pass(ctx, scene, provider, size, "sample", "trilinear", tri_views, yaw, zoom,
          lambda k, r, img, ms: tri.update({k: (psnr(img, refs[k]), ms, img, _gpu_ms(r))}))
    still["sample_trilinear"] = {"psnr": tri[last][0], "cpu_ms": tri[last][1],
                                 "gpu_ms": tri[last][3],
                                 "vs_feedback": psnr(tri[last][2], fb_image)}
    fb_at = {f["view"]: f["psnr"] for f in fb}
    auto_at = {a["view"]: a["psnr"] for a in auto}
    against = [{"view": k, "trilinear": tri[k][0], "feedback": fb_at[k] - tri[k][0],
                "auto": auto_at[k] - tri[k][0]} for k in tri_views]
    still["reference_cpu_ms"] = float(np.median(ref_ms))
    still["reference_gpu_ms"] = _median(ref_gpu)

    motion = fb
    return {
        "name": name, "path": str(scene_path), "pixels": pixels,
        "cold_start": cold, "feedback": fb, "auto": auto, "still": still,
        "feedback_vram": fb_vram, "against_trilinear": against,
        "motion": {
            "frames": len(motion),
            "feedback_psnr_mean": float(np.mean([f["psnr"] for f in motion])),
            "auto_psnr_mean": float(np.mean([a["psnr"] for a in auto[1:]])),
            "decodes_per_pixel_mean": float(np.mean([f["decoded_texels"] for f in motion])
                                            / pixels),
            "decodes_per_pixel_max": float(max(f["decoded_texels"] for f in motion) / pixels),
            "waiting_max": int(max(f["waiting"] for f in motion)),
            "requested_max": int(max(f["requested"] for f in motion)),
            "pool_slots": int(motion[-1]["pool_slots"]),
            "feedback_cpu_ms_median": float(np.median([f["cpu_ms"] for f in motion])),
            "request_read_ms_median": float(np.median([f["read_ms"] for f in motion])),
            "auto_cpu_ms_median": float(np.median([a["cpu_ms"] for a in auto[1:]])),
            "reference_cpu_ms_median": float(np.median(ref_ms)),
            "feedback_gpu_ms_median": _median(f["gpu_ms"] for f in motion),
            "auto_gpu_ms_median": _median(a["gpu_ms"] for a in auto[1:]),
            "reference_gpu_ms_median": _median(ref_gpu),
        },
    }


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def report(out: dict) -> str:
    s0 = out["settings"]
    lines = ["# Feedback mode in motion and at rest (bench.feedback)", "",
             f"`python -m bench.feedback`: {out['device']}, {s0['size'][0]}x{s0['size'][1]}, "
             f"camera path of {s0['path_frames']} frames turning {s0['yaw']} deg and zooming "
             f"{s0['zoom']} wheel steps a frame, then still; sets: {s0['sets']}; tile pool "
             f"{s0.get('tile_format', 'rgba8')}, request bits read "
             f"{s0.get('readback_lag', 0)} frame(s) late. Frame times: this process's CPU time a "
             "frame (llvmpipe renders on the CPU; feedback's includes its tile decodes). Decodes a "
             "pixel: MLP evaluations a frame (a tile's whole slot, border included) / pixels of "
             "the frame. Reading the request bits: wall ms after each frame of the memory barrier "
             "and the read, where the CPU waits for the GPU to finish what it reads (llvmpipe "
             "finishes the whole frame at the barrier, so there it is the frame's rendering).", ""]
    lines += ["Cold start at the first view (a new renderer: only the sets' small pinned mips in the "
              "pool; one decode a pixel a frame at most):", "",
              "| scene | first frame PSNR (dB) | frames until no tile waits | texels decoded (a "
              "pixel) | PSNR then (dB) |", "|---|---:|---:|---:|---:|"]
    for s in out["scenes"]:
        c = s["cold_start"]
        lines.append(f"| {s['name']} | {c['first_psnr']:.2f} | {c['frames']} | {c['texels']:,} "
                     f"({c['texels'] / s['pixels']:.2f}) | {c['settled_psnr']:.2f} |")
    lines += ["", "Then along the path (each frame a new view; auto's frames are therefore "
              "latent-filter frames):", "",
              "| scene | decodes a pixel a frame, mean / max | tiles a frame asks for, max / pool "
              "slots | tiles waiting, max | PSNR: feedback "
              "/ auto (dB) | CPU ms a frame: feedback / auto / reference | reading the request "
              "bits, ms (median) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for s in out["scenes"]:
        m = s["motion"]
        lines.append(f"| {s['name']} "
                     f"| {m['decodes_per_pixel_mean']:.3f} / {m['decodes_per_pixel_max']:.3f} "
                     f"| {m['requested_max']} / {m['pool_slots']} "
                     f"| {m['waiting_max']} | {m['feedback_psnr_mean']:.2f} / "
                     f"{m['auto_psnr_mean']:.2f} | {m['feedback_cpu_ms_median']:.0f} / "
                     f"{m['auto_cpu_ms_median']:.0f} / {m['reference_cpu_ms_median']:.0f} "
                     f"| {m['request_read_ms_median']:.2f} |")
    if not cpu_is_work(out["device"] or ""):
        lines += ["", "GL timer, ms a frame (median): in motion feedback / auto / reference; "
                  "still feedback / trilinear / reference:", ""]
        for s in out["scenes"]:
            m, st = s["motion"], s["still"]
            lines.append(f"- {s['name']}: {_ms(m['feedback_gpu_ms_median'])} / "
                         f"{_ms(m['auto_gpu_ms_median'])} / {_ms(m['reference_gpu_ms_median'])}; "
                         f"{_ms(st['feedback'].get('gpu_ms'))} / "
                         f"{_ms(st['sample_trilinear'].get('gpu_ms'))} / "
                         f"{_ms(st.get('reference_gpu_ms'))}")
    lines += ["", "At the last view, still (feedback once its tiles are in; sample mode's "
              "trilinear filter decodes 8 texels a pixel every frame):", "",
              "| scene | feedback PSNR (dB) | sample trilinear PSNR (dB) | feedback vs trilinear "
              "frame (dB) | CPU ms: feedback / trilinear / reference | frames to settle | "
              "tile VRAM (MiB) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for s in out["scenes"]:
        st = s["still"]
        f, t = st["feedback"], st["sample_trilinear"]
        tiles = s["feedback_vram"]["by_category"]["tiles"] / 2 ** 20
        lines.append(f"| {s['name']} | {f['psnr']:.2f} | {t['psnr']:.2f} | {t['vs_feedback']:.2f} "
                     f"| {f['cpu_ms']:.0f} / {t['cpu_ms']:.0f} / {st['reference_cpu_ms']:.0f} "
                     f"| {f['frames_to_settle']} | {tiles:.2f} |")
    lines += ["", "In motion against sample mode's trilinear frame of the same view (8 exact decodes "
              "a pixel; dB, feedback and auto minus trilinear, at the views listed):", "",
              "| scene | views | trilinear PSNR (dB) | feedback - trilinear | auto - trilinear |",
              "|---|---|---|---|---|"]
    for s in out["scenes"]:
        a = s["against_trilinear"]

        def column(key: str, fmt: str) -> str:
            return " / ".join(format(x[key], fmt) for x in a)
        lines.append(f"| {s['name']} | {column('view', 'd')} | {column('trilinear', '.2f')} | "
                     f"{column('feedback', '+.2f')} | {column('auto', '+.2f')} |")
    for s in out["scenes"]:
        lines += ["", f"{s['name']}, frame by frame: view, texels decoded after it, tiles "
                  "waiting, PSNR feedback / auto (dB)", "",
                  "| view | decoded | waiting | feedback | auto |", "|---:|---:|---:|---:|---:|"]
        for f in s["feedback"]:
            a = next((a["psnr"] for a in s["auto"] if a["view"] == f["view"]), None)
            lines.append(f"| {f['view']} | {f['decoded_texels']:,} | {f['waiting']} | "
                         f"{f['psnr']:.2f} | {'-' if a is None else f'{a:.2f}'} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.feedback",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_arguments(p)
    p.add_argument("--path-frames", type=int, default=PATH_FRAMES,
                   help="frames the camera moves (default %(default)s)")
    p.add_argument("--yaw", type=float, default=YAW_STEP,
                   help="degrees around the scene a frame (default %(default)s)")
    p.add_argument("--zoom", type=float, default=ZOOM_STEP,
                   help="wheel steps closer a frame (default %(default)s)")
    p.add_argument("--trilinear-every", type=int, default=TRILINEAR_EVERY,
                   help="sample mode's trilinear frame at every N-th view of the path and at the "
                        "last (default %(default)s; about 10 s a frame on llvmpipe)")
    p.add_argument("--tile-format", choices=tuple(POOL_FORMATS), default=POOL_FORMAT,
                   help="feedback mode's pool, as ntc-view --tile-format (default %(default)s)")
    p.add_argument("--readback-lag", type=int, choices=READBACK_LAGS, default=READBACK_LAG,
                   help="frames between a frame writing its request bits and their reading "
                        "(feedback_sets.READBACK_LAG; default %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=CACHE,
                   help="compressed materials, one folder per scene (default bench.viewer's)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for feedback.md / .json")
    p.add_argument("--no-progress", action="store_true", help="no training progress bars")
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.path_frames < 1:
        p.error("--path-frames: at least 1")
    if a.trilinear_every < 1:
        p.error("--trilinear-every: at least 1")
    check_scenes(p, a.scenes)
    check_out_folder(p, a.out)
    from export.errors import NTCError, one_line
    settings, ctx = settings_and_context(p, a, "bench.feedback")
    if ctx is None:
        return 1
    out = {"device": ctx.info.get("GL_RENDERER"),
           "settings": {"size": list(a.size), "path_frames": a.path_frames, "yaw": a.yaw,
                        "trilinear_every": a.trilinear_every, "tile_format": a.tile_format,
                        "readback_lag": a.readback_lag,
                        "zoom": a.zoom,
                        "sets": f"the scene's own, else bench.viewer's cache "
                                f"({settings.train.effort} effort, --bpp {settings.effective_bpp})"},
           "scenes": []}
    try:
        for name, path in a.scenes:
            out["scenes"].append(measure_scene(ctx, name, path, settings, a.size, a.path_frames,
                                               a.yaw, a.zoom, a.cache_dir / name,
                                               trilinear_every=a.trilinear_every,
                                               feedback=FeedbackConfig(
                                                   tile_format=a.tile_format,
                                                   readback_lag=a.readback_lag)))
    except NTCError as e:
        print(f"bench.feedback: error: {one_line(e)}", file=sys.stderr)
        return 1
    finally:
        ctx.release()
    write_results(a.out, "feedback", out, report(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
