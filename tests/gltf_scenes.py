"""Tiny glTF scenes built in a temporary folder: JSON + a .bin written from numpy arrays, 16x16 PNG
textures, or one .glb with everything embedded. Used by test_scene.py and test_gltf_compress.py."""
from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from conftest import base_color, normal_map, orm, rgba

TEX = 16  # texture size

# A unit quad in the XY plane facing +Z, glTF UVs (origin top-left: v grows downwards).
QUAD_POS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
QUAD_NRM = np.array([[0, 0, 1]] * 4, np.float32)
QUAD_UV = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
QUAD_IDX = np.array([0, 1, 2, 0, 2, 3], np.uint16)

_COMPONENT = {np.dtype(np.int8): 5120, np.dtype(np.uint8): 5121, np.dtype(np.int16): 5122,
              np.dtype(np.uint16): 5123, np.dtype(np.uint32): 5125, np.dtype(np.float32): 5126}
_TYPE = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    iio.imwrite(buf, pixels, extension=".png")
    return buf.getvalue()


class SceneBuilder:
    """Accumulates a glTF document and its binary buffer."""

    def __init__(self):
        self.bin = bytearray()
        self.doc: dict = {"asset": {"version": "2.0", "generator": "ntc tests"}, "scene": 0,
                          "scenes": [{"nodes": []}], "nodes": [], "meshes": [], "materials": [],
                          "accessors": [], "bufferViews": [], "buffers": [], "images": [],
                          "textures": [], "samplers": []}
        self.files: dict[str, bytes] = {}

    def view(self, data: bytes, stride: int | None = None) -> int:
        while len(self.bin) % 4:
            self.bin.append(0)
        bv = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if stride:
            bv["byteStride"] = stride
        self.bin += data
        self.doc["bufferViews"].append(bv)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, arr: np.ndarray, normalized: bool = False) -> int:
        arr = np.ascontiguousarray(arr)
        comps = 1 if arr.ndim == 1 else arr.shape[1]
        acc = {"bufferView": self.view(arr.astype(arr.dtype.newbyteorder("<")).tobytes()),
               "componentType": _COMPONENT[arr.dtype], "count": int(arr.shape[0]),
               "type": _TYPE[comps]}
        if normalized:
            acc["normalized"] = True
        if comps == 3 and arr.dtype == np.float32:
            acc["min"] = arr.min(0).tolist()
            acc["max"] = arr.max(0).tolist()
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def mesh(self, positions=QUAD_POS, normals=QUAD_NRM, uvs=QUAD_UV, indices=QUAD_IDX,
             tangents=None, material: int | None = 0, mode: int | None = None,
             name: str = "quad") -> int:
        attrs = {"POSITION": self.accessor(positions)}
        if normals is not None:
            attrs["NORMAL"] = self.accessor(normals)
        if uvs is not None:
            attrs["TEXCOORD_0"] = self.accessor(uvs)
        if tangents is not None:
            attrs["TANGENT"] = self.accessor(tangents)
        prim = {"attributes": attrs}
        if indices is not None:
            prim["indices"] = self.accessor(indices)
        if material is not None:
            prim["material"] = material
        if mode is not None:
            prim["mode"] = mode
        self.doc["meshes"].append({"name": name, "primitives": [prim]})
        return len(self.doc["meshes"]) - 1

    def node(self, root: bool = True, **fields) -> int:
        self.doc["nodes"].append(fields)
        i = len(self.doc["nodes"]) - 1
        if root:
            self.doc["scenes"][0]["nodes"].append(i)
        return i

    def image_file(self, name: str, pixels: np.ndarray) -> int:
        """An image stored as a PNG file beside the scene (embedded in a .glb on write)."""
        self.files[name] = png_bytes(pixels)
        self.doc["images"].append({"uri": name})
        return len(self.doc["images"]) - 1

    def texture(self, image: int, sampler: int | None = None) -> int:
        t = {"source": image}
        if sampler is not None:
            t["sampler"] = sampler
        self.doc["textures"].append(t)
        return len(self.doc["textures"]) - 1

    def material(self, **fields) -> int:
        self.doc["materials"].append(fields)
        return len(self.doc["materials"]) - 1

    def write(self, path: Path) -> Path:
        """Write .gltf (+ .bin + PNG files) or, for a .glb path, one self-contained .glb."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = json.loads(json.dumps(self.doc))
        doc = {k: v for k, v in doc.items() if v != []}
        if path.suffix == ".glb":
            blob = bytearray(self.bin)
            for im in doc.get("images", []):
                if "uri" in im and im["uri"] in self.files:
                    data = self.files[im.pop("uri")]
                    while len(blob) % 4:
                        blob.append(0)
                    doc.setdefault("bufferViews", []).append(
                        {"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
                    blob += data
                    im["bufferView"] = len(doc["bufferViews"]) - 1
                    im["mimeType"] = "image/png"
            while len(blob) % 4:
                blob.append(0)
            doc["buffers"] = [{"byteLength": len(blob)}]
            js = json.dumps(doc).encode()
            js += b" " * (-len(js) % 4)
            total = 12 + 8 + len(js) + 8 + len(blob)
            path.write_bytes(struct.pack("<4sII", b"glTF", 2, total)
                             + struct.pack("<II", len(js), 0x4E4F534A) + js
                             + struct.pack("<II", len(blob), 0x004E4942) + bytes(blob))
            return path
        bin_name = f"{path.stem}.bin"
        doc["buffers"] = [{"uri": bin_name, "byteLength": len(self.bin)}]
        (path.parent / bin_name).write_bytes(bytes(self.bin))
        for name, data in self.files.items():
            (path.parent / name).parent.mkdir(parents=True, exist_ok=True)
            (path.parent / name).write_bytes(data)
        path.write_text(json.dumps(doc, indent=1))
        return path


def textured_builder(alpha_mode: str = "OPAQUE", orm_shared: bool = True,
                     emissive: bool = False, small_normal: bool = False) -> SceneBuilder:
    """One quad, one material: baseColor, normal, ORM (metallicRoughness + occlusion from the
    same image unless orm_shared=False), optionally emissive; node with a translation."""
    b = SceneBuilder()
    bc = b.image_file("mat_baseColor.png", rgba(TEX, TEX) if alpha_mode != "OPAQUE"
                      else base_color(TEX, TEX))
    nsize = TEX // 2 if small_normal else TEX
    nm = b.image_file("mat_normal.png", normal_map(nsize, nsize))
    om = b.image_file("mat_orm.png", orm(TEX, TEX, metallic=200))
    pbr = {"baseColorTexture": {"index": b.texture(bc)},
           "metallicRoughnessTexture": {"index": b.texture(om)}}
    mat = {"name": "Mat One", "pbrMetallicRoughness": pbr, "normalTexture": {"index": b.texture(nm)},
           "alphaMode": alpha_mode}
    if orm_shared:
        mat["occlusionTexture"] = {"index": b.texture(om)}
    else:
        occ = b.image_file("mat_ao.png", orm(TEX, TEX)[..., 0].copy())
        mat["occlusionTexture"] = {"index": b.texture(occ)}
    if emissive:
        em = b.image_file("mat_emissive.png", base_color(TEX, TEX)[..., ::-1].copy())
        mat["emissiveTexture"] = {"index": b.texture(em)}
        mat["emissiveFactor"] = [1.0, 1.0, 1.0]
    b.material(**mat)
    m = b.mesh()
    b.node(mesh=m, translation=[1.0, 2.0, 3.0], name="quad")
    return b


def data_uri(data: bytes, mime: str = "application/octet-stream") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()
