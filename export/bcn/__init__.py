"""BCn textures, as engines ship them: the formats and which texture takes which (formats), the
CPU encoder and an independent decoder (codec), DDS files with full mip chains (dds)."""
from .formats import FORMATS, BCFormat, format_for  # noqa: F401
