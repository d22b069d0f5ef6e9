"""capdissect: capture and dissect TCP and UDP, the way tcpdump prints it, explained.

The Python API (SPEC §3.9) is ``read``, ``track`` and ``capture``; see ``capdissect.api``.

The API's names are loaded at their first use (PEP 562), not here: every command, and
``import capdissect.<module>``, runs this file first, and the API imports every report.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from capdissect._version import __version__
from capdissect.errors import CapdissectError, CaptureError, DissectError, TrackError

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


# Where the loose top-level modules went: ``capdissect.lesson.write_handout`` is
# documented, so the old module paths still import (and ``capdissect.lesson`` still
# works as an attribute), as the modules they became.
_MOVED = {"lesson": "capdissect.commands.handout", "reader": "capdissect.commands.read",
          "analyze": "capdissect.commands.reports", "live": "capdissect.commands.live"}


class _MovedModules:
    """A meta path finder: ``import capdissect.lesson`` gives capdissect.commands.handout."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> Any:
        package, _, leaf = name.rpartition(".")
        if package != __name__ or leaf not in _MOVED:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(name, self)  # type: ignore[arg-type]  # no load_module: PEP 451 loaders need only the two methods below

    def create_module(self, spec: Any) -> ModuleType:
        module = importlib.import_module(_MOVED[spec.name.rpartition(".")[2]])
        self.own_spec = module.__spec__  # the import system is about to replace it
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Already run: it is the module the old name moved to; it gets its own spec
        back, which the import system has just replaced with the old name's."""
        module.__spec__ = self.own_spec


sys.meta_path.append(_MovedModules())


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    if name in _API:
        from capdissect import api

        value = getattr(api, name)
        globals()[name] = value  # the next use finds it at once
        return value
    raise AttributeError(f"module 'capdissect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

