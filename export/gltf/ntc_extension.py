"""This project's glTF extension, NTC_texture_set (docs/gltf-ntc-extension.md): a material names
its .ntc and which texture inside it feeds each glTF slot. The one place that maps material slots
to texture names and to a file's textures."""
from __future__ import annotations

from pathlib import Path

NTC_EXTENSION = "NTC_texture_set"

# slots that one packed occlusion-roughness-metallic image feeds, when both use the same image
ORM_SLOTS = ("metallicRoughness", "occlusion")


def slot_texture_names(material) -> dict[str, str]:
    """glTF slot -> texture name in the material's set as ntc-compress builds it (also what
    NTC_texture_set records): the slot's name, or "orm" for metallicRoughness and occlusion
    sharing one image."""
    slots = material.slots
    orm = all(s in slots for s in ORM_SLOTS) and \
        slots["metallicRoughness"].image.key == slots["occlusion"].image.key
    return {slot: "orm" if orm and slot in ORM_SLOTS else slot for slot in slots}


def material_slot_names(material) -> dict[str, str]:
    """glTF slot -> texture name inside the material's .ntc: the file's own mapping when the scene
    names one through NTC_texture_set, else slot_texture_names."""
    ntc = getattr(material, "ntc", None)
    if ntc is not None:
        return dict(ntc.textures)
    return slot_texture_names(material)


def slot_texture_index(model, material, slot: str, names: dict[str, str] | None = None) -> int:
    """Index in `model.textures` of the texture feeding `slot`, or -1: by the slot's name in
    `names` (default material_slot_names), else by the slot image's name or file stem, else by
    role."""
    names = material_slot_names(material) if names is None else names
    by_name = {t.name: i for i, t in enumerate(model.textures)}
    name = names.get(slot)
    if name in by_name:
        return by_name[name]
    ts = material.slots.get(slot)
    if ts is not None:
        for candidate in (ts.image.name, Path(ts.image.source_path).stem
                          if ts.image.source_path else None):
            if candidate in by_name:
                return by_name[candidate]
    roles = {s: (s, "orm") for s in ORM_SLOTS}.get(slot, (slot,))
    for i, t in enumerate(model.textures):
        if t.role in roles:
            return i
    return -1
