"""What trainer and viewer share, and the only thing they share: the `.ntc` file format with its
reference decoder, and the glTF scene reader (gltf/) both read scenes through, whose
NTC_texture_set extension names a material's .ntc."""
from .format import NTCFormatError, read_ntc, write_ntc  # noqa: F401
