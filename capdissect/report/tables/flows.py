"""``flows``: one row per TCP connection and UDP conversation (SPEC §3.4).

Columns: id, proto, client, server, packets, payload bytes each way, duration, open,
close, closer, final states, Zeek's ``conn_state`` and ``history``, Wireshark's
``tcp.completeness`` and the analysis counts.  For UDP, "client" is the first sender
and "server" the other side (UDP has no roles, no states and no completeness).

By default the text table fits 80 columns: a flow takes two lines, the client's (its
address, the bytes it sent, its final state) above the server's, with how the
connection opened above how it closed, and an address too long for its column folds.
``wide`` gives every column on one line per flow (the CSV's columns).

Rows are produced as the tracker hands flows out, so a capture of any size streams.
A table needs its column widths, so the text table is printed in chunks of
``TABLE_CHUNK`` rows, each with its own header (a million-row table is not read
anyway: ``--csv`` or ``--json`` are for machines).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Final

from capdissect.addresses import endpoint
from capdissect.report.tables.simple import MIN_PADDING, SEPARATOR, simple_table
from capdissect.report.text import clean
from capdissect.tracking.stream import Finished, Totals, end_notes
from capdissect.tracking.tcp import TcpConnection
from capdissect.tracking.udp import UdpConversation

TABLE_CHUNK: Final = 1000
WIDTH: Final = 80  # the narrow table's width
MIN_ENDPOINT: Final = 15  # an endpoint column never folds narrower than its header

HEADERS: Final = ("id", "proto", "client", "server", "packets", "bytes c>s", "bytes s>c",
                  "duration", "open", "close", "closer", "final c/s", "conn_state", "history",
                  "complete", "analysis")
CSV_HEADERS: Final = ("id", "proto", "client", "server", "packets", "payload_client",
                      "payload_server", "duration", "open", "close", "closer", "final_client",
                      "final_server", "conn_state", "history", "completeness", "analysis")

NARROW_HEADERS: Final = ("id", "proto", "client/server", "pkts", "bytes", "open/close",
                         "final")
NARROW_ALIGN: Final = ("right", "left", "left", "right", "right", "left", "left")
# tabulate's colalign takes the first columns' alignments; the rest are left
WIDE_ALIGN: Final = ("right", "left", "left", "left", "right", "right", "right", "right",
                     *("left",) * (len(HEADERS) - 8))
GAP: Final = len(SEPARATOR)  # the "simple" format puts two spaces between columns...
PAD: Final = MIN_PADDING  # ...and makes a column two wider than its header

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


def narrow_row(item: Finished) -> tuple[str, ...]:
    """The narrow table's cells of one flow, each of two lines: client's, then server's."""
    row = csv_row(item)
    states = f"{row[11]}\n{row[12]}" if row[11] or row[12] else "-"
    how = f"{row[8]}\n{row[9]}" if row[8] else "-"
    if isinstance(item.flow, UdpConversation) and item.flow.icmp_unreachable:
        how = f"-\n{item.flow.icmp_unreachable} unreachable"
    cells = (str(row[0]), str(row[1]), f"{row[2]}\n{row[3]}", str(row[4]),
             f"{row[5]}\n{row[6]}", how, states)
    return tuple(clean(cell) if "\n" not in cell else
                 "\n".join(clean(part) for part in cell.split("\n")) for cell in cells)


def table_lines(flows: Iterable[Finished], totals: Totals | None = None,
                chunk: int = TABLE_CHUNK, *, wide: bool = False) -> Iterator[str]:
    """The text table, one line at a time; a new header every *chunk* rows, and a note
    when flows were retired early.  Fits ``WIDTH`` columns unless *wide*."""
    render = _table if wide else _narrow_table
    rows: list[tuple[int | str, ...]] = []
    printed = False
    for item in flows:
        rows.append(table_row(item) if wide else narrow_row(item))
        if len(rows) >= chunk:
            if printed:
                yield ""
            yield from render(rows)
            rows, printed = [], True
    if rows:
        if printed:
            yield ""
        yield from render(rows)
    elif not printed:
        yield "no TCP connections or UDP conversations"
    for note in end_notes(totals) if totals is not None else ():
        yield ""
        yield clean(note)


def _table(rows: list[Row]) -> Iterator[str]:
    # tabulate's layout (numbers not parsed: history strings and durations stay as
    # written), without importing it for ASCII cells (simple.py)
    yield from simple_table([[("-" if x == "" else x) for x in row] for row in rows],
                            HEADERS, WIDE_ALIGN)


def _narrow_table(rows: list[Row]) -> Iterator[str]:
    """The two-line rows fitted to ``WIDTH``: the endpoint column gets what the others
    leave, and an endpoint longer than that folds (the cells beside it move down)."""
    widths = [max(len(header) + PAD, *(len(line) for row in rows
                                       for line in str(row[i]).split("\n")))
              for i, header in enumerate(NARROW_HEADERS)]
    others = sum(widths) - widths[2] + GAP * (len(widths) - 1)
    fold = max(WIDTH - others, MIN_ENDPOINT)
    yield from simple_table([_fold(row, fold) for row in rows], NARROW_HEADERS, NARROW_ALIGN)


def _fold(row: Row, width: int) -> Row:
    """*row* with each endpoint folded to *width*; the two-line cells beside it keep
    their server line level with the server's endpoint."""
    client, server = str(row[2]).split("\n")
    client_lines = _fold_endpoint(client, width)
    server_lines = _fold_endpoint(server, width)
    pad = "\n" * len(client_lines)

    def level(cell: int | str) -> int | str:
        if isinstance(cell, str) and "\n" in cell:
            top, bottom = cell.split("\n")
            return top + pad + bottom
        return cell

    cells = [level(cell) for cell in row]
    cells[2] = "\n".join(client_lines + server_lines)
    return tuple(cells)


def _fold_endpoint(text: str, width: int) -> list[str]:
    """*text* in lines of at most *width*, broken after a colon where it can be (an IPv6
    address folds between its groups), else anywhere."""
    lines = [""]
    for piece in re.findall(r"[^:]*:|[^:]+$", text):
        if len(lines[-1]) + len(piece) > width and lines[-1]:
            lines.append("")
        lines[-1] += piece
    return [part[i:i + width] for part in lines for i in range(0, len(part), width)] or [""]


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
