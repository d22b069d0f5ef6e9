"""``flows``: one row per TCP connection and UDP conversation (SPEC §3.4).

Columns: id, proto, client, server, packets, payload bytes each way, duration, open,
close, closer, final states, Zeek's ``conn_state`` and ``history``, Wireshark's
``tcp.completeness`` and the analysis counts.  For UDP, "client" is the first sender
and "server" the other side (UDP has no roles, no states and no completeness).

Rows are produced as the tracker hands flows out, so a capture of any size streams.
A table needs its column widths, so the text table is printed in chunks of
``TABLE_CHUNK`` rows, each with its own header (a million-row table is not read
anyway: ``--csv`` or ``--json`` are for machines).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Final

from tabulate import tabulate

from capdissect.report.flowjson import endpoint
from capdissect.report.flowstream import Finished, Totals, end_notes
from capdissect.report.textsafe import clean
from capdissect.track.tcp import TcpConnection
from capdissect.track.udp import UdpConversation

TABLE_CHUNK: Final = 1000

HEADERS: Final = ("id", "proto", "client", "server", "packets", "bytes c>s", "bytes s>c",
                  "duration", "open", "close", "closer", "final c/s", "conn_state", "history",
                  "complete", "analysis")
CSV_HEADERS: Final = ("id", "proto", "client", "server", "packets", "payload_client",
                      "payload_server", "duration", "open", "close", "closer", "final_client",
                      "final_server", "conn_state", "history", "completeness", "analysis")

Row = tuple[int | str, ...]


def csv_row(item: Finished) -> Row:
    """The CSV columns of one flow (empty where a column does not apply to UDP)."""
    flow = item.flow
    if isinstance(flow, TcpConnection):
        c, s = flow.client, flow.server
        return (flow.id, "tcp", endpoint((c.addr, c.port)), endpoint((s.addr, s.port)),
                flow.packets, c.payload, s.payload, _duration(flow.first_ts, flow.last_ts),
                flow.open, flow.close, flow.closer or "", _state(c.state), _state(s.state),
                flow.conn_state, flow.history, flow.completeness,
                _analysis(flow.analysis_counts))
    a_to_b, b_to_a = item.udp_payload
    return (flow.id, "udp", endpoint(flow.a), endpoint(flow.b), flow.datagrams, a_to_b,
            b_to_a, _duration(flow.first_ts, flow.last_ts), "", "", "", "", "",
            flow.conn_state, _udp_history(flow), "", _udp_analysis(flow))


def table_row(item: Finished) -> Row:
    """The text-table columns: CSV's, with the two final states in one column."""
    row = csv_row(item)
    final = f"{row[11]}/{row[12]}" if row[11] or row[12] else "-"
    cells = (*row[:11], final, *row[13:])
    return tuple(clean(x) if isinstance(x, str) else x for x in cells)


def table_lines(flows: Iterable[Finished], totals: Totals | None = None,
                chunk: int = TABLE_CHUNK) -> Iterator[str]:
    """The text table, one line at a time; a new header every *chunk* rows, and a note
    when flows were retired early."""
    rows: list[Row] = []
    printed = False
    for item in flows:
        rows.append(table_row(item))
        if len(rows) >= chunk:
            if printed:
                yield ""
            yield from _table(rows)
            rows, printed = [], True
    if rows:
        if printed:
            yield ""
        yield from _table(rows)
    elif not printed:
        yield "no TCP connections or UDP conversations"
    for note in end_notes(totals) if totals is not None else ():
        yield ""
        yield clean(note)


def _table(rows: list[Row]) -> Iterator[str]:
    # disable_numparse: history strings and durations stay as written, not reformatted.
    text = tabulate([[("-" if x == "" else x) for x in row] for row in rows],
                    headers=HEADERS, tablefmt="simple", disable_numparse=True,
                    colalign=("right", "left", "left", "left", "right", "right", "right",
                              "right"))
    yield from text.splitlines()


def csv_lines(flows: Iterable[Finished]) -> Iterator[str]:
    """CSV with a header row (the csv module's quoting and its \\r\\n line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADERS)
    for item in flows:
        writer.writerow(csv_row(item))
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _duration(first: float, last: float) -> str:
    return f"{max(last - first, 0.0):.6f}"


def _state(state: object) -> str:
    value = getattr(state, "value", None)
    return value if isinstance(value, str) else ""


def _analysis(counts: dict[str, int]) -> str:
    return " ".join(f"{name}={n}" for name, n in sorted(counts.items()) if n)


def _udp_history(conv: UdpConversation) -> str:
    # Zeek's UDP history: D for data from the originator, d from the responder.
    return "D" + ("d" if conv.sent["b"] else "")


def _udp_analysis(conv: UdpConversation) -> str:
    return f"icmp_unreachable={conv.icmp_unreachable}" if conv.icmp_unreachable else ""
