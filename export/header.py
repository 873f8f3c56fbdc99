"""The JSON header of a .ntc file: written from a model, and parsed back with every field checked
(types, ranges, limits, consistency) before a byte of the chunks is trusted. Raises
NTCFormatError with a one-line reason."""
from __future__ import annotations

import math

from . import layout
from .errors import NTCError
from .model import (ACTIVATIONS, CHANNEL_KINDS, CONST, COPY, NORMAL_Z, STORED, WEIGHT_FORMATS,
                    ChannelInfo, LatentInfo, NTCModel, TextureInfo)

VERSION = 1
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


def header_json(model: NTCModel, chunk_table: list[dict]) -> dict:
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
                    "levels": [list(s) for s in lat.levels],
                    # only when set: files without it keep the bytes they had before it existed
                    **({"lod_blend": True} if lat.lod_blend else {})},
        "mlp": {"activation": model.activation, "weights": model.weight_format,
                "layers": [[i, o] for i, o in model.mlp_dims]},
        "extra": model.extra,
        "chunks": chunk_table,
    }


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


def parse_header(h: dict) -> tuple[NTCModel, list[dict]]:
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
    lod_blend = lat.get("lod_blend", False)  # absent in files written before it
    if not isinstance(lod_blend, bool):
        _fail("header: 'lod_blend' in latents has the wrong type")

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
                     latent=LatentInfo(features, bits, gs, hr, levels, lod_blend), latents=[],
                     layers=[],
                     activation=act, weight_format=wfmt,
                     extra=extra if isinstance(extra, dict) else {})
    return model, [(int(i), int(o)) for i, o in dims]
