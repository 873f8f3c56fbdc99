"""Feedback mode's residency: which tiles of which neural sets are in the pool, frame by frame.

Each frame the feedback program (shaders/pbr_feedback.slang) marks in every set's request bits
the tiles its pixels' footprints touch. The bits are read READBACK_LAG frames late (RequestBits
in feedback_sets.py, with each set's other GL objects: a buffer a frame in turn), so that the CPU
reads bits the GPU finished with a frame ago instead of waiting for the frame it has just been
given. After each frame `TileCache.update` reads them, keeps the resident tiles that were
touched, and decodes the missing ones (coarsest mips first: finer ones fall back on them) into
free slots, else into the slots least recently touched, up to a budget of decodes a frame. A
set's small mips (PIN_MIP_TILES tiles or fewer: 128x128 texels and below) are decoded when it is
added and never evicted: the fallback every pixel can use before its tiles arrive. A view that
stays still needs no decode once its tiles are in; motion decodes what comes into view.

The pool is shared by the scene's sets (one slot size, the largest set's layer count). It starts
at POOL_START_TEXELS_PER_PIXEL tile texels a pixel of the view plus the pinned tiles, and grows
with what the frames need: when the slots a frame keeps (those it touched and the pinned ones)
and the tiles it lacks pass POOL_GROW_AT of the pool, a pool POOL_GROW_BY times their number
takes over, every slot copied across (never smaller, never more slots than the sets have tiles).
Where a frame needs more tiles than fit (the driver's largest texture), its pixels keep the
coarser mips they fell back to.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from export.decode.gl_context import GL_BUFFER_UPDATE_BARRIER_BIT, NTCGLError
from export.decode.gl_tiles import POOL_FORMATS, TILE, TileLayout, TilePool
from export.decode.gl_transcode import GLBCnEncoder

from .feedback_sets import POOL_FORMAT, READBACK_LAG, READBACK_LAGS, FeedbackSet, layers_of
from .frame_stats import VramLedger

POOL_START_TEXELS_PER_PIXEL = 1   # the pool's first size: tile texels a pixel of the view
POOL_GROW_AT = 0.9            # grow when a frame's kept slots and lacking tiles pass this share
POOL_GROW_BY = 1.25           # ... to this many times their number
DECODES_PER_PIXEL = 1.0       # default budget: texels decoded a frame, per pixel of the view
PIN_MIP_TILES = 16            # a set's mips of at most this many tiles stay resident
PINNED = np.iinfo(np.int64).max


@dataclass(frozen=True)
class FeedbackConfig:
    """Feedback mode's settings (ntc-view --tile-format; the rest for benches and tests)."""
    tile_format: str = POOL_FORMAT             # the pool's texels: gl_tiles.POOL_FORMATS
    pin_mip_tiles: int = PIN_MIP_TILES         # mips of at most this many tiles stay resident
    decodes_per_pixel: float = DECODES_PER_PIXEL   # the budget: decodes a frame, a pixel
    readback_lag: int = READBACK_LAG           # frames between writing request bits and reading

    def __post_init__(self):
        if self.tile_format not in POOL_FORMATS:
            raise ValueError(f"tile format '{self.tile_format}': expected "
                             f"{', '.join(POOL_FORMATS)}")
        if self.readback_lag not in READBACK_LAGS:
            raise ValueError(f"readback lag {self.readback_lag}: expected "
                             f"{', '.join(map(str, READBACK_LAGS))} frames")


def view_slots(size: tuple[int, int]) -> int:
    """A new pool's slots for a view of `size` (w, h), pinned tiles aside:
    POOL_START_TEXELS_PER_PIXEL tile texels a pixel."""
    return -(-POOL_START_TEXELS_PER_PIXEL * size[0] * size[1] // (TILE * TILE))


@dataclass
class TileStats:
    """The last update's figures."""
    frame: int = 0
    read: int = 0             # the frame whose request bits it read (0: none yet, lag frames)
    read_ms: float = 0.0      # wall ms of the barrier and the reads: where the CPU waits on the GPU
    requested: int = 0        # tiles that frame touched
    decoded: int = 0          # tiles decoded for it
    decoded_texels: int = 0   # MLP evaluations those took (whole slots, borders included)
    waiting: int = 0          # touched, not resident, left for later frames
    evicted: int = 0
    grown: bool = False       # the pool grew for it (before its tiles were placed)
    resident: int = 0
    total_texels: int = 0     # texels decoded since the cache was made


class TileCache:
    """The pool (format `fmt`, `slots` to start with, at most `max_slots` as it grows; None: as
    the driver allows) and the residency of every set added. `budget`: MLP evaluations at most
    per update (at least one tile's: a slot's texels, border included)."""

    def __init__(self, ctx, slots: int, layers: int, budget: int, ledger: VramLedger,
                 fmt: str = POOL_FORMAT, pin_tiles: int = PIN_MIP_TILES,
                 readback_lag: int = READBACK_LAG, max_slots: int | None = None):
        self.ctx = ctx
        self.max_slots = max_slots
        self.pin_tiles = pin_tiles   # mips of at most this many tiles are pinned
        self.readback_lag = readback_lag   # the sets' RequestBits lag (FeedbackSet's lag)
        self.ledger = ledger
        self.owner = np.full((0, 2), -1, np.int64)   # (set, entry) per slot
        self.touched = np.full(0, -1, np.int64)      # frame, or PINNED
        # one BC7 encoder for every pool this cache makes: growing builds no program again
        self.encoder = GLBCnEncoder(ctx) if fmt == "bc7" else None
        try:
            self._track(TilePool(ctx, slots, layers, fmt, self.encoder))
        except BaseException:
            if self.encoder is not None:
                self.encoder.release()
            raise
        self.tile_decodes = self.pool.slot ** 2   # every texel of a slot is decoded
        self.budget = max(int(budget), self.tile_decodes)
        self.sets: list[FeedbackSet] = []
        self.frame = 0
        self.stats = TileStats()
        self.history: list[int] = []   # texels decoded after each frame
        self.decodes_per_pixel = DECODES_PER_PIXEL   # the budget's rate, as fit_view keeps it

    def _track(self, pool: TilePool) -> None:
        """Take `pool` as the pool, in the ledger; the slots it adds empty (a grown pool keeps
        the earlier slots' tiles where they were)."""
        self.pool = pool
        side = pool.slot
        self.ledger.add("tiles", pool, pool.vram_bytes,
                        f"tile pool {pool.slots} x {side}x{side} x {pool.layers} {pool.format} "
                        f"layers")
        owner = np.full((pool.slots, 2), -1, np.int64)
        touched = np.full(pool.slots, -1, np.int64)
        owner[:len(self.owner)] = self.owner
        touched[:len(self.touched)] = self.touched
        self.owner, self.touched = owner, touched

    @classmethod
    def for_view(cls, ctx, size: tuple[int, int], layers: int, ledger: VramLedger,
                 pinned: int = 0, config: FeedbackConfig = FeedbackConfig(),
                 max_slots: int | None = None) -> "TileCache":
        """A cache for a view of `size` (w, h) and sets of at most `layers` layers whose pinned
        small mips take `pinned` slots in all and whose tiles number `max_slots` in all."""
        pixels = size[0] * size[1]
        slots = view_slots(size) + pinned
        if max_slots is not None:
            slots = min(slots, max_slots)
        cache = cls(ctx, slots, layers, int(config.decodes_per_pixel * pixels), ledger,
                    config.tile_format, config.pin_mip_tiles, config.readback_lag, max_slots)
        cache.decodes_per_pixel = config.decodes_per_pixel
        return cache

    @classmethod
    def for_sets(cls, ctx, size: tuple[int, int], models, ledger: VramLedger,
                 config: FeedbackConfig = FeedbackConfig()) -> "TileCache":
        """A cache for a view of `size` and the sets of `models` (NTCModels, one per material:
        sets shared by materials are counted for each): as many layers as the largest fills,
        room for every set's pinned small mips, growing to at most all their tiles."""
        layouts = [TileLayout(m.width, m.height, m.mips) for m in models]
        pinned = sum(len(lay.small_mip_entries(config.pin_mip_tiles)) for lay in layouts)
        layers = max((layers_of(m, config.tile_format) for m in models), default=1)
        return cls.for_view(ctx, size, layers, ledger, pinned, config,
                            max(1, sum(lay.count for lay in layouts)))

    def fit_view(self, size: tuple[int, int]) -> None:
        """Follow the view to a new size: the decode budget (the pool grows as the frames of
        any size need it, in update)."""
        self.budget = max(int(self.decodes_per_pixel * size[0] * size[1]), self.tile_decodes)

    def grow(self, slots: int) -> bool:
        """Make the pool `slots` slots (at most max_slots, and as the driver allows), every
        tile kept in its slot; False when it cannot grow."""
        if self.max_slots is not None:
            slots = min(slots, self.max_slots)
        if slots <= self.pool.slots:
            return False
        pool = TilePool(self.ctx, slots, self.pool.layers, self.pool.format, self.encoder)
        if pool.slots <= self.pool.slots:   # already as large as the driver allows
            pool.release()
            return False
        try:
            pool.copy_from(self.pool)
        except BaseException:
            pool.release()
            raise
        old = self.pool
        self.ledger.remove(old)
        self._track(pool)
        for fset in self.sets:
            fset.pool = pool
        old.release()
        return True

    def add(self, fset: FeedbackSet) -> None:
        """Take a set: decode its small mips now, pinned (NTCGLError, and the set not taken,
        when the pool has no room for them)."""
        if fset.layers > self.pool.layers or fset.format != self.pool.format:
            raise ValueError(f"a {fset.format} set of {fset.layers} layers in a {self.pool.format} "
                             f"pool of {self.pool.layers}")
        if fset.requests.lag != self.readback_lag:
            raise ValueError(f"a set read {fset.requests.lag} frames late in a cache reading "
                             f"{self.readback_lag} frames late")
        pinned = self.pinned_entries(fset.layout)
        slots = self._free_slots(len(pinned))
        if len(slots) < len(pinned) and self.grow(self.pool.slots + len(pinned) - len(slots)):
            slots = self._free_slots(len(pinned))
        if len(slots) < len(pinned):
            raise NTCGLError(f"feedback mode's tile pool ({self.pool.slots} tiles, as large as "
                             f"it may grow) has no room for the small mips of "
                             f"{len(self.sets) + 1} texture sets")
        k = len(self.sets)
        self.sets.append(fset)
        fset.pool = self.pool
        self._place(k, pinned, slots, PINNED)
        fset.write_pages()

    def pinned_entries(self, layout: TileLayout) -> np.ndarray:
        """The tiles of a set that stay resident: its mips of at most pin_tiles tiles."""
        return layout.small_mip_entries(self.pin_tiles)

    def _free_slots(self, n: int) -> np.ndarray:
        return np.flatnonzero(self.owner[:, 0] < 0)[:n]

    def _place(self, k: int, entries: np.ndarray, slots: np.ndarray, touched: int) -> None:
        fset = self.sets[k]
        for s in slots:   # evicted first: a fill that fails leaves these slots empty
            old_set, old_entry = self.owner[s]
            if old_set >= 0:
                self.sets[old_set].slot[old_entry] = -1
            self.owner[s] = (-1, -1)
        self.pool.fill(fset.decoder, [(*fset.layout.rect(int(e)), int(s))
                                      for e, s in zip(entries, slots)], fset.repeat)
        for e, s in zip(entries, slots):
            self.owner[s] = (k, e)
            self.touched[s] = touched
            fset.slot[e] = s
        texels = len(entries) * self.tile_decodes
        self.stats.decoded_texels += texels
        self.stats.total_texels += texels

    def update(self) -> TileStats:
        """After a frame: read what frame - readback_lag touched, decode what is missing within
        the budget (the frames after it draw with those tiles)."""
        self.frame += 1
        self.stats = TileStats(frame=self.frame, total_texels=self.stats.total_texels)
        wanted = []   # (-mip, set, entry): coarsest first
        t0 = time.perf_counter()
        # the shader's writes to the request bits reach buffer reads only after a barrier (on a
        # GPU a command like any other; llvmpipe finishes the frame there); that kind alone
        self.ctx.memory_barrier(GL_BUFFER_UPDATE_BARRIER_BIT)
        taken = [fset.requests.take() for fset in self.sets]
        self.stats.read_ms = (time.perf_counter() - t0) * 1e3
        if any(req is not None for req in taken):
            self.stats.read = self.frame - self.readback_lag
        for k, (fset, req) in enumerate(zip(self.sets, taken)):
            if req is None:
                continue
            self.stats.requested += len(req)
            slots = fset.slot[req]
            hit = slots >= 0
            keep = slots[hit]
            self.touched[keep] = np.where(self.touched[keep] == PINNED, PINNED, self.frame)
            for e in req[~hit]:
                wanted.append((-int(fset.layout.mip[e]), k, int(e)))
        wanted.sort()
        # the slots the frame keeps (touched or pinned) and the tiles it lacks: the pool grows
        # before they crowd it, rather than evict what the next frames will ask for again
        kept = int(((self.touched == self.frame) | (self.touched == PINNED)).sum())
        need = kept + len(wanted)
        if need > POOL_GROW_AT * self.pool.slots:
            self.stats.grown = self.grow(int(POOL_GROW_BY * need))
        free = list(np.flatnonzero(self.owner[:, 0] < 0))
        spare = self.touched < self.frame
        spare &= self.owner[:, 0] >= 0
        stale = list(np.flatnonzero(spare)[np.argsort(self.touched[spare], kind="stable")])
        stale.reverse()   # pop() takes the least recently touched
        free.reverse()
        plan: dict[int, list[tuple[int, int]]] = {}
        texels = 0
        dirty = set()
        for _, k, e in wanted:
            if texels + self.tile_decodes > self.budget or not (free or stale):
                break
            if free:
                s = free.pop()
            else:
                s = stale.pop()
                self.stats.evicted += 1
                dirty.add(int(self.owner[s, 0]))
            plan.setdefault(k, []).append((e, s))
            texels += self.tile_decodes
            self.stats.decoded += 1
        for k, items in plan.items():
            entries = np.array([e for e, _ in items], np.int64)
            slots = np.array([s for _, s in items], np.int64)
            self._place(k, entries, slots, self.frame)
            dirty.add(k)
        for k in dirty:
            self.sets[k].write_pages()
        self.stats.waiting = len(wanted) - self.stats.decoded
        self.stats.resident = int((self.owner[:, 0] >= 0).sum())
        self.history.append(self.stats.decoded_texels)
        return self.stats

    def settled(self) -> bool:
        """Whether the last update read a frame that needed no tile it did not have (or there is
        no set to read): with the view still, the frames from now on draw with every tile they
        ask for."""
        read = self.stats.read > 0 or not self.sets
        return read and not self.stats.decoded and not self.stats.waiting

    def restart(self) -> None:
        """Frames drawn again after other modes: the request bits of the last feedback frames
        (an old view) are dropped unread rather than decoded."""
        for fset in self.sets:
            fset.requests.restart()

    def summary(self) -> dict:
        """The figures ntc-view --stats writes."""
        return {"tile": TILE, "slot": self.pool.slot, "format": self.pool.format,
                "pool_slots": self.pool.slots, "readback_lag": self.readback_lag,
                "resident": self.stats.resident,
                "waiting": self.stats.waiting, "budget_texels": self.budget,
                "decoded_texels_per_frame": list(self.history),
                "decoded_texels_total": self.stats.total_texels}

    def describe(self) -> str:
        s = self.stats
        return (f"tiles: {s.resident}/{self.pool.slots} resident, {s.decoded} decoded "
                f"({s.decoded_texels} texels), {s.waiting} waiting")

    def release(self) -> None:
        for fset in self.sets:
            fset.release()
        self.sets.clear()
        self.ledger.remove(self.pool)
        self.pool.release()
        if self.encoder is not None:
            self.encoder.release()
            self.encoder = None
