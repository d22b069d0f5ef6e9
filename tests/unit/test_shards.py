"""tracking/shards.py, in one process: N shards and their Merge give the flows one tracker
gives (``stream.finished``), in the same order, with the same ids, events and totals:
compared as the JSON and ladder text the reports make of them.

Besides the corpus and the bundled captures, a capture is put together from the lessons
so that many connections go quiet, linger and retire at the same frames in different
shards: some reuse an earlier connection's ports while it lingers in TIME_WAIT, and
established ones that never close wait as idle kept flows until they retire.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from capdissect.dissect.route import TCP, refusers
from capdissect.dissect.stack import decode
from capdissect.errors import CaptureError
from capdissect.packets import RawPacket
from capdissect.report.json.document import json_document
from capdissect.report.timeline.ladder import text_lines
from capdissect.sources.files import open_capture
from capdissect.tracking import shards
from capdissect.tracking.shards import Diverged, Merge, Place, Shard, UdpLinked
from capdissect.tracking.stream import ORDER_WINDOW, Finished, Totals, finished, track
from capdissect.tracking.tcp import Update
from capdissect.tracking.tracker import Tracker, UdpUpdate
from tests.unit.test_packetjson import ALL_FILES, CAPTURES
from tests.unit.test_route import classic, raw_packets


def serial(raws: list[RawPacket], *, events: bool, limit: int | None = None,
           window: int = ORDER_WINDOW) -> tuple[list[Finished], Totals]:
    totals = Totals()
    flows = list(finished(track((decode(raw) for raw in raws), Tracker(keep_events=False)),
                          totals, events=events, limit=limit, window=window))
    return flows, totals


def sharded(raws: list[RawPacket], count: int, every: int, *, events: bool,
            limit: int | None = None, pinned: frozenset[int] = frozenset(),
            udp_alone: bool = False,
            places: list[tuple[int, Place]] | None = None,
            given: list[Finished] | None = None, **bounds: Any
            ) -> tuple[list[Finished], Totals]:
    """*count* shards reporting every *every* frames; *places* collects (shard, place),
    *given* the flows as they are handed out."""
    group = [Shard(i, count, events=events, limit=limit, pinned=pinned, udp_alone=udp_alone)
             for i in range(count)]
    totals = Totals()
    merge = Merge(count, totals, **bounds)
    flows: list[Finished] = [] if given is None else given
    frames = 0
    chunks = [raws[i:i + every] for i in range(0, len(raws), every)]
    for chunk in chunks:
        for shard in group:
            shard.feed_list(frames, chunk)
        frames += len(chunk)
        flows += merge.round(_noted([s.report(frames) for s in group], places))
    flows += merge.round(_noted([s.end(frames, None) for s in group], places))
    return flows, totals


def _noted(reports: list[shards.ShardReport], places: list[tuple[int, Place]] | None
           ) -> list[shards.ShardReport]:
    if places is not None:
        places += [(i, place) for i, r in enumerate(reports) for place, _ in r.retired]
    return reports


def text(flows: Iterable[Finished], totals: Totals, events: bool) -> str:
    flows = list(flows)
    document = "".join(json_document(iter(flows), "x.pcap", "v", totals, events=events,
                                     spool=io.StringIO))
    ladders = "\n".join(text_lines(iter(flows), totals)) if events else ""
    return document + ladders


def same_as_one_tracker(raws: list[RawPacket], count: int, every: int, *, events: bool,
                        **options: object) -> None:
    window = options.get("window", ORDER_WINDOW)
    one = text(*serial(raws, events=events, window=window), events)  # type: ignore[arg-type]
    flows, totals = sharded(raws, count, every, events=events, **options)  # type: ignore[arg-type]
    assert text(flows, totals, events) == one


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_shards_give_one_trackers_flows(path: Path) -> None:
    raws = list(raw_packets(path))
    try:
        for count, every, events in ((2, 1, True), (3, 4, False), (2, 1000, False)):
            same_as_one_tracker(raws, count, every, events=events)
    except UdpLinked:  # refused datagrams: their refusers' datagrams in shard 0
        for count, every, events in ((2, 1, True), (3, 4, False)):
            same_as_one_tracker(raws, count, every, events=events,
                                pinned=frozenset(refusers(raws)))


def _ports(raw: RawPacket, old: int, new: int) -> RawPacket:
    """*raw* (IPv4 on Ethernet) with port *old* made *new*, either way."""
    data = bytearray(raw.data)
    for at in (34, 36):
        if int.from_bytes(data[at:at + 2], "big") == old:
            data[at:at + 2] = new.to_bytes(2, "big")
    return raw._replace(data=bytes(data))


def _at(raws: list[RawPacket], start: float) -> list[RawPacket]:
    """*raws* moved in time so that the first is at *start*."""
    first = raws[0].ts_sec
    return [raw._replace(ts_sec=int(start) + raw.ts_sec - first) for raw in raws]


def _spread(raws: list[RawPacket], start: float, step: float) -> list[RawPacket]:
    """*raws* at *start*, *start* + *step*, ..."""
    return [raw._replace(ts_sec=int(start + i * step), ts_nsec=0) for i, raw in enumerate(raws)]


def lingering_capture() -> list[RawPacket]:
    """Lessons replayed every 100 s for 2.5 hours of capture, interleaved by time:

    - tcp-basic on ports of its own each time;
    - tcp-half-close from a second before it to seconds after it: started first, last
      heard from last, both retired at one frame two rounds later;
    - every fourth time, the half-close on the ports of the tcp-basic before it, which
      lingers in TIME_WAIT: a new connection reusing its ports (another ISN);
    - tcp-basic's data segments alone (no handshake, no close) on new ports every tenth
      time: an established connection that never ends, kept idle until 7,200 s pass;
    - udp-basic every time, retired 120 s after its last datagram.
    """
    basic = list(raw_packets(CAPTURES / "tcp-basic.pcap"))
    half = list(raw_packets(CAPTURES / "tcp-half-close.pcap"))
    udp = list(raw_packets(CAPTURES / "udp-basic.pcap"))
    client = int.from_bytes(basic[0].data[34:36], "big")
    half_client = int.from_bytes(half[0].data[34:36], "big")
    udp_client = int.from_bytes(udp[0].data[34:36], "big")
    packets: list[tuple[float, int, RawPacket]] = []
    base = basic[0].ts_sec
    for i in range(90):
        start = base + 100 * i
        packets += [(start + j * 0.001, 0, raw) for j, raw in
                    enumerate(_at([_ports(r, client, 20000 + i) for r in basic], start))]
        half_port = 20000 + i - 1 if i % 4 == 3 else 30000 + i
        packets += [(start - 1 + j * 0.6, 1, raw) for j, raw in
                    enumerate(_spread([_ports(r, half_client, half_port) for r in half],
                                      start - 1, 0.6))]
        if i % 10 == 0:
            alive = [_ports(r, client, 40000 + i) for r in basic[3:6]]
            packets += [(start + 1, 2, raw) for raw in _at(alive, start + 1)]
        packets += [(start + 2, 3, raw) for raw in
                    _at([_ports(r, udp_client, 50000 + i % 7) for r in udp], start + 2)]
    packets.sort(key=lambda p: (p[0], p[1]))
    return [raw for _, _, raw in packets]


@pytest.mark.parametrize("window", [ORDER_WINDOW, 1])
def test_lingering_flows_retire_in_one_trackers_order(window: int) -> None:
    """With a window of 1, the flows go out as they retire (stream.IdOrder): the order
    of the flows retired at one frame shows."""
    raws = lingering_capture()
    places: list[tuple[int, Place]] = []
    for count, every in ((2, 1), (3, 7), (2, 5000)):
        same_as_one_tracker(raws, count, every, events=True, window=window)
    same_as_one_tracker(raws, 3, 50, events=False, places=places, window=window)
    passes = {place[2] for _, place in places if place[0] <= len(raws)}
    assert passes == {0, 1, 2}  # reused ports, expired, expired idle
    by_frame: dict[int, set[int]] = {}
    for shard, place in places:
        by_frame.setdefault(place[0], set()).add(shard)
    assert any(len(group) > 1 for group in by_frame.values())  # a frame retiring in two


def test_a_full_table_is_refused_before_anything_of_its_round() -> None:
    """What was handed out before the refused round is what one tracker has first."""
    raws = lingering_capture()
    one, _ = serial(raws, events=False)
    given: list[Finished] = []
    with pytest.raises(Diverged) as refused:
        sharded(raws, 2, 20, events=False, max_open=14, given=given)
    assert not isinstance(refused.value, UdpLinked)
    assert 0 < len(given) < len(one)
    assert [f.flow.id for f in given] == [f.flow.id for f in one[:len(given)]]
    with pytest.raises(Diverged):
        sharded(raws, 2, 100, events=False, max_young=2)
    # Within the bounds: one tracker's flows.
    same_as_one_tracker(raws, 2, 100, events=False, max_open=400, max_young=400)


@pytest.mark.parametrize("name", ["udp-unreachable.pcap", "udp-connected.pcap"])
def test_refused_udp_needs_its_refuser_in_one_shard(name: str) -> None:
    """With the refusing endpoint pinned to shard 0, or all of UDP there, the shards
    give one tracker's flows; with neither, they refuse the round of the ICMP error."""
    raws = list(raw_packets(CAPTURES / name))
    pinned = frozenset(refusers(raws))
    assert pinned
    with pytest.raises(UdpLinked):
        sharded(raws, 2, 1, events=True)
    with pytest.raises(UdpLinked):  # another endpoint pinned
        sharded(raws, 2, 1, events=True, pinned=frozenset({min(pinned) + 1}))
    for count in (2, 3):
        same_as_one_tracker(raws, count, 1, events=True, pinned=pinned)
        same_as_one_tracker(raws, count, 2, events=True, udp_alone=True)


def test_drawn_items_only_as_one_tracker() -> None:
    raws = lingering_capture()
    one = text(*serial(raws, events=True, limit=3), True)
    assert text(*sharded(raws, 2, 9, events=True, limit=3), True) == one


def test_every_shard_sees_every_packet_and_takes_its_own() -> None:
    """Every shard counts every packet; together they retire one tracker's flows, each
    a share of them."""
    raws = lingering_capture()
    one, _ = serial(raws, events=False)
    group = [Shard(i, 3) for i in range(3)]
    for shard in group:
        shard.feed_list(0, raws)
    reports = [shard.end(len(raws), None) for shard in group]
    assert [r.end.packets if r.end else None for r in reports] == [len(raws)] * 3
    shares = [len(r.retired) for r in reports]
    assert sum(shares) == len(one) and min(shares) > 0


@pytest.mark.parametrize("path", [p for p in ALL_FILES if classic(p)], ids=lambda p: p.name)
def test_records_from_a_batch_as_packets_from_a_list(path: Path) -> None:
    """Shard.feed_batch (a pcap file's records, made packets only when they are the
    shard's) tracks what Shard.feed_list does."""
    raws = list(raw_packets(path))
    for index in range(3):
        by_list, by_batch = Shard(index, 3), Shard(index, 3)
        by_list.feed_list(0, raws)
        frames = 0
        with open_capture(path) as capture:
            try:
                for batch in capture.batches():
                    frames = by_batch.feed_batch(frames, batch, 0, len(batch))
            except CaptureError:
                pass
        assert frames == len(raws)
        one, two = by_list.end(frames, None), by_batch.end(frames, None)
        assert one.end == two.end and one.first_ts == two.first_ts
        assert ([(place, f.flow.id, f.flow.last_ts) for place, f in one.retired]
                == [(place, f.flow.id, f.flow.last_ts) for place, f in two.retired])


def test_flows_dealt_as_they_come_even_out_the_planned_work() -> None:
    """The survey plans two big connections, one to each shard, one five times the
    other's work; 800 small connections come before them, 200 after.  Dealt against all
    the work each shard will have (planned, then dealt so far), the small ones go mostly
    to the shard with the small planned one, and the two shards end up with even work:
    what their packets cost, and their flows."""
    big, small = 7, 8  # buckets
    survey = shards.Survey()
    survey.tcp[big] = 5_000 * shards.TCP_COST // shards.SAMPLE
    survey.tcp[small] = 1_000 * shards.TCP_COST // shards.SAMPLE
    dealer = shards.Dealer(2, plan=survey.plan(2))
    work = [0, 0]
    flows = [0, 0]

    def connections(first: int, count: int) -> None:
        for flow in range(first, first + count):
            for _ in range(10):
                work[dealer.owner(flow << 2 | TCP)] += shards.TCP_COST
            flows[dealer.owner(flow << 2 | TCP)] += 1

    connections(1_000, 800)
    for bucket, count in ((big, 5_000), (small, 1_000)):
        for _ in range(count):
            work[dealer.owner(bucket << 2 | TCP)] += shards.TCP_COST
    connections(2_000, 200)
    assert dealer.owner(big << 2 | TCP) != dealer.owner(small << 2 | TCP)
    assert min(flows) > 350 and max(flows) > 550, flows
    total = [w + f * shards.FLOW_COST for w, f in zip(work, flows, strict=True)]
    assert abs(total[0] - total[1]) < 0.02 * sum(total), total


def test_merge_follows_each_flow_from_its_first_frame_to_its_end() -> None:
    """``Merge(follow=...)`` (handout --conn -j finds its flow so): each flow's id with
    the frame one tracker started it at, in id order, then the id with 0 once it is
    over, never before it started."""
    raws = lingering_capture()
    starts = {}
    for step in track((decode(raw) for raw in raws), Tracker(keep_events=False)):
        seen = getattr(step, "seen", None)
        if isinstance(seen, (Update, UdpUpdate)) and seen.new:
            flow = seen.connection if isinstance(seen, Update) else seen.conversation
            starts[flow.id] = step.frame
    told: list[tuple[int, int]] = []
    sharded(raws, 3, 7, events=False, follow=lambda flow, frame: told.append((flow, frame)))
    numbered = [(flow, frame) for flow, frame in told if frame]
    assert numbered == sorted(starts.items()) and len(numbered) > 250
    over = [flow for flow, frame in told if not frame]
    assert sorted(over) == sorted(starts)
    assert all(told.index((flow, starts[flow])) < told.index((flow, 0)) for flow in over)
