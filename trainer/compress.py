"""Texture set in, `.ntc` bytes and a quality report out: the pipeline behind ntc-compress."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace

import torch

from export.format import from_bytes, to_bytes
from export.options import at_least, from_args, option, result_fields, within

from .evaluate import evaluate
from .fit import TrainConfig, fit, torch_threads
from .hr_choice import GATHER4_MAX_KURTOSIS, resolve_network
from .network import NetworkConfig
from .presets import PRESETS, fit_for_bpp, preset_table
from .targets import build_targets, plan_channels
from .textures import ConstantSetError, InputError, TextureSet

DEFAULT_BPP = 4.0


@dataclass
class CompressSettings:
    """How a set is compressed: one of a rate (bpp, target PSNR, preset; none = DEFAULT_BPP),
    the training and the network."""
    bpp: float | None = option(None, flag="--bpp", type=float, check=lambda v: None if 0 < v <= 64
                               else "a number in (0, 64]",
                               help=f"bits per texel budget (default {DEFAULT_BPP})")
    target_psnr: float | None = option(None, flag="--target-psnr", type=float, metavar="DB",
                                       check=within(10, 100, " dB"),
                                       help="search presets for the smallest whose decoded set "
                                            "PSNR reaches DB (--jobs presets a round, trained at "
                                            "once)")
    preset: str | None = option(None, flag="--preset", choices=[n for n, _, _ in PRESETS],
                                help="a preset by name (see below)")
    train: TrainConfig = None         # steps, batch, learning rates, seed
    network: NetworkConfig = None     # bits, sampling, hidden layers, weight format
    device: str = option("auto", flag="--device", choices=("auto", "cpu", "cuda"), result=False,
                         help="auto = CUDA when present, else CPU")
    jobs: int | None = option(None, flag="--jobs", type=int, check=within(1, 256), result=False,
                              help="sets compressed at once (a scene's materials, the presets "
                                   "of a --target-psnr round), each in a process of its own on "
                                   "--threads threads (default: one per CPU core, fewer when "
                                   "memory is short; 1 on CUDA); a set and preset train to "
                                   "the same bytes whatever the number")
    mask_strength: float = option(4.0, flag="--mask-strength", type=float, check=at_least(0),
                                  help="loss weight added where the mask is white")

    def __post_init__(self):
        self.train = self.train or TrainConfig()
        self.network = self.network or NetworkConfig()

    @property
    def effective_bpp(self) -> float | None:
        """The bpp budget compressed to: --bpp, or DEFAULT_BPP when no rate was given."""
        if self.bpp is None and self.preset is None and self.target_psnr is None:
            return DEFAULT_BPP
        return self.bpp

    def jobs_here(self) -> int:
        """--jobs, or its default for this machine (trainer/parallel.default_jobs)."""
        from .parallel import default_jobs
        return self.jobs or default_jobs(self.train.threads,
                                         resolve_device(self.device).type == "cuda")

    def cache_fields(self) -> dict:
        """What changes the compressed file (not the device, threads or progress bar); no --bpp
        is the default --bpp, so `ntc-view` and `ntc-view --bpp 4` share a cache entry."""
        return dict(result_fields(self), bpp=self.effective_bpp)

    def cache_digest(self) -> str:
        """12 hex digits of cache_fields(): in a cached result's name, so a changed setting or
        default (a learning rate, say) is a new entry instead of a stale hit."""
        text = json.dumps(self.cache_fields(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def settings_from_args(args) -> CompressSettings:
    """CompressSettings from parsed flags: every option the settings dataclasses declare that the
    parser has (each checked by its field), --effort (whose steps count unless --steps is
    given), no progress bar with --quiet. The one mapping from flags to settings, for every CLI."""
    train = {"progress": not getattr(args, "quiet", False)}
    if getattr(args, "effort", None) is not None:
        train["effort"] = args.effort
    train = from_args(TrainConfig, args, **train)
    return from_args(CompressSettings, args, train=train, network=from_args(NetworkConfig, args))


def is_out_of_memory(e: BaseException) -> bool:
    """A failed allocation: MemoryError from numpy/Python, or the RuntimeError torch's CPU
    allocator raises ("DefaultCPUAllocator: can't allocate memory"), which has no type of its own,
    or CUDA's OutOfMemoryError."""
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or \
        (isinstance(e, RuntimeError) and "can't allocate memory" in str(e))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise InputError(f"unknown device '{name}' (auto, cpu or cuda)")
    return torch.device(name)


@dataclass
class CompressResult:
    data: bytes     # the complete .ntc file
    report: dict


def _train_one(tset, infos, stored, targets, preset, settings, device, log=print, on_step=None):
    name, cfg, bpp = preset
    w, h = tset.size
    t0 = time.perf_counter()
    net, tlog = fit(targets, cfg, settings.train, w, h, device, desc=f"{name} ({bpp:.2f} bpp)",
                    on_step=on_step)
    extra = {"preset": name, "steps": tlog.steps, "seed": settings.train.seed,
             "batch": settings.train.batch_for(device)}
    data = to_bytes(net.export(infos, extra))
    # Quality is measured on the file as written, decoded by the reference decoder.
    quality = evaluate(from_bytes(data), targets.source_mips)
    seconds = time.perf_counter() - t0
    log(f"  {name}: {len(data) * 8 / (w * h):.3f} bpp, set PSNR {quality['psnr_set']:.2f} dB "
        f"({tlog.steps} steps, {seconds:.0f} s)")
    return data, quality, tlog, seconds


def compress(tset: TextureSet, settings: CompressSettings, log=print,
             on_step=None) -> CompressResult:
    """Compress one texture set. on_step: see fit (called for every preset trained)."""
    if settings.preset is None and settings.target_psnr is not None:
        return _search_target(tset, settings, log, on_step)
    with torch_threads(settings.train.threads):
        return _compress(tset, settings, log, on_step)


def search_probes(lo: int, hi: int, ways: int) -> list[int]:
    """Presets to try among lo..hi (ordered by bpp) in one round: `ways` of them (or all, when
    fewer are left), splitting the rest into equal parts; ways 1 is a binary search."""
    n = hi - lo + 1
    k = min(ways, n)
    return [lo + n * (j + 1) // (k + 1) for j in range(k)]


def search_presets(count: int, ways: int, target: float, measure) -> int:
    """The smallest preset index (of `count`, by bpp) whose PSNR reaches `target` if quality rises
    with bpp, found in rounds of search_probes; measure(indices) -> {index: PSNR} trains a round.
    -1 when none of those tried reaches it."""
    lo, hi, best = 0, count - 1, -1
    while lo <= hi:
        probes = search_probes(lo, hi, ways)
        psnr = measure(probes)
        reached = [i for i in probes if psnr[i] >= target]
        if reached:
            best = hi = min(reached)
            hi -= 1
        missed = [i for i in probes if not reached or i < min(reached)]
        if missed:
            lo = max(missed) + 1
    return best


def _search_target(tset: TextureSet, settings: CompressSettings, log, on_step) -> CompressResult:
    """--target-psnr: search_presets over this set's presets, each a `--preset` compression of
    its own, settings.jobs_here() at a time (trainer/parallel.py). With quality rising with bpp
    (as it does) the preset found, so the file, is the same for any --jobs."""
    from .parallel import SetCompressor
    t_start = time.perf_counter()
    with torch_threads(settings.train.threads):
        infos, stored = plan_channels(tset)
        if stored == 0:
            raise ConstantSetError("every channel of the set is constant: nothing to compress")
        w, h = tset.size
        network, _ = resolve_network(settings.network, build_targets(tset, infos, stored,
                                                                     settings.mask_strength))
        names = [row[0] for row in preset_table(w, h, stored, infos, network)]
    target = settings.target_psnr
    trials: dict[int, CompressResult] = {}
    jobs = settings.jobs_here()
    with SetCompressor(compress, settings, jobs, log, on_step=on_step) as runner:
        def measure(probes: list[int]) -> dict[int, float]:
            for i in probes:
                runner.submit(names[i], tset, f"  {names[i]}",
                              replace(settings, preset=names[i], target_psnr=None))
            done = runner.results()
            for i in probes:
                if isinstance(done[names[i]], BaseException):
                    raise done[names[i]]
                trials[i] = done[names[i]]
            return {i: trials[i].report["psnr_set"] for i in probes}
        found = search_presets(len(names), jobs, target, measure)
    best = trials[found] if found >= 0 else trials[max(trials)]
    if found < 0:
        log(f"warning: no preset reaches {target:.2f} dB; writing the richest "
            f"({best.report['preset']}, {best.report['psnr_set']:.2f} dB)")
    report = dict(best.report, seconds=time.perf_counter() - t_start, target_psnr=target,
                  target_reached=found >= 0,
                  search=[{"preset": t.report["preset"], "bpp": t.report["bpp"],
                           "psnr_set": t.report["psnr_set"]} for _, t in sorted(trials.items())])
    return CompressResult(best.data, report)


def _compress(tset: TextureSet, settings: CompressSettings, log, on_step) -> CompressResult:
    device = resolve_device(settings.device)
    t_start = time.perf_counter()
    infos, stored = plan_channels(tset)
    if stored == 0:
        raise ConstantSetError("every channel of the set is constant: nothing to compress")
    w, h = tset.size
    targets = build_targets(tset, infos, stored, settings.mask_strength)
    network, kurtosis = resolve_network(settings.network, targets)
    if kurtosis is not None:
        log(f"  high-res sampling: {network.hr_sampling} (difference kurtosis {kurtosis:.1f}, "
            f"gather4 at most {GATHER4_MAX_KURTOSIS:g})")
    table = preset_table(w, h, stored, infos, network)
    names = [row[0] for row in table]
    if settings.preset is not None:
        if settings.preset not in names:
            raise InputError(f"unknown preset '{settings.preset}' (known: {', '.join(names)})")
        row = table[names.index(settings.preset)]
    else:
        row = fit_for_bpp(table, settings.effective_bpp, w, h, stored, infos)
    best = (row, *_train_one(tset, infos, stored, targets, row, settings, device, log, on_step))
    (name, cfg, _), data, quality, tlog, _ = best
    report = {
        "input": str(tset.folder),
        "width": w, "height": h, "mips": targets.mip_sizes.shape[0],
        "textures_in": [t.path.name for t in tset.textures],
        "skipped": tset.skipped,
        "not_files": tset.not_files,
        "stored_channels": stored,
        "preset": name,
        "features": cfg.features, "bits": cfg.bits, "grid_scale": cfg.grid_scale,
        "hr_sampling": cfg.hr_sampling, "hr_sampling_asked": settings.network.hr_sampling,
        "difference_kurtosis": kurtosis, "hidden": list(cfg.widths),
        "between_share": settings.train.between_share_for(cfg.hr_sampling),
        "weight_format": cfg.weight_format,
        "file_bytes": len(data),
        "bpp": len(data) * 8 / (w * h),
        **quality,
        "steps": tlog.steps,
        "batch": settings.train.batch_for(device),
        "seconds": time.perf_counter() - t_start,
        "train_seconds": tlog.seconds,
        "device": str(device),
        "threads": settings.train.threads,
        "training_step": tlog.step_kind,
        "training_precision": tlog.precision,
        "training_curve": [{"seconds": s, "step": st, "psnr_estimate": p} for s, st, p in tlog.curve],
    }
    for info in infos:
        report["textures"][info.name]["role"] = info.role
    return CompressResult(data, report)
