"""``sockets``: what ``netstat -tanu`` would have printed, rebuilt from a capture (SPEC §3.5).

The table is the netstat model's (``tracking/sockets.py``: which socket exists in which
state, and when it leaves); here it is printed as netstat prints it.

``--every`` prints the whole table after each change while it has at most
``EVERY_FULL_MAX`` sockets; past that (a scan, a flood) it prints only the rows that
changed and a count of the others, so its output grows with the changes, not with the
changes times the sockets.

Recv-Q and Send-Q are always 0: they are the bytes an application has not read yet and
the bytes not yet acknowledged, inside the two kernels.  A capture shows neither (on
loopback every segment is acknowledged within microseconds anyway), so capdissect does
not guess them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

from capdissect.addresses import netstat_address
from capdissect.errors import SocketError
from capdissect.report.text import clean
from capdissect.tracking.sockets import Facts, Moment, Socket, SocketTable, facts_stream
from capdissect.tracking.stream import End, Step
from capdissect.tracking.udp import Endpoint

EVERY_FULL_MAX: Final = 32  # --every: whole tables up to this many sockets, then changes only
NETSTAT_TITLE: Final = "Active Internet connections (servers and established)"
# net-tools netstat.c: the header and "%-4s  %6ld %6ld %-*s %-*s %-11s" per socket, with
# address columns at least 23 wide.  Trailing blanks are dropped.
NETSTAT_HEADER: Final = ("Proto Recv-Q Send-Q Local Address           Foreign Address"
                         "         State")



# ----- per-packet facts, decided when the tracker reports the packet -------------------
def table_lines(table: SocketTable) -> list[str]:
    """The table as netstat prints it (title, header, one line per socket)."""
    return [NETSTAT_TITLE, NETSTAT_HEADER,
            *(_row_line(sock, state) for sock, state in table.ordered())]


def changed_lines(table: SocketTable) -> list[str]:
    """The table in its change-only form: title, header, the rows the last moment put or
    changed (in table order), then how many other sockets it holds unchanged."""
    changed = table.changed()
    if changed is None:
        return table_lines(table)
    rows, others = changed
    return [NETSTAT_TITLE, NETSTAT_HEADER, *(_row_line(sock, state) for sock, state in rows),
            f"(and {others} other socket{'s' if others != 1 else ''}, unchanged)"]


def moment_lines(table: SocketTable, full_max: int = EVERY_FULL_MAX) -> list[str]:
    """The whole table while it has at most *full_max* sockets, else ``changed_lines``."""
    return table_lines(table) if len(table.rows) <= full_max else changed_lines(table)


def _row_line(sock: Socket, state: str) -> str:
    """One socket as netstat prints it."""
    local = netstat_address(sock.local)
    foreign = (netstat_address(sock.foreign) if sock.foreign is not None
               else _wildcard(sock.local))
    return f"{sock.proto:<4}  {0:>6} {0:>6} {local:<23} {foreign:<23} {state:<11}".rstrip()


def _wildcard(local: Endpoint) -> str:
    return "0.0.0.0:*" if len(local[0]) == 4 else ":::*"


# ----- the command's outputs ----------------------------------------------------------
def every_lines(steps: Iterable[Step | End], full_max: int = EVERY_FULL_MAX) -> Iterator[str]:
    """A snapshot after each packet that changed the table (and before a new listener):
    the whole table while it has at most *full_max* sockets, past that only the rows that
    changed (``SocketTable.changed_lines``; 0 makes every snapshot change-only)."""
    return every_from(facts_stream(steps), full_max)


def every_from(stream: Iterable[Facts | End], full_max: int = EVERY_FULL_MAX, *,
               timed: bool = True) -> Iterator[str]:
    """``every_lines`` of the facts of the capture's first frame and of every frame that
    may change the table (``facts_stream``, or the -j shards' ``told_facts`` with
    *timed* False: they say which TIME_WAIT sockets end)."""
    table = SocketTable(timed=timed)
    first_ts: float | None = None
    printed = 0
    end: End | None = None
    for facts in stream:
        if isinstance(facts, End):
            end = facts
            break
        if first_ts is None:
            first_ts = facts.ts
        for moment in table.apply(facts):
            if not moment.changes:
                continue
            if printed:
                yield ""
            printed += 1
            yield clean(_moment_header(moment, first_ts))
            yield from moment_lines(table, full_max)
    if not printed:
        yield "no sockets: the capture shows no TCP connection or UDP datagram"
    yield from _cut_short(end)


def snapshot_lines(steps: Iterable[Step | End], *, after: int | None = None,
                   at: tuple[float, bool] | None = None, end_words: str = "the end of the capture"
                   ) -> Iterator[str]:
    """One snapshot: after frame *after*, at time *at*, or (neither) at the end, which
    the header calls *end_words* (a capture still running says "so far").  *at* is
    (seconds, absolute): a Unix time, or seconds since the first packet (``--at``,
    parsed by commands/reports.py's ``parse_time``)."""
    return snapshot_from(facts_stream(steps), after=after, at=at, end_words=end_words)


def snapshot_from(stream: Iterable[Facts | End], *, after: int | None = None,
                  at: tuple[float, bool] | None = None,
                  end_words: str = "the end of the capture", timed: bool = True
                  ) -> Iterator[str]:
    """``snapshot_lines`` of facts, as ``every_from``: the -j shards' then also give the
    facts of the frame the snapshot is after, and of the one that ends an *at*."""
    table = SocketTable(timed=timed)
    first_ts: float | None = None
    target: float | None = None
    last: Facts | None = None
    end: End | None = None
    for facts in stream:
        if isinstance(facts, End):
            end = facts
            if (after is not None and (last is None or last.frame < after)
                    and end.truncated is None):  # cut short: the table at the damage
                raise SocketError(f"no frame {after}: the capture has {facts.packets} packets")
            break
        if first_ts is None:
            first_ts = facts.ts
            if at is not None:
                value, absolute = at
                target = value if absolute else first_ts + value
        if target is not None and facts.ts > target:
            break
        for _ in table.apply(facts):
            pass
        last = facts
        if after is not None and facts.frame >= after:
            break
    yield clean(_snapshot_header(last, first_ts, target, after, end_words))
    yield from table_lines(table)
    yield from _cut_short(end)


def _cut_short(end: End | None) -> Iterator[str]:
    """The note under the tables when the capture was damaged before its end."""
    if end is not None and end.truncated is not None:
        yield ""
        yield clean(end.truncated.note())


def _moment_header(moment: Moment, first_ts: float) -> str:
    when = "before" if moment.before else "after"
    text = f"{when} frame {moment.frame} (+{moment.ts - first_ts:.6f} s)"
    what = f"{moment.what}: " if moment.what else ""
    return f"{text}: {what}{', '.join(moment.changes)}"


def _snapshot_header(last: Facts | None, first_ts: float | None, target: float | None,
                     after: int | None, end_words: str) -> str:
    if first_ts is None:
        return "the capture has no packets"
    if target is not None:
        prefix = f"at +{target - first_ts:.6f} s"
        if last is None:
            return f"{prefix}, before the first packet"
        return f"{prefix} (after frame {last.frame}, +{last.ts - first_ts:.6f} s)"
    assert last is not None
    where = "" if after is not None else f", {end_words}"
    return f"after frame {last.frame} (+{last.ts - first_ts:.6f} s){where}"


# ----- the table at given moments (the demo's kernel oracle lines ss up with these) -----
class TableAt(NamedTuple):
    """The table at one Unix time, exactly as ``snapshot_lines(at=...)`` builds it."""

    at: float
    frame: int | None  # the last frame at or before *at* (None: before the first packet)
    rows: tuple[tuple[Socket, str], ...]  # (socket, state) in table order
    lines: tuple[str, ...]  # netstat's title, header and rows


def tables_at(steps: Iterable[Step | End], times: Iterable[float]) -> list[TableAt]:
    """The table at each of *times* (Unix times, any order; one pass over *steps*): the
    packets at or before a time are applied, as ``--at`` does."""
    wanted = list(times)
    order = sorted(range(len(wanted)), key=wanted.__getitem__)
    found: dict[int, TableAt] = {}
    table = SocketTable()
    frame: int | None = None

    def take(index: int) -> None:
        found[index] = TableAt(wanted[index], frame, tuple(table.ordered()),
                               tuple(table_lines(table)))

    pos = 0
    for facts in facts_stream(steps):
        if isinstance(facts, End):
            break
        while pos < len(order) and facts.ts > wanted[order[pos]]:
            take(order[pos])
            pos += 1
        if pos == len(order):
            break
        for _ in table.apply(facts):
            pass
        frame = facts.frame
    for index in order[pos:]:
        take(index)
    return [found[i] for i in range(len(wanted))]
