"""ntc-compress and ntc-decode as a user meets them: a run that succeeds writes only its outputs and
leaves the inputs untouched, decoded PNGs in the sources' layout, ntc-decode's one-line errors, the
installed entry points as processes. (test_cli_rejects.py: what ntc-compress refuses.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from cli_run import one_line_error, run
from conftest import H, RICH_SET, ROOT, W, snapshot, write_set
from export import cli as decode_cli
from export.decode.reference import FileDecoder, to_uint
from export.format import read_ntc
from export.images import read_pixels
from trainer import cli as compress_cli
from trainer.hr_choice import choose_hr_sampling

BIN = Path(sys.executable).parent
GARBAGE = np.random.default_rng(7).integers(0, 256, 2000, dtype=np.uint8).tobytes()


# ----------------------------------------------------------------------------------------------
# a successful run, shared by the tests below

@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    folder = write_set(root / "in", RICH_SET)  # + 16-bit greyscale height, 8-bit grey roughness
    before = snapshot(folder)
    out = root / "out"
    out.mkdir()
    argv = [folder, "-o", out / "set.ntc", "--report", out / "report.json",
            "--steps", "60", "--batch", "512", "--device", "cpu", "--preset", "p2.7", "-q"]
    rc, stdout, err = run(compress_cli.main, argv)
    return {"rc": rc, "err": err, "folder": folder, "before": before, "out": out,
            "ntc": out / "set.ntc", "report": out / "report.json"}


def test_compress_succeeds_and_writes_only_its_outputs(compressed):
    assert compressed["rc"] == 0, compressed["err"]
    assert "Traceback" not in compressed["err"]
    assert sorted(os.listdir(compressed["out"])) == ["report.json", "set.ntc"]
    model = read_ntc(compressed["ntc"])
    assert (model.width, model.height) == (W, H)
    assert sorted(t.name for t in model.textures) == sorted(n[:-4] for n in RICH_SET)


def test_compress_leaves_inputs_untouched(compressed):
    assert snapshot(compressed["folder"]) == compressed["before"]  # bytes and mtimes, no new files


def test_compress_report(compressed):
    report = json.loads(compressed["report"].read_text())
    for key in ("bpp", "file_bytes", "psnr_set", "textures", "steps", "seconds", "device"):
        assert key in report, key
    size = compressed["ntc"].stat().st_size
    assert report["file_bytes"] == size
    assert report["bpp"] == pytest.approx(size * 8 / (W * H), rel=1e-12)
    assert report["steps"] == 60
    assert report["device"] == "cpu"
    assert (report["batch"], report["threads"], report["training_step"]) == (512, 1, "fused")
    assert report["training_precision"] in ("bf16", "float32")
    assert report["seconds"] > 0
    assert 10.0 < report["psnr_set"] < 100.0
    assert set(report["textures"]) == {n[:-4] for n in RICH_SET}
    assert report["textures"]["mat_height"]["role"] == "height"
    assert report["hr_sampling_asked"] == "auto"
    assert report["hr_sampling"] == choose_hr_sampling(report["difference_kurtosis"])
    assert read_ntc(compressed["ntc"]).latent.hr_sampling == report["hr_sampling"]


def test_decode_writes_one_png_per_texture_in_the_source_layout(compressed, tmp_path):
    out = tmp_path / "decoded" / "nested"  # created if missing
    rc, stdout, err = run(decode_cli.main, [compressed["ntc"], "-o", out])
    assert rc == 0, err
    assert sorted(os.listdir(out)) == sorted(RICH_SET)  # same stems, .png
    model = read_ntc(compressed["ntc"])
    reference = dict(zip([t.name for t in model.textures],
                         FileDecoder.from_model(model).textures_mip(0)))
    for name in RICH_SET:
        src = read_pixels(compressed["folder"] / name)
        got = read_pixels(out / name)
        assert got.shape == src.shape, name    # channel count
        assert got.dtype == src.dtype, name    # bit depth (uint16 for the 16-bit height, emissive)
        expected = to_uint(reference[name[:-4]], 16 if src.dtype == np.uint16 else 8)
        np.testing.assert_array_equal(got, expected.reshape(got.shape))
    assert iio.imread(out / "mat_roughness.png").ndim == 2  # greyscale stays greyscale
    assert np.all(iio.imread(out / "mat_orm.png")[..., 2] == 0)  # the constant channel, exactly


def test_decode_mip(compressed, tmp_path):
    out = tmp_path / "mip2"
    rc, _, err = run(decode_cli.main, [compressed["ntc"], "-o", out, "--mip", "2"])
    assert rc == 0, err
    assert sorted(os.listdir(out)) == sorted(n[:-4] + "_mip2.png" for n in RICH_SET)
    for name in RICH_SET:
        src = iio.imread(compressed["folder"] / name)
        got = iio.imread(out / (name[:-4] + "_mip2.png"))
        assert got.shape[:2] == (H >> 2, W >> 2) == (6, 10)
        assert got.shape[2:] == src.shape[2:] and got.dtype == src.dtype


@pytest.mark.parametrize("mip", ["6", "-1"])
def test_decode_mip_out_of_range(compressed, tmp_path, mip):
    out = tmp_path / "o"
    rc, _, err = run(decode_cli.main, [compressed["ntc"], "-o", out, "--mip", mip])
    assert rc != 0
    assert "--mip" in one_line_error(err, "ntc-decode")
    assert not out.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "empty", "missing", "folder"])
def test_decode_bad_file(compressed, tmp_path, damage):
    src = compressed["ntc"].read_bytes()
    bad = tmp_path / "bad.ntc"
    if damage == "garbage":
        bad.write_bytes(GARBAGE)
    elif damage == "truncated":
        bad.write_bytes(src[: len(src) // 2])
    elif damage == "flipped":
        b = bytearray(src)
        b[-5] ^= 0xFF
        bad.write_bytes(bytes(b))
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "folder":
        bad.mkdir()
    out = tmp_path / "o"
    rc, _, err = run(decode_cli.main, [bad, "-o", out])
    assert rc != 0
    assert "bad.ntc" in one_line_error(err, "ntc-decode")
    assert not out.exists()


def test_decode_output_is_a_file(compressed, tmp_path):
    target = tmp_path / "taken"
    target.write_bytes(b"keep me")
    rc, _, err = run(decode_cli.main, [compressed["ntc"], "-o", target])
    assert rc != 0
    one_line_error(err, "ntc-decode")
    assert target.read_bytes() == b"keep me"


# ----------------------------------------------------------------------------------------------
# the installed entry points, as real processes

def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _exe(name):
    exe = BIN / name
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    return exe


def test_subprocess_compress_error_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run([_exe("ntc-compress"), tmp_path / "missing", "-o", out / "x.ntc"],
                       capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert p.returncode == 1
    assert "does not exist" in one_line_error(p.stderr, "ntc-compress")
    assert os.listdir(out) == []


def test_subprocess_compress_then_decode(tmp_path, texture_set):
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run([_exe("ntc-compress"), texture_set, "-o", out / "x.ntc",
                        "--steps", "20", "--batch", "256", "--preset", "p2.7", "-q"],
                       capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert os.listdir(out) == ["x.ntc"]
    (out / "x.ntc").write_bytes((out / "x.ntc").read_bytes()[:-1])  # now one byte short
    p = subprocess.run([_exe("ntc-decode"), out / "x.ntc", "-o", tmp_path / "dec"],
                       capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert p.returncode == 1
    one_line_error(p.stderr, "ntc-decode")
    assert not (tmp_path / "dec").exists()
