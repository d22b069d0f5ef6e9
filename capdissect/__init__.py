"""capdissect: capture and dissect TCP and UDP, the way tcpdump prints it, explained."""

from capdissect.errors import CapdissectError, CaptureError, DissectError, TrackError

__version__ = "0.1.0"

__all__ = ["CapdissectError", "CaptureError", "DissectError", "TrackError", "__version__"]
