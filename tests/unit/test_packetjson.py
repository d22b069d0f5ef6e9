"""``read --json`` (SPEC §3.2): one JSON object per packet with every decoded field.

The fields are checked against tshark's own decoding of the same files (raw sequence
numbers, not relative ones), on the lesson captures (real loopback traffic) and on the
golden corpus (IPv6, ICMPv6, VLAN, SLL/SLL2, NULL, fragments, checksum faults); then the
command: every line of every file is strict JSON, ``-c``, the filter, a truncated file,
and payloads that try to reach the terminal.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capdissect.commands.read import ReadOptions, read_lines
from capdissect.dissect.checksum import ones_sum
from capdissect.dissect.stack import decode
from capdissect.packets import RawPacket
from capdissect.report.json.packet import json_line, packet_json
from capdissect.sources.files import open_capture
from tests.support.compare import capdissect_command, fixed_env, run

ROOT = Path(__file__).parents[2]
CAPTURES = ROOT / "captures"
CORPUS = ROOT / "tests" / "corpus"
EXTRA = ROOT / "tests" / "corpus-extra"
ALL_FILES = sorted(
    [*CAPTURES.glob("*.pcap"), *CORPUS.glob("*.pcap*"), *CORPUS.glob("*.cap"),
     *EXTRA.glob("*.pcap*")]
)

Obj = dict[str, Any]
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def _reject(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def loads(line: str) -> Obj:
    """Strict JSON: NaN and Infinity (which json.loads accepts by default) are errors."""
    obj = json.loads(line, parse_constant=_reject)
    assert isinstance(obj, dict)
    return obj


def packets(path: Path, expression: str | None = None, count: int | None = None) -> list[Obj]:
    options = ReadOptions(json=True, expression=expression, count=count)
    return [loads(line) for line in read_lines(path, options)]


def tshark(path: Path, fields: list[str], *prefs: str) -> list[list[list[str]]]:
    """tshark's value of each field for each frame: every occurrence, outermost first."""
    argv = ["tshark", "-r", str(path), "-n", *[a for p in prefs for a in ("-o", p)],
            "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
            *[a for f in fields for a in ("-e", f)]]
    proc = subprocess.run(argv, capture_output=True, text=True, env=fixed_env(), timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return [[cell.split(",") if cell else [] for cell in line.split("\t")]
            for line in proc.stdout.splitlines()]


Row = dict[str, list[str]]


def paired(path: Path, fields: list[str], *prefs: str) -> Iterator[tuple[Obj, Row]]:
    """Our object and tshark's fields, frame by frame."""
    ours = packets(path)
    theirs = tshark(path, fields, *prefs)
    assert len(ours) == len(theirs), path.name
    for obj, row in zip(ours, theirs, strict=True):
        yield obj, dict(zip(fields, row, strict=True))


def first(values: list[str]) -> int | None:
    return int(values[0], 0) if values else None


# tcpdump's flag letters (print-tcp.c tcp_flag_values), low bit first.
LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
           (0x40, "E"), (0x80, "W"))
BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
        "ECE": 0x40, "CWR": 0x80, "AE": 0x100}


# ----- against tshark --------------------------------------------------------------------
TCP_FILES = [
    CAPTURES / "tcp-basic.pcap",
    CAPTURES / "tcp-simultaneous-open.pcap",
    CAPTURES / "tcp-reset.pcap",
    CORPUS / "pcpp_tls.pcap",  # IPv4 and IPv6
    CORPUS / "lwerdna_simple_http_sll2.pcap",  # LINUX_SLL2
    CORPUS / "tcpdump_mptcp-v1.pcap",  # LINUX_SLL
    CORPUS / "zeek_vlan-pcp-dei.pcapng",  # two 802.1Q tags
    CORPUS / "zeek_irc-353.pcap",  # NULL, IPv4 and IPv6
    CORPUS / "zeek_rotation.pcap",  # RAW
    CORPUS / "pcpp_linktype_ipv6.pcap",  # IPV6
    CORPUS / "tcpdump_tcp-handshake-nano.pcap",  # nanosecond timestamps
    CORPUS / "pcpp_nanosecs_big_endian.pcap",
    CORPUS / "zeek_modbus_fuzz-72.pcap",  # ECE, CWR, URG and an urgent pointer
    CORPUS / "tcpdump_tcp_eight_lowest_weight_flags_set.pcap",
]
TCP_FIELDS = [
    "frame.time_epoch", "frame.len", "frame.cap_len", "ip.src", "ip.dst", "ip.ttl", "ip.id",
    "ip.len", "ip.hdr_len", "ip.dsfield", "ip.checksum", "ipv6.src", "ipv6.dst", "ipv6.hlim",
    "ipv6.flow", "ipv6.tclass", "ipv6.plen", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
    "tcp.ack_raw", "tcp.flags", "tcp.window_size_value", "tcp.hdr_len", "tcp.urgent_pointer",
    "tcp.checksum", "tcp.len", "tcp.options.mss_val", "tcp.options.wscale.shift",
    "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr",
]


@needs_tshark
@pytest.mark.parametrize("path", TCP_FILES, ids=lambda p: p.name)
def test_tcp_fields_match_tshark(path: Path) -> None:
    for obj, t in paired(path, TCP_FIELDS):
        frame = obj["frame"]
        assert f"{obj['ts_sec']}.{obj['ts_nsec']:09d}" == t["frame.time_epoch"][0], frame
        assert (obj["wire_len"], obj["captured_len"]) == (
            first(t["frame.len"]), first(t["frame.cap_len"])), frame
        ip, tcp = obj["ip"], obj["tcp"]
        if ip["version"] == 4:
            assert (ip["src"], ip["dst"]) == (t["ip.src"][0], t["ip.dst"][0]), frame
            assert [ip["ttl"], ip["id"], ip["total_len"], ip["hdr_len"], ip["tos"],
                    ip["checksum"]] == [first(t[f]) for f in (
                        "ip.ttl", "ip.id", "ip.len", "ip.hdr_len", "ip.dsfield",
                        "ip.checksum")], frame
        else:
            assert (ip["src"], ip["dst"]) == (t["ipv6.src"][0], t["ipv6.dst"][0]), frame
            assert [ip["hop_limit"], ip["flow_label"], ip["traffic_class"],
                    ip["payload_len"]] == [first(t[f]) for f in (
                        "ipv6.hlim", "ipv6.flow", "ipv6.tclass", "ipv6.plen")], frame
        assert [tcp["src_port"], tcp["dst_port"], tcp["seq"], tcp["ack"], tcp["window"],
                tcp["hdr_len"], tcp["urgent"], tcp["checksum"], obj["payload_len"]] == [
            first(t[f]) for f in ("tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw",
                                  "tcp.window_size_value", "tcp.hdr_len",
                                  "tcp.urgent_pointer", "tcp.checksum", "tcp.len")], frame
        bits = (first(t["tcp.flags"]) or 0) & 0x1FF
        assert sum(BITS[name] for name in tcp["flag_names"]) == bits, frame
        assert tcp["flags"] == ("".join(c for bit, c in LETTERS if bits & bit) or "none")
        options = {o["name"]: o for o in tcp["options"]}
        assert options.get("mss", {}).get("value") == first(t["tcp.options.mss_val"])
        assert options.get("wscale", {}).get("shift") == first(t["tcp.options.wscale.shift"])
        ts = options.get("TS", {})
        assert (ts.get("tsval"), ts.get("tsecr")) == (
            first(t["tcp.options.timestamp.tsval"]), first(t["tcp.options.timestamp.tsecr"]))


@needs_tshark
@pytest.mark.parametrize("path", [CORPUS / "zeek_tcp_option-sack.pcap",
                                  CAPTURES / "tcp-simultaneous-open.pcap",
                                  CORPUS / "zeek_rdp_rdp-x509.pcap"], ids=lambda p: p.name)
def test_sack_blocks_match_tshark(path: Path) -> None:
    fields = ["tcp.options.sack_le", "tcp.options.sack_re"]
    seen = 0
    for obj, t in paired(path, fields, "tcp.relative_sequence_numbers:FALSE"):
        blocks = [b for o in obj["tcp"]["options"] if o["name"] == "sack" for b in o["blocks"]]
        assert blocks == [[int(le), int(re)] for le, re in zip(
            t["tcp.options.sack_le"], t["tcp.options.sack_re"], strict=True)], obj["frame"]
        seen += len(blocks)
    assert seen


UDP_FILES = [
    CAPTURES / "udp-basic.pcap",
    CAPTURES / "udp-connected.pcap",
    CORPUS / "tcpdump_bfd-sbfd.pcap",  # IPv4 and IPv6
    CORPUS / "zeek_udp-packet.pcap",
    CORPUS / "scapy_netflowv9.pcap",
    CORPUS / "tcpdump_quic_handshake_truncated.pcap",  # NULL, IPv6, cut by the snaplen
    CORPUS / "zeek_tunnels_6in4.pcap",
]


@needs_tshark
@pytest.mark.parametrize("path", UDP_FILES, ids=lambda p: p.name)
def test_udp_fields_match_tshark(path: Path) -> None:
    fields = ["udp.srcport", "udp.dstport", "udp.length", "udp.checksum"]
    checked = 0
    for obj, t in paired(path, fields):
        if "udp" not in obj:  # an ICMP error quoting a datagram
            continue
        udp = obj["udp"]
        assert [udp["src_port"], udp["dst_port"], udp["len"], udp["checksum"]] == [
            first(t[f]) for f in fields], obj["frame"]
        checked += 1
    assert checked


ICMP_FILES = [
    CAPTURES / "udp-unreachable.pcap",
    CAPTURES / "udp-connected.pcap",
    CORPUS / "pcpp_IcmpPackets.pcapng",
    CORPUS / "zeek_icmp_icmp-timeexceeded.pcap",
    CORPUS / "zeek_tcp_timeout-with-pings.pcap",  # IPV4 link type
    CORPUS / "zeek_trunc_icmp-payload-trunc.pcap",
    CORPUS / "tcpdump_icmp-cksum-oobr-1.pcap",
]
ICMP_FIELDS = ["icmp.type", "icmp.code", "icmp.checksum", "icmp.ident", "icmp.seq",
               "icmp.mtu", "ip.src", "ip.dst", "ip.proto", "udp.srcport", "udp.dstport",
               "tcp.srcport", "tcp.dstport"]


@needs_tshark
@pytest.mark.parametrize("path", ICMP_FILES, ids=lambda p: p.name)
def test_icmp_fields_match_tshark(path: Path) -> None:
    checked = 0
    for obj, t in paired(path, ICMP_FIELDS):
        if "icmp" not in obj:
            continue
        icmp, frame = obj["icmp"], obj["frame"]
        assert [icmp["type"], icmp["code"], icmp["checksum"]] == [
            first(t[f]) for f in ("icmp.type", "icmp.code", "icmp.checksum")], frame
        if "id" in icmp:
            assert (icmp["id"], icmp["seq"]) == (first(t["icmp.ident"]), first(t["icmp.seq"]))
        quoted = icmp.get("quoted")
        if quoted is not None:  # tshark's second IP header is the quoted one
            assert (quoted["src"], quoted["dst"], quoted["proto"]) == (
                t["ip.src"][1], t["ip.dst"][1], int(t["ip.proto"][1])), frame
            layer = {6: "tcp", 17: "udp"}.get(quoted["proto"])
            if layer and quoted["src_port"] is not None:
                assert (quoted["src_port"], quoted["dst_port"]) == (
                    first(t[f"{layer}.srcport"]), first(t[f"{layer}.dstport"])), frame
        checked += 1
    assert checked


def test_port_unreachable_uses_the_spec_words() -> None:
    """The lesson: a datagram to a closed port, answered by ICMP port unreachable (§4)."""
    datagram, error = packets(CAPTURES / "udp-unreachable.pcap")
    icmp = error["icmp"]
    assert (icmp["type_name"], icmp["code_name"]) == ("destination unreachable",
                                                      "port unreachable")
    assert icmp["quoted"]["src_port"] == datagram["udp"]["src_port"]
    assert icmp["quoted"]["dst_port"] == datagram["udp"]["dst_port"] == 10001
    assert bytes.fromhex(datagram["payload"]) == b"hello world"
    assert bytes.fromhex(error["payload"]).endswith(b"hello world")  # the quote


ICMP6_FILES = [
    CORPUS / "zeek_communityid_icmp6.pcap",
    CORPUS / "zeek_icmp_icmp6-destunreach-ip6ext-udp.pcap",
    CORPUS / "zeek_icmp_icmp6-nd-options.pcap",
    CORPUS / "zeek_icmp_icmp6-mldv2.pcap",  # IPV6 link type, hop-by-hop header
    CORPUS / "tcpdump_icmpv6-RFC2894-RR.pcap",  # NULL link type
    CORPUS / "tcpdump_ipv6-routing-header.pcap",
    CORPUS / "zeek_chksums_ip6-icmp6-bad-chksum.pcap",
]
ICMP6_FIELDS = ["icmpv6.type", "icmpv6.code", "icmpv6.checksum", "icmpv6.echo.identifier",
                "icmpv6.echo.sequence_number", "icmpv6.mtu", "ipv6.src", "ipv6.dst",
                "ipv6.hlim", "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport"]


@needs_tshark
@pytest.mark.parametrize("path", ICMP6_FILES, ids=lambda p: p.name)
def test_icmp6_fields_match_tshark(path: Path) -> None:
    checked = 0
    for obj, t in paired(path, ICMP6_FIELDS):
        if "icmp6" not in obj:
            continue
        icmp, frame, ip = obj["icmp6"], obj["frame"], obj["ip"]
        assert (ip["src"], ip["dst"], ip["hop_limit"]) == (
            t["ipv6.src"][0], t["ipv6.dst"][0], first(t["ipv6.hlim"])), frame
        assert [icmp["type"], icmp["code"], icmp["checksum"]] == [
            first(t[f]) for f in ("icmpv6.type", "icmpv6.code", "icmpv6.checksum")], frame
        if icmp["type"] in (128, 129):
            assert (icmp["id"], icmp["seq"]) == (first(t["icmpv6.echo.identifier"]),
                                                 first(t["icmpv6.echo.sequence_number"]))
        if icmp["type"] == 2:
            assert icmp["mtu"] == first(t["icmpv6.mtu"])
        quoted = icmp.get("quoted")
        if quoted is not None:
            assert (quoted["src"], quoted["dst"]) == (t["ipv6.src"][1], t["ipv6.dst"][1])
            layer = {6: "tcp", 17: "udp"}.get(quoted["proto"] or 0)
            if layer:
                assert (quoted["src_port"], quoted["dst_port"]) == (
                    first(t[f"{layer}.srcport"]), first(t[f"{layer}.dstport"])), frame
        checked += 1
    assert checked


CHECKSUM_FILES = [
    *sorted(CORPUS.glob("zeek_chksums_*.pcap")),
    CAPTURES / "tcp-basic.pcap",  # loopback: offloaded TCP checksums are "incorrect"
    CAPTURES / "udp-unreachable.pcap",
    CORPUS / "pcpp_tls.pcap",
    CORPUS / "tcpdump_ipv6-routing-header.pcap",
    CORPUS / "zeek_icmp_icmp6-nd-options.pcap",
    CORPUS / "tcpdump_icmp-cksum-oobr-1.pcap",
    CORPUS / "zeek_tunnels_socks.pcap",
]
# tshark's checksum status: 0 bad, 1 good (2 unverified, 3 not present).
STATUS = {"0": False, "1": True}


@needs_tshark
@pytest.mark.parametrize("path", CHECKSUM_FILES, ids=lambda p: p.name)
def test_checksum_verdicts_match_tshark(path: Path) -> None:
    """Where both verified a checksum, the verdicts agree; this includes the routing
    header's final destination and a Mobile IPv6 home address in the pseudo-header."""
    layers = {"ip": "ip", "tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmp6": "icmpv6"}
    fields = [f"{name}.checksum.status" for name in layers.values()]
    prefs = ("ip.check_checksum:TRUE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE")
    compared = 0
    for obj, t in paired(path, fields, *prefs):
        for ours, theirs in layers.items():
            layer = obj.get(ours)
            status = t[f"{theirs}.checksum.status"]
            if not layer or "checksum_ok" not in layer or layer["checksum_ok"] is None:
                continue
            if status and status[0] in STATUS:
                assert layer["checksum_ok"] == STATUS[status[0]], (obj["frame"], ours)
                if not layer["checksum_ok"]:
                    assert isinstance(layer["checksum_expected"], int)
                compared += 1
    assert compared


@needs_tshark
def test_link_layers_match_tshark() -> None:
    fields = ["sll.pkttype", "sll.hatype", "sll.ifindex", "sll.src.eth", "sll.etype"]
    for path in (CORPUS / "lwerdna_simple_http_sll2.pcap", CORPUS / "pcpp_Sll2Packet.pcap",
                 CORPUS / "tcpdump_mptcp-v1.pcap"):
        for obj, t in paired(path, fields):
            link = obj["link"]
            assert link["type"] in ("LINUX_SLL", "LINUX_SLL2")
            assert [link["pkttype"], link["hatype"], link["src"], link["ethertype"]] == [
                first(t["sll.pkttype"]), first(t["sll.hatype"]), t["sll.src.eth"][0],
                first(t["sll.etype"])]
            if link["type"] == "LINUX_SLL2":
                assert link["ifindex"] == first(t["sll.ifindex"])
    fields = ["eth.src", "eth.dst", "vlan.id", "vlan.priority", "vlan.dei", "eth.type",
              "vlan.etype"]
    for obj, t in paired(CORPUS / "zeek_vlan-pcp-dei.pcapng", fields):
        link = obj["link"]
        assert (link["src"], link["dst"]) == (t["eth.src"][0], t["eth.dst"][0])
        assert [[v["id"], v["pcp"], int(v["dei"])] for v in link["vlans"]] == [
            [int(a), int(b), int(c)] for a, b, c in zip(
                t["vlan.id"], t["vlan.priority"], t["vlan.dei"], strict=True)]
        # Each tag's TPID is the type field before it; the last type field is the payload's.
        types = [int(x, 0) for x in t["eth.type"] + t["vlan.etype"]]
        assert [v["tpid"] for v in link["vlans"]] == types[:-1]
        assert link["ethertype"] == types[-1]
    for obj, t in paired(CORPUS / "zeek_irc-353.pcap", ["null.family"]):
        assert obj["link"]["family"] == first(t["null.family"])


@needs_tshark
def test_fragments_match_tshark() -> None:
    fields = ["ip.id", "ip.frag_offset", "ip.flags.mf", "ip.flags.df", "ip.flags.rb"]
    for obj, t in paired(CORPUS / "pcpp_frag_with_padding.pcap", fields,
                         "ip.defragment:FALSE"):
        ip = obj["ip"]
        # tshark shows the offset field in 8-octet units; ours is in bytes.
        assert [ip["id"], ip["frag_offset"] // 8, *map(int, ip["flags"].values())] == [
            first(t[f]) for f in ("ip.id", "ip.frag_offset", "ip.flags.rb", "ip.flags.df",
                                  "ip.flags.mf")]
        assert obj["fragment"] == (ip["frag_offset"] > 0)
        assert obj["partial"] == (ip["frag_offset"] == 0 and ip["flags"]["mf"])
    fields = ["ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident"]
    for obj, t in paired(CORPUS / "pcpp_ipv6-frag.pcap", fields, "ipv6.defragment:FALSE"):
        frags = [h for h in obj["ip"].get("extensions", []) if h["name"] == "fragment"]
        assert [[h["frag_offset"] // 8, int(h["more_fragments"]), h["id"]] for h in frags] == (
            [[first(t[f]) for f in fields]] if t["ipv6.fraghdr.ident"] else [])


@needs_tshark
def test_routing_header_matches_tshark() -> None:
    fields = ["ipv6.routing.type", "ipv6.routing.segleft", "ipv6.routing.src.addr",
              "ipv6.routing.nxt"]
    for obj, t in paired(CORPUS / "tcpdump_ipv6-routing-header.pcap", fields):
        (routing,) = obj["ip"]["extensions"]
        assert [routing["routing_type"], routing["segments_left"], routing["next_header"]] == [
            first(t[f]) for f in ("ipv6.routing.type", "ipv6.routing.segleft",
                                  "ipv6.routing.nxt")]
        assert routing["addresses"] == t["ipv6.routing.src.addr"]
        assert obj["ip"]["proto"] == routing["next_header"]


def test_options_tcpdump_names_with_their_fields() -> None:
    (syn,) = packets(CORPUS / "zeek_tcp_option-27.pcap")
    # tcpdump -nn: options [nop,unknown-27 0x000102000000,uto 0x1 0,eol]; RFC 5482 reads
    # the user timeout's top bit as the granularity, as Wireshark does (1 second).
    assert syn["tcp"]["options"] == [
        {"kind": 1, "name": "nop", "len": 1},
        {"kind": 27, "name": "unknown-27", "len": 8, "data": "000102000000"},
        {"kind": 28, "name": "uto", "len": 4, "granularity": "seconds", "timeout": 1},
        {"kind": 0, "name": "eol", "len": 1},
    ]
    tfo = packets(CORPUS / "tcpdump_tfo-5c1fa7f9ae91.pcap")
    exp = [o for p in tfo for o in p["tcp"]["options"] if o["name"] == "exp"]
    assert {"kind": 254, "name": "exp", "len": 4, "exid": "f989", "cookie_request": True} in exp
    assert any(o.get("cookie") for o in exp)
    mptcp = [o for p in packets(CORPUS / "tcpdump_mptcp-v1.pcap") for o in p["tcp"]["options"]
             if o["name"] == "mptcp"]
    assert {o["subtype_name"] for o in mptcp} >= {"MP_CAPABLE", "DSS"}
    capable = next(o for o in mptcp if o["subtype_name"] == "MP_CAPABLE" and o["len"] == 12)
    assert capable["version"] == 1 and isinstance(capable["sender_key"], int)
    cut = packets(CORPUS / "tcpdump_tcp-auth-heapoverflow.pcap")[0]["tcp"]
    assert cut["options_error"] == "truncated"
    assert cut["options"][-1]["truncated"] is True


# ----- every file, every packet ----------------------------------------------------------
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_packet_is_one_strict_json_line(path: Path) -> None:
    with open_capture(path) as capture:
        expected = sum(1 for _ in capture)
    lines = list(read_lines(path, ReadOptions(json=True)))
    assert len(lines) == expected
    for number, line in enumerate(lines, 1):
        assert "\n" not in line and line.isascii() and line.isprintable(), number
        obj = loads(line)
        assert obj["frame"] == number
        assert obj["error"] is None or obj["error"]["kind"] in ("truncated", "malformed")
        assert len(obj["payload"]) <= 2 * obj["captured_len"]
        bytes.fromhex(obj["payload"])


def test_hand_made_ipv4_options_and_ipv6_extension_chain() -> None:
    src, dst = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
    udp = struct.pack("!HHHH", 40000, 53, 8, 0)  # no checksum (RFC 768)
    # IHL 7: record route (type 7, length 7, pointer 4, one slot 192.0.2.9), NOP.
    options = bytes([7, 7, 4]) + socket.inet_aton("192.0.2.9") + bytes([1])
    header = struct.pack("!BBHHHBBH4s4s", 0x47, 0xB8, 28 + 8, 7, 0x4000, 9, 17, 0, src, dst)
    header += options
    checksum = ~ones_sum(header) & 0xFFFF
    header = header[:10] + struct.pack("!H", checksum) + header[12:]
    obj = packet_json(1, decode(RawPacket(5, 7, 101, 36, header + udp)))
    ip = obj["ip"]
    assert (ip["hdr_len"], ip["dscp"], ip["ecn"], ip["id"], ip["ttl"]) == (28, 46, 0, 7, 9)
    assert ip["flags"] == {"reserved": False, "df": True, "mf": False}
    assert ip["checksum_ok"] is True
    assert ip["options"] == [
        {"type": 7, "name": "RR", "len": 7, "pointer": 4, "addresses": ["192.0.2.9"]},
        {"type": 1, "name": "NOP"},
    ]
    assert obj["udp"]["checksum_ok"] is None  # zero: the sender computed none
    assert (obj["ts"], obj["ts_sec"], obj["ts_nsec"]) == (5.000000007, 5, 7)

    # IPv6: hop-by-hop (router alert), a first fragment, then UDP.
    s6, d6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1"), socket.inet_pton(
        socket.AF_INET6, "2001:db8::2")
    hbh = bytes([44, 0, 5, 2, 0, 0, 1, 0])  # next: fragment; router alert 0; PadN
    frag = struct.pack("!BBHI", 17, 0, 0x0001, 0xABCD)  # offset 0, more fragments
    body = hbh + frag + struct.pack("!HHHH", 1, 2, 100, 0)
    ip6 = struct.pack("!IHBB16s16s", (6 << 28) | (0xB8 << 20) | 0x12345, len(body), 0, 3,
                      s6, d6)
    obj = packet_json(2, decode(RawPacket(0, 0, 101, 40 + len(body), ip6 + body)))
    ip = obj["ip"]
    assert (ip["traffic_class"], ip["flow_label"], ip["hop_limit"]) == (0xB8, 0x12345, 3)
    assert ip["extensions"] == [
        {"type": 0, "name": "hop-by-hop", "next_header": 44, "len": 8,
         "options": [{"type": 5, "name": "router-alert", "len": 2, "data": "0000"},
                     {"type": 1, "name": "padn", "len": 0}]},
        {"type": 44, "name": "fragment", "next_header": 17, "len": 8, "frag_offset": 0,
         "more_fragments": True, "id": 0xABCD},
    ]
    assert (ip["proto"], obj["partial"], obj["udp"]["checksum_ok"]) == (17, True, None)


@pytest.mark.parametrize(("path", "frame"), [
    (CAPTURES / "tcp-basic.pcap", 1),  # SYN with options
    (CAPTURES / "udp-unreachable.pcap", 2),  # ICMP quoting a datagram
    (CORPUS / "pcpp_tls.pcap", 30),  # IPv6
    (CORPUS / "lwerdna_simple_http_sll2.pcap", 1),  # LINUX_SLL2
    (CORPUS / "zeek_vlan-pcp-dei.pcapng", 1),  # 802.1Q twice
    (CORPUS / "zeek_icmp_icmp6-destunreach-ip6ext-udp.pcap", 1),
])  # fmt: skip
def test_every_cut_of_a_packet_gives_what_was_decoded_plus_the_error(path: Path,
                                                                       frame: int) -> None:
    with open_capture(path) as capture:
        raw = next(p for n, p in enumerate(capture, 1) if n == frame)
    whole = packet_json(frame, decode(raw))
    layer = next(k for k in ("tcp", "udp", "icmp", "icmp6") if k in whole)
    transport_at = len(raw.data) - whole["payload_len"] - (
        whole[layer]["hdr_len"] if layer == "tcp" else 8)
    for cut in range(len(raw.data)):
        obj = loads(json_line(packet_json(frame, decode(raw._replace(data=raw.data[:cut])))))
        assert obj["captured_len"] == cut
        if cut < transport_at + (20 if layer == "tcp" else 8):
            assert obj["error"] is not None, cut
            assert layer not in obj, cut
        else:
            assert obj[layer]["src_port" if layer in ("tcp", "udp") else "type"] == (
                whole[layer]["src_port" if layer in ("tcp", "udp") else "type"])
            assert obj[layer].get("checksum_ok") is None  # not all bytes are there


def test_capture_text_never_reaches_the_output_raw() -> None:
    hostile = "\x1b]0;owned\x07\x1b[2J\x7f\u202e\u0000</script>\"\\\n"
    obj = packet_json(1, decode(RawPacket(0, 0, 101, 1, b"\x45", comment=hostile)))
    line = json_line(obj)
    assert line.isascii() and line.isprintable()
    assert loads(line)["comment"] == hostile  # escaped, not lost


# ----- the command -----------------------------------------------------------------------
def cli(*args: str) -> tuple[int, list[str], str]:
    result = run([*capdissect_command(), "read", *args])
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout.splitlines(), result.stderr


def test_count_gives_that_many_lines() -> None:
    status, lines, _ = cli(str(CAPTURES / "tcp-basic.pcap"), "--json", "-c", "3")
    assert status == 0
    assert [loads(line)["frame"] for line in lines] == [1, 2, 3]


def test_filter_limits_the_lines_as_it_limits_the_text() -> None:
    path = CORPUS / "pcpp_tls.pcap"
    everything = packets(path)
    for expression in ("ip6", "tcp[tcpflags] & tcp-syn != 0", "tcp and port 443",
                       "not ip6"):
        text = list(read_lines(path, ReadOptions(plain=True, n=2, expression=expression)))
        frames = [p["frame"] for p in packets(path, expression)]
        assert len(frames) == len(text) > 0, expression
    v6 = [p["frame"] for p in everything if p["ip"]["version"] == 6]
    assert [p["frame"] for p in packets(path, "ip6")] == v6
    assert [p["frame"] for p in packets(path, "ip6", count=2)] == v6[:2]
    status, lines, _ = cli(str(path), "--json", "-c", "2", "ip6")
    assert status == 0
    assert [loads(line)["frame"] for line in lines] == v6[:2]
    status, lines, _ = cli(str(CAPTURES / "udp-connected.pcap"), "--json", "icmp")
    assert [loads(line)["frame"] for line in lines] == [4]


def test_json_ignores_the_text_options() -> None:
    path = str(CAPTURES / "tcp-basic.pcap")
    _, plain, _ = cli(path, "--json")
    assert len(plain) == 11
    assert cli(path, "--json", "-nn", "-vv", "-XX", "-e", "-S", "-K", "-ttttt", "--plain")[1] \
        == plain


def test_truncated_file_gives_its_whole_packets_then_one_error_line(tmp_path: Path) -> None:
    sample = CORPUS / "lwerdna_simple_http.pcap"
    _, whole, _ = cli(str(sample), "--json")
    raw = sample.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) // 2])
    status, lines, stderr = cli(str(cut), "--json")
    assert status == 1
    errors = [line for line in stderr.splitlines() if line.startswith("capdissect:")]
    assert len(errors) == 1 and "truncated capture file" in errors[0]
    assert 0 < len(lines) < len(whole)
    assert lines == whole[: len(lines)]
    for line in lines:
        loads(line)


def test_hostile_payload_is_hex(tmp_path: Path) -> None:
    payload = b"\x1b[2J\x1b]0;owned\x07\x00\x7f\xff\xfe\"\\\n\r</script>\xe2\x80\xae"
    src, dst = socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1")
    udp = struct.pack("!HHHH", 1, 2, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    # An unknown TCP option carrying the same bytes, in a second packet.
    option = bytes([99, 2 + 18]) + payload[:18]
    pad = bytes((-len(option)) % 4)
    tcp = struct.pack("!HHIIBBHHH", 1, 2, 0, 0, (20 + len(option) + len(pad)) // 4 << 4, 2,
                      0, 0, 0) + option + pad
    ip2 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    path = tmp_path / "hostile.pcap"
    records = b"".join(struct.pack("<IIII", 0, 0, len(d), len(d)) + d for d in (ip + udp,
                                                                              ip2 + tcp))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101) + records)
    proc = subprocess.run([*capdissect_command(), "read", str(path), "--json"],
                          capture_output=True, env=fixed_env(), timeout=60, check=False)
    assert proc.returncode == 0
    out = proc.stdout
    assert out.endswith(b"\n") and out.count(b"\n") == 2
    assert all(0x20 <= b < 0x7F for b in out.replace(b"\n", b""))
    first_obj, second_obj = (loads(line) for line in out.decode("ascii").splitlines())
    assert bytes.fromhex(first_obj["payload"]) == payload
    (unknown,) = second_obj["tcp"]["options"]
    assert bytes.fromhex(unknown["data"]) == payload[:18]
