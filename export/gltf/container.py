"""Safe access to the bytes a scene refers to: .gltf / .glb framing, data: URIs, and relative
URIs that must stay inside the scene's folder (symlinks followed)."""
from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from pathlib import Path, PureWindowsPath
from urllib.parse import unquote, unquote_to_bytes

import numpy as np

from ..images import ImageError, decode_image
from ..safe_files import read_regular_file
from .model import SceneError

GLB_MAGIC = b"glTF"
GLB_JSON, GLB_BIN = 0x4E4F534A, 0x004E4942
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def resolve_uri(folder: Path, uri, what: str) -> Path:
    """The file a relative URI names, refusing anything that leaves `folder` (which must be
    resolved already). data: URIs are handled by the caller."""
    if not isinstance(uri, str) or not uri:
        raise SceneError(f"{what} has an empty or invalid uri")
    shown = uri if len(uri) <= 80 else uri[:77] + "..."
    if _SCHEME.match(uri) and not PureWindowsPath(uri).drive:
        raise SceneError(f"{what} uri '{shown}' is not a relative file path (only files inside "
                         f"the scene's folder and data: URIs are read)")
    rel = unquote(uri)
    if rel.startswith(("/", "\\")) or PureWindowsPath(rel).drive or PureWindowsPath(rel).root:
        raise SceneError(f"{what} uri '{shown}' is an absolute path; only files inside the "
                         f"scene's folder are read")
    full = (folder / rel).resolve()
    if full != folder and folder not in full.parents:
        raise SceneError(f"{what} uri '{shown}' leaves the scene's folder; only files inside "
                         f"it are read")
    return full


def decode_data_uri(uri: str, what: str) -> tuple[bytes, str | None]:
    """Bytes and media type of a data: URI."""
    head, sep, payload = uri[5:].partition(",")
    if not sep:
        raise SceneError(f"{what} has a malformed data: URI (no ',')")
    parts = head.split(";")
    mime = parts[0] or None
    try:
        if "base64" in parts[1:]:
            return base64.b64decode(payload, validate=False), mime
        return unquote_to_bytes(payload), mime
    except (binascii.Error, ValueError) as e:
        raise SceneError(f"{what} has a malformed base64 data: URI ({e})") from None


def decode_image_bytes(data: bytes, what: str) -> np.ndarray:
    """uint8/uint16 [H, W, C] of an embedded or referenced image (export.images.decode_image)."""
    try:
        return decode_image(data)
    except ImageError as e:
        raise SceneError(f"{what} cannot be decoded: {e}") from None


def read_container(path: Path) -> tuple[dict, bytes | None]:
    """The glTF JSON (as a dict) and, for .glb, the BIN chunk; validates the .glb framing."""
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        raise SceneError(f"scene {path} does not exist") from None
    except IsADirectoryError:
        raise SceneError(f"scene {path} is a folder; give a .gltf or .glb file") from None
    except OSError as e:
        raise SceneError(f"cannot read scene {path}: {e.strerror or e}") from None
    binary = None
    if data[:4] == GLB_MAGIC:
        if len(data) < 20:
            raise SceneError(f"{path.name}: truncated .glb (only {len(data)} bytes)")
        _, version, length = struct.unpack_from("<4sII", data, 0)
        if version != 2:
            raise SceneError(f"{path.name}: .glb version {version} is not supported (2 expected)")
        if length > len(data):
            raise SceneError(f"{path.name}: truncated .glb: header says {length} bytes, the file "
                             f"has {len(data)}")
        chunks, pos = [], 12
        while pos < length:
            if pos + 8 > length:
                raise SceneError(f"{path.name}: corrupt .glb: chunk header at byte {pos} is cut off")
            clen, ctype = struct.unpack_from("<II", data, pos)
            if pos + 8 + clen > length:
                raise SceneError(f"{path.name}: truncated .glb: chunk at byte {pos} needs {clen} "
                                 f"bytes, {length - pos - 8} are left")
            chunks.append((ctype, data[pos + 8:pos + 8 + clen]))
            pos += 8 + clen
        if not chunks or chunks[0][0] != GLB_JSON:
            raise SceneError(f"{path.name}: corrupt .glb: the first chunk is not JSON")
        text = chunks[0][1]
        if len(chunks) > 1 and chunks[1][0] == GLB_BIN:
            binary = chunks[1][1]
    elif path.suffix.lower() == ".glb":
        raise SceneError(f"{path.name}: not a .glb file (bad magic)")
    else:
        text = data
    try:
        doc = json.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SceneError(f"{path.name}: not valid glTF JSON ({e})") from None
    if not isinstance(doc, dict):
        raise SceneError(f"{path.name}: not valid glTF JSON (top level is not an object)")
    return doc, binary


def parse_gltf(doc: dict, path: Path):
    """pygltflib's GLTF2 model of a JSON dict (structure only; this module does all reading)."""
    import pygltflib
    asset = doc.get("asset")
    if not isinstance(asset, dict) or not isinstance(asset.get("version"), str):
        raise SceneError(f"{path.name}: not a glTF file (no asset.version)")
    major = asset["version"].split(".")[0]
    if major != "2":
        raise SceneError(f"{path.name}: glTF version {asset['version']} is not supported (2.x)")
    try:
        return pygltflib.GLTF2.from_json(json.dumps(doc), infer_missing=True)
    except Exception as e:
        raise SceneError(f"{path.name}: malformed glTF ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
