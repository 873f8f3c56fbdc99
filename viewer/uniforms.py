"""The viewer's uniform blocks, filled by field name through the dtypes slangc's reflection gives
(shaders/interface.py): PbrFrame once a frame, PbrDraw per (mode, primitive), PostPass per screen
pass. Each function returns the bytes to upload."""
from __future__ import annotations

import numpy as np

from export.gltf.model import SLOTS
from shaders import constants as C
from shaders.interface import ALPHA_MODES, FILTERS, new_block

NTC_SET_SLOT = C.PBR_SLOT_NTC_SET   # drawUv row pair of the neural set (after the five slots)
SLOT_COUNT = len(SLOTS)


def frame_block(view_projection: np.ndarray, eye, exposure: float, light_dir, light_colour,
                env_intensity: float, filter_name: str, frame_index: int) -> bytes:
    b = new_block("PbrFrame")
    b["frameViewProj"] = view_projection
    b["frameCamera"] = (*np.asarray(eye, np.float32)[:3], exposure)
    b["frameLightDir"][:3] = light_dir
    b["frameLight"] = (*light_colour, env_intensity)
    b["frameNtc"][:2] = (FILTERS[filter_name], frame_index & 0x7FFFFFFF)
    return b.tobytes()


def view_key(frame: bytes) -> bytes:
    """The part of a PbrFrame block that changes with the view and the light, not with the frame
    index (what restarts the accumulation of stochastic frames)."""
    offset = dict((f[0], f[1]) for f in C.BLOCKS["PbrFrame"][1])["frameNtc"]
    return frame[:offset]


def draw_block(mesh, material, binding) -> bytes:
    """PbrDraw of one primitive drawn with `binding` (material_bindings.Binding)."""
    b = new_block("PbrDraw")
    b["drawModel"] = mesh.world.T                       # rows of the transpose = columns
    b["drawNormal"][:, :3] = mesh.normal_matrix.T
    b["drawBaseColor"] = material.base_color_factor
    b["drawEmissive"][:3] = material.emissive_factor
    b["drawParams"] = (material.metallic_factor, material.roughness_factor, material.normal_scale,
                       material.occlusion_strength)
    b["drawAlpha"] = (ALPHA_MODES.get(material.alpha_mode, C.PBR_ALPHA_OPAQUE),
                      material.alpha_cutoff, 1.0 if material.double_sided else 0.0, 0.0)
    uv = b["drawUv"].reshape(NTC_SET_SLOT + 1, 2, 4)     # per slot: the 2x3 transform's two rows
    for s in range(NTC_SET_SLOT + 1):
        slot = SLOTS[s] if s < SLOT_COUNT else binding.ntc_slot
        ts = material.slots.get(slot) if slot else None
        t = getattr(ts, "uv_transform", None) if ts is not None else None
        t = np.eye(3, dtype=np.float32) if t is None else np.asarray(t, np.float32)
        uv[s, :, :3] = t[:2]
        uv[s, 0, 3] = 1.0 if ts is not None and getattr(ts, "texcoord", 0) == 1 else 0.0
    b["drawSlotTex0"] = binding.slot_tex[:4]
    b["drawSlotTex1"][0] = binding.slot_tex[4]
    b["drawSlotFlags0"] = binding.flags[:4]
    b["drawSlotFlags1"][0] = binding.flags[4]
    if binding.ntc is not None:
        m = binding.ntc.tex.model
        b["drawNtcSet"][:3] = (m.width, m.height, m.mips)
        b["drawNtcWrap"][:2] = binding.ntc_wrap
        pool = getattr(binding.ntc, "pool", None)   # feedback mode: the set's layers, the slots
        if pool is not None:
            b["drawNtcSet"][3] = binding.ntc.layers
            b["drawSlotTex1"][1] = pool.channels
            b["drawNtcWrap"][2:] = (pool.slot, pool.border)
    return b.tobytes()


def post_block(mode: int, gain: float = 0.0, weight: float = 0.0,
               size: tuple[int, int] = (0, 0), linear_source: bool = False) -> bytes:
    """PostPass: `mode` one of C.POST_*; the heat map's gain, the accumulation weight, the
    viewport size (text); `linear_source`: the source is the accumulation target's mean in
    linear light (shaders/display.slang), shown as display values."""
    b = new_block("PostPass")
    b["postMode"][0] = mode
    b["postMode"][1] = int(linear_source)
    b["postParams"] = (gain, weight, *size)
    return b.tobytes()
