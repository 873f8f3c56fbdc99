"""The `.ntc` file format: the one contract between trainer and viewer, with its reference decoder."""
from .format import NTCFormatError, read_ntc, write_ntc  # noqa: F401
