"""The .ntc container: bit packing, exact round trips, reading and writing files on disk, and the
names and numbers a decoder will use. Damaged and inconsistent files: test_format_rejects.py."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from export import layout
from export.bitpack import pack_bits, unpack_bits
from export.format import NTCFormatError, from_bytes, read_ntc, to_bytes, write_ntc
from ntc_files import (MIXED_TEXTURES, ROUND_TRIP_CASES, assemble, assert_models_equal, split,
                       untrained)


# ----------------------------------------------------------------------------------------------
# bit packing

@settings(max_examples=150, deadline=None)
@given(bits=st.integers(2, 8), data=st.data())
def test_pack_unpack_round_trip(bits, data):
    values = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), max_size=300)), np.uint8)
    packed = pack_bits(values, bits)
    assert len(packed) == (values.size * bits + 7) // 8
    out = unpack_bits(packed, bits, values.size)
    assert out.dtype == np.uint8
    assert np.array_equal(out, values)


@pytest.mark.parametrize("bits, values, expected", [
    (2, [1, 2, 3, 0], bytes([0b00111001])),           # LSB-first: value i at bits 2i..2i+1
    (4, [0x1, 0x2, 0xF], bytes([0x21, 0x0F])),          # GL_UNSIGNED_SHORT_4_4_4_4_REV order
    (3, [7, 0, 5], bytes([0b01000111, 0b00000001])),    # values straddle byte boundaries
    (8, [0, 200, 255], bytes([0, 200, 255])),
])
def test_pack_bits_layout(bits, values, expected):
    assert pack_bits(np.array(values, np.uint8), bits) == expected
    assert unpack_bits(expected, bits, len(values)).tolist() == values


# ----------------------------------------------------------------------------------------------
# round trips

def test_round_trip_trained_model(trained):
    back = from_bytes(trained.data)
    assert_models_equal(trained.model, back)
    assert to_bytes(back) == trained.data  # re-serialising is byte-exact


@pytest.mark.parametrize("case", sorted(ROUND_TRIP_CASES))
def test_round_trip_every_layout(case):
    cfg, w, h = ROUND_TRIP_CASES[case]
    model = untrained(cfg, w, h, MIXED_TEXTURES, stored=7)
    # use every latent value, so the packing of the top bits is exercised
    rng = np.random.default_rng(1)
    model.latents = [rng.integers(0, model.latent.qmax + 1, q.shape, dtype=np.uint8)
                     for q in model.latents]
    assert model.latents[0].max() == model.latent.qmax
    data = to_bytes(model)
    back = from_bytes(data)
    assert_models_equal(model, back)
    assert to_bytes(back) == data


def test_lod_blend_round_trips_and_defaults_to_off(trained):
    """A file trained for the latent filter across mips says so; files without the key (all
    written before it) read as not, and keep their bytes."""
    assert not from_bytes(trained.data).latent.lod_blend
    header, _ = split(trained.data)
    assert "lod_blend" not in header["latents"]
    model = from_bytes(trained.data)
    model.latent.lod_blend = True
    data = to_bytes(model)
    back = from_bytes(data)
    assert back.latent.lod_blend and split(data)[0]["latents"]["lod_blend"] is True
    assert_models_equal(model, back)


def test_assemble_helper_reproduces_the_file(trained):
    """The mutation tests below rebuild files with `assemble`; unmodified, it must give back the
    original bytes, so whatever the reader rejects later is the intended edit and nothing else."""
    header, chunks = split(trained.data)
    assert assemble(header, chunks) == trained.data


# ----------------------------------------------------------------------------------------------
# files on disk

def test_read_ntc_missing_path_and_folder(tmp_path):
    with pytest.raises(NTCFormatError):
        read_ntc(tmp_path / "nope.ntc")
    with pytest.raises(NTCFormatError):
        read_ntc(tmp_path)
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(NTCFormatError):
        read_ntc(tmp_path / "afile" / "below.ntc")


def test_read_ntc_names_the_file(tmp_path, trained):
    p = tmp_path / "cut.ntc"
    p.write_bytes(trained.data[:100])
    with pytest.raises(NTCFormatError, match="cut.ntc"):
        read_ntc(p)


def test_write_ntc_writes_exactly_the_file(tmp_path, trained):
    dest = tmp_path / "out.ntc"
    dest.write_bytes(b"old contents")
    n = write_ntc(dest, trained.model)
    assert n == len(trained.data) == dest.stat().st_size
    assert dest.read_bytes() == trained.data
    assert sorted(os.listdir(tmp_path)) == ["out.ntc"]  # no temporary file left behind
    assert_models_equal(read_ntc(dest), trained.model)


@pytest.mark.parametrize("fail_in", ["replace", "fsync"])
@pytest.mark.parametrize("existing", [False, True])
def test_write_ntc_failure_leaves_nothing_partial(tmp_path, trained, monkeypatch, fail_in, existing):
    dest = tmp_path / "out.ntc"
    if existing:
        dest.write_bytes(b"previous file")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail_in, boom)
    with pytest.raises(OSError):
        write_ntc(dest, trained.model)
    monkeypatch.undo()
    if existing:
        assert dest.read_bytes() == b"previous file"
        assert sorted(os.listdir(tmp_path)) == ["out.ntc"]
    else:
        assert not dest.exists()
        assert os.listdir(tmp_path) == []


def test_write_ntc_refuses_invalid_model_without_writing(tmp_path, trained):
    model = from_bytes(trained.data)
    model.latents[0] = model.latents[0].copy()
    model.latents[0][0, 0, 0] = model.latent.qmax + 1  # out of range for the bit depth
    dest = tmp_path / "out.ntc"
    with pytest.raises(ValueError):
        write_ntc(dest, model)
    assert os.listdir(tmp_path) == []


def test_level_bytes_match_layout(trained):
    """Chunk sizes in the file are what layout says (what the GPU uploader will assume)."""
    header, chunks = split(trained.data)
    lat = trained.model.latent
    for j, size in enumerate(lat.levels):
        assert len(chunks[f"latent.{j}"]) == layout.latent_level_bytes(size, lat.features, lat.bits)
        assert len(chunks[f"latent.{j}"]) == math.ceil(size[0] * size[1] * lat.features * lat.bits / 8)
