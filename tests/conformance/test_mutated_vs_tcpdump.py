"""Damaged packets printed like tcpdump prints them.

The corpus has few malformed packets; this test makes thousands, deterministically, by
mutating the core corpus's Ethernet packets (flipped bytes, cut captures, inserted
bytes, wire lengths that lie), writes them to one pcap and compares tcpdump's output
with capdissect's, packet by packet.  It is how the truncation paths ([|tcp], [bad opt],
[|ip6] ...) were made to match.  Packets that tcpdump hands to an application-layer or
other out-of-scope printer (a mutated port that lands on DNS, a protocol byte that
becomes GRE) are outside SPEC §3.2's conformance and are not counted.
"""

from __future__ import annotations

import itertools
import random
import re
import shutil
import struct
from pathlib import Path

import pytest

from capdissect.sources import open_capture
from tests.support.compare import capdissect_command, run

pytestmark = pytest.mark.tcpdump

CORPUS = Path(__file__).parents[1] / "corpus"
PACKETS = 2000
SEED = 20261122
EN10MB = 1
# A packet's first line begins with its timestamp; each mutated packet gets its own second.
STAMP = re.compile(r"^\d\d:\d\d:\d\d\.\d{6} ", re.MULTILINE)
# Printers tcpdump runs for protocols and ports outside capdissect's dissectors.
OUT_OF_SCOPE = re.compile(
    r"HTTP|SSH|BGP|PPTP|GRE|\bAH\b|ESP|OSPF|igmp|IGMP|PIM|VRRP|sctp|dccp|DCCP|mobile|NTP|"
    r"SNMP|RIP|BOOTP|syslog|TFTP|domain|\[\d+q\]|\d+/\d+/\d+|NBT|SMB|LDP|MSDP|RX |rx |"
    r"ISAKMP|isakmp|L2TP|RADIUS|kerberos|krb|telnet|FTP|SMTP|whois|RTSP|NFS|openflow|"
    r"OpenFlow|BFD|VXLAN|Geneve|lisp|ZEP|PTP|someip|RPKI|beep|resp|RESP|EGP|egp|IGRP|"
    r"EIGRP|RSVP|ipx|IPX|LLC|llc|ARP|PPP|ppp|LCP|ethertype Unknown"
)
IN_SCOPE = re.compile(
    r"Flags \[|UDP|ICMP|ip-proto-|frag \(|truncated-|bad-hlen|\[\|(tcp|udp|ip6?|icmp6?)\]"
)


def mutate(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        choice = rnd.random()
        if choice < 0.6 and len(out) > 14:
            out[rnd.randrange(14, len(out))] = rnd.randrange(256)
        elif choice < 0.9 and len(out) > 14:
            del out[rnd.randrange(14, len(out) + 1) :]
        else:
            out.insert(rnd.randrange(14, len(out) + 1), rnd.randrange(256))
    return bytes(out)


@pytest.fixture(scope="module")
def mutated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sources = []
    for path in sorted(CORPUS.glob("*.pcap*")):
        with open_capture(path) as capture:
            sources += [p for p in capture if p.linktype == EN10MB]
    rnd = random.Random(SEED)
    path = tmp_path_factory.mktemp("mutated") / "mutated.pcap"
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, EN10MB))
        for i in range(PACKETS):
            source = rnd.choice(sources)
            data = mutate(source.data, rnd)
            wire_len = len(data) if rnd.random() < 0.5 else max(len(data), source.wire_len)
            out.write(struct.pack("<IIII", 100_000 + i, 0, len(data), wire_len) + data)
    return path


def blocks(text: str) -> list[str]:
    starts = [m.start() for m in STAMP.finditer(text)] + [len(text)]
    return [text[a:b] for a, b in itertools.pairwise(starts)]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("options", ["-nn", "-nn -v -X", "-vv -e"])
def test_mutated_packets_print_as_tcpdump_prints_them(mutated: Path, options: str) -> None:
    args = options.split()
    want = run(["tcpdump", "-r", str(mutated), *args])
    got = run([*capdissect_command(), "read", str(mutated), "--plain", *args])
    assert got.problem() is None, got.problem()
    expected, printed = blocks(want.stdout), blocks(got.stdout)
    assert len(printed) == len(expected) == PACKETS
    counted = same = 0
    first = None
    for e, g in zip(expected, printed, strict=True):
        if OUT_OF_SCOPE.search(e.splitlines()[0]) or not IN_SCOPE.search(e):
            continue
        counted += 1
        if e == g:
            same += 1
        elif first is None:
            first = f"--- tcpdump:\n{e}--- capdissect:\n{g}"
    print(f"mutated packets {options}: {same}/{counted} in scope identical")
    assert counted > PACKETS // 2
    assert same / counted >= 0.99, first
    if first:
        print(first)
