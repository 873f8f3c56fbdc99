"""Figures of bench.viewer's rows against the reference row: frame PSNR (whole image and scene
pixels), texture VRAM and frame-time ratios, and the block-format reference point (the textures a
real-time renderer would store as BC7/BC5/BC4)."""
from __future__ import annotations

import numpy as np

from export.metrics import psnr

TEXTURE_CATEGORIES = ("textures", "decoded", "latents", "weights", "tiles")
VRAM_TARGET = 0.1          # sample-mode texture memory <= 1/10 of the reference images'


def block_format_textures(scene) -> list[dict]:
    """The textures reference mode uploads for the materials the scene draws (one per image,
    colour space and normal handling, as viewer/material_textures.ImageTextures keys them), each with
    the block format a real-time renderer stores it in (export.bcn.formats.format_for: BC7 for
    colour and 3-4 channels, BC5 for normal maps, BC4 for grey), and the bytes of its full mip
    chain in that format and in RGBA8."""
    from viewer.bcn_images import image_format
    from viewer.frame_stats import mip_chain_texels
    from viewer.material_bindings import COLOUR_SLOTS
    seen: dict[tuple, dict] = {}
    for mat in scene.drawn_materials():
        for slot, ts in mat.slots.items():
            key = (ts.image.key, slot in COLOUR_SLOTS, slot == "normal")
            w, h = ts.image.size
            if key not in seen:
                fmt = image_format(ts.image, key[1], key[2])[0]
                seen[key] = {"image": ts.image.name, "size": [w, h], "slots": [],
                             "format": fmt.name.upper(),
                             "block_bytes": fmt.chain_bytes(w, h),
                             "rgba8_bytes": mip_chain_texels(w, h) * 4}
            entry = seen[key]
            tag = f"{mat.name}/{slot}"
            if tag not in entry["slots"]:
                entry["slots"].append(tag)
    return list(seen.values())


def background_mask(image: np.ndarray) -> np.ndarray:
    """bool [h, w]: pixels showing the empty background (the renderer's clear colour)."""
    from viewer.scene_pass import BACKGROUND
    bg = np.rint(np.array(BACKGROUND) * 255)
    return np.all(np.abs(image.astype(int) - bg) <= 1, axis=2)


def object_fraction(image: np.ndarray) -> float:
    """Share of pixels that are not the empty background (the object is in the picture)."""
    return float(1.0 - np.mean(background_mask(image)))


def object_psnr(image: np.ndarray, reference: np.ndarray) -> float | None:
    """PSNR over the pixels where either frame shows the scene (not background); None when
    identical there or when neither does."""
    mask = ~(background_mask(image) & background_mask(reference))
    if not mask.any():
        return None
    d = image[mask].astype(np.float64) - reference[mask].astype(np.float64)
    mse = float(np.mean(d * d))
    return None if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def frame_ratios(row: dict, ref: dict) -> dict:
    out = {}
    for key in ("gpu_ms", "wall_ms", "cpu_ms", "process_cpu_ms"):
        a, b = row.get(key), ref.get(key)
        out[key] = ratio(a and a["median"], b and b["median"])
    return out


def compare_rows(results: list[dict], images: dict, ref: dict, block_bytes: int) -> dict:
    """Adds each row's figures against `ref` (PSNR, texture VRAM, frame time) and against the
    block-format textures' `block_bytes`; returns the scene's headline ratios."""
    for r in results:
        value = psnr(images[r["name"]], images[ref["name"]])
        r["psnr_vs_reference"] = None if value == float("inf") else value
        r["psnr_vs_reference_object"] = object_psnr(images[r["name"]], images[ref["name"]])
        r["texture_vram_vs_reference"] = ratio(r["texture_vram_bytes"],
                                               ref["texture_vram_bytes"])
        r["frame_time_vs_reference"] = frame_ratios(r, ref)
        r["texture_vram_vs_block_formats"] = ratio(r["texture_vram_bytes"], block_bytes)
    by_name = {r["name"]: r for r in results}
    ratios = {}
    sample = by_name.get("sample_trilinear") or next(
        (r for r in results if r["mode"] == "sample"), None)
    load = by_name.get("load")
    for a, b in (("reference_bcn", "load_bcn"), ("load", "load_bcn")):
        if a in by_name and b in by_name:   # the transcoded set against the BCn images
            ratios[f"{b}_vs_{a}"] = {
                "psnr_difference": None if None in (by_name[a]["psnr_vs_reference"],
                                                    by_name[b]["psnr_vs_reference"])
                else by_name[b]["psnr_vs_reference"] - by_name[a]["psnr_vs_reference"],
                "texture_vram_bytes": [by_name[b]["texture_vram_bytes"],
                                       by_name[a]["texture_vram_bytes"]]}
    if sample is not None:
        v = sample["texture_vram_vs_reference"]
        ratios.update({"texture_vram_sample_over_reference": v,
                       "texture_vram_sample_meets_target": v is not None and v <= VRAM_TARGET,
                       "texture_vram_sample_over_block_formats":
                           sample["texture_vram_vs_block_formats"],
                       "frame_time_sample_over_reference": sample["frame_time_vs_reference"]})
    if load is not None:
        ratios.update({"texture_vram_load_over_reference": load["texture_vram_vs_reference"],
                       "texture_vram_load_over_block_formats":
                           load["texture_vram_vs_block_formats"],
                       "frame_time_load_over_reference": load["frame_time_vs_reference"]})
    return ratios
