"""The Slang -> GLSL build step and the GLSL specialisation (no GL context needed)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from export import layout
from export.decode.network_block import input_order
from shaders import build, glsl


def _need_slangc():
    try:
        return build.find_slangc()
    except build.ShaderBuildError as e:
        pytest.skip(str(e))


def test_committed_glsl_equals_a_fresh_compile():
    _need_slangc()
    fresh = build.build_outputs()
    assert {p.name for p in fresh if p.parent == build.GENERATED} == \
        {t[3] for t in build.all_targets()}
    assert build.CONSTANTS in fresh
    for path, text in fresh.items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m shaders.build"


def test_build_check_reports_stale_files(monkeypatch, capsys):
    """`--check` compares without writing; one stale file makes it exit 1 naming it (the compile
    itself is the test above's)."""
    outputs = {p: p.read_text() for p in sorted(build.GENERATED.glob("*.glsl"))[:2]}
    monkeypatch.setattr(build, "build_outputs", lambda: dict(outputs))
    assert build.main(["--check"]) == 0
    stale = next(iter(outputs))
    outputs[stale] += "// changed\n"
    assert build.main(["--check"]) == 1
    assert stale.name in capsys.readouterr().err
    assert stale.read_text() != outputs[stale]   # nothing written


def test_compile_errors_name_the_cause(tmp_path, monkeypatch):
    _need_slangc()
    bad = tmp_path / "bad.slang"
    bad.write_text('[shader("fragment")]\n'
                   "float4 main() : SV_Target0 { return undefinedThing; }\n")
    with pytest.raises(build.ShaderBuildError, match=r"slangc failed on bad\.slang .*"
                       r"undefined identifier at bad\.slang:2:"):
        build.compile_glsl(bad, "main", "fragment")
    with pytest.raises(build.ShaderBuildError, match="does not exist"):
        build.compile_glsl(tmp_path / "missing.slang", "main", "fragment")
    with pytest.raises(build.ShaderBuildError, match="unknown stage"):
        build.compile_glsl(bad, "main", "pixel")
    monkeypatch.setenv("NTC_SLANGC", str(tmp_path / "no-slangc"))
    with pytest.raises(build.ShaderBuildError, match="slangc not found"):
        build.compile_glsl(bad, "main", "fragment")


def test_missing_slangtorch_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("NTC_SLANGC", raising=False)
    monkeypatch.setattr(build.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(build.ShaderBuildError, match="slangtorch .*not installed"):
        build.find_slangc()


def test_specialise_rewrites_every_constant_and_sizes_the_weights():
    src = glsl.load_generated("ntc_load.frag.glsl")
    declared = glsl.spec_constants(src)
    assert {"NTC_FEATURES", "NTC_LAYERS", "NTC_GATHER4", "NTC_HW_FILTER"} <= set(declared)
    values = {name: 4 for name in declared}
    out = glsl.specialise(src, values, weight_vec4=123)
    assert "constant_id" not in out
    for name in declared:
        assert re.search(rf"\nconst int {name}_0 = 4;", out)
    assert re.findall(r"ntcWeights_0\[(\d+)\]", out) == ["123", "123"]  # struct + block
    assert glsl.weights_capacity(src) == 4095
    with pytest.raises(glsl.SpecialisationError, match="missing"):
        glsl.specialise(src, {"NTC_FEATURES": 8})
    with pytest.raises(glsl.SpecialisationError, match="unknown"):
        glsl.specialise(src, {**values, "NTC_NOPE": 1})
    with pytest.raises(glsl.SpecialisationError, match="weight vec4s"):
        glsl.specialise(src, values, weight_vec4=5000)


@pytest.mark.parametrize("features", [4, 8, 12, 32])
@pytest.mark.parametrize("hr", layout.HR_SAMPLINGS)
def test_input_order_is_a_vec4_aligned_permutation(features, hr):
    order = input_order(features, hr)
    n = layout.mlp_input_size(features, hr)
    assert len(order) == layout.pad4(n)
    assert sorted(o for o in order if o >= 0) == list(range(n))  # every file column exactly once
    f4 = features
    hi = 4 * f4 if hr == "gather4" else f4
    # the shader's groups: hi taps, lo, pe, then (lod, [frac.x, frac.y]) in the last vec4
    assert order[hi:hi + f4] == list(range(n - f4 - layout.PE_INPUTS - 1, n - layout.PE_INPUTS - 1))
    assert order[hi + f4 + layout.PE_INPUTS] == n - 1  # lod starts the last vec4
    if hr == "gather4":
        assert order[-3:] == [4 * features, 4 * features + 1, -1]
    assert np.all(np.diff([o for o in order[:hi] if o >= 0]) == 1)


def test_constants_module_is_what_the_slang_sources_define(tmp_path):
    """shaders/constants.py is generated: every static const of the sources, and each uniform
    block's dtype has the reflected size and offsets."""
    from shaders import constants as C
    from shaders.interface import block_dtype
    assert build.static_constants() == {k: v for k, v in vars(C).items()
                                        if k.isupper() and not isinstance(v, dict)}
    for name, (size, fields) in C.BLOCKS.items():
        dt = block_dtype(name)
        assert dt.itemsize == size
        assert [dt.fields[f][1] for f, *_ in fields] == [off for _, off, *_ in fields]
    # a conflicting redefinition is refused, not silently taken
    (tmp_path / "a.slang").write_text("static const int X = 1;\n")
    (tmp_path / "b.slang").write_text("static const int X = 2;\n")
    with pytest.raises(build.ShaderBuildError, match="two values"):
        build.static_constants(tmp_path)
