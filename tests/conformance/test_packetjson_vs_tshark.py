"""``read --json`` against tshark: the fields of each packet, checked against tshark's own
decoding of the same files (raw sequence numbers, not relative ones), on the lesson
captures (real loopback traffic) and on the golden corpus (IPv6, ICMPv6, VLAN, SLL/SLL2,
NULL, fragments, checksum faults).  The pure checks of the JSON are in
tests/unit/test_packetjson.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.compare import fixed_env
from tests.unit.test_packetjson import CAPTURES, CORPUS, Obj, packets

pytestmark = pytest.mark.tshark

Row = dict[str, list[str]]


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


UDP_FILES = [
    CAPTURES / "udp-basic.pcap",
    CAPTURES / "udp-connected.pcap",
    CORPUS / "tcpdump_bfd-sbfd.pcap",  # IPv4 and IPv6
    CORPUS / "zeek_udp-packet.pcap",
    CORPUS / "scapy_netflowv9.pcap",
    CORPUS / "tcpdump_quic_handshake_truncated.pcap",  # NULL, IPv6, cut by the snaplen
    CORPUS / "zeek_tunnels_6in4.pcap",
]


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

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


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


def paired(path: Path, fields: list[str], *prefs: str) -> Iterator[tuple[Obj, Row]]:
    """Our object and tshark's fields, frame by frame."""
    ours = packets(path)
    theirs = tshark(path, fields, *prefs)
    assert len(ours) == len(theirs), path.name
    for obj, row in zip(ours, theirs, strict=True):
        yield obj, dict(zip(fields, row, strict=True))


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
