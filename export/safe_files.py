"""What the tools read and where they write, made safe.

Reading: `read_regular_file` opens without blocking and reads only regular files, so a FIFO,
device or socket named like a texture, scene or .ntc file is an error, not a hang.
Writing, checked before any work: an output must be a regular file (or not exist yet) in a folder
where a file can be created, and must not be one of the inputs or another output. Every CLI that
writes goes through these (trainer/cli.py, export/cli.py, trainer/gltf.py), so a mistyped path
fails in a second, not after minutes of training."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import NTCError


def read_regular_file(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file. A folder raises IsADirectoryError; a FIFO, device or socket
    an OSError whose strerror says so (opened non-blocking, so a FIFO never waits for a writer)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket)", str(path))
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file or a link to one; False for folders, FIFOs, devices, broken links."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class OutputPathError(NTCError, ValueError):
    """An output path the tools refuse; the message is one line for the user."""


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """The folder, resolved, after creating (and removing) a file in it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputPathError(f"{what} {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ntc-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputPathError(f"cannot write in {what} {folder}: {e.strerror or e}") from None
    return folder.resolve()


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """`path`, resolved, if a file may be written there: not a folder, not an existing device
    node, FIFO or socket (atomic_write would replace it with a regular file), in a writable
    folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise OutputPathError(f"{what} {path}: {e.strerror or e}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputPathError(f"{what} {path} exists and is not a regular file (a device, FIFO "
                              f"or socket); choose a file name")
    check_writable_folder(path.parent, f"folder of {what}")
    return path.resolve()


def refuse_overwriting(outputs: dict[str, Path], inputs: Iterable[Path]) -> None:
    """No output may be an input or another output (paths compared resolved)."""
    seen: dict[Path, str] = {}
    for label, p in outputs.items():
        r = Path(p).resolve()
        if r in seen:
            raise OutputPathError(f"{label} and {seen[r]} name the same file {p}")
        seen[r] = label
    for p in inputs:
        r = Path(p).resolve()
        if r in seen:
            raise OutputPathError(f"{seen[r]} {r} would overwrite an input file")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
