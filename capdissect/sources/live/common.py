"""What the two live backends share: the options' limits, the source's interface, the
statistics, and the one-line errors (``open_live`` in ``__init__.py`` chooses a backend)."""


from __future__ import annotations

import math
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from typing import Final, Literal, NamedTuple, Protocol

from capdissect.errors import CaptureError
from capdissect.packets import RawPacket

Backend = Literal["scapy", "tshark"]
BACKENDS: Final = ("scapy", "tshark")
SNAPLEN: Final = 262144  # tcpdump's default snapshot length (libpcap's MAXIMUM_SNAPLEN)
DEFAULT_BUFFER_KIB: Final = 32 * 1024
MIN_BUFFER_KIB: Final = 1024
# 1 GiB.  The buffer is kernel memory (the scapy backend's ring is locked in RAM, as
# libpcap's): tcpdump asks for whatever -B says, so -B 2147483647 asked for 2 TiB.
MAX_BUFFER_KIB: Final = 1024 * 1024


class CaptureStats(NamedTuple):
    """tcpdump's end-of-capture figures (``-1`` where a backend cannot tell)."""

    captured: int  # handed to capdissect
    received: int  # accepted by the filter (the kernel's count)
    dropped: int  # accepted by the filter but lost: the buffer was full


class LiveSource(Protocol):
    iface: str
    linktype: int
    snaplen: int

    def __iter__(self) -> Iterator[RawPacket]: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> CaptureStats: ...


def privilege_error(iface: str, backend: Backend, detail: str = "") -> CaptureError:
    """The one line that says what capturing needs."""
    if backend == "tshark":
        tool = shutil.which("dumpcap") or "/usr/bin/dumpcap"
        fix = (f"run as root, or let dumpcap capture: "
               f"sudo setcap cap_net_raw,cap_net_admin=eip {tool}")
    else:
        interpreter = os.path.realpath(sys.executable)
        fix = (f"run as root, or give the Python interpreter the capability: "
               f"sudo setcap cap_net_raw,cap_net_admin=eip {interpreter}")
    why = f" ({detail})" if detail else ""
    return CaptureError(f"no permission to capture on {iface}{why}: {fix}")


def no_such_interface(iface: str) -> CaptureError:
    try:
        names = ", ".join(name for _index, name in socket.if_nameindex())
    except OSError:
        names = ""
    known = f" (this machine has: {names})" if names else ""
    return CaptureError(f"no such interface: {iface}{known}")


def capture_failed(iface: str, why: str, captured: int) -> CaptureError:
    """The one line when a capture cannot go on, with the number of packets it handed out
    (which ``live`` has shown, and written with ``-w``)."""
    plural = "s" if captured != 1 else ""
    return CaptureError(f"{iface}: {why} (captured {captured} packet{plural})")


def interface_gone(iface: str, captured: int) -> CaptureError:
    """The interface was deleted during the capture (a USB adapter pulled, a container's
    veth removed): worded alike for both backends, where libpcap says "The interface
    disappeared" and dumpcap that the adapter "is no longer attached"."""
    return capture_failed(iface, "the interface disappeared", captured)


def option_problem(buffer_kib: int, duration: float | None) -> str | None:
    """What is wrong with a buffer size or a duration, in one line; None if nothing."""
    if not MIN_BUFFER_KIB <= buffer_kib <= MAX_BUFFER_KIB:
        return (f"invalid buffer size {buffer_kib} KiB: give {MIN_BUFFER_KIB} to "
                f"{MAX_BUFFER_KIB} (1 GiB)")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        return f"invalid duration {duration:g}: give a number of seconds above 0"
    return None
