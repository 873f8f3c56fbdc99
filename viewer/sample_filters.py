"""The viewer's sample-mode filters, and the running mean of a still view's frames.

The shader has four filters (shaders/ntc_sample.slang): trilinear (8 exact texel decodes a
pixel), quad (the same values, each 2x2 pixel quad sharing its decodes), stochastic (one texel of
one mip a pixel, drawn anew each frame along a low-discrepancy sequence) and latent (one decode on
filtered latents). The viewer averages stochastic frames while the view stays the same (what TAA
does in an engine), in linear light before the tone curve as an engine's accumulation does
(shaders/display.slang), so the picture converges to the trilinear one, and adds "auto", its
default:
one decode a pixel, a view starting with the latent filter's frame (the best single frame of one
decode), the stochastic frames drawn while it stays still averaged into it
(bench/choices.md has the measurements).
"""
from __future__ import annotations

from shaders.interface import DECODES_PER_PIXEL, FILTERS

FILTER_NAMES = tuple(FILTERS) + ("auto",)
FILTER_DECODES = {**DECODES_PER_PIXEL, "auto": 1}
DEFAULT_FILTER = "auto"
AUTO_SEED_FRAMES = 4     # auto's latent frame counts as this many stochastic ones in the mean
ACCUMULATE_MAX = 256     # frames averaged; beyond, a moving average


def is_averaged(filter_name: str) -> bool:
    return filter_name in ("stochastic", "auto")


class FrameMean:
    """How many frames the running mean of the current view holds (auto's latent frame counting
    AUTO_SEED_FRAMES), and which view it belongs to."""

    def __init__(self):
        self.frames = 0
        self.view = None

    def restart(self) -> None:
        self.frames, self.view = 0, None

    def follow(self, view) -> None:
        """Start a new mean when the view (anything but the frame index) changed."""
        if view != self.view:
            self.frames, self.view = 0, view

    def shader_filter(self, filter_name: str, averaging: bool) -> str:
        """The shader filter of the next frame: auto draws the latent frame that starts a mean
        (and every frame when nothing is averaged), then stochastic ones."""
        if filter_name != "auto":
            return filter_name
        return "stochastic" if averaging and self.frames > 0 else "latent"

    def weight(self) -> float:
        """The blend weight of the next frame into the mean."""
        return 1.0 / (min(self.frames, ACCUMULATE_MAX - 1) + 1)

    def add(self, filter_name: str) -> None:
        seed = filter_name == "auto" and self.frames == 0
        self.frames += AUTO_SEED_FRAMES if seed else 1

    def describe(self, filter_name: str) -> str:
        if filter_name == "auto" and self.frames:
            return f"latent + {self.frames - AUTO_SEED_FRAMES} stochastic frames"
        return f"mean of {self.frames} frames"
