"""Generate GLSL and the shaders' constants from the Slang sources with the `slangc` that ships
inside the slangtorch wheel.

    python -m shaders.build            write shaders/generated/*.glsl and shaders/constants.py
    python -m shaders.build --check    exit 1 if a committed file differs from a fresh build

shaders/constants.py is the Python side's only copy of what the Slang sources define: every
`static const` (enums, limits, flags), the binding point of every texture and uniform block, the
specialisation constants' ids and each uniform block's field offsets, the last three read from
slangc's reflection (-reflection-json) of every target. The generated files are committed, so
running the viewer or the GL decoder needs no Slang compiler; tests/test_shaders.py rebuilds (when
slangc is installed) and holds the two together.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from export.errors import NTCError
from shaders.glsl import half_name

SHADER_DIR = Path(__file__).resolve().parent
GENERATED = SHADER_DIR / "generated"
CONSTANTS = SHADER_DIR / "constants.py"
STAGES = ("vertex", "fragment", "compute")

# (Slang source, entry point, stage, generated file); HALF_TARGETS are built again with
# -DNTC_HALF=1 (the MLP in 16-bit floats, see ntc_decode.slang) into *_half.frag.glsl.
TARGETS: list[tuple[str, str, str, str]] = [
    ("ntc_load.slang", "vertexMain", "vertex", "ntc_load.vert.glsl"),
    ("ntc_load.slang", "fragmentMain", "fragment", "ntc_load.frag.glsl"),
    ("ntc_load.slang", "textureMain", "fragment", "ntc_load_textures.frag.glsl"),
    ("ntc_load.slang", "tripleMain", "fragment", "ntc_load_triples.frag.glsl"),
    ("ntc_sample_harness.slang", "vertexMain", "vertex", "ntc_sample_harness.vert.glsl"),
    ("ntc_sample_harness.slang", "fragmentMain", "fragment", "ntc_sample_harness.frag.glsl"),
    ("pbr.slang", "vertexMain", "vertex", "pbr.vert.glsl"),
    ("pbr.slang", "fragmentMain", "fragment", "pbr.frag.glsl"),
    ("pbr_ntc.slang", "fragmentMain", "fragment", "pbr_ntc.frag.glsl"),
    ("pbr_feedback.slang", "fragmentMain", "fragment", "pbr_feedback.frag.glsl"),
    ("pbr_feedback.slang", "fragmentEarly", "fragment", "pbr_feedback_early.frag.glsl"),
    ("viewer_post.slang", "vertexMain", "vertex", "viewer_post.vert.glsl"),
    ("viewer_post.slang", "fragmentMain", "fragment", "viewer_post.frag.glsl"),
    ("viewer_post.slang", "textVertex", "vertex", "viewer_text.vert.glsl"),
    ("viewer_post.slang", "textFragment", "fragment", "viewer_text.frag.glsl"),
    ("bcn_encode.slang", "vertexMain", "vertex", "bcn_encode.vert.glsl"),
    ("bcn_encode.slang", "bc1Main", "fragment", "bcn_encode_bc1.frag.glsl"),
    ("bcn_encode.slang", "bc4Main", "fragment", "bcn_encode_bc4.frag.glsl"),
    ("bcn_encode.slang", "bc5Main", "fragment", "bcn_encode_bc5.frag.glsl"),
    ("bcn_encode.slang", "bc7Main", "fragment", "bcn_encode_bc7.frag.glsl"),
]
HALF_TARGETS = ("ntc_sample_harness.frag.glsl", "pbr_ntc.frag.glsl")
HALF_DEFINES = {"NTC_HALF": "1"}


def all_targets() -> list[tuple[str, str, str, str, dict[str, str]]]:
    """Every (source, entry, stage, generated file, defines) the build writes."""
    out = [(*t, {}) for t in TARGETS]
    out += [(src, entry, stage, half_name(name), HALF_DEFINES)
            for src, entry, stage, name in TARGETS if name in HALF_TARGETS]
    return out


class ShaderBuildError(NTCError):
    """slangc is missing, failed, or its output is unusable."""


def find_slangc() -> Path:
    """`slangc` from $NTC_SLANGC, else from the installed slangtorch package."""
    override = os.environ.get("NTC_SLANGC")
    if override:
        path = Path(override)
        if not path.is_file():
            raise ShaderBuildError(f"slangc not found: NTC_SLANGC={override} is not a file")
        return path
    try:
        spec = importlib.util.find_spec("slangtorch")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ShaderBuildError("slangc not found: the slangtorch package (which ships slangc) is "
                               "not installed; pip install slangtorch==1.3.22")
    exe = "slangc.exe" if sys.platform == "win32" else "slangc"
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "bin" / exe
        if path.is_file():
            return path
    raise ShaderBuildError(f"slangc not found: slangtorch is installed but has no bin/{exe}")


def _first_error(log: str) -> str:
    """The first diagnostic as one line: message, and where it is when slangc says so."""
    lines = [ln.strip() for ln in log.splitlines()]
    for i, line in enumerate(lines):
        if "error" in line.lower():
            where = next((ln[3:].strip() for ln in lines[i + 1:i + 4] if ln.startswith("-->")), "")
            return f"{line} at {Path(where).name}" if where else line
    return lines[0] if lines and lines[0] else "no message"


def compile_glsl(slang_path: str | os.PathLike, entry: str, stage: str,
                 defines: dict[str, str] | None = None) -> str:
    """GLSL 450 source of one entry point; raises ShaderBuildError naming the cause."""
    return compile_target(slang_path, entry, stage, defines)[0]


def compile_target(slang_path: str | os.PathLike, entry: str, stage: str,
                   defines: dict[str, str] | None = None) -> tuple[str, dict]:
    """(GLSL 450 source, slangc's reflection JSON) of one entry point, with preprocessor
    `defines` (-D NAME=VALUE)."""
    slang_path = Path(slang_path)
    if stage not in STAGES:
        raise ShaderBuildError(f"unknown stage '{stage}', expected one of {', '.join(STAGES)}")
    if not slang_path.is_file():
        raise ShaderBuildError(f"Slang source {slang_path} does not exist")
    slangc = find_slangc()
    with tempfile.TemporaryDirectory(prefix="ntc-slangc-") as tmp:
        out = Path(tmp) / "out.glsl"
        reflection = Path(tmp) / "reflection.json"
        cmd = [str(slangc), str(slang_path), "-I", str(slang_path.parent),
               "-target", "glsl", "-profile", "glsl_450", "-entry", entry, "-stage", stage,
               "-line-directive-mode", "none", "-o", str(out),
               "-reflection-json", str(reflection)]
        cmd += [f"-D{k}={v}" for k, v in (defines or {}).items()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except OSError as e:
            raise ShaderBuildError(f"cannot run slangc ({slangc}): {e.strerror}") from None
        except subprocess.TimeoutExpired:
            raise ShaderBuildError(f"slangc timed out compiling {slang_path.name}") from None
        log = (proc.stderr + proc.stdout).strip()
        if proc.returncode != 0 or not out.is_file():
            raise ShaderBuildError(f"slangc failed on {slang_path.name} (entry {entry}, {stage}, "
                                   f"exit {proc.returncode}): {_first_error(log)}\n{log}")
        text = out.read_text()
        try:
            reflected = json.loads(reflection.read_text())
        except (OSError, ValueError) as e:
            raise ShaderBuildError(f"slangc wrote no usable reflection for {slang_path.name}: "
                                   f"{e}") from None
    if not text.startswith("#version 450"):
        raise ShaderBuildError(f"slangc output for {slang_path.name}:{entry} is not GLSL 450")
    return text, reflected


def _with_provenance(glsl: str, slang_name: str, entry: str, stage: str,
                     defines: dict[str, str] | None = None) -> str:
    first, rest = glsl.split("\n", 1)
    flags = "".join(f", {k}={v}" for k, v in (defines or {}).items())
    note = (f"// Generated by shaders/build.py from shaders/{slang_name} (entry {entry}, {stage}"
            f"{flags}); do not edit, run `python -m shaders.build`.\n")
    return first + "\n" + note + rest


# ----------------------------------------------------------------------------------------------
# shaders/constants.py

_STATIC = re.compile(r"^\s*static\s+const\s+(int|uint|float)\s+(\w+)\s*=\s*([^;]+);", re.M)
_SCALARS = {"float32": "float32", "int32": "int32", "uint32": "uint32"}


_STATIC_ARRAY = re.compile(r"^\s*static\s+const\s+(int|uint|float)\s+(\w+)\s*\[\s*\d*\s*\]\s*=\s*"
                           r"\{([^}]*)\}\s*;", re.M)


def _literal(kind: str, text: str, name: str, path: Path) -> int | float:
    try:
        return float(text) if kind == "float" else int(text.strip().rstrip("uU"), 0)
    except ValueError:
        raise ShaderBuildError(f"{path.name}: static const {name} = {text.strip()} is not "
                               "a literal number") from None


def static_constants(folder: Path = SHADER_DIR) -> dict[str, int | float | tuple]:
    """Every `static const int|uint|float NAME = literal;` of the folder's Slang sources, and
    every such array of literals (`NAME[N] = { ... };`, as a tuple)."""
    found: dict[str, int | float | tuple] = {}
    for path in sorted(folder.glob("*.slang")):
        text_of = path.read_text()
        items = [(kind, name, _literal(kind, text, name, path))
                 for kind, name, text in _STATIC.findall(text_of)]
        items += [(kind, name, tuple(_literal(kind, v, name, path)
                                     for v in text.split(",") if v.strip()))
                  for kind, name, text in _STATIC_ARRAY.findall(text_of)]
        for kind, name, value in items:
            if name in found and found[name] != value:
                raise ShaderBuildError(f"static const {name} has two values ({found[name]}, "
                                       f"{value})")
            found[name] = value
    return found


def _field_layout(field: dict) -> tuple[str, int, str, tuple[int, ...]]:
    """(name, byte offset, scalar type, element shape) of one uniform-block field."""
    shape: list[int] = []
    ty = field["type"]
    while ty["kind"] in ("array", "vector", "matrix"):
        if ty["kind"] == "matrix":
            shape += [ty["rowCount"], ty["columnCount"]]
        else:
            shape.append(ty["elementCount"])
        ty = ty["elementType"]
    if ty["kind"] != "scalar" or ty["scalarType"] not in _SCALARS:
        raise ShaderBuildError(f"uniform field {field['name']}: unsupported type {ty}")
    return field["name"], field["binding"]["offset"], _SCALARS[ty["scalarType"]], tuple(shape)


def reflected_interface(reflections: list[dict]) -> dict:
    """Bindings, specialisation constant ids and uniform-block layouts of all targets, checked
    to agree wherever a name appears in several."""
    out: dict[str, dict] = {"bindings": {}, "specialisation": {}, "blocks": {}}

    def put(table: str, name: str, value) -> None:
        have = out[table].setdefault(name, value)
        if have != value:
            raise ShaderBuildError(f"{name} differs between shaders: {have} and {value}")

    for reflected in reflections:
        for param in reflected.get("parameters", []):
            name, binding, ty = param["name"], param["binding"], param["type"]
            if binding["kind"] == "specializationConstant":
                put("specialisation", name, binding["index"])
                continue
            if binding["kind"] != "descriptorTableSlot":
                continue
            put("bindings", name, binding["index"])
            if ty["kind"] == "constantBuffer":
                element = ty["elementVarLayout"]
                size = element["binding"]["size"]
                fields = tuple(_field_layout(f) for f in element["type"]["fields"])
                put("blocks", name, (size, fields))
    return out


def constants_text(consts: dict[str, int | float], interface: dict) -> str:
    lines = ['"""What the Slang sources define, for the Python side: generated by shaders/build.py '
             'from',
             "shaders/*.slang and slangc's reflection; do not edit, run `python -m shaders.build`.",
             '"""', "", "# every `static const` of the Slang sources"]
    lines += [f"{name} = {value!r}" for name, value in sorted(consts.items())]
    lines += ["", "# [[vk::binding(N)]] of each texture and uniform block (GL texture unit or "
              "uniform block binding)", "BINDINGS = {"]
    lines += [f"    {name!r}: {index}," for name, index in sorted(interface["bindings"].items())]
    lines += ["}", "", "# specialisation constants: name -> constant_id", "SPECIALISATION = {"]
    lines += [f"    {name!r}: {index}," for name, index in
              sorted(interface["specialisation"].items(), key=lambda kv: kv[1])]
    lines += ["}", "", "# uniform blocks (std140): name -> (bytes, ((field, byte offset, scalar "
              "type, element shape), ...))", "BLOCKS = {"]
    for name, (size, fields) in sorted(interface["blocks"].items()):
        lines.append(f"    {name!r}: ({size}, (")
        lines += [f"        {field!r}," for field in fields]
        lines.append("    )),")
    lines += ["}", ""]
    return "\n".join(lines)


def build_outputs() -> dict[Path, str]:
    """Compile every target: {path: text} of every generated GLSL file and of constants.py."""
    targets = all_targets()
    # each slangc is its own process: run them side by side, one per core
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        compiled = list(pool.map(lambda t: compile_target(SHADER_DIR / t[0], t[1], t[2], t[4]),
                                 targets))
    files, reflections = {}, []
    for (src, entry, stage, name, defines), (glsl, reflected) in zip(targets, compiled):
        files[GENERATED / name] = _with_provenance(glsl, src, entry, stage, defines)
        reflections.append(reflected)
    files[CONSTANTS] = constants_text(static_constants(), reflected_interface(reflections))
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shaders.build", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="compare with the committed files instead of writing them")
    args = p.parse_args(argv)
    try:
        files = build_outputs()
    except ShaderBuildError as e:
        print(f"shaders.build: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    stale = []
    for path, text in files.items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
            continue
        GENERATED.mkdir(exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        print(path)
    if stale:
        print(f"shaders.build: stale generated files: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
