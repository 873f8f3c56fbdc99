"""ntc-compress and ntc-decode as a user meets them: exit codes, one-line errors, no tracebacks,
nothing half-written, inputs untouched, decoded PNGs in the sources' layout."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import (DEFAULT_SET, H, RICH_SET, ROOT, W, base_color, grey, normal_map,
                      rgba, snapshot, write_set)
from export import cli as decode_cli
from export.decode.reference import FileDecoder, to_uint
from export.format import read_ntc
from export.images import read_pixels
from trainer import cli as compress_cli
from trainer.hr_choice import choose_hr_sampling

BIN = Path(sys.executable).parent
GARBAGE = np.random.default_rng(7).integers(0, 256, 2000, dtype=np.uint8).tobytes()
FAST = ["--steps", "30", "--batch", "256", "--device", "cpu", "-q"]


def run(main, argv) -> tuple[int, str, str]:
    """Call a CLI's main(argv) in-process; argparse's SystemExit counts as the exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def one_line_error(err: str, prog: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------------------------
# ntc-compress: bad input

def _folder(tmp_path, files):
    return write_set(tmp_path / "in", files)


def _missing(tmp_path):
    return tmp_path / "no_such_folder", [], "does not exist"


def _no_textures(tmp_path):
    return _folder(tmp_path, {"foo.png": base_color, "bar.png": grey}), [], "no recognisable"


def _sizes(tmp_path):
    folder = _folder(tmp_path, {"m_baseColor.png": base_color})
    iio.imwrite(folder / "m_normal.png", normal_map(H // 2, W // 2))
    return folder, [], "size"


def _corrupt(tmp_path):
    folder = _folder(tmp_path, {"m_baseColor.png": base_color})
    (folder / "x_normal.png").write_bytes(GARBAGE[:300])
    return folder, [], "x_normal.png"


def _truncated(tmp_path):
    folder = _folder(tmp_path, DEFAULT_SET)
    p = folder / "m_normal.png"
    iio.imwrite(p, normal_map())
    p.write_bytes(p.read_bytes()[:200])
    return folder, [], "m_normal.png"


def _too_many_channels(tmp_path):
    roles = ["baseColor", "normal", "emissive", "orm", "height"]
    return _folder(tmp_path, {f"m_{r}.png": rgba for r in roles}), [], "16"


def _manifest_json(tmp_path):
    folder = _folder(tmp_path, DEFAULT_SET)
    (folder / "ntc.json").write_text('{"mat_normal.png": "normal",')
    return folder, [], "ntc.json"


def _manifest_role(tmp_path):
    folder = _folder(tmp_path, DEFAULT_SET)
    (folder / "ntc.json").write_text(json.dumps({"mat_normal.png": "glossiness"}))
    return folder, [], "glossiness"


def _manifest_missing_file(tmp_path):
    folder = _folder(tmp_path, DEFAULT_SET)
    (folder / "ntc.json").write_text(json.dumps({"gone.png": "normal"}))
    return folder, [], "gone.png"


def _constant(tmp_path):
    folder = _folder(tmp_path, {"m_baseColor.png": lambda h, w: np.full((h, w, 3), 9, np.uint8)})
    return folder, [], "constant"


def _bpp(tmp_path):
    return _folder(tmp_path, DEFAULT_SET), ["--bpp", "-1"], "--bpp"


def _steps(tmp_path):
    return _folder(tmp_path, DEFAULT_SET), ["--steps", "0"], "--steps"


def _weight(tmp_path):
    return _folder(tmp_path, DEFAULT_SET), ["--weight", "shiny=2"], "shiny"


def _mask(tmp_path):
    return _folder(tmp_path, DEFAULT_SET), ["--mask", tmp_path / "nomask.png"], "nomask.png"


def _cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    return _folder(tmp_path, DEFAULT_SET), ["--device", "cuda"], "cuda"


BAD_INPUT = {
    "missing_input_folder": _missing,
    "no_recognisable_textures": _no_textures,
    "mismatched_sizes": _sizes,
    "corrupt_image": _corrupt,
    "truncated_png": _truncated,
    "more_than_16_channels": _too_many_channels,
    "manifest_invalid_json": _manifest_json,
    "manifest_unknown_role": _manifest_role,
    "manifest_names_missing_file": _manifest_missing_file,
    "every_channel_constant": _constant,
    "negative_bpp": _bpp,
    "zero_steps": _steps,
    "weight_for_unknown_texture": _weight,
    "missing_mask": _mask,
    "cuda_without_cuda": _cuda,
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_compress_bad_input(tmp_path, case):
    folder, extra, word = BAD_INPUT[case](tmp_path)
    before = snapshot(folder) if folder.is_dir() else None
    out = tmp_path / "out"
    out.mkdir()
    rc, stdout, err = run(compress_cli.main, [folder, "-o", out / "x.ntc", "--report",
                                              out / "report.json", *FAST, *extra])
    assert rc != 0
    line = one_line_error(err, "ntc-compress")
    assert word in line
    assert os.listdir(out) == []
    if before is not None:
        assert snapshot(folder) == before


@pytest.mark.parametrize("extra, word", [
    (["--device", "bogus"], "--device"),
    (["--bpp", "4", "--target-psnr", "30"], "not allowed with"),
    (["--bits", "9"], "--bits"),
    (["--steps", "many"], "--steps"),
    (["--effort", "huge"], "--effort"),
    (["--hr-sampling", "nearest"], "--hr-sampling"),
    (["--hidden", "64,x"], "--hidden"),
], ids=["bad_device", "bpp_and_target_psnr", "bits_9", "steps_not_int", "effort_unknown",
        "hr_sampling_unknown", "hidden_not_widths"])
def test_compress_bad_flags(tmp_path, extra, word):
    folder = write_set(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = run(compress_cli.main, [folder, "-o", out / "x.ntc", *FAST, *extra])
    assert rc == 2  # argparse's usage error
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ntc-compress: error:") and word in last
    assert os.listdir(out) == []


@pytest.mark.parametrize("extra, word", [(["--threads", "0"], "--threads"),
                                         (["--batch", "8"], "--batch")])
def test_compress_bad_values(tmp_path, extra, word):
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = run(compress_cli.main, [write_set(tmp_path / "in"), "-o", out / "x.ntc",
                                         *FAST, *extra])
    assert rc == 1 and word in one_line_error(err, "ntc-compress")
    assert os.listdir(out) == []


def test_effort_sets_the_steps_and_steps_wins(monkeypatch, tmp_path):
    from trainer import cli
    from trainer.budget import EFFORTS
    seen = []
    monkeypatch.setattr(cli, "compress", lambda tset, settings, log: seen.append(settings) or
                        (_ for _ in ()).throw(KeyboardInterrupt))
    folder = write_set(tmp_path / "in")
    for argv, steps in ((["--effort", "fast"], EFFORTS["fast"]), ([], EFFORTS["default"]),
                        (["--effort", "max", "--steps", "77"], 77)):
        run(compress_cli.main, [folder, "-o", tmp_path / "x.ntc", *argv])
        assert seen[-1].train.steps_for(W, H) == steps
        assert seen[-1].train.threads == 1 and seen[-1].train.batch is None
    assert not (tmp_path / "x.ntc").exists()


def test_compress_output_is_an_existing_folder(tmp_path, texture_set):
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = run(compress_cli.main, [texture_set, "-o", out, *FAST])
    assert rc != 0
    assert "folder" in one_line_error(err, "ntc-compress")
    assert os.listdir(out) == []


def test_compress_output_in_missing_folder(tmp_path, texture_set):
    rc, _, err = run(compress_cli.main, [texture_set, "-o", tmp_path / "nope" / "x.ntc", *FAST])
    assert rc != 0
    assert "does not exist" in one_line_error(err, "ntc-compress")
    assert not (tmp_path / "nope").exists()


def test_compress_refuses_to_overwrite_an_input(tmp_path, texture_set):
    before = snapshot(texture_set)
    rc, _, err = run(compress_cli.main, [texture_set, "-o", texture_set / "mat_baseColor.png",
                                         *FAST])
    assert rc != 0
    assert "overwrite" in one_line_error(err, "ntc-compress")
    assert snapshot(texture_set) == before


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
