"""The three texture sources a material draws with: the scene's images (reference mode, as RGBA8 or
as BCn: bcn_images.py), its neural
set decoded once into GL textures (load mode) or kept as latents + MLP for the PBR shader to decode
per pixel (sample mode); and the glTF samplers. Every object that holds memory is entered in the
renderer's VramLedger."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.bcn.gl_texture import BCnTextureGL
from export.decode.gl_context import RawGL
from export.decode.gl_resources import REMAP_BINDING, NTCTextureGL, remap_block
from export.gltf.model import GL_REPEAT
from shaders import constants as C

from .frame_stats import VramLedger, mip_chain_texels
from .programs import Programs

GL_LINEAR = 9729
GL_LINEAR_MIPMAP_LINEAR = 9987
GL_SRGB8_ALPHA8, GL_RGBA8 = 0x8C43, 0x8058
GL_TEXTURE_MAG_FILTER, GL_TEXTURE_MIN_FILTER = 0x2800, 0x2801
GL_TEXTURE_WRAP_S, GL_TEXTURE_WRAP_T = 0x2802, 0x2803
FLAG_NORMAL_XY = C.PBR_FLAG_NORMAL_XY


def image_rgba(pixels: np.ndarray) -> np.ndarray:
    """float32 [H, W, 4] in [0, 1] as glTF samples an image: grey in R, G and B, alpha 1 when the
    image has none."""
    px = pixels.astype(np.float32) / (65535.0 if pixels.dtype == np.uint16 else 255.0)
    c = px.shape[2]
    if c <= 2:
        grey = np.repeat(px[..., :1], 3, axis=2)
        alpha = px[..., 1:2] if c == 2 else np.ones_like(px[..., :1])
        return np.concatenate([grey, alpha], axis=2)
    if c == 3:
        return np.concatenate([px, np.ones_like(px[..., :1])], axis=2)
    return px


def image_mips8(image, srgb: bool, normal: bool) -> list[np.ndarray]:
    """uint8 [h, w, 4] levels of the image's full mip chain, as glTF samples it (image_rgba),
    built like the trainer's targets (export.pixels.build_mips)."""
    from export.pixels import build_mips
    mips = build_mips(image_rgba(image.pixels), [srgb] * 3 + [False], normal)
    return [np.ascontiguousarray(np.clip(np.rint(m * 255.0), 0, 255).astype(np.uint8))
            for m in mips]


class ImageTextures:
    """Reference mode: one texture per (image, colour space, normal handling) with a full mip
    chain built like the trainer's targets: RGBA8 (SRGB8_ALPHA8 for colour slots), or with `bcn`
    (a bcn_images.BCnImages) the BCn texture an engine ships. `flags(tex)`: the PBR_FLAG_* bits
    the shader needs beyond FLAG_TEXTURED (a BC5 normal map's Z is rebuilt there)."""

    def __init__(self, ctx, ledger: VramLedger, bcn=None):
        self.ctx = ctx
        self.ledger = ledger
        self.bcn = bcn
        self._cache: dict[tuple, object] = {}
        self._normal_xy: set[int] = set()

    def get(self, image, srgb: bool, normal: bool):
        key = (image.key, srgb, normal)
        tex = self._cache.get(key)
        if tex is not None:
            return tex
        tex = self._bcn(image, srgb, normal) if self.bcn is not None \
            else self._rgba8(image, srgb, normal)
        self._cache[key] = tex
        return tex

    def _rgba8(self, image, srgb: bool, normal: bool):
        to8 = image_mips8(image, srgb, normal)
        h, w = to8[0].shape[:2]
        tex = self.ctx.texture((w, h), 4, to8[0].tobytes(),
                               internal_format=GL_SRGB8_ALPHA8 if srgb else GL_RGBA8)
        tex.build_mipmaps()  # allocates every level; then overwritten with the CPU mips
        for level, m in enumerate(to8[1:], start=1):
            tex.write(m.tobytes(), level=level)
        self.ledger.add("textures", tex, mip_chain_texels(w, h) * 4,
                        f"{image.name}{' (sRGB)' if srgb else ''}")
        return tex

    def _bcn(self, image, srgb: bool, normal: bool):
        dds, swizzle = self.bcn.texture(image, srgb, normal)
        tex = BCnTextureGL.from_dds(dds, swizzle)
        name = dds.format.name.upper()
        self.ledger.add("textures", tex, tex.bytes,
                        f"{image.name} {name}{' sRGB' if dds.srgb else ''}"
                        f"{' normal XY' if normal else ''}")
        if normal:
            self._normal_xy.add(id(tex))
        return tex

    def flags(self, tex) -> int:
        return FLAG_NORMAL_XY if id(tex) in self._normal_xy else 0

    def release(self) -> None:
        for tex in self._cache.values():
            self.ledger.remove(tex)
            tex.release()
        self._cache.clear()
        self._normal_xy.clear()


class Samplers:
    """GL sampler objects for glTF samplers (wrap incl. mirrored repeat, mag / min filters)."""

    def __init__(self, ctx, gl: RawGL):
        self.ctx = ctx
        self.gl = gl
        self._cache: dict[tuple, object] = {}

    def get(self, info):
        """The sampler of a glTF SamplerInfo; None: repeat, linear, no mipmaps (for the 1x1
        white texture of empty slots, which has a single level)."""
        wrap_s = getattr(info, "wrap_s", GL_REPEAT) or GL_REPEAT
        wrap_t = getattr(info, "wrap_t", GL_REPEAT) or GL_REPEAT
        mag = getattr(info, "mag_filter", None) or GL_LINEAR
        mn = (getattr(info, "min_filter", None) or GL_LINEAR_MIPMAP_LINEAR) if info is not None \
            else GL_LINEAR
        key = (wrap_s, wrap_t, mag, mn)
        s = self._cache.get(key)
        if s is None:
            s = self.ctx.sampler()
            for pname, value in ((GL_TEXTURE_WRAP_S, wrap_s), (GL_TEXTURE_WRAP_T, wrap_t),
                                 (GL_TEXTURE_MAG_FILTER, mag), (GL_TEXTURE_MIN_FILTER, mn)):
                self.gl.glSamplerParameteri(s._glo, pname, int(value))
            self._cache[key] = s
        return s

    def release(self) -> None:
        for s in self._cache.values():
            s.release()
        self._cache.clear()


@dataclass
class LoadedTexture:
    """One texture of a LoadedSet, with what the PBR shader must know to sample it."""
    texture: object       # moderngl.Texture or export.bcn.gl_texture.BCnTextureGL
    hw_srgb: bool         # an sRGB format: the sampler linearises
    normal_xy: bool       # BC5 X, Y: the shader rebuilds Z


class LoadedSet:
    """Load mode: one material's .ntc decoded into GL textures (the latents and weights are gone
    once decoded): RGBA8-family textures (gl_resources.texel_format), or with load_format "bcn"
    those transcoded on the GPU into the BCn an engine ships (export/decode/gl_transcode.py)."""

    def __init__(self, ctx, model, ledger: VramLedger, label: str, load_format: str = "rgba8"):
        self.ledger = ledger
        self.textures: list[LoadedTexture] = []
        with NTCTextureGL(model, ctx) as tex:
            if load_format == "bcn":
                from export.decode.gl_transcode import decode_to_bcn
                for t, info in zip(decode_to_bcn(tex), model.textures):
                    normal_xy = t.format.name == "bc5" and info.role == "normal"
                    name = f"{t.format.name.upper()}{' sRGB' if t.srgb else ''}" \
                        f"{' normal XY' if normal_xy else ''}"
                    self._add(LoadedTexture(t, t.srgb, normal_xy), t.bytes,
                              f"{label}/{info.name} {name}")
            else:
                from export.decode.gl_load import decode_to_textures
                for d in decode_to_textures(tex):
                    self._add(LoadedTexture(d.texture, d.internal_format == "GL_SRGB8_ALPHA8",
                                            False), d.bytes,
                              f"{label}/{d.name} {d.internal_format}")

    def _add(self, loaded: LoadedTexture, nbytes: int, label: str) -> None:
        self.textures.append(loaded)
        self.ledger.add("decoded", loaded.texture, nbytes, label)

    def release(self) -> None:
        for d in self.textures:
            self.ledger.remove(d.texture)
            d.texture.release()
        self.textures = []


class SampledSet:
    """Sample mode: one material's latents, weights and remap block on the GPU, and its program."""

    def __init__(self, ctx, model, programs: Programs, ledger: VramLedger, label: str):
        self.ledger = ledger
        # the program first: its precision (which may fall back to fp32) sets the weights' format
        self.program, precision = programs.sample(model)
        self.tex = NTCTextureGL(model, ctx, precision)
        try:
            self.remap = ctx.buffer(remap_block(model))
        except BaseException:
            self.tex.release()
            raise
        sizes = self.tex.vram_bytes()
        ledger.add("latents", self.tex, sizes["latents"], f"{label} latents")
        ledger.add("weights", self.tex.weights, sizes["weights"],
                   f"{label} MLP ({precision.name})")
        ledger.add("uniforms", self.remap, self.remap.size, f"{label} remap")

    def bind(self) -> None:
        self.tex.bind()
        self.remap.bind_to_uniform_block(REMAP_BINDING)

    def release(self) -> None:
        self.ledger.remove(self.tex)
        self.ledger.remove(self.tex.weights)
        self.ledger.remove(self.remap)
        self.tex.release()
        self.remap.release()
