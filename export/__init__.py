"""What every stage shares, and the only thing stages share: the `.ntc` file format (format,
header, bitpack, model, layout), the decode function it implies in every backend (decode/), the
safe glTF scene reader whose NTC_texture_set extension names a material's .ntc (gltf/), and small
helpers each defined once (images, pixels, metrics, safe_files, options, arguments, errors)."""
from .format import NTCFormatError, read_ntc, write_ntc  # noqa: F401
