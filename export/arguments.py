"""Command-line argument types the CLIs and benches share (argparse `type=` callables: a bad value
becomes argparse's one-line usage error and exit status 2)."""
from __future__ import annotations

import argparse

from .header import MAX_SIZE


def image_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H), each 1..MAX_SIZE (the .ntc format's limit)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected WxH, e.g. 512x512") from None
    if not (1 <= w <= MAX_SIZE and 1 <= h <= MAX_SIZE):
        raise argparse.ArgumentTypeError(f"{text}: width and height must be 1..{MAX_SIZE}")
    return w, h
