"""Live capture: the two backends behind one interface, and the errors they share.

``open_live`` starts a capture on an interface with a filter expression and returns a
``LiveSource``: iterate it for ``RawPacket``s in capture order, each packet once.

- ``scapy`` (the default; ``sources/live/ring.py``): in-process, an AF_PACKET socket with a
  TPACKET_V3 ring, the filter compiled by libpcap through scapy's binding and run in the
  kernel, the outgoing copy of each loopback packet dropped there too (what libpcap,
  hence tcpdump, does on ``lo``).
- ``tshark`` (``sources/live/dumpcap.py``): Wireshark's ``dumpcap`` captures and writes pcap
  to a pipe, which capdissect's own streaming pcap reader reads.

Both hand out the same packets with the same kernel timestamps, so everything past
this point (printing, annotation, ``-w``) is shared.  ``stop()`` may be called from a
signal handler or another thread; iteration then ends after the packet in hand.

A capture that cannot go on (the interface deleted, dumpcap gone) raises CaptureError
from the iteration, after every packet captured before it was handed out.  An interface
that is only taken down is not an error, as for tcpdump: the capture waits for it.
"""

from __future__ import annotations

from collections.abc import Callable

from capdissect.errors import CaptureError
from capdissect.sources.live.common import (
    BACKENDS,
    DEFAULT_BUFFER_KIB,
    MAX_BUFFER_KIB,
    MIN_BUFFER_KIB,
    SNAPLEN,
    Backend,
    CaptureStats,
    LiveSource,
    capture_failed,
    interface_gone,
    no_such_interface,
    option_problem,
    privilege_error,
)

__all__ = ["BACKENDS", "DEFAULT_BUFFER_KIB", "MAX_BUFFER_KIB", "MIN_BUFFER_KIB", "SNAPLEN",
           "Backend", "CaptureStats", "LiveSource", "capture_failed", "interface_gone",
           "no_such_interface", "open_live", "option_problem", "privilege_error"]


def open_live(
    iface: str = "lo",
    expression: str | None = None,
    *,
    backend: Backend = "scapy",
    buffer_kib: int = DEFAULT_BUFFER_KIB,
    duration: float | None = None,
    on_idle: Callable[[], None] | None = None,
) -> LiveSource:
    """Start capturing on *iface*; packets reach the source from this call on.

    *duration* ends the iteration after that many seconds; *on_idle* is called each
    time the source is about to wait for packets (the CLI flushes its output there).
    Raises CaptureError for no privilege, no such interface, a missing dumpcap or a bad
    filter, before anything is captured, and for a buffer or a duration out of range.
    """
    problem = option_problem(buffer_kib, duration)
    if problem is not None:
        raise CaptureError(problem)
    if backend == "tshark":
        from capdissect.sources.live.dumpcap import DumpcapPipe

        return DumpcapPipe(iface, expression, buffer_kib=buffer_kib, duration=duration,
                           on_idle=on_idle)
    from capdissect.sources.live.ring import PacketRing

    return PacketRing(iface, expression, buffer_kib=buffer_kib, duration=duration,
                      on_idle=on_idle)
