"""Host and port names as tcpdump prints them without -n, from local files only.

The lessons show ``localhost.30002``; a DNS query would make output depend on the
network and hang offline, so names come only from /etc/hosts and /etc/services.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Final

from capdissect.addresses import text


def _entries(path: Path) -> Iterator[list[str]]:
    """The fields of each entry of a /etc table (hosts, services, ethers): at least two,
    comments dropped.  A missing or unreadable file has no entries."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            yield fields


def _hosts(path: Path) -> dict[bytes, str]:
    table: dict[bytes, str] = {}
    for fields in _entries(path):
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                packed = socket.inet_pton(family, fields[0])
            except OSError:
                continue
            table.setdefault(packed, fields[1])  # the first name given for an address
    return table


def _services(path: Path) -> dict[tuple[str, int], str]:
    table: dict[tuple[str, int], str] = {}
    for fields in _entries(path):
        port, _, proto = fields[1].partition("/")
        if port.isdigit():
            table.setdefault((proto, int(port)), fields[0])
    return table


# The organisations tcpdump names after a MAC address without -n (its oui.c table;
# the IEEE registry has thousands more, which tcpdump prints as "oui Unknown").
OUI_NAMES: Final = {
    0x000000: "Ethernet", 0x00000C: "Cisco", 0x00005E: "IANA", 0x000081: "Nortel Networks SONMP",
    0x0000F8: "Cisco bridged", 0x0080C2: "Ethernet bridged", 0x00A03E: "ATM Forum",
    0x00E02F: "DOCSIS Spanning Tree", 0x080007: "Appletalk", 0x009069: "Juniper",
    0x080009: "Hewlett-Packard", 0x00120F: "IEEE 802.3 Private", 0x0012BB: "ANSI/TIA",
    0x001B21: "DCBX", 0x002320: "Nicira Networks", 0x5C16C7: "Big Switch Networks",
    0xB0D2F5: "Vello Systems", 0x002481: "HP", 0x0004EA: "HP-Labs", 0x748771: "Infoblox Inc",
    0xA42305: "Open Networking Lab", 0x00049F: "Freescale", 0x0015AD: "Netronome",
    0x001018: "Broadcom", 0x00E004: "PMC-Sierra", 0xD0F0DB: "Ericsson",
}
BROADCAST: Final = b"\xff" * 6

# IANA's protocol-number keywords (the spellings of /etc/protocols), which tcpdump prints
# for IP protocols it does not decode when names are on (no -n).
PROTOCOL_KEYWORDS: Final = {
    0: "hopopt",
    1: "icmp",
    2: "igmp",
    3: "ggp",
    4: "ipencap",
    5: "st",
    6: "tcp",
    7: "cbt",
    8: "egp",
    9: "igp",
    10: "bbn-rcc-mon",
    11: "nvp-ii",
    12: "pup",
    13: "argus",
    14: "emcon",
    15: "xnet",
    16: "chaos",
    17: "udp",
    18: "mux",
    19: "dcn-meas",
    20: "hmp",
    21: "prm",
    22: "xns-idp",
    23: "trunk-1",
    24: "trunk-2",
    25: "leaf-1",
    26: "leaf-2",
    27: "rdp",
    28: "irtp",
    29: "iso-tp4",
    30: "netblt",
    31: "mfe-nsp",
    32: "merit-inp",
    33: "dccp",
    34: "3pc",
    35: "idpr",
    36: "xtp",
    37: "ddp",
    38: "idpr-cmtp",
    39: "tp++",
    40: "il",
    41: "ipv6",
    42: "sdrp",
    43: "ipv6-route",
    44: "ipv6-frag",
    45: "idrp",
    46: "rsvp",
    47: "gre",
    48: "dsr",
    49: "bna",
    50: "esp",
    51: "ah",
    52: "i-nlsp",
    53: "swipe",
    54: "narp",
    55: "mobile",
    56: "tlsp",
    57: "skip",
    58: "ipv6-icmp",
    59: "ipv6-nonxt",
    60: "ipv6-opts",
    62: "cftp",
    64: "sat-expak",
    65: "kryptolan",
    66: "rvd",
    67: "ippc",
    69: "sat-mon",
    70: "visa",
    71: "ipcv",
    72: "cpnx",
    73: "rspf",
    74: "wsn",
    75: "pvp",
    76: "br-sat-mon",
    77: "sun-nd",
    78: "wb-mon",
    79: "wb-expak",
    80: "iso-ip",
    81: "vmtp",
    82: "secure-vmtp",
    83: "vines",
    84: "ttp",
    85: "nsfnet-igp",
    86: "dgp",
    87: "tcf",
    88: "eigrp",
    89: "ospf",
    90: "sprite-rpc",
    91: "larp",
    92: "mtp",
    93: "ax.25",
    94: "ipip",
    95: "micp",
    96: "scc-sp",
    97: "etherip",
    98: "encap",
    100: "gmtp",
    101: "ifmp",
    102: "pnni",
    103: "pim",
    104: "aris",
    105: "scps",
    106: "qnx",
    107: "a/n",
    108: "ipcomp",
    109: "snp",
    110: "compaq-peer",
    111: "ipx-in-ip",
    112: "vrrp",
    113: "pgm",
    115: "l2tp",
    116: "ddx",
    117: "iatp",
    118: "stp",
    119: "srp",
    120: "uti",
    121: "smp",
    122: "sm",
    123: "ptp",
    124: "isis",
    125: "fire",
    126: "crtp",
    127: "crudp",
    128: "sscopmce",
    129: "iplt",
    130: "sps",
    131: "pipe",
    132: "sctp",
    133: "fc",
    134: "rsvp-e2e-ignore",
    135: "mobility-header",
    136: "udplite",
    137: "mpls-in-ip",
    138: "manet",
    139: "hip",
    140: "shim6",
    141: "wesp",
    142: "rohc",
    253: "exptest-253",
    254: "exptest-254",
    255: "reserved",
}


def _ethers(path: Path) -> dict[bytes, str]:
    """/etc/ethers: "MAC name" lines, as ether_ntohost(3) reads them."""
    table: dict[bytes, str] = {}
    for fields in _entries(path):
        try:
            packed = bytes(int(part, 16) for part in fields[0].split(":"))
        except ValueError:
            continue
        if len(packed) == 6:
            table.setdefault(packed, fields[1])
    return table


class Names:
    """Address and port names; numeric when *numeric* (tcpdump's -n)."""

    def __init__(
        self,
        numeric: bool,
        hosts: Path = Path("/etc/hosts"),
        services: Path = Path("/etc/services"),
        ethers: Path = Path("/etc/ethers"),
    ) -> None:
        self.numeric = numeric
        self._hosts = {} if numeric else _hosts(hosts)
        self._services = {} if numeric else _services(services)
        self._ethers = {} if numeric else _ethers(ethers)
        self.mac = lru_cache(maxsize=4096)(self._mac)
        self.ip = lru_cache(maxsize=65536)(self._ip)
        self.tcp_port = lru_cache(maxsize=65536)(self._tcp_port)
        self.udp_port = lru_cache(maxsize=65536)(self._udp_port)

    def _ip(self, packed: bytes) -> str:
        name = self._hosts.get(packed)
        if name is not None:
            return name
        return text(packed)

    def _mac(self, addr: bytes) -> str:
        text = addr.hex(":")
        if self.numeric or len(addr) != 6:
            return text
        if addr == BROADCAST:
            return "Broadcast"
        name = self._ethers.get(addr)
        if name is not None:
            return name
        oui = int.from_bytes(addr[:3], "big")
        return f"{text} (oui {OUI_NAMES.get(oui, 'Unknown')})"

    def _tcp_port(self, port: int) -> str:
        return self._services.get(("tcp", port)) or str(port)

    def _udp_port(self, port: int) -> str:
        return self._services.get(("udp", port)) or str(port)


# print-ip.c and netdb names of IP protocol numbers, as tcpdump prints them.
IPPROTO_NAMES: Final = {
    0: "Options", 1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 8: "EGP", 9: "IGRP", 17: "UDP",
    33: "DCCP", 41: "IPv6", 43: "Routing", 44: "Fragment", 46: "RSVP", 47: "GRE", 50: "ESP",
    51: "AH", 55: "Mobile IP", 58: "ICMPv6", 62: "Mobile IP (old)", 88: "EIGRP", 89: "OSPF",
    103: "PIM", 108: "Compressed IP", 112: "VRRP", 113: "PGM", 132: "SCTP", 135: "Mobility",
    143: "Ethernet",
}
