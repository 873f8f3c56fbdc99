"""Writing a bench's results: the report printed, then NAME.json and NAME.md written atomically
into the results folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

from export.safe_files import atomic_write


def check_out_folder(parser, folder: Path) -> None:
    """Before a bench's work: its results folder exists (made now) and takes files, else the
    parser's one-line usage error."""
    from export.safe_files import OutputPathError, check_writable_folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        check_writable_folder(folder, "--out folder")
    except (OSError, OutputPathError) as e:
        parser.error(str(e) if isinstance(e, OutputPathError) else
                     f"cannot make --out folder {folder}: {e.strerror or e}")


def write_results(folder: Path, name: str, out: dict, md: str, echo: bool = True) -> None:
    if echo:
        print()
        print(md)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{name}.json", (json.dumps(out, indent=1) + "\n").encode())
    atomic_write(folder / f"{name}.md", md.encode())


def cpu_name() -> str:
    """The CPU's model name (Linux), for the machine line of a report."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    return f"{os.cpu_count()} CPU cores ({cpu_name()})"
