"""Writing a bench's results: the report printed, then NAME.json and NAME.md written atomically
into the results folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

from export.safe_files import atomic_write


def write_results(folder: Path, name: str, out: dict, md: str) -> None:
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
