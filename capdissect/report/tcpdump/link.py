"""print-ether.c, print-sll.c and friends: the link layer, then the network layer
through the context (``printer.py`` dispatches; this module never imports it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from capdissect.dissect import link as linkmod
from capdissect.errors import Truncated
from capdissect.packets import RawPacket
from capdissect.report.tcpdump.arp import print_arp
from capdissect.report.tcpdump.frame import Frame
from capdissect.report.tcpdump.hexdump import hex_ascii

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context

ETHERTYPE_NAMES: Final = {
    0x0800: "IPv4", 0x0806: "ARP", 0x86DD: "IPv6", 0x8100: "802.1Q", 0x88A8: "802.1Q-QinQ",
    0x9100: "802.1Q-9100", 0x9200: "802.1Q-9200", 0x8847: "MPLS unicast",
    0x8848: "MPLS multicast", 0x8035: "Reverse ARP", 0x88CC: "LLDP", 0x8863: "PPPoE D",
    0x8864: "PPPoE S", 0x888E: "EAPOL", 0x88E5: "802.1AE MACsec",
}
SLL_PKTTYPES: Final = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}


def print_link(pr: Context, frame: Frame, pkt: RawPacket) -> None:
    out = frame.out
    if pkt.linktype not in linkmod.LINK_NAMES:
        # A link type we cannot decode: print.c's unsupported printer says so and
        # dumps every byte; -x/-X dump them again, all of them (no link header).
        out.append("UNSUPPORTED")
        out.append(hex_ascii(pkt.data))
        frame.link_len = 0
        return
    try:
        link = linkmod.parse_link(pkt.linktype, pkt.data)
    except Truncated as exc:
        # A short link header: tcpdump prints [|ether] and counts every captured
        # byte as link header, so -X dumps nothing.
        frame.out.append(f" [|{exc.layer}]")
        frame.link_len = len(pkt.data)
        return
    frame.link_len = link.hdr_len
    lt = pkt.linktype
    if lt == linkmod.LINUX_SLL2:
        name = pr.ifname(link.ifindex) or "?"
        out.append(f"{name:<5} {SLL_PKTTYPES.get(link.pkttype, '?'):<3} ")
    etype = link.ethertype
    end = len(pkt.data)
    length = pkt.wire_len - link.hdr_len
    if pr.opts.e:
        _link_e(pr, frame, pkt, link)
    if lt in (linkmod.NULL, linkmod.LOOP) and etype == 0:
        if not pr.opts.e:
            out.append(f"AF Unknown ({link.family}), length {pkt.wire_len}: ")
        _default_print(pr, frame, pkt.data[link.hdr_len :])
        return
    if etype == linkmod.ETH_IPV4 or etype == linkmod.ETH_IPV6:
        if lt in (linkmod.RAW, linkmod.RAW_OLD, linkmod.RAW_OLD2, linkmod.IPV4,
                  linkmod.IPV6):
            _ip_any(pr, frame, link.hdr_len, length, end)
        elif etype == linkmod.ETH_IPV4:
            pr.print_ip(frame, link.hdr_len, length, end)
        else:
            pr.print_ip6(frame, link.hdr_len, length, end)
        return
    if etype in (linkmod.ETH_ARP, 0x8035):  # ARP and Reverse ARP share one format
        print_arp(pr, frame, link.hdr_len, length)
        return
    if lt == linkmod.EN10MB and etype <= linkmod.MAX_ETHERNET_LENGTH:
        out.append("unsupported: 802.3/LLC frame")
        return
    if not pr.opts.e:
        # An undecoded type: tcpdump shows the link header it skipped without -e.
        if lt == linkmod.LINUX_SLL:
            _link_e(pr, frame, pkt, link)
        else:
            if lt == linkmod.EN10MB:
                out.append(f"{pr.names.mac(link.src)} > {pr.names.mac(link.dst)}, ")
            name = ETHERTYPE_NAMES.get(etype, "Unknown")
            out.append(f"ethertype {name} (0x{etype:04x}), length {pkt.wire_len}: ")
    _default_print(pr, frame, pkt.data[link.hdr_len :])


def _default_print(pr: Context, frame: Frame, data: bytes) -> None:
    """tcpdump's default printer for what it cannot decode: the bytes in hex, unless
    -x or -X will dump them anyway (tcpdump.c suppress_default_print)."""
    if not (pr.opts.x or pr.opts.X):
        frame.out.append(hex_ascii(data))


def _link_e(pr: Context, frame: Frame, pkt: RawPacket, link: linkmod.LinkHeader) -> None:
    out = frame.out
    lt = pkt.linktype
    if lt == linkmod.EN10MB:
        out.append(f"{pr.names.mac(link.src)} > {pr.names.mac(link.dst)}, ")
        # print-ether.c: the outer type with the frame length, then each tag and the
        # type that follows it.
        outer = link.outer_ethertype
        out.append(f"ethertype {ETHERTYPE_NAMES.get(outer, 'Unknown')} (0x{outer:04x}), "
                   f"length {pkt.wire_len}: ")
        inner = (*link.vlan_types[1:], link.ethertype)
        for tci, etype in zip(link.vlans, inner[: len(link.vlans)], strict=True):
            out.append(f"{_vlan(tci)}, ethertype {ETHERTYPE_NAMES.get(etype, 'Unknown')} "
                       f"(0x{etype:04x}), ")
    elif lt in (linkmod.NULL, linkmod.LOOP):
        fam = link.family
        name = ("IPv4" if fam == linkmod.AF_INET
                else "IPv6" if fam in linkmod.AF_INET6 else "Unknown")
        out.append(f"AF {name} ({fam}), length {pkt.wire_len}: ")
    elif lt == linkmod.LINUX_SLL:
        out.append(f"{SLL_PKTTYPES.get(link.pkttype, '?'):>3} ")
        if len(link.src) == 6:
            out.append(f"{pr.names.mac(link.src)} ")
        et = link.ethertype if not link.vlans else 0x8100
        out.append(f"ethertype {ETHERTYPE_NAMES.get(et, 'Unknown')} (0x{et:04x}), "
                   f"length {pkt.wire_len}: ")
    elif lt in (linkmod.RAW, linkmod.RAW_OLD, linkmod.RAW_OLD2, linkmod.IPV4, linkmod.IPV6):
        out.append("ip: ")  # print-raw.c
    elif lt == linkmod.LINUX_SLL2:
        out.append(f"ifindex {link.ifindex} ")
        if len(link.src) == 6:
            out.append(f"{pr.names.mac(link.src)} ")
        et = link.ethertype
        out.append(f"ethertype {ETHERTYPE_NAMES.get(et, 'Unknown')} (0x{et:04x}), "
                   f"length {pkt.wire_len}: ")


def _ip_any(pr: Context, frame: Frame, off: int, length: int, end: int) -> None:
    """print-ip.c ipN_print: RAW links dispatch on the version nibble."""
    if length < 1:
        frame.out.append(f"truncated-ip {length}")
        return
    version = frame.buf[off] >> 4 if off < end else -1
    if version == 4:
        pr.print_ip(frame, off, length, end)
    elif version == 6:
        pr.print_ip6(frame, off, length, end)
    else:
        frame.out.append(f"unknown ip {version}")


def _vlan(tci: int) -> str:
    text = f"vlan {tci & 0xFFF}, p {tci >> 13}"
    if tci & 0x1000:
        text += ", DEI"
    return text
