"""The netstat snapshots of ``sockets --every`` and the lesson's sequence of them, for the
tests that read them (unit, e2e and live).
"""

from __future__ import annotations

from collections.abc import Iterable

from capdissect.report.tables.sockets import NETSTAT_HEADER

# The lesson's netstat calls: server started; client connected; client closed; server
# closed.  Each is a snapshot `sockets --every` must print, in this order.
LESSON_NETSTAT = [
    ["LISTEN"],
    ["LISTEN", "ESTABLISHED", "ESTABLISHED"],
    ["LISTEN", "FIN_WAIT2", "CLOSE_WAIT"],
    ["LISTEN", "TIME_WAIT"],
]


def row_state(row: str) -> str:
    # Proto Recv-Q Send-Q Local Foreign [State]: UDP rows have no state
    fields = row.split()
    return fields[5] if len(fields) > 5 else ""


def snapshots(lines: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(header, states) per snapshot of ``--every`` output."""
    out: list[tuple[str, list[str]]] = []
    for block in "\n".join(lines).strip("\n").split("\n\n"):
        rows = block.splitlines()
        assert rows[2] == NETSTAT_HEADER, block
        out.append((rows[0], [row_state(row) for row in rows[3:]]))
    return out


def contains_in_order(seen: list[list[str]], wanted: list[list[str]]) -> bool:
    it = iter(seen)
    return all(any(sorted(s) == sorted(w) for s in it) for w in wanted)
