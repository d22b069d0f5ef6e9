"""Rows of the export tables, built from the records the other reports use (no IO here).

- ``packet_row``: one decoded ``Packet``, the scalar fields ``read --json`` gives
  (report/json/packet.py), flattened: ``ip.src`` becomes ``ip_src``; ``decoded`` keeps
  them on the packets' way to the tracker.
- ``flow_row``: ``report.json.flow.tcp_json`` / ``udp_json``, the objects of ``flows --json``.
- ``event_rows``: ``document.item_json``, the events of ``timeline --json``.
- ``SocketIntervals``: the netstat table of ``sockets`` (report/tables/sockets.py), as one row
  per socket and state with when it began and ended, made from the tracker's steps on
  their way (``follow``).

Each row is a tuple in the order of its table's columns (export/schema.py), so a batch
becomes columns with one ``zip``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from capdissect.addresses import netstat_address
from capdissect.addresses import text as address_text
from capdissect.dissect import link as linkmod
from capdissect.dissect.icmp import IcmpHeader
from capdissect.dissect.icmp6 import Icmp6Header
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.stack import Packet, decode
from capdissect.dissect.tcp import FLAG_STRINGS, TcpHeader
from capdissect.dissect.udp import UdpHeader
from capdissect.packets import RawPacket
from capdissect.report.json.document import item_json
from capdissect.report.json.flow import tcp_json, udp_json
from capdissect.tracking.eventlog import Replay, Segment, TimelineItem
from capdissect.tracking.sockets import Facts, FactsSettler, Socket, SocketTable
from capdissect.tracking.stream import End, Finished, Step
from capdissect.tracking.tcp import TcpConnection

Row = tuple[Any, ...]


def _link_name(linktype: int) -> str:
    # packetjson.link_json's "type"
    return linkmod.LINK_NAMES.get(linktype, (f"LINKTYPE_{linktype}", ""))[0]


def decoded(lists: Iterable[list[RawPacket]], file: str,
            keep: Callable[[list[Row]], None] | None, every: int) -> Iterator[Packet]:
    """Decode the packets of *lists* (frames 1, 2...) for the tracker; with *keep*, hand
    it the packets' rows *every* rows at a time and at the end (compiled, so that no
    Python loop runs between the reader and the tracker)."""
    rows: list[Row] = []
    frame = 0
    for raws in lists:
        for raw in raws:
            frame += 1
            pkt = decode(raw)
            if keep is not None:
                rows.append(packet_row(frame, pkt, file))
                if len(rows) >= every:
                    keep(rows)
                    rows = []
            yield pkt
    if keep is not None and rows:
        keep(rows)


def packet_row(frame: int, pkt: Packet, file: str) -> Row:
    """The packets-table row of packet *frame* (columns: schema.PACKET_COLUMNS)."""
    raw = pkt.raw
    link = pkt.link
    ip = pkt.ip
    t = pkt.transport
    ip_version = ip_src = ip_dst = ip_proto = ip_next = ip_ttl = ip_id = None
    if ip is not None:
        ip_version, ip_src, ip_dst = ip.version, address_text(ip.src), address_text(ip.dst)
        if isinstance(ip, IPv4Header):
            ip_proto, ip_ttl, ip_id = ip.proto, ip.ttl, ip.ident
        else:
            ip_next, ip_ttl = ip.next_header, ip.hop_limit
    transport = src_port = dst_port = seq = ack = flags = window = tcp_hdr_len = None
    udp_len = icmp_type = icmp_code = None
    if t is not None and ip is not None:  # packetjson.packet_json's rule for a transport
        if isinstance(t, TcpHeader):
            transport, src_port, dst_port = "tcp", t.src_port, t.dst_port
            seq, ack, flags, window = t.seq, t.ack, FLAG_STRINGS[t.flags & 0xFF], t.window
            tcp_hdr_len = t.hdr_len
        elif isinstance(t, UdpHeader):
            transport, src_port, dst_port, udp_len = "udp", t.src_port, t.dst_port, t.length
        elif isinstance(t, IcmpHeader) and isinstance(ip, IPv4Header):
            transport, icmp_type, icmp_code = "icmp", t.type, t.code
        elif isinstance(t, Icmp6Header) and not isinstance(ip, IPv4Header):
            transport, icmp_type, icmp_code = "icmp6", t.type, t.code
    if ip is None and link is not None and pkt.error is None:
        # packet_json: not IP (ARP...), the bytes after the link header
        payload_len = max(raw.wire_len - link.hdr_len, 0)
    else:
        payload_len = pkt.payload_len
    return (
        file, frame, raw.ts_sec * 1_000_000_000 + raw.ts_nsec, raw.ts_sec, raw.ts_nsec,
        len(raw.data), raw.wire_len, raw.ifindex,
        None if link is None else _link_name(link.linktype),
        ip_version, ip_src, ip_dst, ip_proto, ip_next, ip_ttl, ip_id,
        transport, src_port, dst_port, seq, ack, flags, window, tcp_hdr_len,
        udp_len, icmp_type, icmp_code,
        payload_len, pkt.fragment, pkt.partial,
        None if pkt.error is None else str(pkt.error),
    )


# The keys of the JSON objects that have columns of their own; any other key (one a
# newer report adds) is kept, as JSON text, in the row's ``extra`` column.
_TCP_KEYS: Final = frozenset((
    "id", "client", "server", "open", "close", "closer", "packets", "payload", "final",
    "path", "conn_state", "history", "completeness", "analysis", "anomalies", "hints",
    "start", "duration"))
_UDP_KEYS: Final = frozenset((
    "id", "a", "b", "datagrams", "payload", "icmp_unreachable", "conn_state", "start",
    "duration"))
_EVENT_KEYS: Final = frozenset((
    "frame", "ts", "from", "flags", "seq", "ack", "len", "phase", "label", "states",
    "analysis", "through", "icmp", "answers_frame"))


def _extra(obj: dict[str, Any], known: frozenset[str]) -> str | None:
    rest = {key: value for key, value in obj.items() if key not in known}
    return json.dumps(rest) if rest else None


def flow_row(item: Finished, file: str) -> Row:
    """The flows-table row of a finished flow: the fields of its ``flows --json`` object."""
    flow = item.flow
    if isinstance(flow, TcpConnection):
        o = tcp_json(flow, events=False)
        return (file, o["id"], "tcp", o["client"], o["server"], o["open"], o["close"],
                o["closer"], o["packets"], o["payload"]["client"], o["payload"]["server"],
                o["final"]["client"], o["final"]["server"], o["path"]["client"],
                o["path"]["server"], o["conn_state"], o["history"], o["completeness"],
                list(o["analysis"].items()), o.get("anomalies", []), o.get("hints", []),
                None, None, o["start"], o["duration"], _extra(o, _TCP_KEYS))
    o = udp_json(flow, events=False)
    return (file, o["id"], "udp", o["a"], o["b"], None, None, None, o["datagrams"],
            None, None, None, None, None, None, o["conn_state"], None, None, None, None, None,
            o["payload"], o["icmp_unreachable"], o["start"], o["duration"],
            _extra(o, _UDP_KEYS))


def event_rows(item: Finished, file: str) -> Iterator[Row]:
    """The events-table rows of a finished flow: its ``timeline --json`` events, in order.

    A flow's logged segments (``Replay``) give each shape's columns once
    (``Replay.shapes``): the row of a data segment or an ACK differs from the one before
    it of its shape only in five numbers.  tests/e2e/test_export.py checks the
    rows against ``timeline --json``.
    """
    proto = "tcp" if isinstance(item.flow, TcpConnection) else "udp"
    flow_id = item.flow.id
    events = item.events
    if isinstance(events, Replay) and proto == "tcp":
        for index, (value, numbers) in enumerate(events.shapes(_shape, _event_row)):
            if numbers is None:
                yield (file, flow_id, proto, index, *value)
            else:
                frame, ts, seq, ack, length = numbers
                sender, flags, phase, label, client, server = value
                yield (file, flow_id, proto, index, frame, ts, sender, flags, seq, ack,
                       length, phase, label, client, server, _NO_FINDINGS, None, None, None,
                       None, None)
        return
    for index, event in enumerate(events):
        yield (file, flow_id, proto, index, *_event_row(event))


_NO_FINDINGS: Final[list[object]] = []  # the analysis cell of a segment without findings


def _event_row(event: TimelineItem) -> Row:
    """An event's columns after ``index``: its ``timeline --json`` object's fields."""
    e = item_json(event)
    states = e.get("states")
    through = e.get("through", {})
    return (e["frame"], e["ts"], e.get("from"), e.get("flags"), e.get("seq"), e.get("ack"),
            e.get("len"), e.get("phase"), e.get("label"),
            None if states is None else states["client"],
            None if states is None else states["server"],
            e.get("analysis", []), through.get("client"), through.get("server"),
            e.get("icmp"), e.get("answers_frame"), _extra(e, _EVENT_KEYS))


def _shape(segment: Segment) -> Row:
    """The columns a packed segment shares with the others of its shape
    (``Replay.shapes``): from, flags, phase, label and the two states."""
    (_frame, _ts, sender, flags, _seq, _ack, _length, phase, label, client, server,
     analysis, through_client, through_server, icmp, answers, extra) = _event_row(segment)
    assert not analysis and through_client is None and through_server is None
    assert icmp is None and answers is None and extra is None
    return (sender, flags, phase, label, client, server)


class SocketIntervals:
    """The ``sockets`` table as rows: a socket in a state, from the frame that put it
    there until the frame that changed or removed it (null: still there at the end).

    It follows a ``SocketTable`` (the one ``capdissect sockets`` prints).  After each
    moment that changed the table it looks at the sockets the table says it touched
    (``SocketTable.touched``), so a table of thousands of TIME_WAIT sockets costs little
    per packet; should the table ever change a row some other way, the count of rows
    tells, and then every row is compared.  (It used to watch a dict subclass handed in
    as the table's rows: the compiled table reads its dict through the C API, which
    bypasses a subclass's methods.)
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.table = SocketTable()
        self._settling = FactsSettler()
        self._open: dict[Socket, tuple[str, int, float]] = {}  # state, since frame, since ts
        self.rows: list[Row] = []

    def follow(self, steps: Iterable[Step | End], keep: Callable[[list[Row]], None],
               every: int) -> Iterator[Step | End]:
        """Pass the tracker's *steps* on, handing *keep* the rows they make, *every* rows
        at a time and at the End (before the End is passed on: the reader may stop
        there)."""
        for step in steps:
            self.push(step)
            if len(self.rows) >= every or isinstance(step, End):
                keep(self.rows)
                self.rows = []
            yield step

    def push(self, step: Step | End) -> None:
        """Follow the tracker's next step (its facts reach the table once settled,
        ``FactsSettler``); at the End, close the intervals still open."""
        for facts in self._settling.push(step):
            if isinstance(facts, End):
                self.finish()
            else:
                self.apply(facts)

    def apply(self, facts: Facts) -> None:
        if self.table.update(facts):
            self._update(facts.frame, facts.ts)

    def _update(self, frame: int, ts: float) -> None:
        rows = self.table.rows
        for sock in self.table.touched():
            row = rows.get(sock)
            self._set(sock, None if row is None else row.state, frame, ts)
        if len(self._open) != len(rows):  # something else changed: compare everything
            for sock in [s for s in self._open if s not in rows]:
                self._set(sock, None, frame, ts)
            for sock, row in rows.items():
                self._set(sock, row.state, frame, ts)

    def _set(self, sock: Socket, state: str | None, frame: int, ts: float) -> None:
        held = self._open.get(sock)
        if held is not None and held[0] == state:
            return
        if held is not None:
            self._close(sock, held, frame, ts)
            del self._open[sock]
        if state is not None:
            self._open[sock] = (state, frame, ts)

    def _close(self, sock: Socket, held: tuple[str, int, float], until_frame: int | None,
               until_ts: float | None) -> None:
        state, since_frame, since_ts = held
        foreign = None if sock.foreign is None else netstat_address(sock.foreign)
        self.rows.append((self.file, sock.proto, netstat_address(sock.local), foreign,
                          state, since_frame, since_ts, until_frame, until_ts))

    def finish(self) -> None:
        """Close the intervals of the sockets still in the table at the end."""
        for sock, held in self._open.items():
            self._close(sock, held, None, None)
        self._open.clear()
