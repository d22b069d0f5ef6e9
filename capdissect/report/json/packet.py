"""The JSON of ``read --json`` (SPEC §3.2): one object per packet, every decoded field.

``packet_json`` turns one ``dissect.stack.Packet`` into a JSON-ready dict; ``json_line``
writes it as one line of JSON Lines.  The object follows the packet's layers::

    {"frame": 1, "ts": 1589017316.089133, "ts_sec": 1589017316, "ts_nsec": 89133000,
     "captured_len": 74, "wire_len": 74, "interface": 0,
     "link": {"type": "EN10MB", ...}, "ip": {"version": 4, ...},
     "tcp": {...} | "udp": {...} | "icmp": {...} | "icmp6": {...},
     "payload_len": 0, "payload": "", "fragment": false, "partial": false, "error": null}

Choices, and why:

- Every byte string from the capture becomes hex (``payload``, option data, digests):
  bytes are data, and no capture can put raw control characters in the output (SPEC §6).
  Addresses become text (``127.0.0.1``, ``::1``, ``00:00:5e:00:53:01``).
- Numbers stay numbers, as the header holds them (seq and ack are absolute, as tshark's
  ``tcp.seq_raw``): relative numbers are the printer's view, not a field.
- Checksums are verified as tcpdump verifies them (the pseudo-header takes the routing
  header's final destination), plus one thing tcpdump skips: a Mobile IPv6 Home Address
  option stands for the source (RFC 6275 §6.3), as Wireshark does.  ``checksum_ok`` is
  null when the checksum cannot be verified (bytes not captured, a fragment, no UDP
  checksum over IPv4); ``checksum_expected`` says what it should be when it is wrong.
- A damaged packet keeps what was decoded before the damage, plus ``error``: the
  decoder's Truncated or Malformed with its layer and offset.
- Keys are always present for the layers that were decoded; a layer that is absent is
  left out (``tcp``, ``udp``...) or null (``link``, ``ip``).  ``ip`` is the innermost IP
  header, the one the transport rides on; a tunnel's outer headers are in ``tunnel``.
- Names: tcpdump's where it prints one (flag letters, option names such as ``sackOK``
  and ``TS``), else the RFC's; ``frame`` is the packet's 1-based position in the file,
  as in SPEC §4.  Lengths (``len``, ``*_len``) and ``frag_offset`` count bytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import fields, is_dataclass
from operator import truediv
from typing import Any, Final

import orjson

from capdissect.addresses import text as address_text
from capdissect.dissect import ip_options as ipopt
from capdissect.dissect import ipv6 as ip6mod
from capdissect.dissect import link as linkmod
from capdissect.dissect import tcp_options as opts
from capdissect.dissect.checksum import pseudo_sum, should_be, verify
from capdissect.dissect.icmp import IcmpHeader
from capdissect.dissect.icmp import parse_quoted as parse_quoted4
from capdissect.dissect.icmp6 import Icmp6Header
from capdissect.dissect.icmp6 import parse_quoted as parse_quoted6
from capdissect.dissect.ip_options import IpOptions, parse_ip_options
from capdissect.dissect.ipv4 import FLAG_DF, FLAG_MF, FLAG_RESERVED, IPv4Header, parse_ipv4
from capdissect.dissect.ipv6 import IPv6Header, parse_ipv6
from capdissect.dissect.mptcp import MptcpMalformed
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import (
    ACK,
    AE,
    CWR,
    ECE,
    FIN,
    FLAG_STRINGS,
    PSH,
    RST,
    SYN,
    URG,
    TcpHeader,
)
from capdissect.dissect.udp import UdpHeader
from capdissect.errors import DissectError, Malformed, Truncated
from capdissect.report.tcpdump.ip import IP_OPTION_NAMES
from capdissect.report.tcpdump.link import ETHERTYPE_NAMES
from capdissect.report.tcpdump.names import IPPROTO_NAMES
from capdissect.report.tcpdump.tcp_options import NAMES as TCP_OPTION_NAMES

JsonObject = dict[str, Any]

# TCP flag names, low bit first (RFC 9293 §3.1; AE is RFC 9768's name for the old NS).
FLAG_NAMES: Final = ((FIN, "FIN"), (SYN, "SYN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
                     (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"), (AE, "AE"))

# The names of each of the 512 combinations of the nine flags.
_FLAG_NAME_LISTS: Final = tuple(tuple(name for bit, name in FLAG_NAMES if flags & bit)
                                for flags in range(0x200))

# Linux packet types of an SLL/SLL2 header (linux/if_packet.h PACKET_*).
PACKET_TYPES: Final = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost",
                       4: "outgoing"}

# IPv6 extension headers (RFC 8200 §4, RFC 4302 for AH).
EXTENSION_NAMES: Final = {ip6mod.HOPOPTS: "hop-by-hop", ip6mod.ROUTING: "routing",
                          ip6mod.FRAGMENT: "fragment", ip6mod.DSTOPTS: "destination",
                          ip6mod.AH: "ah"}
# Options of hop-by-hop and destination headers (IANA "Destination Options and Hop-by-Hop
# Options"); the ones a lesson or a test capture meets.
IPV6_OPTION_NAMES: Final = {0: "pad1", 1: "padn", 4: "tunnel-limit", 5: "router-alert",
                            194: "jumbo", 201: "home-address"}

# ICMP (RFC 792, RFC 950, RFC 1256) and the codes of its error types (RFC 792, RFC 1122
# §3.2.2.1, RFC 1812 §5.2.7.1).
ICMP_TYPES: Final = {
    0: "echo reply", 3: "destination unreachable", 4: "source quench", 5: "redirect",
    8: "echo request", 9: "router advertisement", 10: "router solicitation",
    11: "time exceeded", 12: "parameter problem", 13: "timestamp request",
    14: "timestamp reply", 15: "information request", 16: "information reply",
    17: "address mask request", 18: "address mask reply",
}
ICMP_CODES: Final[dict[int, dict[int, str]]] = {
    3: {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable",
        3: "port unreachable", 4: "fragmentation needed", 5: "source route failed",
        6: "destination network unknown", 7: "destination host unknown",
        8: "source host isolated", 9: "network administratively prohibited",
        10: "host administratively prohibited", 11: "network unreachable for tos",
        12: "host unreachable for tos", 13: "communication administratively prohibited",
        14: "host precedence violation", 15: "precedence cutoff in effect"},
    5: {0: "redirect for network", 1: "redirect for host", 2: "redirect for tos and network",
        3: "redirect for tos and host"},
    11: {0: "ttl exceeded in transit", 1: "fragment reassembly time exceeded"},
    12: {0: "pointer indicates the error", 1: "missing a required option", 2: "bad length"},
}
# ICMPv6 (RFC 4443 §2.1, RFC 4861 §4, RFC 2710, RFC 3810, RFC 2894, RFC 4286, RFC 6550).
ICMP6_TYPES: Final = {
    1: "destination unreachable", 2: "packet too big", 3: "time exceeded",
    4: "parameter problem", 128: "echo request", 129: "echo reply",
    130: "multicast listener query", 131: "multicast listener report",
    132: "multicast listener done", 133: "router solicitation", 134: "router advertisement",
    135: "neighbor solicitation", 136: "neighbor advertisement", 137: "redirect",
    138: "router renumbering", 139: "node information query",
    140: "node information response", 141: "inverse neighbor solicitation",
    142: "inverse neighbor advertisement", 143: "multicast listener report v2",
    144: "home agent address discovery request", 145: "home agent address discovery reply",
    146: "mobile prefix solicitation", 147: "mobile prefix advertisement",
    151: "multicast router advertisement", 152: "multicast router solicitation",
    153: "multicast router termination", 155: "rpl control",
}
ICMP6_CODES: Final[dict[int, dict[int, str]]] = {
    1: {0: "no route to destination", 1: "communication administratively prohibited",
        2: "beyond scope of source address", 3: "address unreachable",
        4: "port unreachable", 5: "source address failed ingress/egress policy",
        6: "reject route to destination", 7: "error in source routing header"},
    3: {0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"},
    4: {0: "erroneous header field", 1: "unrecognized next header",
        2: "unrecognized ipv6 option", 3: "incomplete header chain"},
}

MPTCP_SUBTYPES: Final = {0: "MP_CAPABLE", 1: "MP_JOIN", 2: "DSS", 3: "ADD_ADDR",
                         4: "REMOVE_ADDR", 5: "MP_PRIO", 6: "MP_FAIL", 7: "MP_FASTCLOSE",
                         8: "MP_TCPRST"}  # RFC 8684 §7.2

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once
# float.__repr__ (which json uses) writes these without an exponent, as orjson does.
_PLAIN_FLOAT_MIN: Final = 1e-4
_PLAIN_FLOAT_MAX: Final = 1e16
# Plain JSON types only: a dataclass, a datetime or a subclass of str, int, dict or list
# goes to the standard encoder, which refuses or spells it its own way, as before
# (orjson would write them itself; it also writes an Enum's value where json refuses).
_ORJSON_PLAIN: Final = (orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
                        | orjson.OPT_PASSTHROUGH_SUBCLASS)
_U16: Final = struct.Struct("!H")
_U32X2: Final = struct.Struct("!II")


# Each layer's "wireshark" object: the Wireshark display-filter name of each of its fields
# (4.0), so a learner knows what to type in the filter bar.  The same field, not always the
# same spelling of its value: seq and ack are the raw numbers (Wireshark's tcp.seq is
# relative), flags are tcpdump's letters (tcp.flags is a number).  Checked with pyshark in
# tests/conformance/test_wireshark_names.py.
WIRESHARK_NAMES: Final[dict[str, dict[str, str]]] = {
    "ip4": {"version": "ip.version", "hdr_len": "ip.hdr_len", "tos": "ip.dsfield",
            "dscp": "ip.dsfield.dscp", "ecn": "ip.dsfield.ecn", "total_len": "ip.len",
            "id": "ip.id", "flags": "ip.flags", "frag_offset": "ip.frag_offset",
            "ttl": "ip.ttl", "proto": "ip.proto", "checksum": "ip.checksum",
            "src": "ip.src", "dst": "ip.dst"},
    "ip6": {"version": "ipv6.version", "traffic_class": "ipv6.tclass",
            "dscp": "ipv6.tclass.dscp", "ecn": "ipv6.tclass.ecn", "flow_label": "ipv6.flow",
            "payload_len": "ipv6.plen", "next_header": "ipv6.nxt", "hop_limit": "ipv6.hlim",
            "src": "ipv6.src", "dst": "ipv6.dst"},
    "tcp": {"src_port": "tcp.srcport", "dst_port": "tcp.dstport", "seq": "tcp.seq_raw",
            "ack": "tcp.ack_raw", "hdr_len": "tcp.hdr_len", "flags": "tcp.flags",
            "window": "tcp.window_size_value", "checksum": "tcp.checksum",
            "urgent": "tcp.urgent_pointer", "options": "tcp.options"},
    "udp": {"src_port": "udp.srcport", "dst_port": "udp.dstport", "len": "udp.length",
            "checksum": "udp.checksum"},
    "icmp": {"type": "icmp.type", "code": "icmp.code", "checksum": "icmp.checksum",
             "id": "icmp.ident", "seq": "icmp.seq", "gateway": "icmp.redir_gw",
             "pointer": "icmp.pointer", "mtu": "icmp.mtu"},
    "icmp6": {"type": "icmpv6.type", "code": "icmpv6.code", "checksum": "icmpv6.checksum",
              "id": "icmpv6.echo.identifier", "seq": "icmpv6.echo.sequence_number",
              "mtu": "icmpv6.mtu", "pointer": "icmpv6.pointer"},
}


_TCP_NAMES_NO_OPTIONS: Final = {key: name for key, name in WIRESHARK_NAMES["tcp"].items()
                                 if key != "options"}


def _named(layer: JsonObject, names: dict[str, str]) -> JsonObject:
    """*layer* with its "wireshark" object: a name for each field it has (an empty option
    list is no field in Wireshark).  The common case, every field there, shares *names*."""
    if names.keys() <= layer.keys() and layer.get("options") != []:
        layer["wireshark"] = names
    else:
        layer["wireshark"] = {key: name for key, name in names.items()
                              if key in layer and layer[key] != []}
    return layer


def packet_json(number: int, pkt: Packet) -> JsonObject:
    """The JSON object of packet *number* (its 1-based position in the file)."""
    raw = pkt.raw
    data = raw.data
    obj: JsonObject = {
        "frame": number,
        # Python's int / int is correctly rounded: the nearest float to the exact
        # timestamp.  Compiled, ``/`` on ints divides two doubles (a nanosecond count
        # past 2**53 is rounded first); operator.truediv keeps Python's division.
        "ts": truediv(raw.ts_sec * 1_000_000_000 + raw.ts_nsec, 1_000_000_000),
        "ts_sec": raw.ts_sec,
        "ts_nsec": raw.ts_nsec,
        "captured_len": len(data),
        "wire_len": raw.wire_len,
        "interface": raw.ifindex,
    }
    if raw.comment is not None:
        obj["comment"] = raw.comment
    obj["link"] = None if pkt.link is None else link_json(pkt.link)
    ip = pkt.ip
    obj["ip"] = None
    if ip is not None:
        if pkt.tunnel:
            obj["tunnel"] = _outer_ips(data, pkt.tunnel)
        # The IP, TCP and UDP objects always hold every field named, bar TCP's empty
        # option list: their names are given whole, without _named's comparison.
        if isinstance(ip, IPv4Header):
            layer = ipv4_json(data, ip)
            layer["wireshark"] = WIRESHARK_NAMES["ip4"]
        else:
            layer = ipv6_json(data, ip)
            layer["wireshark"] = WIRESHARK_NAMES["ip6"]
        obj["ip"] = layer
    transport = pkt.transport
    if transport is not None and ip is not None:
        if isinstance(transport, TcpHeader):
            layer = tcp_json(data, ip, transport, pkt.partial)
            layer["wireshark"] = (WIRESHARK_NAMES["tcp"] if layer["options"]
                                  else _TCP_NAMES_NO_OPTIONS)
            obj["tcp"] = layer
        elif isinstance(transport, UdpHeader):
            layer = udp_json(data, ip, transport, pkt.partial)
            layer["wireshark"] = WIRESHARK_NAMES["udp"]
            obj["udp"] = layer
        elif isinstance(transport, IcmpHeader) and isinstance(ip, IPv4Header):
            obj["icmp"] = _named(icmp_json(data, ip, transport, pkt.partial),
                                 WIRESHARK_NAMES["icmp"])
        elif isinstance(transport, Icmp6Header) and isinstance(ip, IPv6Header):
            obj["icmp6"] = _named(icmp6_json(data, ip, transport, pkt.partial),
                                  WIRESHARK_NAMES["icmp6"])
    if ip is None and pkt.link is not None and pkt.error is None:
        # Not IP (ARP, an unknown ethertype): the bytes after the link header.
        start = pkt.link.hdr_len
        obj["payload_len"] = max(raw.wire_len - start, 0)
        obj["payload"] = data[start:].hex()
    else:
        obj["payload_len"] = pkt.payload_len
        obj["payload"] = pkt.payload.hex()
    obj["fragment"] = pkt.fragment
    obj["partial"] = pkt.partial
    obj["error"] = None if pkt.error is None else error_json(pkt.error)
    return obj


def json_line(obj: JsonObject) -> str:
    """*obj* as one line of JSON: compact, ASCII only, no NaN (json.dumps refuses it).

    ASCII output escapes every non-ASCII character and DEL, so a pcapng comment cannot
    reach a terminal raw.  orjson writes the line (encoding is most of ``read --json``'s
    time, and orjson takes a tenth of the standard library's); the text is the standard
    encoder's, byte for byte, which still writes the rare line orjson would spell
    differently: one with a byte outside printable ASCII (orjson leaves UTF-8 and DEL
    raw), an integer past 64 bits (orjson refuses it), or a timestamp that Python's float
    repr writes with an exponent (orjson spells ``1e-06`` as ``1e-6``).
    """
    ts = obj.get("ts")
    if ts is None or _PLAIN_FLOAT_MIN <= ts < _PLAIN_FLOAT_MAX or ts == 0:
        try:
            # typed here: setup.py's mypyc build runs without orjson installed (Any)
            out: bytes = orjson.dumps(obj, option=_ORJSON_PLAIN)
        except orjson.JSONEncodeError:
            pass
        else:
            if out.isascii() and b"\x7f" not in out:
                return out.decode("ascii")
    text = _ENCODER.encode(obj)
    return text.replace("\x7f", "\\u007f") if "\x7f" in text else text


# ----- link ------------------------------------------------------------------------------
def link_json(link: linkmod.LinkHeader) -> JsonObject:
    """The link layer's object.  A capture has few distinct link headers (two MAC
    addresses each way), so the object of an untagged one is made once and copied."""
    if link.vlans:
        return _link_object(link)
    known = _LINKS.get(link)
    if known is None:
        if len(_LINKS) >= _LINKS_KEPT:
            _LINKS.clear()  # random addresses (a hostile file) must not grow it
        known = _LINKS[link] = _link_object(link)
    obj = known.copy()
    obj["vlans"] = []
    return obj


# Untagged link headers seen, and their objects: at most _LINKS_KEPT of them.
_LINKS: Final[dict[linkmod.LinkHeader, JsonObject]] = {}
_LINKS_KEPT: Final = 256


def _link_object(link: linkmod.LinkHeader) -> JsonObject:
    known = linkmod.LINK_NAMES.get(link.linktype)
    name = f"LINKTYPE_{link.linktype}" if known is None else known[0]
    obj: JsonObject = {"type": name, "linktype": link.linktype, "hdr_len": link.hdr_len}
    if link.linktype == linkmod.EN10MB:
        obj["src"] = mac(link.src)
        obj["dst"] = mac(link.dst)
    elif link.linktype in (linkmod.LINUX_SLL, linkmod.LINUX_SLL2):
        obj["src"] = mac(link.src)  # the sender's link address, as long as its halen says
        obj["pkttype"] = link.pkttype
        obj["pkttype_name"] = PACKET_TYPES.get(link.pkttype)
        obj["hatype"] = link.hatype
        if link.linktype == linkmod.LINUX_SLL2:
            obj["ifindex"] = link.ifindex
    elif link.linktype in (linkmod.NULL, linkmod.LOOP):
        obj["family"] = link.family
    obj["vlans"] = [  # 802.1Q tags, outermost first: VLAN id, priority, drop eligible
        {"tpid": tpid, "id": tci & 0x0FFF, "pcp": tci >> 13, "dei": bool(tci & 0x1000)}
        for tci, tpid in zip(link.vlans, link.vlan_types, strict=False)
    ]
    obj["ethertype"] = link.ethertype
    obj["ethertype_name"] = ETHERTYPE_NAMES.get(link.ethertype)
    return obj


def mac(addr: bytes) -> str:
    return addr.hex(":")



# ----- IP --------------------------------------------------------------------------------
def ipv4_json(data: bytes, ip: IPv4Header) -> JsonObject:
    frag = ip.flags_frag
    hdr_end = ip.offset + ip.hdr_len
    obj: JsonObject = {
        "version": ip.version,
        "hdr_len": ip.hdr_len,
        "tos": ip.tos,
        "dscp": ip.tos >> 2,
        "ecn": ip.tos & 3,
        "total_len": ip.total_len,
        "id": ip.ident,
        "flags": {"reserved": bool(frag & FLAG_RESERVED), "df": bool(frag & FLAG_DF),
                  "mf": bool(frag & FLAG_MF)},
        "frag_offset": ip.frag_offset,
        "ttl": ip.ttl,
        "proto": ip.proto,
        "proto_name": IPPROTO_NAMES.get(ip.proto),
        "checksum": ip.checksum,
    }
    if ip.hdr_len >= 20 and hdr_end <= len(data):
        _verdict(obj, ip.checksum, verify(data[ip.offset : hdr_end]))
    else:
        obj["checksum_ok"] = None
    obj["src"] = address_text(ip.src)
    obj["dst"] = address_text(ip.dst)
    if ip.hdr_len > 20:
        obj["options"] = ipv4_options(parse_ip_options(data, ip.offset + 20, hdr_end))
    return obj


def ipv4_options(options: IpOptions) -> list[JsonObject]:
    """IPv4 options (RFC 791 §3.1): EOL and NOP are one byte, the others type-length-value.

    An option whose length is below 2 or runs past the header or the capture ends the
    list as ``{"type", "name", "error": "bad length"}``.
    """
    out: list[JsonObject] = []
    for option in options.items:
        item: JsonObject = {"type": option.code, "name": IP_OPTION_NAMES.get(option.code)}
        if option.code not in (ipopt.EOL, ipopt.NOP):
            item["len"] = option.length
            if isinstance(option.value, ipopt.Route):
                item["pointer"] = option.value.pointer
                item["addresses"] = [address_text(a) for a in option.value.addresses]
            else:
                item["data"] = option.data.hex()
        out.append(item)
    broken = options.broken
    if broken is not None:
        out.append({"type": broken.code, "name": IP_OPTION_NAMES.get(broken.code),
                    "error": "bad length"})
    return out


def ipv6_json(data: bytes, ip: IPv6Header) -> JsonObject:
    end = min(len(data), ip.offset + 40 + ip.payload_len)
    obj: JsonObject = {
        "version": ip.version,
        "traffic_class": ip.traffic_class,
        "dscp": ip.traffic_class >> 2,
        "ecn": ip.traffic_class & 3,
        "flow_label": ip.flow_label,
        "payload_len": ip.payload_len,
        "next_header": ip.next_header,
        "hop_limit": ip.hop_limit,
        "src": address_text(ip.src),
        "dst": address_text(ip.dst),
    }
    chain = _extensions(data, ip, end)
    if chain.headers:
        obj["extensions"] = chain.headers
    obj["proto"] = chain.proto
    obj["proto_name"] = None if chain.proto is None else IPPROTO_NAMES.get(chain.proto)
    return obj


class _Chain:
    """What walking an IPv6 extension-header chain found."""

    __slots__ = ("final_dst", "headers", "home", "proto")

    def __init__(self) -> None:
        self.headers: list[JsonObject] = []
        self.proto: int | None = None  # the upper-layer protocol, when the walk got there
        self.final_dst: bytes | None = None  # a routing header's final destination
        self.home: bytes | None = None  # a Home Address option's address


def _extensions(data: bytes, ip: IPv6Header, end: int) -> _Chain:
    """The extension headers after *ip* (``dissect.ipv6.parse_chain``) with each one's
    fields (RFC 8200 §4); a header cut by the capture is listed with ``"truncated": true``
    and ends the list."""
    chain = _Chain()
    walked = ip6mod.parse_chain(data, ip, end)
    for ext in walked.headers:
        header: JsonObject = {"type": ext.kind, "name": EXTENSION_NAMES[ext.kind]}
        chain.headers.append(header)
        frag = ext.fragment
        if frag is not None:
            header.update(next_header=frag.next_header, len=8, frag_offset=frag.frag_offset,
                          more_fragments=frag.more, id=frag.ident)
        elif ext.length is not None:
            header["next_header"] = ext.next_header
            header["len"] = ext.length
            _extension_fields(chain, header, ext.kind, data[ext.offset : ext.offset + ext.length])
    cut = walked.cut
    if cut is not None:
        header = {"type": cut.kind, "name": EXTENSION_NAMES[cut.kind]}
        if cut.length is not None:
            header["next_header"] = cut.next_header
            header["len"] = cut.length
        header["truncated"] = True
        chain.headers.append(header)
    elif walked.upper is None:
        chain.headers.append({"error": "too many extension headers"})
    else:
        chain.proto = walked.upper.proto
    return chain


def _extension_fields(chain: _Chain, header: JsonObject, kind: int, body: bytes) -> None:
    if kind in (ip6mod.HOPOPTS, ip6mod.DSTOPTS):
        header["options"] = _ipv6_options(chain, ip6mod.parse_tlv_options(body, 2, len(body)))
    elif kind == ip6mod.ROUTING:
        rt = ip6mod.parse_routing(body, 0, len(body))  # whole: every field is there
        rtype, left = rt.routing_type, rt.segments_left
        header["routing_type"] = rtype
        header["segments_left"] = left
        addrs: tuple[bytes, ...] = ()
        if rtype in (0, 2):  # RFC 8200 §4.4 type 0 (deprecated), RFC 6275 §6.4 type 2
            addrs = rt.addresses
        elif rtype == 4:  # RFC 8754 §2: segment list, final first
            header["last_entry"] = rt.type_data[0]
            header["flags"] = rt.type_data[1]
            header["tag"] = _U16.unpack_from(rt.type_data, 2)[0]
            addrs = rt.addresses
        else:
            header["data"] = body[4:].hex()
        if addrs:
            header["addresses"] = [address_text(a) for a in addrs]
            if left:  # RFC 8200 §8.1: the pseudo-header uses the final destination
                chain.final_dst = addrs[0] if rtype == 4 else addrs[-1]
    elif kind == ip6mod.AH and len(body) >= 12:  # RFC 4302 §2
        header["spi"], header["seq"] = _U32X2.unpack_from(body, 4)
        header["icv"] = body[12:].hex()
    else:
        header["data"] = body[2:].hex()


def _ipv6_options(chain: _Chain, options: ip6mod.TlvOptions) -> list[JsonObject]:
    """The options of a hop-by-hop or destination header (RFC 8200 §4.2)."""
    out: list[JsonObject] = []
    for option in options.items:
        kind, value = option.kind, option.data
        item: JsonObject = {"type": kind, "name": IPV6_OPTION_NAMES.get(kind)}
        if kind != ip6mod.PAD1:
            item["len"] = len(value)
            if kind == ip6mod.HOME_ADDRESS and len(value) == 16:
                item["address"] = address_text(value)
                chain.home = value
            elif kind != ip6mod.PADN:
                item["data"] = value.hex()
        out.append(item)
    if options.broken is not None:
        out.append({"type": options.broken, "name": IPV6_OPTION_NAMES.get(options.broken),
                    "error": "bad length"})
    return out


def _outer_ips(data: bytes, offsets: tuple[int, ...]) -> list[JsonObject]:
    """The IP headers a tunnelled packet is wrapped in (IPv6 in IPv4, GRE, VXLAN and the
    like), outermost first: ``ip`` is always the innermost, the one the transport rides
    on.  ``decode`` found them (``Packet.tunnel``), so they parse."""
    return [ipv4_json(data, parse_ipv4(data, off)) if data[off] >> 4 == 4
            else ipv6_json(data, parse_ipv6(data, off)) for off in offsets]


# ----- transport -------------------------------------------------------------------------
def _segment_end(ip: IPv4Header | IPv6Header) -> int:
    """Where the IP datagram ends, as its header says."""
    if isinstance(ip, IPv4Header):
        return ip.offset + ip.total_len
    return ip.offset + 40 + ip.payload_len


def _pseudo(data: bytes, ip: IPv4Header | IPv6Header, proto: int, length: int) -> int:
    """The pseudo-header sum, with the addresses the sender used (RFC 9293 §3.1,
    RFC 8200 §8.1: a routing header's final destination; RFC 6275 §6.3: the home address)."""
    if isinstance(ip, IPv4Header):
        return pseudo_sum(ip.src, _ipv4_final_dst(data, ip), proto, length)
    chain = _extensions(data, ip, min(len(data), _segment_end(ip)))
    src = chain.home or ip.src
    return pseudo_sum(src, chain.final_dst or ip.dst, proto, length)


def _ipv4_final_dst(data: bytes, ip: IPv4Header) -> bytes:
    """With a loose or strict source route, its last whole address (RFC 1122 §4.1.3.3);
    else the destination.

    WARNING: unlike ``ip_options.source_route_destination`` (tcpdump's ip_finddst, the
    printer's choice), a route whose length is not 3 plus a multiple of 4 gives its last
    whole address here, not its last 4 bytes: the JSON output has always done so.
    """
    if ip.hdr_len <= 20:  # no options: nothing to walk (most packets)
        return ip.dst
    for option in parse_ip_options(data, ip.offset + 20, ip.offset + ip.hdr_len).items:
        route = option.value
        if option.code in (ipopt.LSRR, ipopt.SSRR) and isinstance(route, ipopt.Route) and (
                route.addresses):
            return route.addresses[-1]
    return ip.dst


def _verdict(obj: JsonObject, field: int, computed: int) -> None:
    """``checksum_ok`` from ``verify``'s result, and what the field should hold if not."""
    obj["checksum_ok"] = computed == 0
    if computed:
        obj["checksum_expected"] = should_be(field, computed)


def _check(obj: JsonObject, data: bytes, ip: IPv4Header | IPv6Header, proto: int,
           start: int, length: int, field: int, partial: bool, pseudo: bool = True) -> None:
    """Verify the checksum over ``data[start:start+length]`` when all of it is there."""
    if partial or length < 0 or start + length > len(data) or start + length > _segment_end(ip):
        obj["checksum_ok"] = None
        return
    initial = _pseudo(data, ip, proto, length) if pseudo else 0
    _verdict(obj, field, verify(data[start : start + length], initial))


def tcp_json(data: bytes, ip: IPv4Header | IPv6Header, tcp: TcpHeader,
             partial: bool) -> JsonObject:
    flags = tcp.flags
    obj: JsonObject = {
        "src_port": tcp.src_port,
        "dst_port": tcp.dst_port,
        "seq": tcp.seq,
        "ack": tcp.ack,  # the field as sent; it means something only with ACK set
        "hdr_len": tcp.hdr_len,
        "flags": FLAG_STRINGS[flags & 0xFF],  # tcpdump's letters, "none" for none
        "flag_names": list(_FLAG_NAME_LISTS[flags & 0x1FF]),
        "window": tcp.window,
        "checksum": tcp.checksum,
    }
    _check(obj, data, ip, 6, tcp.offset, _segment_end(ip) - tcp.offset, tcp.checksum, partial)
    obj["urgent"] = tcp.urgent
    obj["options"] = [tcp_option_json(option, flags) for option in tcp.options.items]
    if tcp.options.problem is not None:
        # "bad": a length below 2 or past the header (tcpdump's [bad opt]); "truncated"
        # and "cut": the capture ends inside the options (tcpdump's [|tcp]).
        obj["options_error"] = tcp.options.problem
    return obj


def _fastopen(cookie: bytes) -> JsonObject:
    return {"cookie": cookie.hex()} if cookie else {"cookie_request": True}  # RFC 7413 §4.1.1


def option_fields(record: opts.OptionRecord) -> JsonObject | None:
    """The fields of a decoded TCP option; None for a record without fields."""
    match record:
        case opts.Timestamps(tsval, tsecr):  # first: nearly every Linux segment has one
            return {"tsval": tsval, "tsecr": tsecr}
        case (opts.Mss(value) | opts.Echo(value) | opts.EchoReply(value)
              | opts.ConnectionCount(_, value)):
            return {"value": value}
        case opts.WindowScale(shift):
            return {"shift": shift}
        case opts.Sack(blocks):
            return {"blocks": [list(block) for block in blocks]}
        case opts.Md5(digest):
            return {"digest": digest.hex()}
        case opts.Scps(capabilities, connection_id):
            return {"capabilities": capabilities, "connection_id": connection_id}
        case opts.UserTimeout():
            return {"granularity": "minutes" if record.minutes else "seconds",
                    "timeout": record.timeout}
        case opts.TcpAo(keyid, rnextkeyid, mac):
            return {"keyid": keyid, "rnextkeyid": rnextkeyid, "mac": mac.hex()}
        case opts.FastOpen(cookie):
            return _fastopen(cookie)
        case opts.Experimental(_, exid, data):
            obj: JsonObject = {"exid": f"{exid:04x}"}  # RFC 6994 §3
            obj.update(_fastopen(data) if exid == opts.TFO_EXID else {"data": data.hex()})
            return obj
    return None


def tcp_option_json(option: opts.TcpOption, tcp_flags: int) -> JsonObject:
    """One TCP option: kind, tcpdump's name, the length byte, and its fields.

    Data too short for the option's fields, or of an option without known fields, is
    given as hex in ``data``; data the capture cut is marked ``"truncated": true``.
    """
    kind = option.kind
    data = option.data
    if kind == opts.TIMESTAMP and option.length == 10 and len(data) == 8:
        # Nearly every Linux segment has one: its record's fields, without the record.
        tsval, tsecr = _U32X2.unpack(data)
        return {"kind": kind, "name": "TS", "len": 10, "tsval": tsval, "tsecr": tsecr}
    known = TCP_OPTION_NAMES.get(kind)
    name = ("ccecho" if kind == opts.CCECHO else f"unknown-{kind}" if known is None
            else known)
    obj: JsonObject = {"kind": kind, "name": name, "len": option.length}
    if kind in (opts.EOL, opts.NOP):
        return obj
    truncated = len(data) < option.length - 2
    if truncated:
        obj["truncated"] = True
    record = opts.decode_option(option)
    found = option_fields(record)
    if isinstance(record, opts.Mptcp) and not truncated:
        obj.update(mptcp_json(record, data))
    elif found is not None:
        obj.update(found)
    elif data or kind != opts.SACK_PERMITTED:
        obj["data"] = data.hex()
    return obj


def mptcp_json(option: opts.Mptcp, data: bytes) -> JsonObject:
    """An MPTCP option (RFC 8684) from its ``dissect.mptcp`` record: subtype and its
    fields; *data* is the option's data, shown when it fits no form of the subtype."""
    subtype, record = option.subtype, option.record
    obj: JsonObject = {"subtype": subtype,
                       "subtype_name": None if subtype is None else MPTCP_SUBTYPES.get(subtype)}
    if isinstance(record, MptcpMalformed):
        obj["error"] = "length fits no form of the subtype"
        obj["data"] = data.hex()
        return obj
    if is_dataclass(record):
        for field in fields(record):
            if field.name == "subtype":
                continue
            value = getattr(record, field.name)
            if field.name == "address" and isinstance(value, bytes):
                obj["address"] = address_text(value)
            else:
                obj[field.name] = plain(value)
    return obj


def plain(value: object) -> Any:
    """*value* made JSON-ready: bytes as hex, tuples as lists."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def udp_json(data: bytes, ip: IPv4Header | IPv6Header, udp: UdpHeader,
             partial: bool) -> JsonObject:
    obj: JsonObject = {
        "src_port": udp.src_port,
        "dst_port": udp.dst_port,
        "len": udp.length,
        "checksum": udp.checksum,
    }
    if udp.checksum == 0 and isinstance(ip, IPv4Header):
        obj["checksum_ok"] = None  # RFC 768: zero means the sender computed none
    elif udp.length < 8:
        obj["checksum_ok"] = None
    else:
        _check(obj, data, ip, 17, udp.offset, udp.length, udp.checksum, partial)
    return obj


def _icmp_common(obj: JsonObject, types: dict[int, str],
                 codes: dict[int, dict[int, str]], icmp_type: int, code: int) -> None:
    obj["type_name"] = types.get(icmp_type)
    obj["code_name"] = codes.get(icmp_type, {}).get(code)


def icmp_json(data: bytes, ip: IPv4Header, icmp: IcmpHeader, partial: bool) -> JsonObject:
    obj: JsonObject = {"type": icmp.type, "code": icmp.code}
    _icmp_common(obj, ICMP_TYPES, ICMP_CODES, icmp.type, icmp.code)
    obj["checksum"] = icmp.checksum
    _check(obj, data, ip, 1, icmp.offset, _segment_end(ip) - icmp.offset, icmp.checksum,
           partial, pseudo=False)
    t = icmp.type
    if t in (0, 8, 13, 14, 15, 16, 17, 18):  # echo, timestamp, information, mask
        obj["id"] = icmp.ident
        obj["seq"] = icmp.seq
    elif t == 5:
        obj["gateway"] = address_text(icmp.gateway)
    elif t == 12:
        obj["pointer"] = icmp.pointer
    elif t == 3 and icmp.code == 4:
        obj["mtu"] = icmp.next_hop_mtu  # RFC 1191 §4
    else:
        obj["rest"] = icmp.rest
    if icmp.is_error:
        try:
            quoted = parse_quoted4(data[: min(len(data), _segment_end(ip))], icmp)
        except DissectError as exc:
            obj["quoted"] = None
            obj["quoted_error"] = error_json(exc)
        else:
            obj["quoted"] = None if quoted is None else {
                "version": 4, "src": address_text(quoted.src), "dst": address_text(quoted.dst),
                "proto": quoted.proto, "total_len": quoted.total_len,
                "src_port": quoted.src_port, "dst_port": quoted.dst_port,
            }
    return obj


def icmp6_json(data: bytes, ip: IPv6Header, icmp: Icmp6Header, partial: bool) -> JsonObject:
    obj: JsonObject = {"type": icmp.type, "code": icmp.code}
    _icmp_common(obj, ICMP6_TYPES, ICMP6_CODES, icmp.type, icmp.code)
    obj["checksum"] = icmp.checksum
    end = _segment_end(ip)
    _check(obj, data, ip, 58, icmp.offset, end - icmp.offset, icmp.checksum, partial)
    t = icmp.type
    if t in (128, 129):
        obj["id"] = icmp.ident
        obj["seq"] = icmp.seq
    elif t == 2:
        obj["mtu"] = icmp.mtu
    elif t == 4:
        obj["pointer"] = icmp.pointer
    else:
        obj["rest"] = icmp.rest
    if t in (1, 2, 3, 4):  # the error messages, which quote the invoking packet
        try:
            quoted = parse_quoted6(data, icmp, min(len(data), end))
        except DissectError as exc:
            obj["quoted"] = None
            obj["quoted_error"] = error_json(exc)
        else:
            obj["quoted"] = None if quoted is None else {
                "version": 6, "src": address_text(quoted.src), "dst": address_text(quoted.dst),
                "next_header": quoted.next_header, "proto": quoted.proto,
                "payload_len": quoted.payload_len,
                "src_port": quoted.src_port, "dst_port": quoted.dst_port,
            }
    return obj


# ----- errors ----------------------------------------------------------------------------
def error_json(exc: DissectError) -> JsonObject:
    """The decoder's error with its fields: where it stopped and why."""
    if isinstance(exc, Truncated):
        return {"kind": "truncated", "layer": exc.layer, "offset": exc.offset,
                "need": exc.need, "have": exc.have, "message": str(exc)}
    if isinstance(exc, Malformed):
        return {"kind": "malformed", "layer": exc.layer, "offset": exc.offset,
                "reason": exc.reason, "message": str(exc)}
    return {"kind": "error", "message": str(exc)}


__all__ = ["JsonObject", "json_line", "packet_json"]
