"""One capture's flows tracked in several shards, put back together exactly as one
tracker has them: what ``flows -j N`` and ``timeline -j N`` run in their processes.

Each shard reads every packet in capture order.  It tracks the TCP and UDP packets of
its own flows and, for every other TCP or UDP packet, only moves that protocol's table
clock, so that its flows go quiet, linger and retire at the frames they would in one
tracker.  Shard 0 also takes the ICMP and ICMPv6 packets.

Which shard a flow is is decided by a ``Dealer``, the same in every shard: a hash of the
two endpoints (dissect/route.py) picks a bucket, and the bucket has its shard.  The caller
first reads the capture through once (``Survey``, a few percent of tracking it) to learn
what each bucket's packets will cost, and plans the big buckets, largest first, each to
the shard with the least so far: a capture whose work is a few big connections gets them
spread over the shards, where the hash alone could put most of them in one.  Any other
bucket goes, at its first packet, to the shard with the least work in all (its planned
buckets', and what it was dealt so far): every shard reads the same packets in the same
order, so each deals them alike without a word to the others.  A shard numbers its flows itself and
says, a round of frames at a time, which flows it started at which frame and which it
retired, with what decided their order.

``Merge`` puts the rounds back together: a flow's id is its rank among the flows started
by all the shards (one tracker numbers them as they start), and the flows retired at one
frame go out in one tracker's order (the port-reuse retirement first, then the expiry
pass over the flows by last activity, then its pass over the idle kept flows; at the
end, each table's idle flows, then its open ones).  The ``Finished`` flows come out in
the order ``stream.finished`` gives, so every report made of them is the same text.

What one shard cannot know, ``Merge`` refuses before it hands out anything of that
round:

- an ICMP port unreachable that quotes a UDP datagram (``UdpLinked``): whether the
  refusing socket is connect()ed is told by every datagram its port sent, in any
  conversation.  Shard 0 takes every datagram to or from the *pinned* endpoints, those
  the caller found refusing one before tracking (dissect/route.py ``refusers``); for
  another, the caller starts again with ``udp_alone`` shards: shard 0 takes every UDP
  datagram, besides its share of the TCP connections;
- a round that may have filled a table (``Diverged``; its flows would be evicted by the
  count of all the shards' flows): the sum of the shards' open flows and the flows they
  started in the round reaching ``max_open``, or the bare SYNs reaching the half-open
  bound.  The caller tracks the capture in one process instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from capdissect.dissect.route import (
    NONE,
    OTHER,
    TCP,
    UDP,
    UNKNOWN,
    endpoint,
    refusers,
    route,
    route_at,
    route_decoded,
)
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import CaptureError
from capdissect.packets import RawPacket, RecordBatch
from capdissect.tracking.eventlog import Replay, ShapeValues
from capdissect.tracking.stream import (
    ORDER_WINDOW,
    Finished,
    Finishing,
    IdOrder,
    Totals,
    Truncation,
)
from capdissect.tracking.tcp import MAX_HALF_OPEN, Update
from capdissect.tracking.tracker import (
    MAX_OPEN,
    Flow,
    IcmpUpdate,
    Observation,
    Tracker,
    UdpUpdate,
)

# A retired flow's place among those retired at the same frame: (frame, table, pass,
# frame of its last packet).  Passes: 0 a connection whose ports a new one reuses,
# 1 expired, 2 expired from the idle kept flows; at the end 0 the idle, 1 the open.
Place = tuple[int, int, int, int]
_TCP_TABLE: Final = 0
_UDP_TABLE: Final = 1


# Buckets a Dealer deals out (one byte each): many more than the flows of most captures,
# so that nearly every flow is placed by itself.
BUCKETS: Final = 1 << 20
_UNDEALT: Final = 255
# What decoding and tracking a packet costs, by kind (route.py): a TCP segment about 1.25
# times a UDP datagram (3.5-3.8 against 2.8-2.9 us, Tracker.feed on the TCP and on the UDP
# packets of the first 400,000 of each bench mix, best of 3).
TCP_COST: Final = 5
UDP_COST: Final = 4
# The survey routes one packet in this many: enough to find the big flows, for less
# (on the short bench mix, routing every packet made the survey 0.30 s, this 0.18 s).
SAMPLE: Final = 8
# What a flow costs besides its packets (made, retired, reported), in the same units:
# about 30 us, where the two shards of the short bench mix (5,000 short connections, 8
# long ones, UDP) took the same time (2.89 and 2.92 s, with events).
FLOW_COST: Final = 40
# A bucket is planned when it costs at least this share of a shard's part of the
# capture; the many small ones are dealt as they come.
PLANNED_SHARE: Final = 1 / 1024
MAX_SHARDS: Final = 64  # a bucket's shard is a byte, with _PLANNED added if planned
_PLANNED: Final = 128


Watch = Callable[[int, Packet, Observation | None], None]  # (frame, packet, observation)
# Told (frame, its time, the capture's clock, the observation if the packet is the
# shard's, the shard's flows retired at it); returns the clock and the frame from which
# another shard's packet must be told too (tracking/sockets.py ``ShardSockets.step``).
OnStep = Callable[[int, float, float, Observation | None, list[tuple[Flow, Place]]],
                  tuple[float, int]]
_NO_FRAME: Final = 1 << 62
# Told (a flow's id, the frame it started at) when the flow is numbered, and (its id, 0)
# when it is over; it may raise to stop the run, and the Merge is then of no more use.
Follow = Callable[[int, int], None]


class Plan(NamedTuple):
    """The shards of the big buckets (``Survey.plan``), and what each shard's will cost."""

    owners: bytes  # bucket -> its shard + _PLANNED, or _UNDEALT
    load: tuple[int, ...]


def _cost(kind: int) -> int:
    return TCP_COST if kind == TCP else UDP_COST


def alone(where: int) -> Plan:
    """A plan for two shards where shard 0 has the bucket of route *where* and shard 1
    every other: shard 0 then tracks that bucket's flows as one tracker would, and little
    else (the ICMP packets)."""
    bucket = (where >> 2) & (BUCKETS - 1)
    owners = bytearray([1 + _PLANNED]) * BUCKETS
    owners[bucket] = _PLANNED
    return Plan(bytes(owners), (0, 0))


class Survey:
    """A capture read through once before it is dealt out: the endpoints that refused a
    UDP datagram (``pinned``: every datagram to or from them goes to shard 0), and what
    each bucket's TCP and UDP packets cost, from every ``SAMPLE``-th packet."""

    def __init__(self) -> None:
        self.refusers: set[int] = set()
        # bucket -> what its sampled packets cost (only the buckets seen: a few dozen on
        # the long bench mix, where two lists of every bucket took 16 ms to plan from)
        self.tcp: dict[int, int] = {}
        self.udp: dict[int, int] = {}

    def batch(self, batch: RecordBatch) -> None:
        """The records of a pcap buffer."""
        self.refusers |= refusers(batch)
        linktype, buf = batch.linktype, batch.buf
        for i in range(0, len(batch), SAMPLE):
            at, caplen = batch.span(i)
            where = route_at(buf, at, caplen, linktype, batch.wire_len(i))
            self._add(route_decoded(decode(batch.packet(i))) if where == UNKNOWN else where)

    def packets(self, packets: list[RawPacket]) -> None:
        self.refusers |= refusers(packets)
        for i in range(0, len(packets), SAMPLE):
            raw = packets[i]
            where = route(raw.data, raw.linktype, raw.wire_len)
            self._add(route_decoded(decode(raw)) if where == UNKNOWN else where)

    def _add(self, where: int) -> None:
        kind = where & 3
        bucket = (where >> 2) & (BUCKETS - 1)
        if kind == TCP:
            self.tcp[bucket] = self.tcp.get(bucket, 0) + TCP_COST
        elif kind == UDP:
            self.udp[bucket] = self.udp.get(bucket, 0) + UDP_COST

    @property
    def pinned(self) -> frozenset[int]:
        return frozenset(self.refusers)

    def plan(self, count: int, udp_alone: bool = False) -> Plan:
        """The buckets of at least ``PLANNED_SHARE`` of a shard's part, largest first,
        each to the shard with the least so far, for *count* shards (with *udp_alone*,
        shard 0 starts with every datagram); the others are dealt at their first packet."""
        load = [0] * count
        costs = dict(self.tcp)
        if udp_alone:
            load[0] = sum(self.udp.values()) * SAMPLE
        else:
            for bucket, cost in self.udp.items():
                costs[bucket] = costs.get(bucket, 0) + cost
        least = (sum(costs.values()) * SAMPLE + load[0]) / count * PLANNED_SHARE
        big = sorted(((cost, bucket) for bucket, cost in costs.items()
                      if cost * SAMPLE >= least), reverse=True)
        owners = bytearray(b"\xff") * BUCKETS
        for cost, bucket in big:
            shard = _lightest(load)
            owners[bucket] = shard + _PLANNED
            load[shard] += cost * SAMPLE
        return Plan(bytes(owners), tuple(load))


def _lightest(load: list[int]) -> int:
    """The shard with the least *load* (the first of those)."""
    best = 0
    for shard in range(1, len(load)):
        if load[shard] < load[best]:
            best = shard
    return best


class Dealer:
    """Which of *count* shards tracks each packet: ``owner``, asked once for each packet of
    the capture, in order, by every shard alike.  *plan* (``Survey.plan``) gives the
    shards of the big buckets, and what they will cost: a bucket dealt as it comes goes
    to the shard with the least work in all, planned and dealt so far."""

    def __init__(self, count: int, udp_alone: bool = False, plan: Plan | None = None
                 ) -> None:
        assert count <= MAX_SHARDS
        self.udp_alone = udp_alone  # every datagram to shard 0
        # Whether the plan counted them already, as it counts its buckets' packets.
        self.udp_planned = udp_alone and plan is not None
        # bucket -> its shard (+ _PLANNED), or _UNDEALT
        self.owners = bytearray(b"\xff") * BUCKETS if plan is None else bytearray(plan.owners)
        self.owners[0] = 0  # route.py's hash of the datagrams of pinned endpoints
        # The work of each shard: planned, then dealt so far.
        self.load = [0] * count if plan is None else list(plan.load)

    def owner(self, where: int) -> int:
        """The shard of a packet of route *where*; -1 for none (nothing to track)."""
        kind = where & 3
        if kind == NONE:
            return -1
        if kind == OTHER or (kind == UDP and self.udp_alone):
            if not (kind == UDP and self.udp_planned):
                self.load[0] += _cost(kind)
            return 0
        bucket = (where >> 2) & (BUCKETS - 1)
        shard = self.owners[bucket]
        if shard == _UNDEALT:
            shard = _lightest(self.load)
            self.owners[bucket] = shard
            self.load[shard] += FLOW_COST
        elif shard >= _PLANNED:
            return shard - _PLANNED
        self.load[shard] += _cost(kind)
        return shard


class ShardEnd(NamedTuple):
    """How a shard's capture ended: its packets, the ICMP errors it took, and where the
    file was damaged (the last frame read whole, the reader's error), if it was."""

    packets: int
    icmp_unreachable: int
    evicted: int
    damaged_after: int | None
    error: str | None


class ShardReport(NamedTuple):
    """A shard's round: what it started and retired since its last report."""

    frames: int  # frames read so far
    first_ts: float | None
    started: list[tuple[int, int]]  # (frame, the shard's id) of each flow started
    started_tcp: int
    started_udp: int
    open_tcp: int  # flows open at the end of the round
    young_tcp: int
    open_udp: int
    retired: list[tuple[Place, Finished]]
    serial_from: int | None  # the first frame the shard cannot follow alone
    end: ShardEnd | None = None


class Shard:
    """The tracker of shard *index* of *count*; reports a round at a time."""

    def __init__(self, index: int, count: int, *, events: bool = False,
                 limit: int | None = None, pinned: frozenset[int] = frozenset(),
                 udp_alone: bool = False, plan: Plan | None = None) -> None:
        self.index = index
        self.pinned = pinned  # endpoints whose datagrams all go to shard 0
        self.udp_alone = udp_alone  # every datagram goes to shard 0
        self.dealer = Dealer(count, udp_alone, plan)
        self.tracker = Tracker(keep_events=False)
        self.finishing = Finishing(events, None, limit)
        self.first_ts: float | None = None
        self.serial_from: int | None = None
        self._started: list[tuple[int, int]] = []
        self._started_in = [0, 0]  # flows started, by table
        self._retired: list[tuple[Place, Finished]] = []
        self._last: dict[int, int] = {}  # the shard's flow id -> frame of its last packet
        # Told of each of the shard's own packets and what the tracker made of it; with
        # *strays*, also of each packet no shard tracks (ARP, a later fragment...),
        # with nothing made of it.
        self.watch: Watch | None = None
        self.strays = False
        # Told of each of its own packets, and of another's when it retired a flow of the
        # shard's or reaches the clock or frame the last call gave; then ``gone`` holds
        # the flows retired since (at the end, those still open).
        self.on_step: OnStep | None = None
        self.gone: list[tuple[Flow, Place]] = []
        self.clock = float("-inf")  # the capture's latest time so far
        self.last_ts = 0.0  # the time of the last packet read
        self._due_clock = float("inf")
        self._due_frame = _NO_FRAME

    def feed(self, frame: int, raw: RawPacket) -> None:
        """Packet *frame* of the capture (every one, in order)."""
        pkt = None
        where = route(raw.data, raw.linktype, raw.wire_len, self.pinned)
        if where == UNKNOWN:
            pkt = decode(raw)
            where = route_decoded(pkt, self.pinned)
        if self._mine(where):
            self._own(frame, decode(raw) if pkt is None else pkt)
        else:
            if self.strays and where & 3 == NONE:
                self._stray(frame, decode(raw) if pkt is None else pkt)
            self._other(frame, where, raw.ts)

    def feed_list(self, frames: int, packets: list[RawPacket]) -> int:
        """*packets*, the frames after the first *frames*; how many frames now."""
        for raw in packets:
            frames += 1
            self.feed(frames, raw)
        return frames

    def feed_batch(self, frames: int, batch: RecordBatch, start: int, stop: int) -> int:
        """Records *start* to *stop* of a pcap batch, the frames after the first *frames*:
        only those of the shard's own flows are made packets."""
        linktype, buf = batch.linktype, batch.buf
        for i in range(start, stop):
            frames += 1
            at, caplen = batch.span(i)
            where = route_at(buf, at, caplen, linktype, batch.wire_len(i), self.pinned)
            if where == UNKNOWN:
                self.feed(frames, batch.packet(i))
            elif self._mine(where):
                self._own(frames, decode(batch.packet(i)))
            else:  # RawPacket.ts, from the record
                if self.strays and where & 3 == NONE:
                    self._stray(frames, decode(batch.packet(i)))
                self._other(frames, where, batch.ts_sec(i) + batch.ts_nsec(i) / 1e9)
        return frames

    def _stray(self, frame: int, pkt: Packet) -> None:
        if self.watch is not None:
            self.watch(frame, pkt, None)

    def _mine(self, where: int) -> bool:
        """Whether the packet of route *where* is the shard's (asked once a packet)."""
        return self.dealer.owner(where) == self.index

    def _other(self, frame: int, where: int, ts: float) -> None:
        """A packet of another shard's: the clock of its protocol's table moves."""
        if self.first_ts is None:
            self.first_ts = ts
        if ts > self.clock:
            self.clock = ts
        self.last_ts = ts
        tracker = self.tracker
        tracker.packets += 1
        kind = where & 3
        if kind == TCP:
            tracker.tcp.table.expire(ts)
            self._retire(frame, _TCP_TABLE, None)
        elif kind == UDP:
            tracker.udp.table.expire(ts)
            self._retire(frame, _UDP_TABLE, None)
        if self.on_step is not None and (self.gone or self.clock >= self._due_clock
                                         or frame >= self._due_frame):
            self._step(frame, ts, None)

    def _step(self, frame: int, ts: float, seen: Observation | None) -> None:
        on_step = self.on_step
        assert on_step is not None
        gone, self.gone = self.gone, []
        self._due_clock, self._due_frame = on_step(frame, ts, self.clock, seen, gone)

    def _own(self, frame: int, pkt: Packet) -> None:
        ts = pkt.raw.ts
        if self.first_ts is None:
            self.first_ts = ts
        if ts > self.clock:
            self.clock = ts
        self.last_ts = ts
        seen = self.tracker.feed(frame, pkt)
        if self.watch is not None:
            self.watch(frame, pkt, seen)
        self.finishing.saw(seen)
        if isinstance(seen, Update):
            self._heard(frame, seen.connection.id, seen.new, _TCP_TABLE)
            self._retire(frame, _TCP_TABLE, seen)
        elif isinstance(seen, UdpUpdate):
            self._heard(frame, seen.conversation.id, seen.new, _UDP_TABLE)
            self._retire(frame, _UDP_TABLE, None)
        elif (isinstance(seen, IcmpUpdate) and seen.quoted is not None and not self.udp_alone
              and seen.kind == "port unreachable" and self.serial_from is None
              and endpoint(*seen.quoted[1]) not in self.pinned):
            self.serial_from = frame
        if self.on_step is not None:
            self._step(frame, ts, seen)

    def _heard(self, frame: int, flow_id: int, new: bool, table: int) -> None:
        """The shard's flow *flow_id* had its packet *frame* (its first, if *new*)."""
        if new:
            self._started.append((frame, flow_id))
            self._started_in[table] += 1
        self._last[flow_id] = frame

    def _retire(self, frame: int, table: int, update: Update | None) -> None:
        """Take what the table of the packet's protocol retired at *frame* (no other
        table retires anything then)."""
        tracker = self.tracker
        done: list[Flow]
        if table == _TCP_TABLE:
            if not tracker.tcp.table.retiring:
                return
            idle = tracker.tcp.table.retired_idle
            done = [*tracker.tcp.drain()]
        else:
            if not tracker.udp.table.retiring:
                return
            idle = tracker.udp.table.retired_idle
            done = [*tracker.udp.drain()]
        # The connection a new one reuses the ports of is retired first, then expiry's
        # two passes; its last pass's retirements are the last *idle* ones.
        reused = update is not None and update.new and update.connection.reused_ports
        expired = len(done) - idle
        for i, flow in enumerate(done):
            step = 0 if reused and i == 0 else 1 if i < expired else 2
            self._done(flow, (frame, table, step, self._last.pop(flow.id)))

    def _done(self, flow: Flow, place: Place) -> None:
        self._retired.append((place, self.finishing.done(flow)))
        if self.on_step is not None:
            self.gone.append((flow, place))

    def report(self, frames: int) -> ShardReport:
        """The round that ends after *frames* frames; the next one starts empty."""
        tcp, udp = self.tracker.tcp.table, self.tracker.udp.table
        started_tcp, started_udp = self._started_in
        report = ShardReport(frames, self.first_ts, self._started, started_tcp, started_udp,
                             len(tcp), tcp.young_count, len(udp), self._retired,
                             self.serial_from)
        self._started, self._retired, self._started_in = [], [], [0, 0]
        return report

    def end(self, frames: int, damage: Truncation | None) -> ShardReport:
        """The last round: the capture ended after *frames* frames (at *damage*, if it
        was cut), and every flow still open is retired now."""
        tracker = self.tracker
        end = frames + 1
        idle = tracker.tcp.table.idle_count
        tcp: list[Flow] = [*tracker.tcp.close()]
        for i, flow in enumerate(tcp):
            self._done(flow, (end, _TCP_TABLE, 0 if i < idle else 1, self._last.pop(flow.id)))
        for flow in tracker.udp.close():  # UDP keeps no flow idle
            self._done(flow, (end, _UDP_TABLE, 1, self._last.pop(flow.id)))
        report = self.report(frames)
        return report._replace(end=ShardEnd(
            tracker.packets, tracker.icmp_unreachable, tracker.evicted,
            None if damage is None else damage.after_frame,
            None if damage is None else damage.message))


class Diverged(Exception):
    """The shards cannot give one tracker's flows from this round on (see the module)."""


class UdpLinked(Diverged):
    """An ICMP error links a UDP conversation to the others, and its refusing endpoint
    was not pinned: shards with ``udp_alone`` (every UDP datagram in shard 0) can follow
    it."""


class Merge:
    """The shards' reports, a round at a time, made into one tracker's finished flows."""

    def __init__(self, count: int, totals: Totals, *, window: int = ORDER_WINDOW,
                 max_open: int = MAX_OPEN,
                 max_young: int = min(MAX_OPEN, MAX_HALF_OPEN),
                 follow: Follow | None = None) -> None:
        self.count = count
        self.totals = totals
        self.follow = follow
        self.max_open = max_open
        self.max_young = max_young
        self._order = IdOrder(window)
        self._ids: dict[tuple[int, int], int] = {}  # (shard, its id) -> the flow's id
        self._next_id = 1
        self._open = [(0, 0, 0)] * count  # each shard's TCP, young TCP and UDP flows
        self._shaped: list[ShapeValues] = [{} for _ in range(count)]

    def round(self, reports: list[ShardReport]) -> list[Finished]:
        """The flows the round finished, in order (all of them after the last round);
        raises Diverged, having changed nothing, when the shards cannot be followed."""
        self.bounds(reports)
        totals = self.totals
        if totals.first_ts is None:
            totals.first_ts = reports[0].first_ts
        started = sorted((frame, shard, flow_id) for shard, report in enumerate(reports)
                         for frame, flow_id in report.started)
        for frame, shard, flow_id in started:
            self._ids[shard, flow_id] = self._next_id
            if self.follow is not None:
                self.follow(self._next_id, frame)
            self._next_id += 1
        retired: list[tuple[Place, Finished]] = []
        for shard, report in enumerate(reports):
            for place, item in report.retired:
                item.flow.id = self._ids.pop((shard, item.flow.id))
                if self.follow is not None:
                    self.follow(item.flow.id, 0)
                if isinstance(item.events, Replay):
                    item.events.share_shapes(self._shaped[shard])
                retired.append((place, item))
        retired.sort(key=_place)
        out: list[Finished] = []
        for _, item in retired:
            totals.flows += 1
            out.extend(self._order.push(item))
        if self.ended(reports):
            out.extend(self._order.flush())
        return out

    def ended(self, reports: list[ShardReport]) -> bool:
        """Whether the round is the last; if it is, the totals are now complete."""
        end = reports[0].end
        if end is None:
            return False
        totals = self.totals
        totals.packets = end.packets
        totals.icmp_unreachable = sum(r.end.icmp_unreachable for r in reports if r.end)
        totals.evicted = sum(r.end.evicted for r in reports if r.end)
        if end.damaged_after is not None:
            totals.truncated = Truncation(end.damaged_after,
                                          CaptureError(end.error or "damaged capture"))
        totals.done = True
        return True

    def bounds(self, reports: list[ShardReport]) -> None:
        """Check that the shards' round can be followed (raises Diverged, or UdpLinked,
        where it cannot), and note what each has open."""
        self._check(reports)
        for shard, report in enumerate(reports):
            self._open[shard] = (report.open_tcp, report.young_tcp, report.open_udp)

    def _check(self, reports: list[ShardReport]) -> None:
        if len(reports) != self.count or len({r.frames for r in reports}) != 1:
            raise Diverged("the shards' rounds do not line up")
        for report in reports:
            if report.serial_from is not None:
                raise UdpLinked(f"frame {report.serial_from}: an ICMP error quotes a UDP "
                                "datagram")
        tcp = sum(o[0] for o in self._open) + sum(r.started_tcp for r in reports)
        young = sum(o[1] for o in self._open) + sum(r.started_tcp for r in reports)
        udp = sum(o[2] for o in self._open) + sum(r.started_udp for r in reports)
        if tcp >= self.max_open or udp >= self.max_open or young >= self.max_young:
            raise Diverged("so many flows open at once that some may be retired early")


def _place(entry: tuple[Place, Finished]) -> Place:
    return entry[0]
