"""The `.ntc` container: write atomically, read back with full validation.

Layout (little-endian):
    0   magic  b"NTCF"
    4   u32    format version
    8   u32    header length in bytes
    12  u32    CRC32 of the header
    16  UTF-8 JSON header (see `_header_json`), then zero padding to 16 bytes
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
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from . import layout
from .errors import NTCError
from .model import (ACTIVATIONS, CHANNEL_KINDS, CONST, COPY, NORMAL_Z, STORED, WEIGHT_FORMATS,
                    ChannelInfo, LatentInfo, LayerWeights, NTCModel, TextureInfo)
from .safe_files import read_regular_file

MAGIC = b"NTCF"
VERSION = 1
PREAMBLE = struct.Struct("<4sIII")
ALIGN = 16
MAX_SIZE = 16384
MAX_CHANNELS = 16
MAX_HEADER = 1 << 20
MAX_NAME = 200  # characters of a texture name (the decoder writes NAME_mipN.png)
# |weight| and |bias| after dequantisation: fp16's range. Hidden activations are bounded (hswish3
# lies in [-0.375, 3]), so with this bound every decode stays finite.
MAX_PARAMETER = 65504.0
ROLES = ("baseColor", "normal", "orm", "metallicRoughness", "roughness", "metallic", "occlusion",
         "emissive", "height", "opacity", "mask", "data")


class NTCFormatError(NTCError):
    """A `.ntc` file that is truncated, corrupt, of another version or internally inconsistent."""


# ----------------------------------------------------------------------------------------------
# bit packing

def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack small unsigned ints LSB-first: value i occupies bits [i*bits, (i+1)*bits)."""
    v = values.astype(np.uint8).ravel()
    if bits == 8:
        return v.tobytes()
    if bits == 4:
        if v.size % 2:
            v = np.append(v, np.uint8(0))
        return (v[0::2] | (v[1::2] << 4)).astype(np.uint8).tobytes()
    bitplanes = np.unpackbits(v[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(bitplanes.ravel(), bitorder="little").tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    raw = np.frombuffer(data, np.uint8)
    if bits == 8:
        return raw[:count].copy()
    if bits == 4:
        out = np.empty(raw.size * 2, np.uint8)
        out[0::2] = raw & 0x0F
        out[1::2] = raw >> 4
        return out[:count]
    flat = np.unpackbits(raw, bitorder="little")[: count * bits].reshape(count, bits)
    return (flat.astype(np.uint8) << np.arange(bits, dtype=np.uint8)).sum(axis=1, dtype=np.uint8)


def latent_to_texel_order(q: np.ndarray) -> np.ndarray:
    """[features, h, w] -> [layers, h, w, 4]: the order GL expects for an RGBA texture array."""
    f, h, w = q.shape
    return q.reshape(f // 4, 4, h, w).transpose(0, 2, 3, 1)


def latent_from_texel_order(t: np.ndarray) -> np.ndarray:
    layers, h, w, _ = t.shape
    return t.transpose(0, 3, 1, 2).reshape(layers * 4, h, w)


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


def _header_json(model: NTCModel, chunk_table: list[dict]) -> dict:
    lat = model.latent
    return {
        "format": "ntc",
        "version": VERSION,
        "width": model.width,
        "height": model.height,
        "mips": model.mips,
        "textures": [
            {"name": t.name, "file": t.file, "role": t.role, "colorspace": t.colorspace,
             "bit_depth": t.bit_depth, "weight": t.weight,
             "channels": [c.to_json() for c in t.channels]}
            for t in model.textures
        ],
        "stored_channels": model.stored_channels,
        "latents": {"features": lat.features, "bits": lat.bits, "grid_scale": lat.grid_scale,
                    "hr_sampling": lat.hr_sampling, "range": [-1.0, 1.0],
                    "container_bits": layout.container_bits(lat.bits),
                    "levels": [list(s) for s in lat.levels]},
        "mlp": {"activation": model.activation, "weights": model.weight_format,
                "layers": [[i, o] for i, o in model.mlp_dims]},
        "extra": model.extra,
        "chunks": chunk_table,
    }


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
        header = json.dumps(_header_json(model, table), separators=(",", ":")).encode()
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


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_ntc(path: str | os.PathLike, model: NTCModel) -> int:
    data = to_bytes(model)
    atomic_write(path, data)
    return len(data)


# ----------------------------------------------------------------------------------------------
# reading and validation

def _fail(msg: str):
    raise NTCFormatError(msg)


def _req(d: dict, key: str, kind, where: str):
    if not isinstance(d, dict) or key not in d:
        _fail(f"header: missing '{key}' in {where}")
    v = d[key]
    ok = isinstance(v, kind) and not (kind in (int, (int, float)) and isinstance(v, bool))
    if not ok:
        _fail(f"header: '{key}' in {where} has the wrong type")
    return v


def _plain_file_stem(name: str) -> bool:
    """A texture name the decoder can write as NAME.png on any system: no separators, no control
    characters, no lone surrogates (not encodable), not '.' or '..', at most MAX_NAME long."""
    return 0 < len(name) <= MAX_NAME and name not in (".", "..") \
        and not any(c in "/\\" or ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF
                    for c in name)


def _parse_channel(c, t_name: str, i: int, stored: int) -> ChannelInfo:
    where = f"texture '{t_name}' channel {i}"
    kind = _req(c, "kind", str, where)
    if kind not in CHANNEL_KINDS:
        _fail(f"header: unknown channel kind '{kind}' in {where}")
    if kind == STORED:
        idx = _req(c, "index", int, where)
        if not 0 <= idx < stored:
            _fail(f"header: {where} reads stored channel {idx} of {stored}")
        return ChannelInfo(STORED, index=idx)
    if kind == CONST:
        v = float(_req(c, "value", (int, float), where))
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            _fail(f"header: {where} constant {v} outside [0, 1]")
        return ChannelInfo(CONST, value=v)
    if kind == COPY:
        of = _req(c, "of", int, where)
        if not 0 <= of < i:
            _fail(f"header: {where} copies channel {of}, which is not an earlier channel")
        return ChannelInfo(COPY, index=of)
    if i != 2:
        _fail(f"header: {where}: a rebuilt normal Z must be channel 2")
    return ChannelInfo(NORMAL_Z)


def _parse_header(h: dict) -> tuple[NTCModel, list[dict]]:
    if not isinstance(h, dict) or h.get("format") != "ntc":
        _fail("header: not an ntc header")
    if h.get("version") != VERSION:
        _fail(f"header: version {h.get('version')!r}, this reader understands {VERSION}")
    width, height = _req(h, "width", int, "file"), _req(h, "height", int, "file")
    if not (1 <= width <= MAX_SIZE and 1 <= height <= MAX_SIZE):
        _fail(f"header: size {width}x{height} outside 1..{MAX_SIZE}")
    if _req(h, "mips", int, "file") != layout.mip_count(width, height):
        _fail("header: mip count does not match the size")
    stored = _req(h, "stored_channels", int, "file")
    if not 1 <= stored <= MAX_CHANNELS:
        _fail(f"header: {stored} stored channels, expected 1..{MAX_CHANNELS}")

    textures = []
    used = set()
    for ti, t in enumerate(_req(h, "textures", list, "file")):
        where = f"texture {ti}"
        name = _req(t, "name", str, where)
        if not _plain_file_stem(name):
            _fail(f"header: texture name {name!r} is not a plain file stem")
        cs = _req(t, "colorspace", str, where)
        if cs not in ("srgb", "linear"):
            _fail(f"header: texture '{name}' colour space '{cs}'")
        depth = _req(t, "bit_depth", int, where)
        if depth not in (8, 16):
            _fail(f"header: texture '{name}' bit depth {depth}")
        role = _req(t, "role", str, where)
        if role not in ROLES:
            _fail(f"header: texture '{name}' has unknown role '{role}'")
        chans = _req(t, "channels", list, where)
        if not 1 <= len(chans) <= 4:
            _fail(f"header: texture '{name}' has {len(chans)} channels, expected 1..4")
        infos = [_parse_channel(c, name, i, stored) for i, c in enumerate(chans)]
        used.update(c.index for c in infos if c.kind == STORED)
        weight = t.get("weight", 1.0)
        if type(weight) not in (int, float) or not (math.isfinite(weight) and weight > 0):
            _fail(f"header: texture '{name}' loss weight {weight!r} is not a positive number")
        textures.append(TextureInfo(name=name, file=str(t.get("file", name)), role=role,
                                    colorspace=cs, bit_depth=depth, channels=infos,
                                    weight=float(weight)))
    if not textures:
        _fail("header: no textures")
    if len({t.name for t in textures}) != len(textures):
        _fail("header: two textures share a name")
    if used != set(range(stored)):
        _fail("header: stored channels and texture channels disagree")

    lat = _req(h, "latents", dict, "file")
    features = _req(lat, "features", int, "latents")
    bits = _req(lat, "bits", int, "latents")
    gs = float(_req(lat, "grid_scale", (int, float), "latents"))
    hr = _req(lat, "hr_sampling", str, "latents")
    if features % 4 or not 4 <= features <= 32:
        _fail(f"header: {features} latent features, expected a multiple of 4 in 4..32")
    if not 2 <= bits <= 8:
        _fail(f"header: {bits}-bit latents, expected 2..8")
    if not (math.isfinite(gs) and 0.5 <= gs <= 64):
        _fail(f"header: grid scale {gs} outside 0.5..64")
    if hr not in layout.HR_SAMPLINGS:
        _fail(f"header: unknown high-res sampling '{hr}'")
    levels = layout.latent_level_sizes(width, height, gs)
    if [tuple(x) if isinstance(x, list) else x for x in _req(lat, "levels", list, "latents")] != levels:
        _fail("header: latent level sizes do not match the size and grid scale")

    mlp = _req(h, "mlp", dict, "file")
    act = _req(mlp, "activation", str, "mlp")
    wfmt = _req(mlp, "weights", str, "mlp")
    if act not in ACTIVATIONS:
        _fail(f"header: unknown activation '{act}'")
    if wfmt not in WEIGHT_FORMATS:
        _fail(f"header: unknown weight format '{wfmt}'")
    dims = _req(mlp, "layers", list, "mlp")
    if not 1 <= len(dims) <= 8:
        _fail(f"header: {len(dims)} MLP layers, expected 1..8")
    prev = layout.mlp_input_size(features, hr)
    for li, d in enumerate(dims):
        if (not isinstance(d, list) or len(d) != 2 or not all(type(x) is int for x in d)
                or not 1 <= d[1] <= 256):
            _fail(f"header: MLP layer {li} dimensions {d!r}")
        if d[0] != prev:
            _fail(f"header: MLP layer {li} takes {d[0]} inputs, the previous stage gives {prev}")
        prev = d[1]
    if prev != stored:
        _fail(f"header: MLP gives {prev} outputs for {stored} stored channels")

    extra = h.get("extra", {})
    model = NTCModel(width=width, height=height, textures=textures, stored_channels=stored,
                     latent=LatentInfo(features, bits, gs, hr, levels), latents=[], layers=[],
                     activation=act, weight_format=wfmt,
                     extra=extra if isinstance(extra, dict) else {})
    return model, [(int(i), int(o)) for i, o in dims]


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
        model, dims = _parse_header(header)
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
