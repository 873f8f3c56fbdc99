"""The `.ntc` container: write atomically, read back with full validation.

Layout (little-endian):
    0   magic  b"NTCF"
    4   u32    format version
    8   u32    header length in bytes
    12  u32    CRC32 of the header
    16  UTF-8 JSON header (export/header.py), then zero padding to 16 bytes
    ..  binary chunks, each 16-byte aligned, listed in the header with offset, size and CRC32:
        latent.J        latent level J: values bit-packed LSB-first in texel order
                        (layer, row, column, RGBA); at 4 bits this is exactly GL_RGBA4 with
                        GL_UNSIGNED_SHORT_4_4_4_4_REV, at 8 bits GL_RGBA8, so those upload as is
        mlp.I.weight    layer I weights, row-major [out_pad][in_pad] (int8, or fp16), zero padded to
                        multiples of 4 so rows pack into uint32 / vec4 (std430-friendly)
        mlp.I.scale     float32 [out_pad] per-output scale (int8 weights only)
        mlp.I.bias      float32 [out_pad]
The file ends exactly at the end of its last chunk. No pickle, no code, only JSON and raw arrays.
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

from . import layout
from .bitpack import latent_from_texel_order, latent_to_texel_order, pack_bits, unpack_bits
from .header import (MAX_HEADER, MAX_PARAMETER, VERSION, NTCFormatError, _fail, _req,
                     header_json, parse_header)
from .model import LayerWeights, NTCModel
from .safe_files import atomic_write, read_regular_file

MAGIC = b"NTCF"
PREAMBLE = struct.Struct("<4sIII")
ALIGN = 16


# ----------------------------------------------------------------------------------------------
# writing

def _chunk_arrays(model: NTCModel) -> list[tuple[str, bytes]]:
    chunks = []
    for j, q in enumerate(model.latents):
        chunks.append((f"latent.{j}", pack_bits(latent_to_texel_order(q), model.latent.bits)))
    for i, lw in enumerate(model.layers):
        out_n, in_n = lw.weight.shape
        op, ip = layout.pad4(out_n), layout.pad4(in_n)
        dtype = np.int8 if model.weight_format == "int8" else np.float16
        w = np.zeros((op, ip), dtype)
        w[:out_n, :in_n] = lw.weight
        chunks.append((f"mlp.{i}.weight", w.astype("<" + w.dtype.str[1:]).tobytes()))
        if model.weight_format == "int8":
            s = np.zeros(op, "<f4")
            s[:out_n] = lw.scale
            chunks.append((f"mlp.{i}.scale", s.tobytes()))
        b = np.zeros(op, "<f4")
        b[:out_n] = lw.bias
        chunks.append((f"mlp.{i}.bias", b.tobytes()))
    return chunks


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def to_bytes(model: NTCModel) -> bytes:
    """Serialise a model; the result always passes `from_bytes`."""
    validate_model(model)
    chunks = _chunk_arrays(model)
    # Offsets depend on the header length, which depends on the offsets: iterate to a fixed point.
    header_len_guess = 0
    for _ in range(8):
        offset = _align(PREAMBLE.size + header_len_guess)
        table = []
        for name, data in chunks:
            table.append({"name": name, "offset": offset, "size": len(data),
                          "crc32": zlib.crc32(data)})
            offset = _align(offset + len(data))
        header = json.dumps(header_json(model, table), separators=(",", ":")).encode()
        if len(header) == header_len_guess:
            break
        header_len_guess = len(header)
    else:  # pragma: no cover - the header length converges in two or three passes
        raise RuntimeError("header length did not converge")
    out = bytearray(PREAMBLE.pack(MAGIC, VERSION, len(header), zlib.crc32(header)))
    out += header
    for (name, data), entry in zip(chunks, table):
        out += b"\0" * (entry["offset"] - len(out))
        out += data
    return bytes(out)


def write_ntc(path: str | os.PathLike, model: NTCModel) -> int:
    data = to_bytes(model)
    atomic_write(path, data)
    return len(data)


# ----------------------------------------------------------------------------------------------
# reading and validation

def _expected_chunks(model: NTCModel, dims) -> dict[str, int]:
    exp = {}
    for j, s in enumerate(model.latent.levels):
        exp[f"latent.{j}"] = layout.latent_level_bytes(s, model.latent.features, model.latent.bits)
    wbytes = 1 if model.weight_format == "int8" else 2
    for i, (n_in, n_out) in enumerate(dims):
        op, ip = layout.pad4(n_out), layout.pad4(n_in)
        exp[f"mlp.{i}.weight"] = op * ip * wbytes
        if model.weight_format == "int8":
            exp[f"mlp.{i}.scale"] = op * 4
        exp[f"mlp.{i}.bias"] = op * 4
    return exp


def from_bytes(data: bytes) -> NTCModel:
    """Parse and validate; raises NTCFormatError with a one-line reason on any problem."""
    if len(data) < PREAMBLE.size:
        _fail("truncated: shorter than the file preamble")
    magic, version, hlen, hcrc = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        _fail("not an .ntc file (bad magic)")
    if version != VERSION:
        _fail(f"format version {version}, this reader understands {VERSION}")
    if hlen > MAX_HEADER or PREAMBLE.size + hlen > len(data):
        _fail("truncated or corrupt header length")
    header_bytes = data[PREAMBLE.size:PREAMBLE.size + hlen]
    if zlib.crc32(header_bytes) != hcrc:
        _fail("header checksum mismatch (corrupt file)")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: also ints > 4300 digits
        _fail(f"header is not valid JSON ({type(e).__name__})")
    try:
        model, dims = parse_header(header)
    except OverflowError:  # an integer too large for a float where a number is expected
        _fail("header: a number is out of range")

    expected = _expected_chunks(model, dims)
    table = _req(header, "chunks", list, "file")
    chunks: dict[str, bytes] = {}
    end = _align(PREAMBLE.size + hlen)
    for entry in table:
        name = _req(entry, "name", str, "chunk table")
        off = _req(entry, "offset", int, f"chunk '{name}'")
        size = _req(entry, "size", int, f"chunk '{name}'")
        crc = _req(entry, "crc32", int, f"chunk '{name}'")
        if name not in expected or name in chunks:
            _fail(f"unexpected or repeated chunk '{name}'")
        if size != expected[name]:
            _fail(f"chunk '{name}' is {size} bytes, the header implies {expected[name]}")
        if off % ALIGN or off < end:
            _fail(f"chunk '{name}' is misaligned or overlaps the previous one")
        if off + size > len(data):
            _fail(f"truncated: chunk '{name}' runs past the end of the file")
        blob = data[off:off + size]
        if zlib.crc32(blob) != crc:
            _fail(f"chunk '{name}' checksum mismatch (corrupt file)")
        chunks[name] = blob
        end = off + size
    missing = set(expected) - set(chunks)
    if missing:
        _fail(f"missing chunk '{sorted(missing)[0]}'")
    if end != len(data):
        _fail(f"{len(data) - end} unexpected bytes after the last chunk")

    lat = model.latent
    for j, (w, h) in enumerate(lat.levels):
        vals = unpack_bits(chunks[f"latent.{j}"], lat.bits, w * h * lat.features)
        model.latents.append(latent_from_texel_order(vals.reshape(lat.layers, h, w, 4)))
    for i, (n_in, n_out) in enumerate(dims):
        ip, op = layout.pad4(n_in), layout.pad4(n_out)
        if model.weight_format == "int8":
            w = np.frombuffer(chunks[f"mlp.{i}.weight"], np.int8).reshape(op, ip)
            scale = np.frombuffer(chunks[f"mlp.{i}.scale"], "<f4")[:n_out].copy()
        else:
            w = np.frombuffer(chunks[f"mlp.{i}.weight"], "<f2").reshape(op, ip)
            scale = None
        bias = np.frombuffer(chunks[f"mlp.{i}.bias"], "<f4")[:n_out].copy()
        weights = w[:n_out, :n_in].copy()
        if not np.isfinite(bias).all() or (scale is not None and not np.isfinite(scale).all()) \
                or not np.isfinite(weights.astype(np.float32)).all():
            _fail(f"MLP layer {i} holds non-finite numbers")
        layer = LayerWeights(weights, scale, bias)
        with np.errstate(over="ignore"):
            deq = layer.dequantized()
        if not (np.isfinite(deq).all() and np.abs(deq).max(initial=0) <= MAX_PARAMETER
                and np.abs(bias).max(initial=0) <= MAX_PARAMETER):
            _fail(f"MLP layer {i}: a weight or bias is beyond +-{MAX_PARAMETER:g}")
        model.layers.append(layer)
    return model


def read_ntc(path: str | os.PathLike) -> NTCModel:
    try:
        data = read_regular_file(path)
    except IsADirectoryError:
        _fail(f"{path} is a folder, not an .ntc file")
    except OSError as e:
        _fail(f"cannot read {path}: {e.strerror}")
    try:
        return from_bytes(data)
    except NTCFormatError as e:
        raise NTCFormatError(f"{path}: {e}") from None


def validate_model(model: NTCModel) -> None:
    """Check an in-memory model by the same rules the reader applies to a file."""
    lat = model.latent
    if lat.levels != layout.latent_level_sizes(model.width, model.height, lat.grid_scale):
        raise ValueError("latent level sizes do not match the texture size and grid scale")
    if len(model.latents) != len(lat.levels):
        raise ValueError("one latent array per level expected")
    for q, (w, h) in zip(model.latents, lat.levels):
        if q.shape != (lat.features, h, w) or q.dtype != np.uint8 or int(q.max(initial=0)) > lat.qmax:
            raise ValueError("latent array has the wrong shape, dtype or range")
    for lw in model.layers:
        if model.weight_format == "int8" and (lw.weight.dtype != np.int8 or lw.scale is None):
            raise ValueError("int8 weights need int8 arrays and scales")
