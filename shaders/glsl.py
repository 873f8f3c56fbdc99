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

16-bit variants (*_half.frag.glsl, the MLP in float16_t): slangc names Vulkan's extensions
(GL_EXT_shader_16bit_storage, GL_EXT_shader_explicit_arithmetic_types); `with_half_extension`
puts in their place the one 16-bit float extension the GL driver reports (HALF_EXTENSIONS: each
declares the float16_t / f16vec4 types, HF literals and unpackFloat2x16 the variant uses), and
the weights array there is uvec4 ntcWeightsHalf_0, two weight vec4s to an element.
"""
from __future__ import annotations

import re
from pathlib import Path

from export.errors import NTCError

GENERATED = Path(__file__).resolve().parent / "generated"

_SPEC = re.compile(r"layout\(constant_id = (\d+)\)\s*\n"
                   r"const (int|uint|bool|float) (\w+)_0 = [^;]*;")
_WEIGHTS = re.compile(r"\b(u?vec4)\s+(ntcWeights(?:Half)?_0)\[(\d+)\]")
# OpenGL 16-bit float arithmetic, in order of preference (the first the context reports is used)
HALF_EXTENSIONS = ("GL_EXT_shader_explicit_arithmetic_types_float16",
                   "GL_AMD_gpu_shader_half_float", "GL_NV_gpu_shader5")
_SLANG_HALF = ("#extension GL_EXT_shader_16bit_storage : require\n"
               "#extension GL_EXT_shader_explicit_arithmetic_types : require\n")


class SpecialisationError(NTCError, ValueError):
    """The generated GLSL and the requested specialisation do not fit together."""


def half_name(name: str) -> str:
    """'pbr_ntc.frag.glsl' -> 'pbr_ntc_half.frag.glsl': a generated file's 16-bit variant."""
    stem, rest = name.split(".", 1)
    return f"{stem}_half.{rest}"


def load_generated(name: str) -> str:
    path = GENERATED / name
    if not path.is_file():
        raise SpecialisationError(f"generated shader {path} is missing; "
                                  "run `python -m shaders.build`")
    return path.read_text()


def spec_constants(source: str) -> dict[str, int]:
    """Specialisation constants declared in generated GLSL: {NAME: constant_id}."""
    return {m.group(3): int(m.group(1)) for m in _SPEC.finditer(source)}


def _per_element(kind: str) -> int:
    """Weight vec4s per element of the weights array: 1 (vec4), 2 (uvec4 of halves)."""
    return 2 if kind == "uvec4" else 1


def weights_capacity(source: str) -> int:
    """Declared (maximum) weight vec4 count of the weights array."""
    m = _WEIGHTS.search(source)
    if not m:
        raise SpecialisationError("generated GLSL has no ntcWeights_0 / ntcWeightsHalf_0 array")
    return int(m.group(3)) * _per_element(m.group(1))


def is_half(source: str) -> bool:
    """True for a 16-bit variant (its MLP in float16_t)."""
    return _SLANG_HALF in source


def with_half_extension(source: str, extension: str) -> str:
    """A 16-bit variant with `extension` (one of HALF_EXTENSIONS) enabled in place of the Vulkan
    extensions slangc names."""
    if extension not in HALF_EXTENSIONS:
        raise SpecialisationError(f"{extension} is not one of {', '.join(HALF_EXTENSIONS)}")
    if not is_half(source):
        raise SpecialisationError("not a 16-bit variant: it enables no 16-bit extensions")
    return source.replace(_SLANG_HALF, f"#extension {extension} : require\n", 1)


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
        m = _WEIGHTS.search(out)
        count = -(-weight_vec4 // _per_element(m.group(1)))
        out = _WEIGHTS.sub(f"{m.group(1)} {m.group(2)}[{count}]", out)
    return out
