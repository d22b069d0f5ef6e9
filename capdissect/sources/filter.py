"""tcpdump filter expressions: compiled by libpcap itself, run by our BPF interpreter.

``tcpdump -r FILE EXPRESSION`` hands EXPRESSION to libpcap's ``pcap_compile`` on the
file's handle and keeps the records whose captured bytes the compiled classic BPF program
accepts.  We do the same: the grammar, the optimiser and every quirk are libpcap's own
(no hand-written subset can keep up with ``tcp[tcpflags]``, ``vlan``, ``protochain`` or
``portrange``), and the verdict comes from ``dissect.bpf``.

libpcap is reached through scapy's ctypes binding (``scapy.libs.winpcapy``; scapy is
already a dependency).  We do not use ``scapy.arch.common.compile_filter``, because it
compiles on a "dead" handle, and libpcap compiles some expressions differently for a
savefile, which is what tcpdump -r has:

- on NULL (BSD loopback) files ``ip6`` matches all three BSD AF_INET6 values (24, 28,
  30), not only this machine's (10); and a file written in the other byte order has its
  AF values swapped (gencode.c, ``gen_loopback_linktype``);
- ``inbound``/``outbound``/``ifindex`` are refused where a savefile cannot support them.

So we open a savefile handle on a 24-byte pcap header with the file's link type, snap
length and byte order (written to a temporary file) and compile on that, with tcpdump's
netmask for files (0, so ``ip broadcast`` works; scapy passes "unknown") and optimiser
on.  libpcap's error message is printed as tcpdump prints it.  Loading this part of
scapy costs ~30 ms (scapy's full import ~150 ms), and only when a filter is given.

This is the IO/ctypes edge; per packet only ``PacketFilter.matches`` runs.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import tempfile
from typing import Any, Final

from capdissect.dissect.bpf import Program
from capdissect.errors import CaptureError, Malformed
from capdissect.packets import RawPacket
from capdissect.sources.pcap import MAGIC_USEC, file_header

OPTIMIZE: Final = 1  # tcpdump optimises unless -O
NETMASK: Final = 0  # tcpdump -r passes 0: a file has no "local network"
MAX_SNAPLEN: Final = 262144  # libpcap's MAXIMUM_SNAPLEN
_ERRBUF_SIZE: Final = 256  # PCAP_ERRBUF_SIZE


def savefile_header(linktype: int, snaplen: int, big_endian: bool) -> bytes:
    """A classic pcap file header (no records) that libpcap opens as a savefile."""
    if not 0 < snaplen <= MAX_SNAPLEN:
        snaplen = MAX_SNAPLEN  # libpcap would do the same on open
    return file_header(linktype, snaplen, MAGIC_USEC, ">" if big_endian else "<")


def _argument_bytes(expression: str) -> bytes:
    """The expression as the bytes the user typed: Python decodes command-line arguments
    with surrogateescape, so bytes that are not UTF-8 come back as they were and libpcap
    judges them, as it does for tcpdump (a syntax error, not a crash of ours)."""
    return os.fsencode(expression)


def compile_expression(
    expression: str, linktype: int, snaplen: int = MAX_SNAPLEN, big_endian: bool = False
) -> Program:
    """Compile *expression* as tcpdump -r would for a file of *linktype*, *snaplen* and
    byte order; raise CaptureError with libpcap's message if it cannot."""
    pcap = _libpcap()
    with tempfile.TemporaryDirectory(prefix="capdissect-bpf-") as tmp:
        path = os.path.join(tmp, "header.pcap")
        with open(path, "wb") as f:
            f.write(savefile_header(linktype, snaplen, big_endian))
        errbuf = ctypes.create_string_buffer(_ERRBUF_SIZE)
        handle = pcap.pcap_open_offline(path.encode(), errbuf)
    if not handle:
        reason = errbuf.value.decode("utf-8", "replace") or "unknown error"
        raise CaptureError(f"libpcap cannot compile a filter for link type {linktype}: "
                           f"{reason}")
    program = pcap.bpf_program()
    try:
        status = pcap.pcap_compile(
            handle, ctypes.byref(program), _argument_bytes(expression), OPTIMIZE, NETMASK
        )
        if status != 0:
            raw = pcap.pcap_geterr(handle) or b"cannot compile the filter expression"
            raise CaptureError(raw.decode("utf-8", "replace").strip())
        try:
            insns = [(i.code, i.jt, i.jf, i.k) for i in program.bf_insns[: program.bf_len]]
        finally:
            pcap.pcap_freecode(ctypes.byref(program))
    finally:
        pcap.pcap_close(handle)
    try:
        return Program(insns)
    except Malformed as exc:  # libpcap's output is always valid; say so if it is not
        raise CaptureError(
            f"libpcap compiled {expression!r} into an invalid program: {exc}"
        ) from None


def compile_live_expression(
    expression: str, linktype: int, snaplen: int = MAX_SNAPLEN
) -> list[tuple[int, int, int, int]]:
    """Compile *expression* for a live capture of *linktype*, as ``tcpdump -i IFACE`` does.

    The program goes into the kernel (SO_ATTACH_FILTER), not into our interpreter, so it
    is compiled on a "dead" handle rather than a savefile one: for a live capture
    libpcap turns ``inbound``/``outbound`` into loads of the kernel's packet-type field
    (``SKF_AD_PKTTYPE``), which only the kernel can run.  The netmask is 0, which is
    what ``tcpdump -i lo -d 'ip broadcast'`` shows tcpdump using on loopback.  Returns
    the raw ``(code, jt, jf, k)`` instructions; raises CaptureError with libpcap's message.
    """
    pcap = _libpcap()
    handle = pcap.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise CaptureError(f"libpcap cannot compile a filter for link type {linktype}")
    program = pcap.bpf_program()
    try:
        status = pcap.pcap_compile(
            handle, ctypes.byref(program), _argument_bytes(expression), OPTIMIZE, NETMASK
        )
        if status != 0:
            raw = pcap.pcap_geterr(handle) or b"cannot compile the filter expression"
            raise CaptureError(raw.decode("utf-8", "replace").strip())
        try:
            return [(i.code, i.jt, i.jf, i.k) for i in program.bf_insns[: program.bf_len]]
        finally:
            pcap.pcap_freecode(ctypes.byref(program))
    finally:
        pcap.pcap_close(handle)


def libpcap_link_name(linktype: int) -> tuple[str, str] | None:
    """libpcap's name and description of *linktype* (``C_HDLC``, ``Cisco HDLC``), as
    tcpdump's banner shows them; None if libpcap has none or cannot be loaded."""
    try:
        pcap = _libpcap()
    except CaptureError:
        return None
    name = pcap.pcap_datalink_val_to_name(linktype)
    if not name:
        return None
    description = pcap.pcap_datalink_val_to_description(linktype) or b""
    return name.decode("ascii", "replace"), description.decode("ascii", "replace")


class _Libpcap:
    """The ctypes functions and the structure we use, looked up once."""

    def __init__(self, module: Any) -> None:
        self.pcap_open_offline = module.pcap_open_offline
        self.pcap_open_dead = module.pcap_open_dead
        self.pcap_datalink_val_to_name = module.pcap_datalink_val_to_name
        self.pcap_datalink_val_to_description = module.pcap_datalink_val_to_description
        self.pcap_compile = module.pcap_compile
        self.pcap_geterr = module.pcap_geterr
        self.pcap_freecode = module.pcap_freecode
        self.pcap_close = module.pcap_close
        self.bpf_program = module.bpf_program


_LOADED: list[_Libpcap] = []


def _libpcap() -> _Libpcap:
    if not _LOADED:
        try:
            # Lazy: libpcap (and this part of scapy) is loaded only when a filter is given.
            winpcapy = importlib.import_module("scapy.libs.winpcapy")
        except (ImportError, OSError) as exc:
            raise CaptureError(
                f"filter expressions need libpcap, which cannot be loaded ({exc}); "
                "install it (apt-get install libpcap0.8)"
            ) from None
        _LOADED.append(_Libpcap(winpcapy))
    return _LOADED[0]


class PacketFilter:
    """A filter expression for one file, compiled lazily for each link type it meets.

    A pcapng file may hold interfaces of several link types; each gets its own program.
    *snaplen* and *big_endian* describe the file, as libpcap's savefile handle would.
    """

    def __init__(
        self, expression: str, snaplen: int = MAX_SNAPLEN, big_endian: bool = False
    ) -> None:
        self.expression = expression
        self.snaplen = snaplen
        self.big_endian = big_endian
        self._programs: dict[int, Program] = {}

    def program(self, linktype: int) -> Program:
        found = self._programs.get(linktype)
        if found is None:
            found = compile_expression(self.expression, linktype, self.snaplen,
                                       self.big_endian)
            self._programs[linktype] = found
        return found

    def matches(self, pkt: RawPacket) -> bool:
        """True if tcpdump would keep *pkt*: the program accepts its captured bytes."""
        program = self._programs.get(pkt.linktype) or self.program(pkt.linktype)
        return program.run(pkt.data, pkt.wire_len) != 0
