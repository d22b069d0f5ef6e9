"""Link layers: Ethernet (802.1Q), BSD NULL/LOOP, RAW, IPV4/IPV6, Linux SLL and SLL2.

Every link layer is reduced to the same record: how long its header is and which
network protocol follows, as an ethertype (AF values of NULL/LOOP are mapped to one).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.errors import Truncated

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

# LINKTYPE_* values (https://www.tcpdump.org/linktypes.html).
NULL: Final = 0
EN10MB: Final = 1
RAW: Final = 101
RAW_OLD: Final = 12  # DLT_RAW on some BSDs
RAW_OLD2: Final = 14
LOOP: Final = 108
LINUX_SLL: Final = 113
IPV4: Final = 228
IPV6: Final = 229
LINUX_SLL2: Final = 276

ETH_IPV4: Final = 0x0800
ETH_ARP: Final = 0x0806
ETH_IPV6: Final = 0x86DD
ETH_VLAN: Final = 0x8100
ETH_QINQ: Final = 0x88A8
ETH_QINQ_OLD: Final = 0x9100
VLAN_TYPES: Final = frozenset({ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD})
MAX_ETHERNET_LENGTH: Final = 1500

# BSD address families that mean IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30, Linux 10).
AF_INET: Final = 2
AF_INET6: Final = frozenset({10, 24, 28, 30})

LINK_NAMES: Final = {
    NULL: ("NULL", "BSD loopback"),
    EN10MB: ("EN10MB", "Ethernet"),
    RAW: ("RAW", "Raw IP"),
    RAW_OLD: ("RAW", "Raw IP"),
    RAW_OLD2: ("RAW", "Raw IP"),
    LOOP: ("LOOP", "OpenBSD loopback"),
    LINUX_SLL: ("LINUX_SLL", "Linux cooked v1"),
    IPV4: ("IPV4", "Raw IPv4"),
    IPV6: ("IPV6", "Raw IPv6"),
    LINUX_SLL2: ("LINUX_SLL2", "Linux cooked v2"),
}

_ETH: Final = struct.Struct("!6s6sH")
_TAG: Final = struct.Struct("!HH")
_SLL: Final = struct.Struct("!HHH8sH")
_SLL2: Final = struct.Struct("!HHIHBB8s")


class LinkHeader(NamedTuple):
    """A decoded link-layer header.

    ``ethertype`` is the protocol that follows (for NULL/LOOP, mapped from the AF value;
    0 when it is not known); ``family`` is the raw AF value for NULL/LOOP.
    """

    linktype: int
    hdr_len: int
    ethertype: int
    src: bytes = b""  # MAC address (Ethernet, SLL)
    dst: bytes = b""
    vlans: tuple[int, ...] = ()  # 802.1Q TCIs, outermost first
    vlan_types: tuple[int, ...] = ()  # the TPID of each tag (0x8100, 0x88a8...)
    outer_ethertype: int = 0  # the first type field (e.g. 0x8100), for -e
    family: int = 0  # NULL/LOOP AF value
    pkttype: int = 0  # SLL/SLL2 packet type (0 host ... 4 outgoing)
    hatype: int = 0
    ifindex: int = 0  # SLL2 interface index


def parse_link(linktype: int, data: bytes) -> LinkHeader:
    """Decode the link header of a packet of *linktype*; raise Truncated if it is cut."""
    caplen = len(data)
    if linktype == EN10MB:
        if caplen < 14:
            raise Truncated("ether", 0, 14, caplen)
        dst, src, etype = _ETH.unpack_from(data)
        if etype not in VLAN_TYPES:  # the common frame: built positionally, no tag lists
            return _new_tuple(LinkHeader, (linktype, 14, etype, src, dst, (), (), etype, 0, 0,
                                           0, 0))
        off = 14
        outer = etype
        tcis: list[int] = []
        tpids: list[int] = []
        while etype in VLAN_TYPES:
            if caplen < off + 4:
                raise Truncated("vlan", off, 4, caplen - off)
            tci, inner = _TAG.unpack_from(data, off)
            tcis.append(tci)
            tpids.append(etype)
            etype = inner
            off += 4
        return LinkHeader(
            linktype, off, etype, src, dst, tuple(tcis), tuple(tpids), outer_ethertype=outer
        )
    if linktype in (NULL, LOOP):
        if caplen < 4:
            raise Truncated("null", 0, 4, caplen)
        if linktype == LOOP:
            family = struct.unpack_from("!I", data)[0]
        else:
            # NULL stores the AF in the capturing host's byte order: if the high
            # half is set it was the other order (as tcpdump's print-null.c does).
            family = struct.unpack_from("<I", data)[0]
            if family & 0xFFFF0000:
                family = struct.unpack_from(">I", data)[0]
        etype = ETH_IPV4 if family == AF_INET else ETH_IPV6 if family in AF_INET6 else 0
        return LinkHeader(linktype, 4, etype, family=family)
    if linktype in (RAW, RAW_OLD, RAW_OLD2):
        if caplen < 1:
            raise Truncated("raw", 0, 1, 0)
        version = data[0] >> 4
        etype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
        return LinkHeader(linktype, 0, etype)
    if linktype == IPV4:
        return LinkHeader(linktype, 0, ETH_IPV4)
    if linktype == IPV6:
        return LinkHeader(linktype, 0, ETH_IPV6)
    if linktype == LINUX_SLL:
        if caplen < 16:
            raise Truncated("sll", 0, 16, caplen)
        pkttype, hatype, halen, addr, etype = _SLL.unpack_from(data)
        off = 16
        tcis = []
        tpids = []
        while etype == ETH_VLAN:
            if caplen < off + 4:
                raise Truncated("vlan", off, 4, caplen - off)
            tci, etype = _TAG.unpack_from(data, off)
            tcis.append(tci)
            tpids.append(ETH_VLAN)
            off += 4
        return LinkHeader(
            linktype, off, etype, src=addr[: min(halen, 8)], vlans=tuple(tcis),
            vlan_types=tuple(tpids), pkttype=pkttype, hatype=hatype,
        )
    if linktype == LINUX_SLL2:
        if caplen < 20:
            raise Truncated("sll2", 0, 20, caplen)
        etype, _res, ifindex, hatype, pkttype, halen, addr = _SLL2.unpack_from(data)
        return LinkHeader(
            linktype, 20, etype, src=addr[: min(halen, 8)], pkttype=pkttype, hatype=hatype,
            ifindex=ifindex,
        )
    return LinkHeader(linktype, 0, 0)
