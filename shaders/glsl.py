"""Load the committed GLSL and specialise it for one file's network shape (no Slang compiler).

Specialisation: the Slang decoder declares its shape parameters as specialisation constants, which
slangc emits as

    layout(constant_id = N)
    const int NAME_0 = DEFAULT;

OpenGL 4.5 only takes constant_id through SPIR-V, so `specialise` rewrites each declaration into a
plain `const int NAME_0 = VALUE;` (every constant must be given a value: nothing silently keeps its
default) and sizes the weights array of the NtcModel uniform block to the vec4 count the file needs.
The driver then sees ordinary compile-time constants. Mesa's shader cache keys on the source text,
so files of the same network shape share one compiled program.
"""
from __future__ import annotations

import re
from pathlib import Path

from export import layout
from export.errors import NTCError
from export.model import NTCModel

GENERATED = Path(__file__).resolve().parent / "generated"

_SPEC = re.compile(r"layout\(constant_id = (\d+)\)\s*\n"
                   r"const (int|uint|bool|float) (\w+)_0 = [^;]*;")
_WEIGHTS = re.compile(r"vec4\s+ntcWeights_0\[(\d+)\]")

MAX_LAYERS = 8      # NTC_OUT0..NTC_OUT7 in ntc_decode.slang
MAX_WIDTH_VEC4 = 64  # NTC_MAX_VEC4 in ntc_decode_core.slang
MAX_OUT_VEC4 = 4    # four render targets / result[4]


class SpecialisationError(NTCError, ValueError):
    """The generated GLSL and the requested specialisation do not fit together."""


def load_generated(name: str) -> str:
    path = GENERATED / name
    if not path.is_file():
        raise SpecialisationError(f"generated shader {path} is missing; "
                                  "run `python -m shaders.build`")
    return path.read_text()


def spec_constants(source: str) -> dict[str, int]:
    """Specialisation constants declared in generated GLSL: {NAME: constant_id}."""
    return {m.group(3): int(m.group(1)) for m in _SPEC.finditer(source)}


def weights_capacity(source: str) -> int:
    """Declared (maximum) vec4 count of the ntcWeights array."""
    m = _WEIGHTS.search(source)
    if not m:
        raise SpecialisationError("generated GLSL has no ntcWeights_0 array")
    return int(m.group(1))


def specialise(source: str, constants: dict[str, int], weight_vec4: int | None = None) -> str:
    declared = spec_constants(source)
    missing = sorted(set(declared) - set(constants))
    unknown = sorted(set(constants) - set(declared))
    if missing or unknown:
        raise SpecialisationError(f"specialisation constants: missing {missing}, unknown {unknown}")

    def repl(m: re.Match) -> str:
        kind, name = m.group(2), m.group(3)
        value = constants[name]
        if kind == "bool":
            text = "true" if value else "false"
        elif kind == "float":
            text = repr(float(value))
        else:
            text = str(int(value)) + ("u" if kind == "uint" else "")
        return f"const {kind} {name}_0 = {text};"

    out = _SPEC.sub(repl, source)
    if weight_vec4 is not None:
        cap = weights_capacity(out)
        if not 1 <= weight_vec4 <= cap:
            raise SpecialisationError(f"{weight_vec4} weight vec4s, the shader holds 1..{cap}")
        out = _WEIGHTS.sub(f"vec4 ntcWeights_0[{weight_vec4}]", out)
    return out


# ----------------------------------------------------------------------------------------------
# what ntc_decode.slang needs to know about a file

def mlp_widths_vec4(model: NTCModel) -> list[tuple[int, int]]:
    """(input vec4s, output vec4s) of each layer, padded as in the file."""
    return [(layout.pad4(i) // 4, layout.pad4(o) // 4) for i, o in model.mlp_dims]


def input_order(features: int, hr_sampling: str) -> list[int]:
    """For each MLP input the shader builds (vec4-aligned, see ntcDecode), the file's input column
    it corresponds to, or -1 for padding. decoder.py's order is [hi, lo, pe, lod] ("bilinear") or
    [tap0..tap3, frac.x, frac.y, lo, pe, lod] ("gather4"); the shader keeps each group vec4-aligned
    and moves the two fractions next to lod."""
    f, pe = features, layout.PE_INPUTS
    if hr_sampling == "gather4":
        lo = 4 * f + 2
        order = list(range(4 * f)) + list(range(lo, lo + f + pe)) + [lo + f + pe, 4 * f, 4 * f + 1]
    else:
        order = list(range(2 * f + pe + 1))
    return order + [-1] * (layout.pad4(len(order)) - len(order))


def weight_vec4_count(model: NTCModel) -> int:
    """vec4s of the NtcModel block after ntcInfo: per layer 4*out*in weights, then out biases."""
    return sum(4 * o * i + o for i, o in mlp_widths_vec4(model))


def check_supported(model: NTCModel) -> None:
    """Raise SpecialisationError for files this decoder build cannot run."""
    lat = model.latent
    if lat.hr_sampling not in ("bilinear", "gather4"):
        raise SpecialisationError(f"high-res sampling '{lat.hr_sampling}' is not supported by the "
                                  "GL decoder")
    widths = mlp_widths_vec4(model)
    if len(widths) > MAX_LAYERS:
        raise SpecialisationError(f"{len(widths)} MLP layers, the GL decoder supports {MAX_LAYERS}")
    taps = 4 if lat.hr_sampling == "gather4" else 1
    if widths[0][0] != (taps + 1) * lat.features // 4 + layout.PE_INPUTS // 4 + 1:
        raise SpecialisationError("MLP input width does not match the latent features")
    if max(max(w) for w in widths) > MAX_WIDTH_VEC4:
        raise SpecialisationError(f"an MLP layer is wider than {4 * MAX_WIDTH_VEC4} channels")
    if widths[-1][1] > MAX_OUT_VEC4:
        raise SpecialisationError(f"{model.stored_channels} stored channels, at most "
                                  f"{4 * MAX_OUT_VEC4}")


def decoder_constants(model: NTCModel, hw_filter: bool = False) -> dict[str, int]:
    """Values of the specialisation constants of ntc_decode.slang for `model`."""
    check_supported(model)
    outs = [o for _, o in mlp_widths_vec4(model)]
    consts = {"NTC_FEATURES": model.latent.features, "NTC_LAYERS": len(outs),
              "NTC_GATHER4": int(model.latent.hr_sampling == "gather4"),
              "NTC_HW_FILTER": int(bool(hw_filter))}
    for i in range(MAX_LAYERS):
        consts[f"NTC_OUT{i}"] = outs[i] if i < len(outs) else 0
    return consts
