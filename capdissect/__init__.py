"""capdissect: capture and dissect TCP and UDP, the way tcpdump prints it, explained.

The Python API (SPEC §3.9) is ``read``, ``track`` and ``capture``; see ``capdissect.api``.

The API's names are loaded at their first use (PEP 562), not here: every command, and
``import capdissect.<module>``, runs this file first, and the API imports every report.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from capdissect.errors import CapdissectError, CaptureError, DissectError, TrackError

# The one place the version is written: pyproject.toml reads it from here at build time.
__version__ = "0.1.0"

if TYPE_CHECKING:
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

_API = frozenset({"Capture", "Connection", "LiveCapture", "PacketList", "Packets",
                  "PacketView", "Report", "Timeline", "Tracked", "capture", "read", "track"})

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


def __getattr__(name: str) -> Any:
    if name in _API:
        from capdissect import api

        value = getattr(api, name)
        globals()[name] = value  # the next use finds it at once
        return value
    raise AttributeError(f"module 'capdissect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _api_function(name: str) -> property:
    def get(package: ModuleType) -> Any:
        return __getattr__(name)

    def bind(package: ModuleType, value: object) -> None:
        """The import system binding the subpackage of the same name: it keeps its
        place in sys.modules, and the name stays the API's function."""

    return property(get, bind)


class _Package(ModuleType):
    """``capture`` and ``track`` are API functions and subpackages too: importing
    ``capdissect.capture.files`` binds ``capdissect.capture`` to the subpackage, which
    would hide the function from ``__getattr__``; as properties they cannot be hidden."""

    capture = _api_function("capture")
    track = _api_function("track")


sys.modules[__name__].__class__ = _Package
