"""The ``scapy`` live backend: an AF_PACKET socket with a TPACKET_V3 ring, as libpcap does it.

**Each packet once.**  On Linux every packet on ``lo`` passes the packet taps twice: as
it is sent (``sll_pkttype == PACKET_OUTGOING``) and as it is received.  A plain
AF_PACKET sniffer, scapy's default ``sniff()`` included, shows both.  libpcap, hence
tcpdump, drops the outgoing copy on the loopback device (``pcap-linux.c``: "If this is
from the loopback device, reject it; we'll see the packet as an incoming packet as
well").  We do the same, in the kernel: three instructions in front of the compiled
filter load the packet type (``SKF_AD_OFF + SKF_AD_PKTTYPE``) and reject
``PACKET_OUTGOING`` when the interface is a loopback device, so the outgoing copies
never reach our buffer.  The ring walk checks the type in each packet's
``sockaddr_ll`` as well, so a copy cannot slip through.  On other interfaces both
directions are kept, as tcpdump keeps them.

**Filter.**  libpcap compiles the expression (``capture.filter.compile_live_expression``,
through scapy's ctypes binding) with tcpdump's snapshot length, and the program is
attached with ``SO_ATTACH_FILTER``: the kernel runs it before a packet is copied.  We do
not use scapy's ``attach_filter``: it compiles with a 1500-byte snapshot length (its
``MTU``), so the kernel would cut loopback packets, which can be 64 KiB, at 1500 bytes.

**Why a ring, not scapy's sniffer.**  scapy's ``sniff()`` does one ``recvmsg`` and builds
a scapy ``Packet`` per packet: it handled about 4,000 copies (2,000 packets) a second on
the benchmark machine (``benchmarks/LIVE.md``), far from the 20,000 of SPEC §5.  A socket
receive buffer also charges each small loopback packet its whole kernel buffer (1 KiB
or more), so a burst overflows it.  A TPACKET_V3 ring (``PACKET_RX_RING``, the mechanism
libpcap uses) stores packets back to back in memory mapped into our process: a small
packet costs about 160 bytes of it, the kernel hands over whole blocks, and reading a
packet is a ``struct.unpack_from`` and one slice, with no system call.  A block is
handed over when full or ``RETIRE_BLOCK_MS`` after its first packet, which bounds the
output latency; the default ring of 32 MiB (tcpdump's ``-B``) is 256 blocks, so it
holds about ten seconds of 20,000 small packets a second, and a slow terminal delays
the output instead of losing packets.

**Timestamps** are the kernel's: ``tp_sec``/``tp_nsec`` of each ring entry, in
nanoseconds.  As for tcpdump (libpcap asks for no ``PACKET_TIMESTAMP``), the kernel reads
the real-time clock when the packet reaches each capture socket, so capdissect's and a
simultaneous tcpdump's stamps of one packet differ by a microsecond or two, as two
tcpdumps' do.

**The interface going away.**  When the interface is taken down the kernel unhooks the
socket and sets ENETDOWN on it; when the interface is deleted the same happens first
(NETDEV_DOWN), and only then is the socket's interface index set to -1
(NETDEV_UNREGISTER), which wakes nobody.  So, as libpcap does
(``pcap_wait_for_frames_mmap``), ENETDOWN only starts a watch: every NETDOWN_WAIT_MS the
socket's bound interface is looked up, and once it is gone the capture ends with one
error ("the interface disappeared", tcpdump's "The interface disappeared"), after the
blocks the kernel had filled; an interface that comes back up ends the watch, and one
that stays down is waited for, as tcpdump waits.  Reading SO_ERROR clears the error,
else every poll() would return at once and the wait would spin.

**Order of set-up.**  The socket is opened with protocol 0, so it receives nothing
until it is bound; the filter and the ring are in place before ``bind`` to the
interface and ``ETH_P_ALL``.  No unfiltered packet ever enters the ring.

The ring walk assumes a strongly ordered CPU (x86, where CI runs): Python has no
memory barrier between reading a block's status and its contents.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Final, Literal

from capdissect.dissect.bpf import Program
from capdissect.errors import CaptureError, DissectError
from capdissect.packets import RawPacket
from capdissect.sources.filter import compile_live_expression
from capdissect.sources.live.common import (
    SNAPLEN,
    CaptureStats,
    capture_failed,
    interface_gone,
    no_such_interface,
    privilege_error,
)

# <linux/if_packet.h>, <linux/if_ether.h>, <linux/filter.h>, <linux/if_arp.h>
SOL_PACKET: Final = 263
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_VERSION: Final = 10
TPACKET_V3: Final = 2
SO_ATTACH_FILTER: Final = 26
ETH_P_ALL: Final = 0x0003
PACKET_OUTGOING: Final = 4
TP_STATUS_USER: Final = 1
TP_STATUS_VLAN_VALID: Final = 1 << 4
TP_STATUS_VLAN_TPID_VALID: Final = 1 << 6
ETH_P_8021Q: Final = 0x8100
SKF_AD_PKTTYPE: Final = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE, as an unsigned k
SIOCGIFHWADDR: Final = 0x8927
SIOCGIFFLAGS: Final = 0x8913
IFF_UP: Final = 0x1
ARPHRD_ETHER: Final = 1
ARPHRD_LOOPBACK: Final = 772
ARPHRD_NONE: Final = 0xFFFE  # tun devices: the packet starts at its IP header
# ARPHRD type -> pcap link type (what libpcap picks for a live capture on Linux).
LINKTYPES: Final = {ARPHRD_ETHER: 1, ARPHRD_LOOPBACK: 1, ARPHRD_NONE: 101}

BLOCK_SIZE: Final = 1 << 17  # 128 KiB: holds the largest loopback packet (64 KiB + 14)
FRAME_SIZE: Final = 1 << 11  # TPACKET_V3 ignores frames, but the kernel checks the numbers
MIN_RING: Final = 1 << 20
RETIRE_BLOCK_MS: Final = 40  # a part-filled block is handed over after this: output latency
WAIT_MS: Final = 50  # poll at most this long before looking at stop() and the deadline
NETDOWN_WAIT_MS: Final = 10  # after ENETDOWN: how often to look whether the interface is gone
# Once the interface is gone, the kernel still hands over the block it was filling (its
# retire timer runs on): wait this long for it before the capture ends with the error.
GONE_GRACE_S: Final = 3 * RETIRE_BLOCK_MS / 1000

# struct tpacket_block_desc: block_status at 8, num_pkts at 12, offset_to_first_pkt at 16.
_BLOCK: Final = struct.Struct("=III")
_BLOCK_STATUS_OFFSET: Final = 8
# struct tpacket3_hdr: next offset, sec, nsec, snaplen, len, status, mac, net; the
# sockaddr_ll follows at TPACKET_ALIGN(48), and its sll_pkttype is at byte 10 of that.
_PACKET: Final = struct.Struct("=IIIIIIHH")
_VLAN: Final = struct.Struct("=IH")  # hv1.tp_vlan_tci, hv1.tp_vlan_tpid, at byte 32
_PKTTYPE_OFFSET: Final = 48 + 10
_STATS: Final = struct.Struct("=III")  # struct tpacket_stats_v3
_STATUS_KERNEL: Final = b"\0\0\0\0"


class _SockFilter(ctypes.Structure):
    _fields_ = (("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


def loopback_prelude() -> list[tuple[int, int, int, int]]:
    """Reject the outgoing copy of a loopback packet; go on to the filter otherwise."""
    return [
        (0x30, 0, 0, SKF_AD_PKTTYPE),  # ldb [pkttype]
        (0x15, 0, 1, PACKET_OUTGOING),  # jeq #PACKET_OUTGOING, next, skip one
        (0x06, 0, 0, 0),  # ret #0
    ]


def kernel_program(expression: str | None, linktype: int,
                   drop_outgoing: bool) -> list[tuple[int, int, int, int]]:
    """The classic BPF program the socket gets: the prelude, then the filter (or accept)."""
    body = (compile_live_expression(expression, linktype, SNAPLEN) if expression
            else [(0x06, 0, 0, SNAPLEN)])  # ret #snaplen: keep everything
    # Jumps are relative, so putting the prelude first leaves the filter's jumps intact.
    return (loopback_prelude() if drop_outgoing else []) + body


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    insns = (_SockFilter * len(program))(
        *(_SockFilter(code, jt, jf, k & 0xFFFFFFFF) for code, jt, jf, k in program))
    fprog = _SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(_SockFilter)))
    # The kernel copies the program during the call; `insns` only has to live until then.
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


def hardware_type(sock: socket.socket, iface: str) -> int:
    """The interface's ARPHRD type (SIOCGIFHWADDR: ifr_hwaddr.sa_family)."""
    request = struct.pack("16s24x", iface.encode())
    reply = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, request)
    return int(struct.unpack_from("=H", reply, 16)[0])


class PacketRing:
    """A capture on *iface* through a TPACKET_V3 ring; see the module docstring."""

    def __init__(
        self,
        iface: str,
        expression: str | None = None,
        *,
        buffer_kib: int = 32 * 1024,
        duration: float | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.iface = iface
        self.snaplen = SNAPLEN
        self._on_idle = on_idle
        self._deadline = None if duration is None else time.monotonic() + duration
        self._stopped = False
        self._captured = 0
        self._received = 0
        self._dropped = 0
        self._netdown = False  # ENETDOWN seen: watching whether the interface is gone
        self._gone_at: float | None = None
        self._ring: mmap.mmap | None = None
        self._userland: Program | None = None  # the filter, when the kernel refused it
        if iface == "any":
            # libpcap's "any" device is every interface at once, each with its own link
            # header, rewritten as Linux cooked headers: dumpcap does that, we do not.
            raise CaptureError("-i any is not supported by the scapy backend; "
                               "use --backend tshark")
        try:
            socket.if_nametoindex(iface)
        except OSError:
            raise no_such_interface(iface) from None
        try:
            # Protocol 0: nothing arrives before bind(), when filter and ring are ready.
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise privilege_error(iface, "scapy", exc.strerror or "") from None
        except OSError as exc:
            raise CaptureError(f"cannot open a packet socket: {exc.strerror or exc}") from None
        try:
            self._set_up(expression, buffer_kib)
        except BaseException:
            self.close()
            raise

    def _set_up(self, expression: str | None, buffer_kib: int) -> None:
        sock, iface = self._sock, self.iface
        try:
            hatype = hardware_type(sock, iface)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise no_such_interface(iface) from None
            raise CaptureError(f"{iface}: {exc.strerror or exc}") from None
        linktype = LINKTYPES.get(hatype)
        if linktype is None:
            raise CaptureError(f"{iface}: link type ARPHRD {hatype} is not supported by the "
                               "scapy backend; try --backend tshark")
        self.linktype = linktype
        self.loopback = hatype == ARPHRD_LOOPBACK
        try:
            attach_filter(sock, kernel_program(expression, linktype, self.loopback))
        except OSError as exc:
            if exc.errno != errno.EINVAL or not expression:
                raise CaptureError(f"{iface}: cannot attach the filter: "
                                   f"{exc.strerror or exc}") from None
            # The kernel refuses some programs libpcap makes: `protochain` loops, and
            # classic BPF in the kernel may only jump forward.  libpcap then filters in
            # user space (pcap-linux.c); so do we: the kernel keeps only the prelude.
            try:
                self._userland = Program(compile_live_expression(expression, linktype,
                                                                 SNAPLEN))
            except DissectError as why:  # e.g. loads of fields only the kernel has
                raise CaptureError(f"{iface}: the kernel refused the filter "
                                   f"({exc.strerror}) and it cannot run here: {why}") from None
            attach_filter(sock, kernel_program(None, linktype, self.loopback))
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        self._blocks, self._ring = self._map_ring(max(buffer_kib * 1024, MIN_RING))
        try:
            sock.bind((iface, ETH_P_ALL))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise no_such_interface(iface) from None
            raise CaptureError(f"{iface}: {exc.strerror or exc}") from None
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)
        self._next_block = 0

    def _map_ring(self, size: int) -> tuple[int, mmap.mmap]:
        """Ask for a ring of *size* bytes, halving on ENOMEM down to MIN_RING."""
        sock = self._sock
        while True:
            blocks = max(size // BLOCK_SIZE, 2)
            request = struct.pack("=7I", BLOCK_SIZE, blocks, FRAME_SIZE,
                                  blocks * (BLOCK_SIZE // FRAME_SIZE), RETIRE_BLOCK_MS, 0, 0)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
                break
            except OSError as exc:
                if exc.errno != errno.ENOMEM or size <= MIN_RING:
                    raise CaptureError(f"cannot set up the capture ring on {self.iface}: "
                                       f"{exc.strerror or exc}") from None
                size //= 2
        ring = mmap.mmap(sock.fileno(), blocks * BLOCK_SIZE, mmap.MAP_SHARED,
                         mmap.PROT_READ | mmap.PROT_WRITE)
        return blocks, ring

    def __iter__(self) -> Iterator[RawPacket]:
        ring = self._ring
        if ring is None:
            return
        unpack_packet = _PACKET.unpack_from
        linktype = self.linktype
        drop_outgoing = self.loopback
        userland = self._userland
        # Each turn handles one block or one wait; the waits are bounded by the
        # deadline and by stop(), which a signal handler or another thread calls.
        deadline = self._deadline
        while not self._stopped:
            if deadline is not None and time.monotonic() >= deadline:
                return
            base = self._next_block * BLOCK_SIZE
            status, count, first = _BLOCK.unpack_from(ring, base + _BLOCK_STATUS_OFFSET)
            if not status & TP_STATUS_USER:
                if not self._wait():
                    return
                continue
            offset = base + first
            try:
                for _ in range(count):
                    step, sec, nsec, caplen, wire_len, pstatus, mac, _net = unpack_packet(
                        ring, offset)
                    if not (drop_outgoing and ring[offset + _PKTTYPE_OFFSET] == PACKET_OUTGOING):
                        data = ring[offset + mac : offset + mac + caplen]
                        if pstatus & TP_STATUS_VLAN_VALID:
                            data, wire_len = _with_vlan_tag(ring, offset, pstatus, data,
                                                            wire_len)
                        if userland is None or userland.matches(data, wire_len):
                            self._captured += 1
                            yield RawPacket(sec, nsec, linktype, wire_len, data)
                            if self._stopped:
                                return
                    offset += step
            finally:
                # Hand the block back to the kernel, also when the consumer stops early.
                if self._ring is not None:
                    ring[base + _BLOCK_STATUS_OFFSET : base + _BLOCK_STATUS_OFFSET + 4] = (
                        _STATUS_KERNEL)
                self._next_block = (self._next_block + 1) % self._blocks

    def _wait(self) -> bool:
        """Wait for a block (bounded); False when the capture is over.

        Raises CaptureError when the socket reports an error or the interface is gone.
        """
        if self._on_idle is not None:
            self._on_idle()
        timeout = NETDOWN_WAIT_MS if self._netdown else WAIT_MS
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                return False
            timeout = min(timeout, max(int(left * 1000) + 1, 1))
        for _fd, events in self._poll.poll(timeout):
            if events & ~select.POLLIN:
                self._socket_error(events)
        if self._netdown:
            self._watch_interface()
        return not self._stopped

    def _socket_error(self, events: int) -> None:
        """poll() said more than "readable": ENETDOWN starts the watch, anything else ends
        the capture (libpcap: "Error condition on packet socket")."""
        if events & (select.POLLHUP | select.POLLNVAL):
            raise capture_failed(self.iface, "the capture socket was closed", self._captured)
        # Reading the error clears it (else every poll() would return at once).
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == errno.ENETDOWN:
            self._netdown = True
        elif err:
            raise capture_failed(self.iface, os.strerror(err), self._captured)

    def _watch_interface(self) -> None:
        """After ENETDOWN: raise once the interface has been gone for GONE_GRACE_S; end
        the watch once it is up again; keep watching while it is down."""
        if self._gone_at is not None:
            if time.monotonic() >= self._gone_at + GONE_GRACE_S:
                raise interface_gone(self.iface, self._captured)
            return
        state = self._interface_state()
        if state == "gone":
            self._gone_at = time.monotonic()
        elif state == "up":
            self._netdown = False

    def _interface_state(self) -> Literal["gone", "down", "up"]:
        """Whether the interface the socket is bound to is gone, down or up.

        A deleted interface leaves the socket bound to index -1, whose name reads back
        empty (libpcap's ``device_still_exists`` asks getsockname too); by index, not by
        name, so an interface renamed meanwhile is still the same one.
        """
        name = self._sock.getsockname()[0]
        if not name:
            return "gone"
        request = struct.pack("16s16x", name.encode())
        try:
            reply = fcntl.ioctl(self._sock.fileno(), SIOCGIFFLAGS, request)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                return "gone"
            raise capture_failed(self.iface, exc.strerror or str(exc),
                                 self._captured) from None
        flags = struct.unpack_from("=H", reply, 16)[0]
        return "up" if flags & IFF_UP else "down"

    def stop(self) -> None:
        """End the iteration after the packet in hand (safe in a signal handler)."""
        self._stopped = True

    def stats(self) -> CaptureStats:
        if self._ring is not None:
            try:
                raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
            except OSError:
                raw = b""
            if len(raw) >= _STATS.size:
                # The kernel resets its counters on each read: add them up.  Its packet
                # count already includes the drops.
                packets, drops, _freezes = _STATS.unpack_from(raw)
                self._received += packets
                self._dropped += drops
        return CaptureStats(self._captured, self._received, self._dropped)

    def close(self) -> None:
        if self._ring is not None:
            self.stats()  # the last counts, while the socket is open
            ring, self._ring = self._ring, None
            ring.close()
        self._sock.close()


def _with_vlan_tag(ring: mmap.mmap, offset: int, status: int, data: bytes,
                   wire_len: int) -> tuple[bytes, int]:
    """Put back the 802.1Q tag the kernel took out of the frame, as libpcap does."""
    tci, tpid = _VLAN.unpack_from(ring, offset + 32)
    if not status & TP_STATUS_VLAN_TPID_VALID:
        tpid = ETH_P_8021Q
    tag = struct.pack("!HH", tpid, tci & 0xFFFF)
    return data[:12] + tag + data[12:], wire_len + 4
