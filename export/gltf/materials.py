"""Images, samplers, texture slots (KHR_texture_transform) and metallic-roughness materials of a
glTF file (a mixin of the loader: it uses the loader's `g`, `folder`, `fail`, `warn`, `index` and
the buffer reading of buffers.py)."""
from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from .container import decode_image_bytes, resolve_uri
from .model import (ALPHA_MODES, GL_REPEAT, MAG_FILTERS, MIN_FILTERS, SLOTS, WRAP_MODES,
                    ImageRef, Material, NtcRef, SamplerInfo, SceneError, TextureSlot)
from .ntc_extension import NTC_EXTENSION


class MaterialReading:
    def image(self, i: int) -> ImageRef:
        if i in self._images:
            return self._images[i]
        im = self.g.images[i]
        what = f"image {i}"
        source, mime = None, im.mimeType
        if im.uri is not None:
            if isinstance(im.uri, str) and im.uri.startswith("data:"):
                data, mime = self.data_uri(im.uri, what)
                name = im.name or f"image{i}"
            else:
                source, data = self.read_file_at(im.uri, what)
                name = Path(unquote(im.uri)).stem
            label = f"{what} ('{unquote(im.uri)[:60]}')" if source else what
        elif im.bufferView is not None:
            buf, start, length, _ = self.buffer_view(im.bufferView, what)
            data = bytes(buf[start:start + length])
            name = im.name or f"image{i}"
            label = what
        else:
            self.fail(f"{what} has neither a uri nor a bufferView")
        try:
            pixels = decode_image_bytes(data, label)
        except SceneError as e:
            self.fail(str(e))
        ref = ImageRef(key=f"image{i}", name=name, pixels=pixels, source_path=source, index=i,
                       mime_type=mime)
        self._images[i] = ref
        return ref

    def sampler(self, i) -> SamplerInfo:
        if i is None:
            return SamplerInfo()
        s = self.g.samplers[self.index(i, self.g.samplers, "texture sampler")]
        wrap_s = s.wrapS if s.wrapS is not None else GL_REPEAT
        wrap_t = s.wrapT if s.wrapT is not None else GL_REPEAT
        for w in (wrap_s, wrap_t):
            if w not in WRAP_MODES:
                self.fail(f"sampler {i} has an invalid wrap mode {w!r}")
        mag = s.magFilter if s.magFilter in MAG_FILTERS else None
        mn = s.minFilter if s.minFilter in MIN_FILTERS else None
        return SamplerInfo(wrap_s, wrap_t, mag, mn)

    def slot(self, info, what: str) -> TextureSlot | None:
        if info is None:
            return None
        ti = self.index(info.index, self.g.textures, f"{what}: texture")
        tex = self.g.textures[ti]
        if tex.source is None:
            self.warn(f"texture {ti} has no PNG/JPEG source (an extension's image format?); "
                      f"{what} is ignored")
            return None
        img = self.image(self.index(tex.source, self.g.images, f"texture {ti}: source image"))
        texcoord = info.texCoord if type(info.texCoord) is int else 0
        uv_transform = None
        ext = (info.extensions or {}).get("KHR_texture_transform")
        if isinstance(ext, dict):
            try:
                off = [float(v) for v in ext.get("offset", (0.0, 0.0))]
                rot = float(ext.get("rotation", 0.0))
                sc = [float(v) for v in ext.get("scale", (1.0, 1.0))]
                if len(off) != 2 or len(sc) != 2:
                    raise ValueError
            except (TypeError, ValueError):
                self.fail(f"{what}: malformed KHR_texture_transform")
            c, s = math.cos(rot), math.sin(rot)
            t = np.array([[1, 0, off[0]], [0, 1, off[1]], [0, 0, 1]])
            # The extension's GLSL builds mat3(c, s, 0, -s, c, 0, 0, 0, 1): column-major.
            r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
            sm = np.diag([sc[0], sc[1], 1.0])
            uv_transform = (t @ r @ sm).astype(np.float32)
            if type(ext.get("texCoord")) is int:
                texcoord = ext["texCoord"]
        if texcoord not in (0, 1):
            self.warn(f"{what} uses TEXCOORD_{texcoord}; only 0 and 1 are supported, using 0")
            texcoord = 0
        return TextureSlot(img, self.sampler(tex.sampler), texcoord, uv_transform, ti)

    def material(self, i: int) -> Material:
        m = self.g.materials[i]
        what = f"material {i}"
        pbr = m.pbrMetallicRoughness
        mat = Material(index=i, name=m.name if isinstance(m.name, str) and m.name else f"material{i}")

        def floats(v, n, default, label):
            if v is None:
                return default
            try:
                out = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                out = ()
            if len(out) != n:
                self.fail(f"{what}: {label} must be {n} numbers")
            return out

        def num(v, default, label):
            if v is None:
                return default
            if type(v) not in (int, float):
                self.fail(f"{what}: {label} must be a number")
            return float(v)

        slots = {}
        if pbr is not None:
            mat.base_color_factor = floats(pbr.baseColorFactor, 4, mat.base_color_factor,
                                           "baseColorFactor")
            mat.metallic_factor = num(pbr.metallicFactor, 1.0, "metallicFactor")
            mat.roughness_factor = num(pbr.roughnessFactor, 1.0, "roughnessFactor")
            slots["baseColor"] = self.slot(pbr.baseColorTexture, f"{what} baseColorTexture")
            slots["metallicRoughness"] = self.slot(pbr.metallicRoughnessTexture,
                                                   f"{what} metallicRoughnessTexture")
        slots["normal"] = self.slot(m.normalTexture, f"{what} normalTexture")
        if m.normalTexture is not None:
            mat.normal_scale = num(m.normalTexture.scale, 1.0, "normalTexture.scale")
        slots["occlusion"] = self.slot(m.occlusionTexture, f"{what} occlusionTexture")
        if m.occlusionTexture is not None:
            mat.occlusion_strength = num(m.occlusionTexture.strength, 1.0,
                                         "occlusionTexture.strength")
        slots["emissive"] = self.slot(m.emissiveTexture, f"{what} emissiveTexture")
        mat.slots = {k: v for k, v in slots.items() if v is not None}
        mat.emissive_factor = floats(m.emissiveFactor, 3, (0.0, 0.0, 0.0), "emissiveFactor")
        ext = m.extensions or {}
        strength = ext.get("KHR_materials_emissive_strength")
        if isinstance(strength, dict):
            mat.emissive_strength = num(strength.get("emissiveStrength"), 1.0, "emissiveStrength")
            mat.emissive_factor = tuple(f * mat.emissive_strength for f in mat.emissive_factor)
        mode = m.alphaMode or "OPAQUE"
        if mode not in ALPHA_MODES:
            self.fail(f"{what}: unknown alphaMode {mode!r}")
        mat.alpha_mode = mode
        mat.alpha_cutoff = num(m.alphaCutoff, 0.5, "alphaCutoff")
        mat.double_sided = bool(m.doubleSided)
        ntc = ext.get(NTC_EXTENSION)
        if isinstance(ntc, dict):
            mat.ntc = self.ntc_ref(ntc, what)
        return mat

    def ntc_ref(self, ext: dict, what: str) -> NtcRef | None:
        uri, textures = ext.get("uri"), ext.get("textures")
        if not isinstance(uri, str) or not isinstance(textures, dict) or not all(
                k in SLOTS and isinstance(v, str) for k, v in textures.items()):
            self.warn(f"{what}: malformed {NTC_EXTENSION} extension ignored")
            return None
        try:
            path = resolve_uri(self.folder, uri, f"{what} {NTC_EXTENSION}")
        except SceneError as e:
            self.fail(str(e))
        if not path.is_file():
            self.warn(f"{what}: {NTC_EXTENSION} file '{unquote(uri)}' is missing; using the images")
            return None
        return NtcRef(path, dict(textures))
