"""dissect/route.py: what ``route`` reads from a frame's bytes is what the decoded packet
says (``route_decoded``), for every packet of the corpus and the bundled captures and
for mutants of them; it answers for the common frames, and the hash of two endpoints
does not depend on their order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdissect.dissect.route import (
    TCP,
    UDP,
    UNKNOWN,
    endpoint,
    endpoints_hash,
    refusal,
    refusal_at,
    refused,
    refusers,
    route,
    route_at,
    route_decoded,
)
from capdissect.dissect.stack import decode
from capdissect.dissect.udp import UdpHeader
from capdissect.errors import CaptureError
from capdissect.packets import RawPacket
from capdissect.sources.files import open_capture
from capdissect.tracking.shards import BUCKETS
from tests.unit.test_packetjson import ALL_FILES, CAPTURES


def raw_packets(path: Path) -> Iterator[RawPacket]:
    """The packets of *path* up to any damage."""
    with open_capture(path) as capture:
        try:
            yield from capture
        except CaptureError:
            return


def agrees(raw: RawPacket, pinned: frozenset[int] = frozenset()) -> bool:
    """``route`` and ``refusal`` say what the decoded packet says, or that they cannot."""
    fast = route(raw.data, raw.linktype, raw.wire_len, pinned)
    pkt = decode(raw)
    if fast != UNKNOWN and fast != route_decoded(pkt, pinned):
        return False
    return refusal(raw.data, raw.linktype) != 0 or refused(pkt) is None


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_the_bytes_give_the_decoded_route(path: Path) -> None:
    raws = list(raw_packets(path))
    # Pinned: every third endpoint of the capture's UDP datagrams.
    pinned = frozenset(
        endpoint(pkt.ip.src, pkt.transport.src_port) for pkt in map(decode, raws[::3])
        if pkt.ip is not None and isinstance(pkt.transport, UdpHeader))
    for frame, raw in enumerate(raws, 1):
        assert agrees(raw) and agrees(raw, pinned), frame


def test_pinned_datagrams_go_to_shard_0() -> None:
    raws = list(raw_packets(CAPTURES / "udp-basic.pcap"))
    client = decode(raws[0])
    assert client.ip is not None and isinstance(client.transport, UdpHeader)
    pinned = frozenset({endpoint(client.ip.src, client.transport.src_port)})
    assert {route(r.data, r.linktype, r.wire_len, pinned) for r in raws} == {UDP}
    assert {route(r.data, r.linktype, r.wire_len) for r in raws} != {UDP}


def test_the_refusers_are_found() -> None:
    """udp-unreachable: the server's port refused the client's datagrams (the quote's
    destination); the lessons without an ICMP error have none."""
    path = CAPTURES / "udp-unreachable.pcap"
    with open_capture(path) as capture:
        found = set().union(*(refusers(batch) for batch in capture.batches()))
    first = decode(next(iter(raw_packets(path))))
    assert first.ip is not None and isinstance(first.transport, UdpHeader)
    assert found == {endpoint(first.ip.dst, first.transport.dst_port)}
    for name in ("tcp-basic.pcap", "udp-basic.pcap"):
        with open_capture(CAPTURES / name) as capture:
            assert not refusers(list(capture))


def test_plain_frames_are_routed_without_decoding() -> None:
    """The lessons (IPv4 on loopback): every frame is told from its bytes; and so are
    IPv6 frames of the corpus."""
    for name in ("tcp-basic.pcap", "udp-basic.pcap", "tcp-simultaneous-open.pcap"):
        raws = list(raw_packets(CAPTURES / name))
        routes = {route(raw.data, raw.linktype, raw.wire_len) for raw in raws}
        assert raws and UNKNOWN not in routes, name
        assert {r & 3 for r in routes} <= {TCP, UDP}, name
    ipv6 = [route(raw.data, raw.linktype, raw.wire_len) for path in ALL_FILES
            for raw in raw_packets(path) if raw.linktype == 1 and raw.data[12:14] == b"\x86\xdd"]
    assert sum(r != UNKNOWN for r in ipv6) > 10


def test_mutants_agree() -> None:
    """Bytes of the headers changed, frames cut, wire lengths below the capture."""
    rng = random.Random(19)
    sources = [raw for path in ALL_FILES for raw in list(raw_packets(path))[:20]]
    assert len(sources) > 900
    tried = 0
    for _ in range(30_000):
        raw = rng.choice(sources)
        data = bytearray(raw.data)
        for _ in range(rng.randint(1, 3)):
            if data:
                data[rng.randrange(min(len(data), 80))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data) + 1):]
        wire = raw.wire_len if rng.random() < 0.8 else rng.randrange(len(data) + 2)
        mutant = raw._replace(data=bytes(data), wire_len=wire)
        pinned = frozenset({endpoint(mutant.data[26:30], 30002)})
        assert agrees(mutant, pinned), mutant
        # The same frame in the middle of a buffer, as a pcap file's records lie.
        before, after = rng.randbytes(rng.randrange(40)), rng.randbytes(rng.randrange(40))
        buf = before + mutant.data + after
        assert route_at(buf, len(before), len(data), raw.linktype, wire, pinned) == route(
            mutant.data, raw.linktype, wire, pinned), mutant
        assert (refusal_at(buf, len(before), len(data), raw.linktype)
                == refusal(mutant.data, raw.linktype)), mutant
        tried += 1
    assert tried == 30_000


def classic(path: Path) -> bool:
    """Whether *path* is a classic pcap file (read a buffer of records at a time)."""
    with open_capture(path) as capture:
        return capture.format == "pcap"


@pytest.mark.parametrize("path", [p for p in ALL_FILES if classic(p)], ids=lambda p: p.name)
def test_a_record_in_its_buffer_routes_as_its_frame(path: Path) -> None:
    """``route_at`` and ``refusal_at`` on a pcap file's buffer (no copy of each record)."""
    with open_capture(path) as capture:
        try:
            for batch in capture.batches():
                for i in range(len(batch)):
                    at, caplen = batch.span(i)
                    data, wire = batch.data(i), batch.wire_len(i)
                    assert batch.buf[at:at + caplen] == data
                    assert (route_at(batch.buf, at, caplen, batch.linktype, wire)
                            == route(data, batch.linktype, wire))
                    assert (refusal_at(batch.buf, at, caplen, batch.linktype)
                            == refusal(data, batch.linktype))
        except CaptureError:
            pass


def test_the_hash_does_not_depend_on_the_direction() -> None:
    a, b = endpoint(b"\x7f\x00\x00\x01", 40000), endpoint(b"\x7f\x00\x00\x01", 30002)
    assert endpoints_hash(a, b) == endpoints_hash(b, a) >= 0
    assert endpoints_hash(a, b) != endpoints_hash(a, b + 1)
    six = endpoint(bytes(15) + b"\x01", 443)
    assert endpoints_hash(six, a) == endpoints_hash(a, six) >= 0


def test_the_hash_spreads_a_servers_clients() -> None:
    """Ten thousand clients of one server, on consecutive ports of 127.0.0.1 and of a few
    other addresses: almost every pair has a Dealer bucket of its own, and the low bit
    (two shards) splits them about evenly."""
    server = endpoint(b"\x7f\x00\x00\x01", 30002)
    clients = [endpoint(bytes([127, 0, 0, 1 + n % 4]), 32768 + n) for n in range(10_000)]
    hashes = [endpoints_hash(server, client) for client in clients]
    assert all(0 <= h < 1 << 30 for h in hashes)
    assert len({h & (BUCKETS - 1) for h in hashes}) > 9_900
    assert 4_800 < sum(h & 1 for h in hashes) < 5_200
