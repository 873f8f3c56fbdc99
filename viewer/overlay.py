"""On-screen text: Pillow's built-in font rasterised once into a small R8 atlas texture, drawn as
alpha-blended glyph quads (shaders/viewer_post.slang: textVertex / textFragment).

Printable ASCII only (other characters show as '?'); a solid cell behind the text keeps it legible
over any scene.
"""
from __future__ import annotations

import numpy as np

from .frame_stats import FrameTimer, format_bytes

FIRST, LAST = 32, 126          # printable ASCII
SOLID = LAST + 1               # a fully covered cell, for the background box
FONT_PX = 13
PAD = 1


def _font():
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=FONT_PX)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


class FontAtlas:
    """Glyph coverage [h, w] uint8, per-character cell rectangles and advances (pixels)."""

    def __init__(self):
        from PIL import Image, ImageDraw
        font = _font()
        chars = [chr(c) for c in range(FIRST, LAST + 1)]
        boxes = [font.getbbox(ch) for ch in chars]
        ascent = -min(b[1] for b in boxes)
        self.line_height = max(b[3] for b in boxes) + ascent + 2 * PAD
        self.advance = {ch: max(1, int(round(font.getlength(ch)))) for ch in chars}
        cell_w = max(max(b[2] for b in boxes), max(self.advance.values())) + 2 * PAD
        cols = 16
        rows = (len(chars) + 1 + cols - 1) // cols
        img = Image.new("L", (cols * cell_w, rows * self.line_height), 0)
        draw = ImageDraw.Draw(img)
        self.cells: dict[str, tuple[int, int, int, int]] = {}  # x, y, w, h in the atlas
        for i, ch in enumerate(chars + ["\0"]):
            x, y = (i % cols) * cell_w, (i // cols) * self.line_height
            if ch == "\0":
                draw.rectangle([x, y, x + cell_w - 1, y + self.line_height - 1], fill=255)
                self.cells["\0"] = (x, y, cell_w, self.line_height)
                continue
            draw.text((x + PAD, y + PAD + ascent), ch, fill=255, font=font)
            self.cells[ch] = (x, y, self.advance[ch] + 2 * PAD, self.line_height)
        self.pixels = np.asarray(img, np.uint8)

    def layout(self, lines: list[str], origin=(8.0, 8.0), colour=(1.0, 1.0, 1.0, 1.0),
               background=(0.0, 0.0, 0.0, 0.6)) -> np.ndarray:
        """float32 [n, 8] triangle vertices (x, y pixels from the top-left; u, v; rgba): one box
        behind all lines, then the glyphs."""
        h, w = self.pixels.shape
        quads = []
        x0, y0 = origin
        width = max((sum(self.advance.get(c, self.advance["?"]) for c in ln) for ln in lines),
                    default=0)
        sx, sy, sw, sh = self.cells["\0"]
        centre = ((sx + sw / 2) / w, (sy + sh / 2) / h)
        quads.append((x0 - 4, y0 - 3, width + 8, len(lines) * self.line_height + 6,
                      centre, centre, background))
        for row, line in enumerate(lines):
            x = x0
            y = y0 + row * self.line_height
            for ch in line:
                ch = ch if ch in self.cells and ch != "\0" else "?"
                cx, cy, cw, chh = self.cells[ch]
                quads.append((x - PAD, y, cw, chh, (cx / w, cy / h),
                              ((cx + cw) / w, (cy + chh) / h), colour))
                x += self.advance[ch]
        out = []
        for qx, qy, qw, qh, (u0, v0), (u1, v1), rgba in quads:
            corners = [(qx, qy, u0, v0), (qx + qw, qy, u1, v0), (qx, qy + qh, u0, v1),
                       (qx + qw, qy, u1, v0), (qx + qw, qy + qh, u1, v1), (qx, qy + qh, u0, v1)]
            out += [(*c, *rgba) for c in corners]
        return np.array(out, np.float32).reshape(-1, 8)


def overlay_lines(r) -> list[str]:
    """The overlay's text for renderer `r`: mode, filter, frame times, the VRAM ledger."""
    gpu = FrameTimer.summary(r.timer.gpu_ms)
    cpu = FrameTimer.summary(r.timer.cpu_ms)
    vram = r.vram()
    by = vram["by_category"]
    w, h = r.size
    gpu_text = f"{gpu['median']:.2f} ms (median of {len(r.timer.gpu_ms)})" if gpu else "-"
    cpu_text = f"{cpu['median']:.2f} ms" if cpu else "-"
    mean = f" ({r.mean_description()})" if r.accumulating() else ""
    formats = {"reference": r.formats.reference.upper(), "load": r.formats.load.upper(),
               "sample": f"latents, MLP {r.programs.precision.name}", "feedback": "tiles"}
    lines = [f"mode {r.mode} ({formats[r.mode]})   sample filter {r.filter}{mean}   {w}x{h}"
             + ("   DIFF vs reference" if r.diff else ""),
             f"GPU {gpu_text}   CPU {cpu_text}",
             f"VRAM {format_bytes(vram['total'])}: textures {format_bytes(by['textures'])}, "
             f"decoded {format_bytes(by['decoded'])}, latents {format_bytes(by['latents'])}, "
             f"weights {format_bytes(by['weights'])}, tiles {format_bytes(by['tiles'])}",
             f"  geometry {format_bytes(by['geometry'])}, framebuffers "
             f"{format_bytes(by['framebuffers'])}, other "
             f"{format_bytes(by['uniforms'] + by['environment'] + by['overlay'])}",
             f"driver VRAM in use: {format_bytes(r.driver_vram())}"]
    if r.mode == "feedback" and r.bindings.tiles is not None:
        lines.append(r.bindings.tiles.describe())
    return lines + list(r.status_lines)
