"""ntc-decode: decode a `.ntc` file back into one PNG per source texture."""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import imageio.v3 as iio

from .decoder import FileDecoder, to_uint
from .format import NTCFormatError, atomic_write, read_ntc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ntc-decode",
        description="Decode a .ntc file into one PNG per source texture, named after the source "
                    "file's stem, in the source's channel layout, bit depth and colour space "
                    "(what the GPU decoder must reproduce). Mip N>0 is written as STEM_mipN.png.")
    p.add_argument("input", help=".ntc file")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--mip", type=int, default=0, help="mip level to decode (default 0)")
    p.add_argument("--backend", default="torch", choices=("torch",),
                   help="decoder: the PyTorch reference (default)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = read_ntc(args.input)
        if not 0 <= args.mip < model.mips:
            raise NTCFormatError(f"--mip {args.mip}: the file has mips 0..{model.mips - 1}")
        out = Path(args.output)
        if out.exists() and not out.is_dir():
            raise NTCFormatError(f"output {out} exists and is not a folder")
        images = FileDecoder.from_model(model).textures_mip(args.mip)
        out.mkdir(parents=True, exist_ok=True)
        suffix = "" if args.mip == 0 else f"_mip{args.mip}"
        for tex, img in zip(model.textures, images):
            pixels = to_uint(img, tex.bit_depth)
            if pixels.shape[2] == 1:
                pixels = pixels[:, :, 0]
            buf = io.BytesIO()
            iio.imwrite(buf, pixels, extension=".png")
            atomic_write(out / f"{tex.name}{suffix}.png", buf.getvalue())
            print(out / f"{tex.name}{suffix}.png")
        return 0
    except NTCFormatError as e:
        print(f"ntc-decode: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"ntc-decode: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
