"""capdissect: capture and dissect TCP and UDP, the way tcpdump prints it, explained.

The Python API (SPEC §3.9) is ``read``, ``track`` and ``capture``; see ``capdissect.api``.
"""

from capdissect.errors import CapdissectError, CaptureError, DissectError, TrackError

__version__ = "0.1.0"

# After __version__: the API's modules import it from here (E402 is that order).
from capdissect.api import (
    Capture,
    Connection,
    LiveCapture,
    PacketList,
    Packets,
    PacketView,
    Report,
    Timeline,
    Tracked,
    capture,
    read,
    track,
)

__all__ = [
    "CapdissectError",
    "Capture",
    "CaptureError",
    "Connection",
    "DissectError",
    "LiveCapture",
    "PacketList",
    "PacketView",
    "Packets",
    "Report",
    "Timeline",
    "TrackError",
    "Tracked",
    "__version__",
    "capture",
    "read",
    "track",
]
