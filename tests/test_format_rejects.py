"""The .ntc reader rejects every damaged or inconsistent file with NTCFormatError, never any other
exception: truncations, flipped bytes, headers that are valid JSON but say something impossible,
and fuzzed bytes and header text."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from export.format import PREAMBLE, NTCFormatError, from_bytes, to_bytes
from export.decode.reference import FileDecoder
from export.model import CONST, COPY, NORMAL_Z, STORED, NTCModel
from ntc_files import (MIXED_TEXTURES, ROUND_TRIP_CASES, assemble, assert_models_equal, split,
                       untrained, with_header_bytes)


# ----------------------------------------------------------------------------------------------
# damaged files

def _reject(data: bytes) -> NTCFormatError:
    with pytest.raises(NTCFormatError) as e:
        from_bytes(data)
    assert "\n" not in str(e.value)
    return e.value


def test_rejects_empty():
    _reject(b"")


def test_rejects_bad_magic(trained):
    _reject(b"NTCX" + trained.data[4:])
    _reject(b"\x89PNG\r\n\x1a\n" + trained.data[8:])


@pytest.mark.parametrize("version", [0, 2, 0xFFFFFFFF])
def test_rejects_other_version(trained, version):
    data = bytearray(trained.data)
    struct.pack_into("<I", data, 4, version)
    _reject(bytes(data))


def test_rejects_every_truncation(trained):
    data = trained.data
    cuts = sorted(set(range(0, len(data), 50)) | {1, 15, 16, 17, len(data) - 1})
    for n in cuts:
        _reject(data[:n])


def test_rejects_flipped_header_byte(trained):
    data = trained.data
    _, _, hlen, _ = PREAMBLE.unpack_from(data)
    for pos in (PREAMBLE.size, PREAMBLE.size + hlen // 2, PREAMBLE.size + hlen - 1):
        bad = bytearray(data)
        bad[pos] ^= 0x04
        _reject(bytes(bad))


def test_rejects_flipped_byte_in_every_chunk(trained):
    header, _ = split(trained.data)
    assert len(header["chunks"]) >= 2 + 3 * 4  # latent levels + weight/scale/bias per layer
    for entry in header["chunks"]:
        for pos in (entry["offset"], entry["offset"] + entry["size"] // 2,
                    entry["offset"] + entry["size"] - 1):
            bad = bytearray(trained.data)
            bad[pos] ^= 0x80
            _reject(bytes(bad))


@pytest.mark.parametrize("extra", [b"\0", b"\0" * 16, b"garbage!"])
def test_rejects_trailing_bytes(trained, extra):
    _reject(trained.data + extra)


def test_rejects_corrupt_header_length(trained):
    data = bytearray(trained.data)
    struct.pack_into("<I", data, 8, 0xFFFFFFF0)
    _reject(bytes(data))
    struct.pack_into("<I", data, 8, 0)
    _reject(bytes(data))


# ----------------------------------------------------------------------------------------------
# headers that are valid JSON (CRC correct) but say something inconsistent

def _set(path, value):
    def edit(h, chunks):
        node = h
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value
        return h
    return edit


def _texname(name):
    return _set(("textures", 0, "name"), name)


def _drop_chunk(name):
    def edit(h, chunks):
        h["chunks"] = [e for e in h["chunks"] if e["name"] != name]
        return h
    return edit


def _chunk_bytes(name, make):
    def edit(h, chunks):
        chunks[name] = make(chunks[name])
        return h
    return edit


def _dup_texture_name(h, chunks):
    h["textures"][1]["name"] = h["textures"][0]["name"]
    return h


def _dup_chunk(h, chunks):
    h["chunks"].append(dict(h["chunks"][0]))
    return h


def _unknown_chunk(h, chunks):
    chunks["extra.blob"] = b"\0" * 16
    h["chunks"].append({"name": "extra.blob"})
    return h


def _five_channels(h, chunks):
    h["textures"][0]["channels"].append({"kind": CONST, "value": 0.5})
    h["textures"][0]["channels"].append({"kind": CONST, "value": 0.5})
    return h


def _stored_unused(h, chunks):
    # channel 0 of the base colour now duplicates stored channel 1: stored 0 is never read
    h["textures"][0]["channels"][0] = {"kind": STORED, "index": 1}
    return h


def _stored_out_of_range(h, chunks):
    h["textures"][0]["channels"][0]["index"] = h["stored_channels"]
    return h


def _nan_f32(blob):
    return np.full(len(blob) // 4, np.nan, "<f4").tobytes()


def _inf_f32(blob):
    return np.full(len(blob) // 4, np.inf, "<f4").tobytes()


def _del(key):
    def edit(h, chunks):
        del h[key]
        return h
    return edit


BAD_HEADERS = {
    "format_name": _set(("format",), "zip"),
    "header_version": _set(("version",), 2),
    "missing_latents": _del("latents"),
    "missing_mlp": _del("mlp"),
    "not_an_object": lambda h, c: [h],
    "width_zero": _set(("width",), 0),
    "width_huge": _set(("width",), 20000),
    "width_bool": _set(("width",), True),
    "width_float": _set(("width",), 40.0),
    "width_string": _set(("width",), "40"),
    "mips_wrong": _set(("mips",), lambda v: v + 1),
    "level_size_wrong": _set(("latents", "levels", 0, 0), lambda v: v + 1),
    "level_missing": _set(("latents", "levels"), lambda v: v[:-1]),
    "grid_scale_mismatch": _set(("latents", "grid_scale"), 2.0),
    "grid_scale_nan": _set(("latents", "grid_scale"), float("nan")),
    "bits_9": _set(("latents", "bits"), 9),
    "bits_1": _set(("latents", "bits"), 1),
    "features_not_multiple_of_4": _set(("latents", "features"), 6),
    "features_too_many": _set(("latents", "features"), 36),
    "hr_sampling_unknown": _set(("latents", "hr_sampling"), "nearest"),
    "lod_blend_not_bool": _set(("latents", "lod_blend"), 1),
    "stored_index_out_of_range": _stored_out_of_range,
    "stored_index_negative": _set(("textures", 0, "channels", 0, "index"), -1),
    "stored_channels_unused": _stored_unused,
    "stored_channels_count": _set(("stored_channels",), lambda v: v + 1),
    "stored_channels_zero": _set(("stored_channels",), 0),
    "unknown_role": _set(("textures", 0, "role"), "glossiness"),
    "unknown_colorspace": _set(("textures", 0, "colorspace"), "rgb"),
    "bit_depth_12": _set(("textures", 0, "bit_depth"), 12),
    "unknown_channel_kind": _set(("textures", 2, "channels", 2, "kind"), "magic"),
    "copy_not_an_earlier_channel": _set(("textures", 2, "channels", 2), {"kind": COPY, "of": 2}),
    "normal_z_not_channel_2": _set(("textures", 1, "channels", 0), {"kind": NORMAL_Z}),
    "const_above_1": _set(("textures", 2, "channels", 2, "value"), 1.5),
    "const_nan": _set(("textures", 2, "channels", 2, "value"), float("nan")),
    "const_inf": _set(("textures", 2, "channels", 2, "value"), float("inf")),
    "five_channels": _five_channels,
    "no_channels": _set(("textures", 0, "channels"), []),
    "no_textures": _set(("textures",), []),
    "textures_not_list": _set(("textures",), {"a": 1}),
    "duplicate_texture_names": _dup_texture_name,
    "name_slash": _texname("sub/evil"),
    "name_backslash": _texname("sub\\evil"),
    "name_dotdot": _texname(".."),
    "name_dot": _texname("."),
    "name_parent_path": _texname("../../etc/passwd"),
    "name_empty": _texname(""),
    "name_nul": _texname("a\0b"),
    "mlp_layer_dims_mismatch": _set(("mlp", "layers", 1, 0), lambda v: v + 1),
    "mlp_first_layer_inputs": _set(("mlp", "layers", 0, 0), lambda v: v + 4),
    "mlp_outputs_not_stored": _set(("mlp", "layers", -1, 1), lambda v: v + 1),
    "mlp_layer_shape": _set(("mlp", "layers", 0), lambda v: v[:1]),
    "mlp_layer_float": _set(("mlp", "layers", 0), lambda v: [float(v[0]), v[1]]),
    "mlp_no_layers": _set(("mlp", "layers"), []),
    "mlp_activation": _set(("mlp", "activation"), "relu"),
    "mlp_weight_format": _set(("mlp", "weights"), "int4"),
    "missing_chunk": _drop_chunk("mlp.0.bias"),
    "missing_latent_chunk": _drop_chunk("latent.0"),
    "repeated_chunk": _dup_chunk,
    "unknown_chunk": _unknown_chunk,
    "short_chunk": _chunk_bytes("latent.0", lambda b: b[:-1]),
    "long_chunk": _chunk_bytes("mlp.1.weight", lambda b: b + b"\0\0\0\0"),
    "nan_bias": _chunk_bytes("mlp.0.bias", _nan_f32),
    "inf_scale": _chunk_bytes("mlp.2.scale", _inf_f32),
    "chunks_not_list": _set(("chunks",), {}),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_rejects_inconsistent_header(trained, case):
    header, chunks = split(trained.data)
    header = BAD_HEADERS[case](header, chunks)
    _reject(assemble(header, chunks))


def test_rejects_misaligned_and_overlapping_chunks(trained):
    header, chunks = split(trained.data)
    data = assemble(header, chunks)
    h2, _ = split(data)
    # point chunk 1 at chunk 0's offset (overlap) and at an odd offset (misaligned); CRC fixed
    for offset in (h2["chunks"][0]["offset"], h2["chunks"][1]["offset"] + 1):
        h = json.loads(json.dumps(h2))
        h["chunks"][1]["offset"] = offset
        _, _, hlen, _ = PREAMBLE.unpack_from(data)
        hb = json.dumps(h, separators=(",", ":")).encode()
        assert len(hb) == hlen  # same length: every other chunk stays where the table says
        _reject(with_header_bytes(data, hb))


def test_rejects_fp16_weights_that_are_not_finite():
    cfg, w, h = ROUND_TRIP_CASES["bits7_fp16"]
    data = to_bytes(untrained(cfg, w, h, MIXED_TEXTURES, stored=7))
    header, chunks = split(data)
    chunks["mlp.0.weight"] = np.full(len(chunks["mlp.0.weight"]) // 2, np.inf, "<f2").tobytes()
    _reject(assemble(header, chunks))


@pytest.mark.parametrize("header_bytes", [
    b"", b"\xff\xfe\xfd{}", b"{not json", b"null", b"[]", b'"ntc"', b"1e999",
    b"[" * 100000 + b"]" * 100000,
], ids=["empty", "not_utf8", "not_json", "null", "list", "string", "number", "deep_nesting"])
def test_rejects_header_that_is_not_an_ntc_object(trained, header_bytes):
    _reject(with_header_bytes(trained.data, header_bytes))


@pytest.mark.parametrize("field, path", [
    ("weight", ("textures", 0, "weight")),
    ("grid_scale", ("latents", "grid_scale")),
    ("const", ("textures", 2, "channels", 2, "value")),
])
def test_rejects_integer_too_large_for_a_float(trained, field, path):
    """A 400-digit integer is valid JSON; float() of it raises OverflowError, which must surface
    as NTCFormatError."""
    header, chunks = split(trained.data)
    header = _set(path, 10 ** 400)(header, chunks)
    _reject(assemble(header, chunks))


def test_rejects_integer_too_long_to_parse(trained):
    """Python refuses to parse integers over 4300 digits (ValueError, not JSONDecodeError)."""
    header, chunks = split(trained.data)
    header["extra"] = {"n": 0}
    data = assemble(header, chunks, text=lambda b: b.replace(b'"n":0', b'"n":' + b"9" * 5000))
    _reject(data)


# ----------------------------------------------------------------------------------------------
# fuzzing: anything but a model or NTCFormatError is a bug

def _accept_or_format_error(data: bytes) -> None:
    try:
        model = from_bytes(data)
    except NTCFormatError:
        return
    assert isinstance(model, NTCModel)
    # whatever the reader accepts is a consistent model: it serialises and reads back identically
    assert_models_equal(model, from_bytes(to_bytes(model)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_random_bytes_and_truncation(trained, data):
    buf = bytearray(trained.data)
    for _ in range(data.draw(st.integers(0, 6))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        buf = buf[:data.draw(st.integers(0, len(buf)))]
    _accept_or_format_error(bytes(buf))


_JSONISH = list(b'0123456789-+.eE,:{}[]" \\/truefalsn')


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_header_text_with_valid_crc(trained, data):
    """Edit the JSON text of the header (same length, CRC fixed up) so the edits get past the
    checksum and reach the header's validation."""
    _, _, hlen, _ = PREAMBLE.unpack_from(trained.data)
    header = bytearray(trained.data[PREAMBLE.size:PREAMBLE.size + hlen])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, hlen - 1))
        header[pos] = data.draw(st.sampled_from(_JSONISH))
    _accept_or_format_error(with_header_bytes(trained.data, bytes(header)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_header_numbers_with_valid_crc(trained, data):
    """Change digits only: the header stays valid JSON, so every edit reaches the semantic checks
    (sizes, indices, offsets, chunk CRCs recorded in the header)."""
    _, _, hlen, _ = PREAMBLE.unpack_from(trained.data)
    header = bytearray(trained.data[PREAMBLE.size:PREAMBLE.size + hlen])
    digits = [i for i, b in enumerate(header) if 48 <= b <= 57]
    for _ in range(data.draw(st.integers(1, 3))):
        header[data.draw(st.sampled_from(digits))] = data.draw(st.integers(48, 57))
    _accept_or_format_error(with_header_bytes(trained.data, bytes(header)))


# ----------------------------------------------------------------------------------------------
# what a decoder will do with the file: write NAME.png, run the MLP

@pytest.mark.parametrize("name", ["x\ud800", "a\nb", "a\tb", "del\x7f", "n" * 201])
def test_rejects_names_no_file_system_can_take(trained, name):
    header, chunks = split(trained.data)
    assert "plain file stem" in str(_reject(assemble(_texname(name)(header, chunks), chunks)))


@pytest.mark.parametrize("scale", [3.0e38, 1.0e6])
def test_rejects_weights_that_overflow_or_exceed_fp16_range(trained, scale):
    """Each scale is finite, but times an int8 weight it overflows float32 (3e38) or leaves fp16's
    range (1e6 * 127): decoding would give inf/NaN or all-black texels."""
    header, chunks = split(trained.data)
    chunks["mlp.1.scale"] = np.full(len(chunks["mlp.1.scale"]) // 4, scale, "<f4").tobytes()
    assert "beyond" in str(_reject(assemble(header, chunks)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_names_and_parameters(trained, data):
    """Any name, any float32 scale and bias: accepted files have writable names and decode to
    finite values."""
    header, chunks = split(trained.data)
    name = data.draw(st.text(min_size=0, max_size=12))
    header = _texname(name)(header, chunks)
    layer = data.draw(st.integers(0, len(trained.model.layers) - 1))
    for part in ("scale", "bias"):
        n = len(chunks[f"mlp.{layer}.{part}"]) // 4
        vals = data.draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True),
                                  min_size=n, max_size=n))
        chunks[f"mlp.{layer}.{part}"] = np.array(vals, "<f4").tobytes()
    try:
        model = from_bytes(assemble(header, chunks))
    except NTCFormatError:
        return
    (model.textures[0].name + ".png").encode("utf-8")
    dec = FileDecoder.from_model(model)
    assert np.isfinite(dec.stored_mip(model.mips - 1).numpy()).all()
