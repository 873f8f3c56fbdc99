"""Generate GLSL from the Slang decoder with the `slangc` that ships inside the slangtorch wheel.

    python -m shaders.build            write shaders/generated/*.glsl
    python -m shaders.build --check    exit 1 if a committed file differs from a fresh compile

The generated files are committed, so running the viewer or the GL decoder needs no Slang compiler;
tests/test_shaders.py recompiles (when slangc is installed) and holds the two together.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from export.errors import NTCError

SHADER_DIR = Path(__file__).resolve().parent
GENERATED = SHADER_DIR / "generated"
STAGES = ("vertex", "fragment", "compute")

# (Slang source, entry point, stage, generated file)
TARGETS: list[tuple[str, str, str, str]] = [
    ("ntc_load.slang", "vertexMain", "vertex", "ntc_load.vert.glsl"),
    ("ntc_load.slang", "fragmentMain", "fragment", "ntc_load.frag.glsl"),
    ("ntc_load.slang", "textureMain", "fragment", "ntc_load_textures.frag.glsl"),
    ("ntc_sample_harness.slang", "vertexMain", "vertex", "ntc_sample_harness.vert.glsl"),
    ("ntc_sample_harness.slang", "fragmentMain", "fragment", "ntc_sample_harness.frag.glsl"),
    ("pbr.slang", "vertexMain", "vertex", "pbr.vert.glsl"),
    ("pbr.slang", "fragmentMain", "fragment", "pbr.frag.glsl"),
    ("pbr_ntc.slang", "fragmentMain", "fragment", "pbr_ntc.frag.glsl"),
    ("viewer_post.slang", "vertexMain", "vertex", "viewer_post.vert.glsl"),
    ("viewer_post.slang", "fragmentMain", "fragment", "viewer_post.frag.glsl"),
    ("viewer_post.slang", "textVertex", "vertex", "viewer_text.vert.glsl"),
    ("viewer_post.slang", "textFragment", "fragment", "viewer_text.frag.glsl"),
]


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


def compile_glsl(slang_path: str | os.PathLike, entry: str, stage: str) -> str:
    """GLSL 450 source of one entry point; raises ShaderBuildError naming the cause."""
    slang_path = Path(slang_path)
    if stage not in STAGES:
        raise ShaderBuildError(f"unknown stage '{stage}', expected one of {', '.join(STAGES)}")
    if not slang_path.is_file():
        raise ShaderBuildError(f"Slang source {slang_path} does not exist")
    slangc = find_slangc()
    with tempfile.TemporaryDirectory(prefix="ntc-slangc-") as tmp:
        out = Path(tmp) / "out.glsl"
        cmd = [str(slangc), str(slang_path), "-I", str(slang_path.parent),
               "-target", "glsl", "-profile", "glsl_450", "-entry", entry, "-stage", stage,
               "-line-directive-mode", "none", "-o", str(out)]
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
    if not text.startswith("#version 450"):
        raise ShaderBuildError(f"slangc output for {slang_path.name}:{entry} is not GLSL 450")
    return text


def generated_text(slang_name: str, entry: str, stage: str) -> str:
    """The committed form: slangc's output plus a provenance line after #version."""
    glsl = compile_glsl(SHADER_DIR / slang_name, entry, stage)
    first, rest = glsl.split("\n", 1)
    note = (f"// Generated by shaders/build.py from shaders/{slang_name} (entry {entry}, {stage}); "
            f"do not edit, run `python -m shaders.build`.\n")
    return first + "\n" + note + rest


def build_all(out_dir: Path = GENERATED) -> dict[str, str]:
    """Compile every target; returns {file name: text} (written by `main`)."""
    return {name: generated_text(src, entry, stage) for src, entry, stage, name in TARGETS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shaders.build", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="compare with the committed files instead of writing them")
    args = p.parse_args(argv)
    try:
        files = build_all()
    except ShaderBuildError as e:
        print(f"shaders.build: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    stale = []
    for name, text in files.items():
        path = GENERATED / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
            continue
        GENERATED.mkdir(exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        print(path)
    if stale:
        print(f"shaders.build: stale generated GLSL: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
