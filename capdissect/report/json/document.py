"""The one JSON object of ``flows --json`` and ``timeline --json`` (SPEC §4), streamed.

The object is written while the capture is read: each TCP connection as soon as the
tracker hands it out, UDP conversations into a spool (a file past a size, given by the
caller) that is copied after the TCP array, so the keys come in SPEC order ``tcp`` then
``udp`` without holding every flow.  ``packets`` and ``icmp_unreachable`` are known only
at the end, so they close the object.  With events, a flow's events are streamed too,
one per line, so a connection of 100,000 segments never becomes one big list.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Final

from capdissect.report.json.flow import JsonObject, event_json, tcp_json, udp_json
from capdissect.report.tables.calls import call_json
from capdissect.tracking.eventlog import Replay, Segment, TimelineItem
from capdissect.tracking.states import TcpState
from capdissect.tracking.stream import Finished, Totals
from capdissect.tracking.syscalls import Joined
from capdissect.tracking.tcp import TcpConnection
from capdissect.tracking.udp import Datagram, Unreachable

_CHUNK: Final = 1000  # events serialised per write
_COPY: Final = 1 << 16

Spool = Callable[[], IO[str]]


def json_document(flows: Iterable[Finished], file: str, version: str, totals: Totals, *,
                  events: bool, spool: Spool = io.StringIO,
                  calls: Joined | None = None) -> Iterator[str]:
    """Yield the text of the JSON object, in pieces, for *flows* read from *file*.

    With *calls* (``trace``), each flow carries its ``syscalls`` and ``findings``, and
    the calls that touched no flow close the object as ``syscalls``.
    """
    dumps = json.dumps
    yield (f'{{"capdissect": {dumps(version)}, "file": {dumps(file)},\n "tcp": [')
    udp = spool()
    try:
        first_tcp = first_udp = True
        for item in flows:
            if isinstance(item.flow, TcpConnection):
                yield "\n  " if first_tcp else ",\n  "
                first_tcp = False
                yield from _flow(item, events, calls)
            else:
                udp.write("\n  " if first_udp else ",\n  ")
                first_udp = False
                for piece in _flow(item, events, calls):
                    udp.write(piece)
        yield "\n ],\n \"udp\": ["
        udp.seek(0)
        while chunk := udp.read(_COPY):
            yield chunk
    finally:
        udp.close()
    # "evicted" goes beyond SPEC §4's keys, so it appears only when flows were retired
    # early (too many open at once): then the reader must know the counts are partial.
    evicted = f', "evicted": {totals.evicted}' if totals.evicted else ""
    # A damaged capture (SPEC §4): the document still closes, and says where it stopped.
    cut = totals.truncated
    truncated = "" if cut is None else (
        f', "truncated": {{"after_frame": {cut.after_frame}, '
        f'"error": {dumps(cut.message)}}}')
    alone = "" if calls is None else (
        f',\n "syscalls": {json.dumps([call_json(p) for p in calls.unjoined()])}')
    yield (f'\n ],\n "packets": {totals.packets}, '
           f'"icmp_unreachable": {totals.icmp_unreachable}{evicted}{truncated}{alone}}}\n')


def _flow(item: Finished, events: bool, calls: Joined | None = None) -> Iterator[str]:
    flow = item.flow
    obj: JsonObject
    if isinstance(flow, TcpConnection):
        obj = tcp_json(flow, events=False)
    else:
        obj = udp_json(flow, events=False)
    if calls is not None:
        obj["syscalls"] = [call_json(p) for p in calls.of(flow.id)]
        obj["findings"] = [{"frame": frame, "text": text}
                           for frame, text in calls.findings.get(flow.id, [])]
    text = json.dumps(obj)
    if not events:
        yield text
        return
    # The object without its closing brace, then the events array, streamed.
    yield text[:-1] + ', "events": ['
    yield from events_text(item)
    yield "]}"


def events_text(item: Finished) -> Iterator[str]:
    """What the JSON has between the brackets of a flow's events, in pieces of ``_CHUNK``
    events (or the text a -j worker made of them, ``Finished.text``)."""
    if item.text is not None:
        yield from item.text
        return
    batch: list[str] = []
    first = True
    logged = item.events
    texts: Iterable[str]
    if isinstance(logged, Replay):
        texts = logged.json_texts(item_json_text)
    else:
        texts = [item_json_text(event) for event in logged]
    for piece in texts:
        batch.append(piece)
        if len(batch) >= _CHUNK:
            yield ("\n   " if first else ",\n   ") + ",\n   ".join(batch)
            batch, first = [], False
    if batch:
        yield ("\n   " if first else ",\n   ") + ",\n   ".join(batch)


def item_json(item: TimelineItem) -> JsonObject:
    """One event as SPEC §4 shows it (a segment, a datagram or an ICMP error)."""
    if isinstance(item, Segment):
        return event_json(item.event)
    if isinstance(item, Datagram):  # the same shape json/flow.py's udp_json gives events
        return {"frame": item.frame, "ts": item.ts, "from": item.sender, "len": item.length}
    assert isinstance(item, Unreachable)
    return {"frame": item.frame, "ts": item.ts, "icmp": "port unreachable",
            "answers_frame": item.quoted_frame}


def item_json_text(item: TimelineItem) -> str:
    """``json.dumps(item_json(item))``, written directly for the common events.

    A timeline of the benchmark capture has a million events; building a dict and
    encoding it costs about 10 µs each, an f-string a third of that.  Numbers are ints
    and finite floats (``repr`` is what json writes for a float); every string comes
    from a small fixed set and is encoded once by ``_quoted``.  Segments with analysis
    findings (free text) take the general path.  tests/unit/test_timeline.py checks
    that both paths agree.  So do segments with two or more state changes, which may
    carry ``through``.
    """
    if isinstance(item, Segment) and not item.event.analysis and len(item.event.changes) < 2:
        e = item.event
        client, server = e.states
        return (f'{{"frame": {e.frame}, "ts": {e.ts!r}, "from": {_quoted(e.sender)}, '
                f'"flags": {_quoted(e.flags)}, "seq": {_number(e.seq)}, '
                f'"ack": {_number(e.ack)}, "len": {e.length}, "phase": {_quoted(e.phase)}, '
                f'"label": {_quoted(e.label)}, "states": {{"client": {_state(client)}, '
                f'"server": {_state(server)}}}, "analysis": []}}')
    if isinstance(item, Datagram):
        return (f'{{"frame": {item.frame}, "ts": {item.ts!r}, "from": {_quoted(item.sender)}, '
                f'"len": {item.length}}}')
    return json.dumps(item_json(item))


@functools.cache
def _quoted(text: str) -> str:
    return json.dumps(text)


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)


def _state(state: TcpState | None) -> str:
    return "null" if state is None else _quoted(state.value)
