"""ntc-compress refusing what it cannot use: bad inputs (missing, corrupt, mismatched, hostile
manifests), bad flags and values, outputs that would overwrite something; each a one-line error,
a non-zero exit, nothing written and the inputs untouched. (test_cli.py: the runs that succeed.)"""
from __future__ import annotations

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from cli_run import FAST, one_line_error, run
from conftest import DEFAULT_SET, H, W, base_color, grey, normal_map, rgba, snapshot, write_set
from trainer import cli as compress_cli

GARBAGE = np.random.default_rng(7).integers(0, 256, 2000, dtype=np.uint8).tobytes()


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
