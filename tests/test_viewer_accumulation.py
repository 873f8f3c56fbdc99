"""Sample mode's averaged filters in ntc-view (viewer/sample_filters.py, the post pass's
accumulation): stochastic frames differ and their mean nears trilinear; while the view stays still
the display shows the mean of the frames since it last changed, taken in linear light (a numpy twin
of shaders/display.slang's curve checks the GL mean); auto starts from the latent frame. On the
tiny sphere scene of tests/viewer_scenes.py (conftest's `sphere`), 64x64.
"""
from __future__ import annotations

import numpy as np
import pytest

from export.pixels import linear_to_srgb, srgb_to_linear
from viewer_scenes import frame, renderer


def single_frames(ctx, scene, provider, filters: list[str]) -> list[np.ndarray]:
    """Sample-mode frames drawn one after the other with these filters, nothing averaged."""
    r = renderer(ctx, scene, provider, accumulate=False)
    try:
        r.set_mode("sample")
        out = []
        for filt in filters:
            r.set_filter(filt)
            r.render()
            out.append(r.read().astype(np.float64))
        return out
    finally:
        r.release()


def linear_from_display(d: np.ndarray) -> np.ndarray:
    """shaders/display.slang's linearFromDisplay of 8-bit display values, in float64: the sRGB
    curve (export.pixels), then the ACES fit's inverse."""
    y = srgb_to_linear(np.clip(d / 255.0, 0.0, 1.0))
    a, b, k = 2.43 * y - 2.51, 0.59 * y - 0.03, 0.14 * y
    return 2.0 * k / (np.sqrt(b * b - 4.0 * a * k) - b)


def display_from_linear(x: np.ndarray) -> np.ndarray:
    """displayFromLinear, as 8-bit display values (unrounded)."""
    y = np.clip(x * (2.51 * x + 0.03) / (x * (2.43 * x + 0.59) + 0.14), 0.0, 1.0)
    return 255.0 * linear_to_srgb(y)


def light_mean(frames, weights=None) -> np.ndarray:
    """The mean of display frames the viewer shows: taken in linear light."""
    lin = np.stack([linear_from_display(f.astype(np.float64)) for f in frames])
    return display_from_linear(np.average(lin, axis=0, weights=weights))


def test_the_display_curve_twin_round_trips():
    d = np.arange(256, dtype=np.float64)
    assert np.abs(display_from_linear(linear_from_display(d)) - d).max() < 1e-6
    assert linear_from_display(np.array([0.0]))[0] == 0.0


@pytest.mark.gl
def test_stochastic_frames_differ_and_average_towards_trilinear(ctx, sphere):
    scene, _, provider = sphere
    r = renderer(ctx, scene, provider, accumulate=False)
    try:
        trilinear = frame(r, "sample", "trilinear", 1).astype(np.float64)
        r.set_filter("stochastic")
        shots = []
        for _ in range(8):
            r.render()
            shots.append(r.read().astype(np.float64))
        assert not np.array_equal(shots[0], shots[1]), "stochastic filter ignores the frame"
        one = np.sqrt(np.mean((shots[0] - trilinear) ** 2))
        mean = np.sqrt(np.mean((np.mean(shots, 0) - trilinear) ** 2))
        assert mean < one
    finally:
        r.release()


@pytest.mark.gl
def test_stochastic_frames_are_averaged_while_the_view_is_still(ctx, sphere):
    """The display shows the running mean of the stochastic frames since the view last changed,
    taken in linear light: the same pixels as averaging single frames so (one rounding apart),
    not as averaging their display values, and it starts again when the camera moves or the
    filter changes."""
    scene, _, provider = sphere
    n = 8
    frames = single_frames(ctx, scene, provider, ["stochastic"] * n)
    r = renderer(ctx, scene, provider)
    try:
        mean = frame(r, "sample", "stochastic", n).astype(np.float64)
        assert r.accumulated == n
        assert np.abs(mean - light_mean(frames)).max() <= 1.0
        assert np.abs(mean - np.mean(frames, 0)).max() > 2.0   # display values' mean: another
        assert np.array_equal(r.render_mode_image("sample"), mean.astype(np.uint8))
        assert "(mean of 8 frames)" in r.overlay_lines()[0]
        r.camera.orbit(10, 0)
        r.render()
        assert r.accumulated == 1
        r.set_filter("trilinear")
        r.render()
        assert r.accumulated == 0 and "mean of" not in r.overlay_lines()[0]
        vram = r.vram_objects()
        assert {"category": "framebuffers", "label": "accumulation colour RGBA32F",
                "bytes": 64 * 64 * 16} in vram
    finally:
        r.release()


@pytest.mark.gl
def test_auto_filter_starts_with_the_latent_frame_then_averages_stochastic_ones(ctx, sphere):
    """"auto": one decode a pixel; a view starts with the latent filter's frame, counted as
    AUTO_SEED_FRAMES stochastic frames, and the stochastic frames drawn while the view stays the
    same are averaged into it; a changed view starts again from a latent frame."""
    from viewer.sample_filters import AUTO_SEED_FRAMES
    scene, _, provider = sphere
    n = 4
    latent, *frames = single_frames(ctx, scene, provider, ["latent"] + ["stochastic"] * n)
    r = renderer(ctx, scene, provider)
    try:
        first = frame(r, "sample", "auto", 1).astype(np.float64)
        assert np.abs(first - latent).max() <= 1.0
        assert r.accumulated == AUTO_SEED_FRAMES and r.shader_filter() == "stochastic"
        for _ in range(n):
            r.render()
        want = light_mean([latent, *frames], [AUTO_SEED_FRAMES] + [1] * n)
        assert np.abs(r.read().astype(np.float64) - want).max() <= 1.0
        assert not np.array_equal(r.read(), first.astype(np.uint8))
        assert f"latent + {n} stochastic frames" in r.overlay_lines()[0]
        r.camera.orbit(10, 0)
        r.render()
        assert r.accumulated == AUTO_SEED_FRAMES
    finally:
        r.release()
    # without averaging, every frame is the latent filter's
    r = renderer(ctx, scene, provider, accumulate=False)
    try:
        assert np.abs(frame(r, "sample", "auto", 2).astype(np.float64) - latent).max() <= 1.0
        assert r.shader_filter() == "latent"
    finally:
        r.release()
