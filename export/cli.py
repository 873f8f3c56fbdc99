"""ntc-decode: decode a `.ntc` file back into one PNG, or one BCn DDS, per source texture."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import layout
from .decode.reference import FileDecoder, to_uint
from .errors import NTCError, one_line
from .format import NTCFormatError, read_ntc
from .images import DEFAULT_MAX_SIDE, encode_png
from .safe_files import atomic_write, check_writable_folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ntc-decode",
        description="Decode a .ntc file into one PNG per source texture, named after the source "
                    "file's stem, in the source's channel layout, bit depth and colour space "
                    "(what the GPU decoder must reproduce). Mip N>0 is written as STEM_mipN.png. "
                    "--format dds writes STEM.dds instead: the decoded mips from --mip down to "
                    "1x1 as the BCn texture an engine ships (BC7, sRGB for colour; BC5 X, Y for "
                    "normals, Z rebuilt where sampled; BC4 for one channel; BC5 for two), with a "
                    "DX10 header, 8 bits a channel.")
    p.add_argument("input", help=".ntc file")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--mip", type=int, default=0, help="mip level to decode (default 0)")
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIDE, metavar="N",
                   help="refuse to decode a mip wider or taller than N texels (default %(default)s;"
                        " the format allows 16384): a small file can declare a huge texture")
    p.add_argument("--backend", default="torch", choices=("torch", "gl"),
                   help="decoder: the PyTorch reference (default), or gl: the generated GLSL "
                        "decoder in a headless OpenGL 4.5 context (EGL; Mesa llvmpipe is fine)")
    p.add_argument("--format", default="png", choices=("png", "dds"),
                   help="png: one image per texture and mip (default); dds: one BCn DDS file per "
                        "texture with its mip chain, the blocks encoded on the CPU by bc7enc "
                        "(--backend torch) or on the GPU by the Slang encoder (--backend gl: "
                        "BC4 / BC5 / BC7, close to bc7enc's quality: bench/results/transcode.md)")
    return p


def encode_dds(model, first_mip: int, backend: str) -> list:
    """One export.bcn.dds.DDSTexture per texture: its decoded mips first_mip.. in BCn, encoded
    by bc7enc on the CPU (a progress bar) or by the GPU encoder with --backend gl."""
    if backend == "gl":
        from export.decode.gl_transcode import transcode_file_gl  # imports GL code lazily
        return transcode_file_gl(model, first_mip)
    from tqdm import tqdm

    from .bcn.codec import compress_texture
    decoder = FileDecoder.from_model(model)
    chain = [decoder.textures_mip(m) for m in range(first_mip, model.mips)]  # [mip][texture]
    texels = sum(img.shape[0] * img.shape[1] for level in chain for img in level)
    out = []
    with tqdm(total=texels, desc="BCn encode", unit="texel", unit_scale=True, leave=False,
              disable=None) as bar:
        for t, tex in enumerate(model.textures):
            levels = [to_uint(level[t], 8) for level in chain]
            out.append(compress_texture(levels, tex.role == "normal",
                                        tex.colorspace == "srgb", bar.update))
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = read_ntc(args.input)
        if not 0 <= args.mip < model.mips:
            raise NTCFormatError(f"--mip {args.mip}: the file has mips 0..{model.mips - 1}")
        w, h = layout.mip_size(model.width, model.height, args.mip)
        if max(w, h) > args.max_size:
            raise NTCFormatError(f"mip {args.mip} of {args.input} is {w}x{h}, larger than "
                                 f"--max-size {args.max_size} (raise it, or decode a smaller "
                                 f"--mip)")
        out = Path(args.output)
        if out.exists() and not out.is_dir():
            raise NTCFormatError(f"output {out} exists and is not a folder")
        if not out.exists():  # made only once the decode succeeded; its parent must take it
            parent = next((p for p in out.absolute().parents if p.exists()), None)
            if parent is None or not parent.is_dir():
                raise NTCFormatError(f"output {out}: {parent} is not a folder")
            check_writable_folder(parent, "folder of the output")
        else:
            check_writable_folder(out)
        if args.format == "dds":
            from .bcn.dds import to_bytes
            textures = encode_dds(model, args.mip, args.backend)
            out.mkdir(parents=True, exist_ok=True)
            for tex, dds in zip(model.textures, textures):
                atomic_write(out / f"{tex.name}.dds", to_bytes(dds))
                print(out / f"{tex.name}.dds")
            return 0
        if args.backend == "gl":
            from export.decode.gl_load import decode_file_gl  # imports GL code lazily
            images = decode_file_gl(model, args.mip)
        else:
            images = FileDecoder.from_model(model).textures_mip(args.mip)
        out.mkdir(parents=True, exist_ok=True)
        suffix = "" if args.mip == 0 else f"_mip{args.mip}"
        for tex, img in zip(model.textures, images):
            pixels = to_uint(img, tex.bit_depth)
            atomic_write(out / f"{tex.name}{suffix}.png", encode_png(pixels))
            print(out / f"{tex.name}{suffix}.png")
        return 0
    except NTCError as e:  # a bad file, a refused output folder, no GL 4.5 context
        print(f"ntc-decode: error: {one_line(e)}", file=sys.stderr)
        return 1
    except MemoryError:
        print("ntc-decode: error: not enough memory to decode this file (try a smaller --mip)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ntc-decode: interrupted; every file written so far is complete, none is partial",
              file=sys.stderr)
        return 130
    except OSError as e:
        print(f"ntc-decode: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
