"""``read --json`` (SPEC §3.2): one JSON object per packet with every decoded field.

Built in process: every packet of every file is one strict JSON line, the options and
extension headers by name, every cut of a packet, capture text never raw.  The fields
against tshark's decoding are in tests/conformance/test_packetjson_vs_tshark.py, the
command (``-c``, the filter, a truncated file, hostile payloads) in tests/e2e/test_read_json.py.
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from capdissect.commands.read import ReadOptions, read_lines
from capdissect.dissect.checksum import ones_sum
from capdissect.dissect.stack import decode
from capdissect.packets import RawPacket
from capdissect.report.json.packet import json_line, packet_json
from capdissect.sources.files import open_capture

ROOT = Path(__file__).parents[2]
CAPTURES = ROOT / "captures"
CORPUS = ROOT / "tests" / "corpus"
EXTRA = ROOT / "tests" / "corpus-extra"
ALL_FILES = sorted(
    [*CAPTURES.glob("*.pcap"), *CORPUS.glob("*.pcap*"), *CORPUS.glob("*.cap"),
     *EXTRA.glob("*.pcap*")]
)

Obj = dict[str, Any]


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



def test_spellings_kept_stay_bounded_and_right() -> None:
    """Addresses and link headers are spelt once per distinct value, but a capture of
    random ones (a flood) neither grows the caches past their bounds nor gets a stale
    spelling after they are cleared."""
    from capdissect import addresses
    from capdissect.dissect.link import EN10MB, LinkHeader
    from capdissect.report.json import packet as module

    for i in range(3 * addresses._KEPT):
        packed = struct.pack("!I", 0x0A000000 + i)
        assert addresses.text(packed) == socket.inet_ntop(socket.AF_INET, packed)
        assert len(addresses._SPELLED) <= addresses._KEPT
    assert addresses.text(bytearray(16)) == "::"  # not a dict key: spelt, not kept
    for i in range(3 * module._LINKS_KEPT):
        src = struct.pack("!IH", i, 1)
        obj = module.link_json(LinkHeader(EN10MB, 14, 0x0800, src, b"\x02" * 6))
        assert obj["src"] == src.hex(":")
        assert len(module._LINKS) <= module._LINKS_KEPT
    # Each call gets its own object: changing one does not change the next.
    header = LinkHeader(EN10MB, 14, 0x0800, b"\x01" * 6, b"\x02" * 6)
    first = module.link_json(header)
    first["vlans"].append("changed")
    first["src"] = "changed"
    assert module.link_json(header)["vlans"] == []
    assert module.link_json(header)["src"] == "01:01:01:01:01:01"
