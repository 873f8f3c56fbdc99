"""What each material draws with in each mode (`Binding`), made once and cached.

reference: the material's images (material_textures.ImageTextures, RGBA8 or BCn: the reference
format) through its glTF samplers; load: the textures its .ntc decodes to (LoadedSet: RGBA8, or
transcoded to BCn: the load format), the same samplers, a slot whose texture the set lacks falling
back to the image in the reference format; sample: the set's latents and network (SampledSet) with the
sample-mode program, each slot naming the set texture it reads; feedback: the same slots read from
the set's decoded tiles (feedback_sets.FeedbackSet, in the scene's TileCache, made by
`create_tiles` before the first feedback binding). Materials whose sets are one file share one GL
copy of it. Slots map to a set's textures through export.gltf.ntc_extension.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from export.format import read_ntc
from export.gltf.model import GL_REPEAT, SLOTS
from export.gltf.ntc_extension import material_slot_names, slot_texture_index
from shaders import constants as C

from .feedback_sets import FeedbackSet
from .feedback_tiles import FeedbackConfig, TileCache
from .frame_stats import VramLedger
from .material_textures import ImageTextures, LoadedSet, SampledSet, Samplers
from .programs import Programs

COLOUR_SLOTS = ("baseColor", "emissive")
FLAG_TEXTURED, FLAG_SRGB, FLAG_NORMAL_XY = (C.PBR_FLAG_TEXTURED, C.PBR_FLAG_SRGB,
                                            C.PBR_FLAG_NORMAL_XY)


@dataclass(frozen=True)
class TextureFormats:
    """The GL formats of the modes that sample textures: reference mode's images and load mode's
    decoded set, each "rgba8" (the RGBA8 family) or "bcn" (what an engine ships)."""
    reference: str = "rgba8"
    load: str = "rgba8"

    @classmethod
    def from_args(cls, args) -> "TextureFormats":
        """From ntc-view's --reference and --load-format."""
        return cls(reference=args.reference, load=args.load_format)


FORMAT_NAMES = ("rgba8", "bcn")


@dataclass
class Binding:
    """What one material draws with in one mode."""
    program: object
    textures: list = field(default_factory=list)   # per slot (texture or None, sampler or None)
    flags: list[int] = field(default_factory=lambda: [0] * len(SLOTS))
    slot_tex: list[int] = field(default_factory=lambda: [-1] * len(SLOTS))
    ntc: SampledSet | FeedbackSet | None = None
    ntc_wrap: tuple[int, int] = (GL_REPEAT, GL_REPEAT)
    ntc_slot: str | None = None   # the slot whose uv / wrap the whole neural set samples with


class MaterialBindings:
    """Bindings of a scene's materials, by (mode, material index). `material(index)` gives the
    material; `images(format)` the ImageTextures of a reference format ("rgba8", "bcn");
    `ntc_provider(material)` its .ntc path or None (it keeps its images); `home` is the
    framebuffer made current before GL passes are made or run (load mode's decode, feedback
    mode's tiles): they rebind the one current then, which must not be a target a resize
    releases."""

    def __init__(self, ctx, material, programs: Programs, samplers: Samplers,
                 images: Callable[[str], ImageTextures], white, ledger: VramLedger,
                 ntc_provider=None,
                 slot_names=None, home=None, log=None):
        self.ctx = ctx
        self.material = material
        self.programs = programs
        self.samplers = samplers
        self.images = images
        self.white = white
        self.ledger = ledger
        self.ntc_provider = ntc_provider
        self.slot_names = slot_names or material_slot_names
        self.home = home
        self.log = log or (lambda *a: None)
        self._models: dict[int, object] = {}
        self._paths: dict[int, Path] = {}       # material -> its .ntc (shared sets share one)
        self._bindings: dict[tuple[str, int, str], Binding] = {}
        self._loaded: dict[tuple[int | Path, str], LoadedSet] = {}
        self._sampled: dict[int | Path, SampledSet] = {}
        self._feedback: dict[tuple[int | Path, tuple[bool, bool]], FeedbackSet] = {}
        self.tiles: TileCache | None = None

    def create_tiles(self, size: tuple[int, int], materials,
                     config: FeedbackConfig = FeedbackConfig()) -> TileCache:
        """The scene's tile cache (once), its pool sized for a view of `size` and the most layers
        among `materials`' sets."""
        if self.tiles is None:
            self._bind_home()
            models = [m for m in map(self.model, materials) if m is not None]
            self.tiles = TileCache.for_sets(self.ctx, size, models, self.ledger, config)
        return self.tiles

    def update_tiles(self) -> None:
        """After a feedback frame: the tile cache's update (a pool grown there makes passes)."""
        self._bind_home()
        self.tiles.update()

    def _bind_home(self) -> None:
        if self.home is not None:
            self.home.use()

    def model(self, index: int):
        """The material's NTCModel, or None when it keeps its images."""
        if index not in self._models:
            mat = self.material(index)
            path = None
            if self.ntc_provider is not None and index >= 0 and mat.slots:
                path = self.ntc_provider(mat)
            if path is not None:
                self._paths[index] = Path(path).resolve()
            self._models[index] = read_ntc(path) if path is not None else None
        return self._models[index]

    @staticmethod
    def variant(mode: str, formats: TextureFormats) -> str:
        """What a binding depends on besides the material: the mode and the formats it samples
        (load mode's slots without a set texture fall back to the images)."""
        if mode in ("sample", "feedback"):
            return mode
        if mode == "reference":
            return f"reference/{formats.reference}"
        return f"load/{formats.load}/{formats.reference}"

    def get(self, mode: str, index: int, formats: TextureFormats = TextureFormats()) -> Binding:
        key = (self.variant(mode, formats), index)
        b = self._bindings.get(key)
        if b is not None:
            return b
        mat = self.material(index)
        model = self.model(index) if mode != "reference" else None
        label = f"material {index} '{mat.name}'"
        shared = (self._paths.get(index, index), formats.load)
        images = self.images(formats.reference)
        if model is None:
            b = self._texture_binding(mat, None, images)
        elif mode == "load":
            if shared not in self._loaded:
                self._bind_home()
                self._loaded[shared] = LoadedSet(self.ctx, model, self.ledger, label,
                                                 formats.load)
            b = self._texture_binding(mat, (model, self._loaded[shared]), images)
        elif mode == "feedback":
            # a set's tile borders follow its wrap: one copy per repeat / clamp combination
            repeat = tuple(w == GL_REPEAT for w in self._set_wrap(mat)[1])
            shared = (shared[0], repeat)
            if shared not in self._feedback:
                if self.tiles is None:
                    raise RuntimeError("feedback bindings need create_tiles first")
                self._bind_home()
                fset = FeedbackSet(self.ctx, model, self.ledger, label, repeat,
                                   self.tiles.pool.format, self.tiles.readback_lag)
                try:
                    self.tiles.add(fset)
                except BaseException:
                    fset.release()
                    raise
                self._feedback[shared] = fset
            b = self._set_binding(mat, model, self.programs.feedback(mat.alpha_mode == "MASK"),
                                  self._feedback[shared])
        else:
            shared = shared[0]
            if shared not in self._sampled:
                self._sampled[shared] = SampledSet(self.ctx, model, self.programs, self.ledger,
                                                   label)
            sset = self._sampled[shared]
            b = self._set_binding(mat, model, sset.program, sset)
        self._bindings[key] = b
        return b

    def _texture_binding(self, mat, loaded, images: ImageTextures) -> Binding:
        b = Binding(self.programs.pbr)
        names = self.slot_names(mat)
        for s, slot in enumerate(SLOTS):
            ts = mat.slots.get(slot)
            if ts is None:
                b.textures.append((self.white, None))
                continue
            sampler = self.samplers.get(ts.sampler)
            colour = slot in COLOUR_SLOTS
            tex = None
            if loaded is not None:
                model, lset = loaded
                i = slot_texture_index(model, mat, slot, names)
                if i < 0:
                    self.log(f"warning: {mat.name}: no texture of its .ntc feeds {slot}; "
                             f"using the image")
                else:
                    d = lset.textures[i]
                    tex = d.texture
                    b.flags[s] = FLAG_TEXTURED | (FLAG_SRGB if colour and not d.hw_srgb else 0) \
                        | (FLAG_NORMAL_XY if d.normal_xy else 0)
            if tex is None:
                tex = images.get(ts.image, colour, slot == "normal")
                b.flags[s] = FLAG_TEXTURED | images.flags(tex)
            b.textures.append((tex, sampler))
        return b

    def _set_binding(self, mat, model, program, nset) -> Binding:
        """Sample or feedback mode: `program` reads every slot from the set `nset`."""
        b = Binding(program, ntc=nset)
        names = self.slot_names(mat)
        for s, slot in enumerate(SLOTS):
            if slot not in mat.slots:
                continue
            i = slot_texture_index(model, mat, slot, names)
            if i < 0:
                self.log(f"warning: {mat.name}: no texture of its .ntc feeds {slot}; the slot "
                         f"is left untextured in sample and feedback modes")
                continue
            b.slot_tex[s] = i
            b.flags[s] = FLAG_TEXTURED | (FLAG_SRGB if slot in COLOUR_SLOTS else 0)
        b.ntc_slot, b.ntc_wrap = self._set_wrap(mat)
        return b

    @staticmethod
    def _set_wrap(mat) -> tuple[str | None, tuple[int, int]]:
        """The slot whose uv and wrap the whole set samples with (the base colour's, else the
        first textured slot's), and that wrap (glTF values, per axis)."""
        slot = "baseColor" if "baseColor" in mat.slots else next(
            (s for s in SLOTS if s in mat.slots), None)
        if slot is None:
            return None, (GL_REPEAT, GL_REPEAT)
        smp = mat.slots[slot].sampler
        return slot, (getattr(smp, "wrap_s", GL_REPEAT) or GL_REPEAT,
                      getattr(smp, "wrap_t", GL_REPEAT) or GL_REPEAT)

    def release(self) -> None:
        for sets in (self._loaded, self._sampled):
            for s in sets.values():
                s.release()
            sets.clear()
        self._feedback.clear()   # the tile cache releases its sets
        if self.tiles is not None:
            self.tiles.release()
            self.tiles = None
        self._bindings.clear()
