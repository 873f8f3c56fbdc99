"""glTF 2.0 scenes (.gltf and .glb) in, flat lists of triangle primitives and PBR materials out.

`load_scene(path)` reads the file with pygltflib's data model, but every byte it touches goes
through this module: buffers and images are read only from data: URIs, the .glb BIN chunk, or
files *inside the scene's folder* (relative URIs whose resolved path, symlinks followed, stays in
it). Anything else, and any malformed or out-of-range reference, is a `SceneError` with a one-line
message: the viewer prints it instead of a traceback.

What the renderer gets (all numpy, all in the layout a GL vertex buffer wants):
- `Scene.primitives`: one `Primitive` per (node, mesh primitive) of the default scene, its world
  matrix already composed from the node hierarchy (TRS or matrix). Triangle lists only: strips and
  fans are converted, points and lines skipped with a warning. Missing normals are generated flat
  (as the glTF spec asks), missing tangents per vertex by a MikkTSpace-like accumulate +
  orthonormalize on the UV set of the material's normal map (always present, so every primitive
  has one vertex layout), missing UVs are zeros, non-indexed geometry gets indices 0..N-1.
- `Scene.materials`: metallic-roughness PBR with the textures decoded to uint8/uint16 pixels.

Extensions: KHR_texture_transform (per slot `uv_transform`, texCoord override),
KHR_materials_emissive_strength (folded into `emissive_factor`), KHR_mesh_quantization (integer
and normalized attributes are read generically) and this project's NTC_texture_set (see
docs/gltf-ntc-extension.md; exposed as `Material.ntc`). A file *requiring* any other extension is
refused; other used-but-optional extensions are ignored with a warning.

Modules: model.py (the data model), container.py (.glb framing, data: URIs, URI safety),
buffers.py (buffers and accessors), materials.py (images, samplers, materials), geometry.py
(normals, tangents, triangle lists), ntc_extension.py (NTC_texture_set), loader.py (load_scene).
"""
from .loader import load_scene  # noqa: F401
from .model import Material, Primitive, Scene, SceneError  # noqa: F401
