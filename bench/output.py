"""Writing a bench's results: the report printed, then NAME.json and NAME.md written atomically
into the results folder."""
from __future__ import annotations

import json
from pathlib import Path

from export.safe_files import atomic_write


def write_results(folder: Path, name: str, out: dict, md: str) -> None:
    print()
    print(md)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{name}.json", (json.dumps(out, indent=1) + "\n").encode())
    atomic_write(folder / f"{name}.md", md.encode())
