"""The capture sources against tcpdump: the classic BPF interpreter's verdicts on real
captures (programs compiled by libpcap, against ``tcpdump -r FILE -tt EXPRESSION`` on a
copy of the file whose timestamps are the packet numbers), and the pcap/pcapng writer's
files read back by ``tcpdump -r``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from capdissect.errors import CaptureError
from capdissect.packets import RawPacket
from capdissect.sources.files import open_capture
from capdissect.sources.filter import PacketFilter, savefile_header
from capdissect.sources.writer import PacketWriter
from tests.support.compare import capdissect_command, fixed_env, run

pytestmark = pytest.mark.tcpdump

CORPUS = Path(__file__).parents[1] / "corpus"

# ----- the interpreter's verdicts against tcpdump's ----------------------------------
EXPRESSIONS = [
    "tcp", "udp", "icmp", "icmp6", "ip", "ip6", "arp", "not tcp",
    "tcp and port 80", "port 443", "host 192.168.1.3", "net 10.0.0.0/8", "portrange 1000-2000",
    "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0",
    "tcp[tcpflags] == tcp-ack", "icmp[icmptype] == icmp-echo",
    "ip6 protochain 6", "ip protochain 17", "vlan", "vlan and tcp",
    "greater 100", "less 80", "len - 20 > 100", "ip[6:2] & 0x1fff != 0", "ip6[6] == 44",
    "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420", "tcp[tcp[12] >> 2] > 0",
    "ip broadcast", "ip multicast", "ether multicast", "ip6 multicast",
    "ip[2:2] / 4 > 20", "ip[2:2] % 7 == 3", "ip[2:2] * 3 - 1 > 200", "ip[2:2] << 2 > 1000",
    "tcp[0:2] ^ tcp[2:2] > 1000", "ip[len - 1] > 0", "udp and udp[4:2] > 100",
    "ip[9] == 6 and ip[12:4] > 0xc0a80000", "ip proto 41", "ip6 proto 58",
]  # fmt: skip
# Every link type capdissect reads, both byte orders, pcap and pcapng, IPv4 and IPv6,
# fragments, VLAN tags, extension headers.
FILES = [
    "pcpp_tls.pcap", "zeek_tcp_timestamp.pcap", "pcpp_nanosecs_big_endian.pcap",
    "zeek_vlan-pcp-dei.pcapng", "pcpp_IcmpPackets.pcapng", "zeek_communityid_icmp6.pcap",
    "pcpp_frag_with_padding.pcap", "pcpp_ipv6-frag.pcap", "tcpdump_ipv6-routing-header.pcap",
    "zeek_chksums_ip6-hoa-tcp-good-chksum.pcap", "zeek_tunnels_6in4.pcap",
    "zeek_irc-353.pcap", "tcpdump_quic_handshake_truncated.pcap", "scapy_pfcp.pcapng",
    "zeek_tcp_timeout-with-pings.pcap", "zeek_icmp_icmp6-mldv2.pcap", "tcpdump_mptcp-v1.pcap",
    "lwerdna_simple_http_sll2.pcap", "lwerdna_simple_http.pcap", "zeek_modbus_fuzz-72.pcap",
]  # fmt: skip


# A pcap header's link-type field with its FCS bits set (bit 26: an FCS length is given,
# bits 28-31: the length in 16-bit words; bit 27 is reserved): the link type is still
# Ethernet.  A file written with the FCS length of its Ethernet frames says so this way.
FCS_FIELDS = [0x04000001, 0x24000001, 0x08000001, 0x10000001, 0xF4000001, 0xFC000001]


@pytest.mark.parametrize("field", FCS_FIELDS, ids=hex)
def test_link_type_field_with_fcs_bits_is_read_as_tcpdump_reads_it(tmp_path: Path,
                                                                    field: int) -> None:
    lesson = Path(__file__).parents[2] / "captures" / "tcp-basic.pcap"
    data = bytearray(lesson.read_bytes())
    struct.pack_into("<I", data, 20, field)
    path = tmp_path / "fcs.pcap"
    path.write_bytes(data)
    with open_capture(path) as capture:
        assert capture.linktype == 1
    for options in (["-nn"], ["-nn", "-v", "-X"]):
        theirs = run(["tcpdump", "-r", str(path), *options])
        ours = run([*capdissect_command(), "read", str(path), "--plain", *options])
        assert "link-type EN10MB" in theirs.stderr
        assert (ours.stdout, ours.stderr, ours.returncode) == (
            theirs.stdout, theirs.stderr, theirs.returncode)
        assert "UNSUPPORTED" not in ours.stdout


def numbered_copy(source: Path, target: Path, big_endian: bool | None = None) -> list[
        tuple[int, RawPacket]]:
    """Write *source*'s packets as a classic pcap whose timestamps are the packet numbers;
    return (number, packet) for each written.  Records tcpdump would print without a
    timestamp (caplen 0, or larger than the wire length) are left out."""
    with open_capture(source) as capture:
        linktype = capture.linktype
        order = ">" if (capture.big_endian if big_endian is None else big_endian) else "<"
        packets = list(capture)
    kept = []
    with target.open("wb") as f:
        f.write(savefile_header(linktype, 262144, order == ">"))
        for number, pkt in enumerate(packets, 1):
            if not pkt.data or pkt.wire_len < len(pkt.data):
                continue
            f.write(struct.pack(order + "IIII", number, 0, len(pkt.data), pkt.wire_len))
            f.write(pkt.data)
            kept.append((number, pkt))
    return kept


def tcpdump_verdicts(path: Path, expression: str) -> set[int] | str:
    """The packet numbers tcpdump keeps, or its error message."""
    proc = subprocess.run(
        ["tcpdump", "-r", str(path), "-tt", "-nn", expression], capture_output=True,
        env=fixed_env(), timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1]
    lines = proc.stdout.decode("latin-1").splitlines()
    return {int(line.split(".", 1)[0]) for line in lines if line[:1].isdigit()}


def our_verdicts(expression: str, big_endian: bool, kept: list[tuple[int, RawPacket]]
                 ) -> set[int] | str:
    packet_filter = PacketFilter(expression, big_endian=big_endian)
    try:
        return {number for number, pkt in kept if packet_filter.matches(pkt)}
    except CaptureError as exc:
        return f"tcpdump: {exc}"


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
def test_verdicts_match_tcpdump_on_real_captures(tmp_path: Path) -> None:
    jobs: list[tuple[str, Path, bool, list[tuple[int, RawPacket]]]] = []
    for name in FILES:
        copy = tmp_path / f"{name}.numbered.pcap"
        with open_capture(CORPUS / name) as capture:
            big_endian = capture.big_endian
        jobs.append((name, copy, big_endian, numbered_copy(CORPUS / name, copy)))
    # NULL written big-endian: libpcap then expects the AF value swapped (no IPv6 matches)
    swapped = tmp_path / "irc-353.swapped.pcap"
    jobs.append(("zeek_irc-353.pcap (big-endian copy)", swapped, True,
                 numbered_copy(CORPUS / "zeek_irc-353.pcap", swapped, big_endian=True)))
    cases = [(job, expression) for job in jobs for expression in EXPRESSIONS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        theirs = list(pool.map(lambda case: tcpdump_verdicts(case[0][1], case[1]), cases))
    differences = []
    checked = 0
    for ((name, _copy, big_endian, kept), expression), want in zip(cases, theirs, strict=True):
        got = our_verdicts(expression, big_endian, kept)
        checked += len(kept)
        if got != want:
            differences.append(f"{name} {expression!r}: tcpdump {want!r}, capdissect {got!r}")
    assert checked > 0
    assert not differences, "\n".join(differences[:20])


# ----- the writer -------------------------------------------------------------------------
PACKETS = [
    RawPacket(1_700_000_000, 123_456_789, 1, 60, b"\x00" * 60),
    RawPacket(1_700_000_001, 5, 1, 1514, bytes(range(256)) * 2, comment="a <b> comment"),
]


@pytest.mark.parametrize("suffix", [".pcap", ".pcapng"])
def test_writer_round_trip_keeps_nanoseconds(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    with PacketWriter(path, 1, 262144, iface="lo") as writer:
        for pkt in PACKETS:
            writer.write(pkt)
            # complete on disk after each packet: readable while still open
            with open_capture(path) as capture:
                assert len(list(capture)) == writer.packets
    with open_capture(path) as capture:
        assert capture.format == suffix[1:]
        assert capture.linktype == 1 and capture.snaplen == 262144
        back = list(capture)
    assert [(p.ts_sec, p.ts_nsec, p.wire_len, p.data) for p in back] == [
        (p.ts_sec, p.ts_nsec, p.wire_len, p.data) for p in PACKETS]
    if suffix == ".pcapng":
        assert back[1].comment == "a <b> comment"
    if shutil.which("tcpdump"):
        result = subprocess.run(["tcpdump", "-r", str(path), "-nn"], capture_output=True,
                                text=True, timeout=60, check=False, env=fixed_env())
        assert result.returncode == 0, result.stderr
        blocks = [line for line in result.stdout.splitlines() if not line.startswith("\t")]
        assert [line.split()[0] for line in blocks] == ["22:13:20.123456", "22:13:21.000000"]
