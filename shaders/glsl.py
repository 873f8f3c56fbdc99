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

from export.errors import NTCError

GENERATED = Path(__file__).resolve().parent / "generated"

_SPEC = re.compile(r"layout\(constant_id = (\d+)\)\s*\n"
                   r"const (int|uint|bool|float) (\w+)_0 = [^;]*;")
_WEIGHTS = re.compile(r"vec4\s+ntcWeights_0\[(\d+)\]")


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
