"""Feedback mode (inference on feedback): a set's tiles decoded on demand into a pool
(export/decode/gl_tiles.py), their residency frame by frame (viewer/feedback_tiles.py), and the
frames the feedback program draws from them (shaders/pbr_feedback.slang).

Checks: the tile layout's entries and rectangles (edge tiles cut); every decoded tile and its
one-texel border (wrapped or clamped) hold exactly what the load pass decodes for those texels,
rounded to 8 bits; the residency's budget, coarse-first
order, least-recently-touched eviction and pinned last mips, and the page buffer the shader reads;
feedback frames against sample mode's exact trilinear frames on a scene with clamp and mirrored-
repeat wraps; request bits read the configured number of frames late, and none of an old view's
after other modes; a still view decoding once (its first frame's tiles, read a frame late) and
nothing after; tiles arriving one a frame ending in the same frame; the pool grown by the frames
(and a BC7 one drawing on after the window resizes); the headless CLI's tile figures.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from export.decode.gl_tiles import PAGE_HEADER, TILE, TileLayout
from export.model import STORED, ChannelInfo, TextureInfo
from viewer.feedback_tiles import FeedbackConfig
from viewer_scenes import TINY_CLI, frame, renderer

PIN_ONE = FeedbackConfig(pin_mip_tiles=1)   # only the one-tile mips resident from the start


@pytest.fixture(scope="module")
def big_sphere(tmp_path_factory):
    """(scene, cache dir, provider): the sphere scene with 192x192 images (mips 0-2 of its set
    are several tiles), compressed once with the tiny settings. Tests of residency pin only the
    one-tile mips (PIN_ONE), so the view's tiles are decoded as frames ask."""
    from export.gltf import load_scene
    from viewer.ntc_cache import ensure_ntc
    from viewer_scenes import tiny_settings, write_sphere_scene
    folder = tmp_path_factory.mktemp("big_sphere")
    scene = load_scene(write_sphere_scene(folder / "scene", tex=192), log=None)
    cache, settings = folder / "cache", tiny_settings()

    def provider(material):
        return ensure_ntc(scene, material, settings, cache, log=None)

    provider(scene.materials[0])
    return scene, cache, provider


def _textures():
    ch = [ChannelInfo(STORED, i) for i in range(9)]
    return [TextureInfo("a", "a.png", "baseColor", "srgb", 8, ch[0:3]),
            TextureInfo("b", "b.png", "orm", "linear", 8, ch[3:7]),
            TextureInfo("c", "c.png", "emissive", "linear", 8, ch[7:9])]


def _model(w: int, h: int):
    from test_gl_parity import set_model
    return set_model(w, h, _textures())


def test_tile_layout_entries_and_rectangles():
    lay = TileLayout(100, 70, 7)
    assert lay.grids == [(4, 3), (2, 2), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1)]
    assert lay.count == 21
    header = lay.header()
    assert header.shape == (PAGE_HEADER,) and list(header[:7]) == [0, 12, 16, 17, 18, 19, 20]
    assert lay.rect(3) == (0, 96, 0, 4, 32)      # the last column is cut to the mip's width
    assert lay.rect(11) == (0, 96, 64, 4, 6)
    assert lay.rect(13) == (1, 32, 0, 18, 32)    # mip 1 is 50x35
    assert list(lay.small_mip_entries(1)) == [16, 17, 18, 19, 20]
    assert list(lay.small_mip_entries(4)) == list(range(12, 21))     # + mip 1's 2x2 tiles
    assert list(lay.small_mip_entries(0)) == [16, 17, 18, 19, 20]
    rng = np.random.default_rng(0)
    for mip, (w, h) in enumerate(lay.sizes):
        texels = np.stack([rng.integers(0, w, 200), rng.integers(0, h, 200)], 1)
        for (x, y), e in zip(texels, lay.entries(mip, texels)):
            m, x0, y0, tw, th = lay.rect(int(e))
            assert m == mip and x0 <= x < x0 + tw and y0 <= y < y0 + th
    with pytest.raises(ValueError):
        TileLayout(4, 4, PAGE_HEADER + 1)


@pytest.mark.gl
@pytest.mark.parametrize("repeat", [(True, False), (False, True)])
def test_tiles_hold_what_the_load_pass_decodes(ctx, repeat):
    from export.decode.gl_load import decode_mips_gl
    from export.decode.gl_resources import NTCTextureGL
    from export.decode.gl_tiles import GLTileDecoder, TilePool
    model = _model(100, 70)
    lay = TileLayout(model.width, model.height, model.mips)
    tex = NTCTextureGL(model, ctx)
    dec = GLTileDecoder(tex)
    pool = TilePool(ctx, lay.count, 3)
    try:
        slots = np.random.default_rng(1).permutation(pool.slots)[:lay.count]
        dec.decode(pool, [(*lay.rect(e), int(slots[e])) for e in range(lay.count)], repeat)
        got = pool.read()
        ref = decode_mips_gl(model, ctx=ctx)
        for e in range(lay.count):
            mip, x0, y0, w, h = lay.rect(e)
            mw, mh = lay.sizes[mip]
            sx, sy = pool.origin(int(slots[e]))
            assert sx % pool.slot == 0 and sy % pool.slot == 0 and pool.slot == TILE + 2
            # the tile and its one-texel border: neighbours wrapped or clamped per axis
            xs = np.arange(x0 - 1, x0 + w + 1)
            ys = np.arange(y0 - 1, y0 + h + 1)
            xs = xs % mw if repeat[0] else np.clip(xs, 0, mw - 1)
            ys = ys % mh if repeat[1] else np.clip(ys, 0, mh - 1)
            slot = np.concatenate([got[j, sy:sy + h + 2, sx:sx + w + 2] for j in range(3)], -1)
            want = np.round(np.clip(ref[mip][np.ix_(ys, xs)], 0, 1) * 255)
            assert np.array_equal(slot[..., :model.stored_channels], want), f"tile {e}"
    finally:
        pool.release()
        dec.release()
        tex.release()


@pytest.mark.gl
def test_bc7_pool_holds_the_tiles_encoded(ctx):
    """A BC7 pool: every slot (36 texels: the tile and two of border, whole blocks) holds the
    decoded texels, three stored channels to a layer, as the GPU encoder gives them back, close
    to the exact 8-bit values."""
    from export.bcn import codec
    from export.decode.gl_load import decode_mips_gl
    from export.decode.gl_resources import NTCTextureGL
    from export.decode.gl_tiles import STAGE_SLOTS, GLTileDecoder, TilePool
    from export.metrics import psnr
    model = _model(100, 70)                     # 9 stored channels: three BC7 layers of three
    lay = TileLayout(model.width, model.height, model.mips)
    tex = NTCTextureGL(model, ctx)
    dec = GLTileDecoder(tex, "bc7")
    pool = TilePool(ctx, 2 * STAGE_SLOTS, 3, "bc7")
    try:
        assert pool.slot == TILE + 4 and pool.nbytes == pool.size[0] * pool.size[1] * 3
        slots = np.random.default_rng(2).permutation(pool.slots)[:lay.count]
        tiles = [(*lay.rect(e), int(slots[e])) for e in range(lay.count)]
        pool.fill(dec, tiles, (True, False))
        w, h = pool.size
        data = pool.read_blocks()
        layer_bytes = len(data) // 3
        got = np.stack([codec.decode("bc7", data[j * layer_bytes:(j + 1) * layer_bytes], w, h)
                        for j in range(3)])
        ref = decode_mips_gl(model, ctx=ctx)
        for e in range(lay.count):
            mip, x0, y0, tw, th = lay.rect(e)
            mw, mh = lay.sizes[mip]
            sx, sy = pool.origin(int(slots[e]))
            xs = np.arange(x0 - 2, x0 + tw + 2) % mw
            ys = np.clip(np.arange(y0 - 2, y0 + th + 2), 0, mh - 1)
            got_slot = np.concatenate([got[j, sy:sy + th + 4, sx:sx + tw + 4, :3]
                                       for j in range(3)], -1)[..., :model.stored_channels]
            want = np.round(np.clip(ref[mip][np.ix_(ys, xs)], 0, 1) * 255)
            assert psnr(got_slot, want) > 35.0, f"tile {e}: {psnr(got_slot, want):.2f} dB"
        # a grown pool (TileCache.grow) takes every block over, each slot where it was
        larger = TilePool(ctx, 2 * pool.slots, 3, "bc7")
        try:
            larger.copy_from(pool)
            big = larger.read_blocks()
            big_layer = len(big) // 3
            for j in range(3):   # rows of blocks from y = 0: the small pool's are the first
                assert big[j * big_layer:j * big_layer + layer_bytes] == \
                    data[j * layer_bytes:(j + 1) * layer_bytes]
            with pytest.raises(ValueError, match="does not fit"):
                pool.copy_from(larger)
        finally:
            larger.release()
    finally:
        pool.release()
        dec.release()
        tex.release()


def _request(requests, entries) -> None:
    """As if a frame had touched `entries`: their bits in the buffer of RequestBits `requests`
    the next frame writes (what the next take reads when they are read 0 frames late)."""
    bits = np.zeros(requests.words * 32, np.uint8)
    bits[np.asarray(entries, np.int64)] = 1
    requests.writing.write(np.packbits(bits, bitorder="little").tobytes())


@pytest.mark.gl
def test_request_bits_are_read_lag_frames_after_the_frame_that_wrote_them(ctx):
    from viewer.feedback_sets import RequestBits
    for lag in (0, 1, 2):
        bits = RequestBits(ctx, 100, lag)
        try:
            taken = []
            for k in range(6):       # frame k touches tile k (and tile 99, every frame)
                _request(bits, [k, 99])
                taken.append(bits.take())
            assert taken[:lag] == [None] * lag
            for k in range(lag, 6):   # after frame k: frame k - lag's tiles, alone
                assert list(taken[k]) == [k - lag, 99], (lag, k, taken[k])
            assert bits.nbytes == (lag + 1) * 4 * 4
            # back from other modes: the last frames' bits (an old view's) are not read
            _request(bits, [7])
            bits.restart()
            restarted = []
            for k in range(lag + 1):
                _request(bits, [20 + k])
                restarted.append(bits.take())
            assert restarted[:lag] == [None] * lag and list(restarted[lag]) == [20], restarted
        finally:
            bits.release()


def _pages(fset) -> np.ndarray:
    return np.frombuffer(fset.pages.read(), np.int32)


@pytest.mark.gl
def test_residency_budget_order_eviction_and_pages(ctx):
    from viewer.feedback_sets import FeedbackSet
    from viewer.feedback_tiles import TileCache
    from viewer.frame_stats import VramLedger
    model = _model(300, 300)                      # 143 tiles, 5 of them one-tile mips
    ledger = VramLedger()
    cache = TileCache(ctx, slots=64, layers=3, budget=3 * (TILE + 2) ** 2, ledger=ledger,
                      pin_tiles=1, readback_lag=0,   # each update reads what _request wrote
                      max_slots=64)                  # one row: full, it evicts
    fset = FeedbackSet(ctx, model, ledger, "set", lag=0)
    try:
        with pytest.raises(ValueError, match="1 frames late in a cache reading 0"):
            cache.add(FeedbackSet(ctx, model, VramLedger(), "late", lag=1))
        cache.add(fset)
        lay = fset.layout
        pinned = lay.small_mip_entries(1)
        assert len(pinned) == 5 and (fset.slot[pinned] >= 0).all()
        assert (np.delete(fset.slot, pinned) < 0).all()
        assert ledger.by_category()["tiles"] == cache.pool.nbytes + fset.pages.size \
            + fset.requests.nbytes

        # coarsest first, within the budget: of mip 0's first tiles and all of mip 2, mip 2 wins
        mip0 = np.arange(0, 5)
        mip2 = np.arange(lay.base[2], lay.base[3])
        _request(fset.requests, np.concatenate([mip0, mip2]))
        stats = cache.update()
        assert stats.requested == 14 and stats.decoded == 3 and stats.waiting == 11
        assert (fset.slot[mip2[:3]] >= 0).all() and (fset.slot[mip0] < 0).all()
        pages = _pages(fset)
        assert np.array_equal(pages[:PAGE_HEADER], lay.header())
        assert np.array_equal(pages[PAGE_HEADER:], fset.slot)
        assert _pages(fset)[PAGE_HEADER:].max() < cache.pool.slots
        assert not np.frombuffer(fset.requests.writing.read(), np.uint32).any()   # cleared

        # fill the pool: 59 free slots after the pinned 5; older tiles are evicted in the order
        # they were last touched, pinned ones never, tiles touched this frame never
        cache.budget = 64 * cache.tile_decodes
        order = [np.arange(10, 40), np.arange(40, 70)]
        for entries in order:
            _request(fset.requests, entries)
            cache.update()
        resident = set(np.flatnonzero(fset.slot >= 0))
        assert resident >= set(pinned)
        assert len(resident) == cache.pool.slots     # full
        _request(fset.requests, np.concatenate([np.arange(40, 70), np.arange(70, 80)]))
        stats = cache.update()
        assert stats.decoded == 10 and stats.evicted == 10
        assert (fset.slot[np.arange(40, 80)] >= 0).all() and (fset.slot[pinned] >= 0).all()
        # everything touched this frame (all 40) plus the pinned: nothing left to evict
        _request(fset.requests, np.arange(10, 80))
        stats = cache.update()
        assert stats.waiting > 0 and stats.resident == cache.pool.slots
        assert (fset.slot[np.arange(40, 80)] >= 0).all()
        slots = fset.slot[fset.slot >= 0]
        assert len(np.unique(slots)) == len(slots)   # no slot holds two tiles
    finally:
        cache.release()


@pytest.mark.gl
@pytest.mark.parametrize("lag", [1, 0])
def test_feedback_frames_are_trilinear_frames_and_a_still_view_decodes_once(ctx, big_sphere,
                                                                             capsys, lag):
    from dataclasses import replace
    from export.metrics import psnr
    assert FeedbackConfig().readback_lag == 1   # the default
    scene, _, provider = big_sphere
    r = renderer(ctx, scene, provider, size=(96, 96),
                 feedback=replace(PIN_ONE, readback_lag=lag))
    try:
        trilinear = frame(r, "sample", "trilinear")
        reference = frame(r, "reference")
        fed = frame(r, "feedback", frames=3)
        history = r.bindings.tiles.history
        # the first frame's tiles decoded once its bits are read (after it, or after the next:
        # the barrier makes its writes visible either way), then none
        n = history[lag]
        assert n > 0 and history == [0] * lag + [n] + [0] * (2 - lag)
        assert r.bindings.tiles.settled()
        value = psnr(fed, trilinear)
        with capsys.disabled():
            print(f"\n  96x96 sphere (192x192 set): feedback vs sample trilinear {value:.2f} dB, vs reference "
                  f"{psnr(fed, reference):.2f} dB; {n} texels decoded for "
                  f"{96 * 96} pixels")
        # the same filter on the same texels, rounded to 8 bits in the pool
        assert value > 40.0
        diff = np.abs(fed.astype(int) - trilinear.astype(int))
        assert np.mean(diff <= 1) > 0.97, np.mean(diff <= 1)
    finally:
        r.release()


@pytest.mark.gl
def test_bc7_tiles_draw_the_frame_rgba8_tiles_draw(ctx, big_sphere):
    from export.metrics import psnr
    scene, _, provider = big_sphere
    frames = {}
    for fmt in ("rgba8", "bc7"):
        r = renderer(ctx, scene, provider, size=(96, 96),
                     feedback=FeedbackConfig(tile_format=fmt, pin_mip_tiles=1))
        try:
            frames[fmt] = frame(r, "feedback", frames=3)
            assert r.bindings.tiles.pool.format == fmt
            assert r.bindings.tiles.stats.waiting == 0
        finally:
            r.release()
    assert psnr(frames["bc7"], frames["rgba8"]) > 35.0


@pytest.mark.gl
def test_tiles_arriving_one_a_frame_end_in_the_same_frame(ctx, big_sphere):
    scene, _, provider = big_sphere
    r = renderer(ctx, scene, provider, size=(96, 96), feedback=PIN_ONE)
    try:
        full = frame(r, "feedback", frames=3)
    finally:
        r.release()
    r = renderer(ctx, scene, provider, size=(96, 96), feedback=PIN_ONE)
    try:
        r.ensure_mode("feedback")
        r.bindings.tiles.budget = r.bindings.tiles.tile_decodes
        lag = r.bindings.tiles.readback_lag
        first = frame(r, "feedback", frames=1 + lag)      # the first frame's bits read: 1 decode
        assert first.reshape(-1, 3).std(0).min() > 10     # the fallback mips: a picture
        needed = r.bindings.tiles.stats.waiting + 1
        last = frame(r, "feedback", frames=needed + 1)
        assert r.bindings.tiles.stats.waiting == 0
        assert np.array_equal(last, full)
        assert not np.array_equal(first, full)
    finally:
        r.release()


@pytest.mark.gl
def test_headless_feedback_stats(ctx, big_sphere, tmp_path, capsys):
    from viewer import cli
    scene, cache, _ = big_sphere
    stats_path = tmp_path / "stats.json"
    rc = cli.main([str(scene.path), "--headless", "--mode", "feedback", "--frames", "3",
                   "--orbit=0,0,8",   # close: mip 0, more tiles than the default pins
                   "--size", "96x72", "--cache-dir", str(cache), *TINY_CLI,
                   "--stats", str(stats_path), "--compare"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "feedback (tiles) 96x72" in out.out
    stats = json.loads(stats_path.read_text())
    tiles = stats["tiles"]
    assert tiles["tile"] == TILE and tiles["waiting"] == 0
    per_frame = tiles["decoded_texels_per_frame"]
    # at most one decode a pixel a frame (96x72), every slot texel counted; the warm-up frame,
    # the untimed ones until no tile waits, then the 3 timed ones, which decode nothing
    settle = tiles["settle_frames"]
    assert tiles["readback_lag"] == 1 and per_frame[0] == 0   # the warm-up's bits read after it
    assert settle >= 2 and len(per_frame) == 1 + settle + 3 and per_frame[1] > 0
    assert per_frame[-3:] == [0, 0, 0]
    assert all(n <= 96 * 72 and n % (TILE + 2) ** 2 == 0 for n in per_frame)
    assert tiles["decoded_texels_total"] > per_frame[0]     # + the pinned last mips
    assert stats["vram_bytes"]["by_category"]["tiles"] >= tiles["pool_slots"] * TILE * TILE * 4
    assert stats["psnr_vs_reference"] > 20


@pytest.mark.gl
def test_a_cache_without_sets_is_settled_at_once(ctx):
    from viewer.feedback_tiles import TileCache
    from viewer.frame_stats import VramLedger
    for lag in (0, 1):   # no bits to wait for: Renderer.settle_tiles draws no frame for nothing
        cache = TileCache(ctx, slots=1, layers=1, budget=1, ledger=VramLedger(), readback_lag=lag)
        try:
            cache.update()
            assert cache.settled()
        finally:
            cache.release()


@pytest.mark.gl
def test_pool_sized_for_the_view_and_the_sets_last_mips(ctx):
    from export.decode.gl_context import NTCGLError
    from export.decode.gl_tiles import POOL_ROW
    from viewer.feedback_sets import FeedbackSet
    from viewer.feedback_tiles import POOL_START_TEXELS_PER_PIXEL, TileCache, view_slots
    from viewer.frame_stats import VramLedger
    ledger = VramLedger()
    cache = TileCache.for_view(ctx, (64, 32), 3, ledger, pinned=100)
    try:
        need = POOL_START_TEXELS_PER_PIXEL * 64 * 32 // (TILE * TILE) + 100
        assert view_slots((64, 32)) + 100 == need
        assert need <= cache.pool.slots < need + POOL_ROW
        assert cache.budget == 64 * 32    # one decode a pixel of the view
        # by default a set's mips of at most 16 tiles stay resident: 300x300 has 3x3, 2x2, 1x1s
        assert len(cache.pinned_entries(TileLayout(300, 300, 9))) == 9 + 4 + 5
    finally:
        cache.release()
    cache = TileCache(ctx, slots=1, layers=3, budget=1, ledger=ledger,   # one row: 64 slots
                      pin_tiles=1, max_slots=64)                         # and no more
    fset = FeedbackSet(ctx, _model(300, 300), ledger, "set")            # 5 one-tile mips
    try:
        for _ in range(cache.pool.slots // 5):
            cache.add(fset)
        with pytest.raises(NTCGLError, match="no room for the small mips"):
            cache.add(fset)
    finally:
        cache.sets[:] = [fset]
        cache.release()


@pytest.mark.gl
def test_the_pool_grows_with_what_frames_need_and_keeps_every_tile(ctx):
    from export.decode.gl_tiles import TilePool
    from viewer.feedback_sets import FeedbackSet
    from viewer.feedback_tiles import POOL_GROW_AT, POOL_GROW_BY, TileCache
    from viewer.frame_stats import VramLedger
    model = _model(300, 300)                      # 143 tiles, 5 of them one-tile mips
    ledger = VramLedger()
    cache = TileCache(ctx, slots=1, layers=3, budget=200 * (TILE + 2) ** 2, ledger=ledger,
                      pin_tiles=1, readback_lag=0, max_slots=model_tiles(model))
    fset = FeedbackSet(ctx, model, ledger, "set", lag=0)
    try:
        cache.add(fset)
        assert cache.pool.slots == 64
        _request(fset.requests, np.arange(0, 50))   # 50 + 5 pinned: under 0.9 of 64
        assert 55 < POOL_GROW_AT * 64
        assert not cache.update().grown and cache.pool.slots == 64
        _request(fset.requests, np.arange(0, 55))   # 55 kept + 5 missing > 57.6: 1.25 x 60
        stats = cache.update()                      # -> two rows, grown first, then decoded
        assert 60 > POOL_GROW_AT * 64 and POOL_GROW_BY * 60 > 64
        assert stats.grown and cache.pool.slots == 128
        assert stats.decoded == 5 and stats.waiting == 0 and stats.evicted == 0
        assert ledger.by_category()["tiles"] == cache.pool.nbytes + fset.pages.size \
            + fset.requests.nbytes                  # the ledger holds the new pool alone
        # every tile where it was: the grown pool holds what a fresh decode of the same tiles
        # into the same slots does
        resident = np.flatnonzero(fset.slot >= 0)
        fresh = TilePool(ctx, 128, 3)
        try:
            fresh.fill(fset.decoder, [(*fset.layout.rect(int(e)), int(fset.slot[e]))
                                      for e in resident], fset.repeat)
            got, want = cache.pool.read(), fresh.read()
            for e in resident:
                x, y = cache.pool.origin(int(fset.slot[e]))
                side = cache.pool.slot
                assert np.array_equal(got[:, y:y + side, x:x + side],
                                      want[:, y:y + side, x:x + side]), e
        finally:
            fresh.release()
        assert np.array_equal(_pages(fset)[PAGE_HEADER:], fset.slot)   # the shader's view
        # at most as many slots as the set has tiles (rounded to whole rows)
        _request(fset.requests, np.arange(model_tiles(model)))
        stats = cache.update()
        assert stats.grown and cache.pool.slots == 192
        assert stats.waiting == 0 and (fset.slot >= 0).all()
        _request(fset.requests, np.arange(model_tiles(model)))
        assert not cache.update().grown and cache.pool.slots == 192
    finally:
        cache.release()


def model_tiles(model) -> int:
    return TileLayout(model.width, model.height, model.mips).count


@pytest.mark.gl
def test_a_larger_view_draws_what_a_fresh_one_draws(ctx, big_sphere):
    scene, _, provider = big_sphere
    r = renderer(ctx, scene, provider, size=(160, 160), feedback=PIN_ONE)
    try:
        fresh = frame(r, "feedback", frames=6)
        assert r.bindings.tiles.stats.waiting == 0
    finally:
        r.release()
    r = renderer(ctx, scene, provider, size=(48, 48), feedback=PIN_ONE)
    try:
        frame(r, "feedback", frames=3)
        tiles = r.bindings.tiles
        budget = tiles.budget
        r.resize((160, 160))
        r.camera.frame(scene.bounds_min, scene.bounds_max, 1.0)
        assert tiles.budget > budget                              # the budget follows the view
        grown = frame(r, "feedback", frames=6)
        assert tiles.stats.waiting == 0
        assert np.array_equal(grown, fresh)
    finally:
        r.release()


@pytest.fixture(scope="module")
def sphere512(tmp_path_factory):
    """(scene, provider): the sphere scene with a 512x512 set, compressed once (tiny settings):
    seen from close it needs more tiles than the pool's first row of 64 slots."""
    from export.gltf import load_scene
    from viewer.ntc_cache import ensure_ntc
    from viewer_scenes import tiny_settings, write_sphere_scene
    folder = tmp_path_factory.mktemp("sphere512")
    scene = load_scene(write_sphere_scene(folder / "scene", tex=512), log=None)

    def provider(material):
        return ensure_ntc(scene, material, tiny_settings(), folder / "cache", log=None)

    return scene, provider


@pytest.mark.gl
def test_a_pool_grown_by_the_frames_draws_what_a_pool_made_large_draws(ctx, sphere512):
    """The renderer's pool grows as a close view's tiles need it, and the frames drawn from
    tiles copied across equal those of a pool made that large before the first tile."""
    scene, provider = sphere512
    images, slots = [], []
    for pre_grow in (False, True):
        r = renderer(ctx, scene, provider, size=(128, 128), feedback=PIN_ONE)
        try:
            r.ensure_mode("feedback")
            tiles = r.bindings.tiles
            assert tiles.pool.slots == 64
            if pre_grow:
                assert tiles.grow(slots[0])
            r.camera.turn(0.0, 0.0, 6.0)   # nearer: its tiles fit the first row
            frame(r, "feedback", frames=6)
            assert tiles.pool.slots == (slots[0] if pre_grow else 64)
            r.camera.turn(0.0, 0.0, 2.0)   # close: mip 0, more tiles; some of the last kept
            images.append(frame(r, "feedback", frames=8))
            assert tiles.settled() and tiles.stats.waiting == 0
            slots.append(tiles.pool.slots)
        finally:
            r.release()
    assert slots[0] > 64 and slots[1] == slots[0]
    diff = np.abs(images[0].astype(int) - images[1].astype(int))
    # the same texels; other slots of the same pool can round a bilinear weight differently
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99, (diff.max(), np.mean(diff == 0))


@pytest.mark.gl
def test_a_bc7_pool_grown_by_a_frame_draws_on_after_the_window_resizes(ctx, sphere512):
    """A BC7 pool grown after a frame's scene pass keeps encoding tiles once the window's targets
    are made anew (its encoder had kept the scene target, released by the resize, to bind after
    each pass), with the one encoder the cache made."""
    scene, provider = sphere512
    r = renderer(ctx, scene, provider, size=(128, 128),
                 feedback=FeedbackConfig(tile_format="bc7", pin_mip_tiles=1))
    try:
        r.camera.turn(0.0, 0.0, 8.0)
        frame(r, "feedback", frames=6)
        tiles = r.bindings.tiles
        assert tiles.pool.slots > 64     # grown after a scene pass
        assert tiles.pool.encoder is tiles.encoder    # the encoder's programs built once
        stage = tiles.pool.stage.textures
        assert tiles.pool.vram_bytes == tiles.pool.nbytes + len(stage) * stage[0].size[0] * \
            stage[0].size[1] * 4                       # the ledger counts the staging too
        r.resize((144, 144))
        r.camera.turn(40.0, 20.0, 0.0)   # tiles not decoded yet
        frame(r, "feedback", frames=12)
        assert tiles.settled() and tiles.stats.waiting == 0
        assert ctx.error == "GL_NO_ERROR"
    finally:
        r.release()


@pytest.mark.gl
def test_hidden_pixels_request_no_tiles_unless_the_material_masks(ctx, big_sphere, tmp_path):
    """A second sphere inside the first, turned (other texels) and drawn after it: with early
    depth tests (materials that never discard) its hidden pixels ask for no tile, so the frames
    decode what the outer sphere alone decodes; an alpha-masked material is tested late (its
    discarded pixels must not write depth), so there the hidden sphere's tiles are decoded too."""
    import json
    import shutil
    from export.gltf import load_scene
    scene, _, provider = big_sphere
    ntc = provider(scene.materials[0])
    folder = tmp_path / "scenes"
    shutil.copytree(scene.folder, folder)
    base = json.loads((folder / scene.path.name).read_text())

    def decoded(inner: bool, mask: bool) -> tuple[int, np.ndarray]:
        doc = json.loads(json.dumps(base))
        if inner:
            doc["nodes"].append({"mesh": 0, "scale": [0.8, 0.8, 0.8],
                                 "rotation": [0, 0.7071068, 0, 0.7071068]})
            doc["scenes"][0]["nodes"].append(len(doc["nodes"]) - 1)
        if mask:   # a cut-off nothing falls below: the same pixels, tested late
            doc["materials"][0].update(alphaMode="MASK", alphaCutoff=0.0)
        path = folder / f"s_{int(inner)}{int(mask)}.gltf"
        path.write_text(json.dumps(doc))
        r = renderer(ctx, load_scene(path, log=None), lambda m: ntc, size=(96, 96),
                     feedback=PIN_ONE)
        try:
            image = frame(r, "feedback", frames=8)
            tiles = r.bindings.tiles
            assert tiles.settled()
            return tiles.stats.total_texels, image
        finally:
            r.release()

    alone, alone_image = decoded(False, False)
    hidden, hidden_image = decoded(True, False)
    assert hidden == alone and np.array_equal(hidden_image, alone_image)
    masked_alone, _ = decoded(False, True)
    masked_hidden, masked_image = decoded(True, True)
    assert masked_alone == alone and masked_hidden > masked_alone
    assert np.array_equal(masked_image, alone_image)
