"""``sockets``: what ``netstat -tanu`` would have printed, rebuilt from a capture (SPEC §3.5).

Each TCP endpoint the tracker follows is a socket: the client's, and on the server the
socket ``accept`` returns, in the endpoint's state with netstat's spelling (``SYN_RECV``,
``FIN_WAIT1``, ``TIME_WAIT``...).  A socket that reaches CLOSED leaves the table, as it
leaves netstat's; TIME_WAIT stays for Linux's 60 seconds (``TCP_TIMEWAIT_LEN``) of
capture time.  A server that answers a SYN with a SYN-ACK was listening: it gets a
``LISTEN`` socket on the address it answered from, with netstat's ``0.0.0.0:*`` (``:::*``)
foreign address, from just before that SYN (it must have listened already) until the
capture ends.  A UDP endpoint that sent a datagram had a socket (netstat prints UDP
sockets with an empty state); it leaves the table when the tracker retires its last
conversation (quiet for the tracker's linger time).

Recv-Q and Send-Q are always 0: they are the bytes an application has not read yet and
the bytes not yet acknowledged, inside the two kernels.  A capture shows neither (on
loopback every segment is acknowledged within microseconds anyway), so capdissect does
not guess them.

Whether a SYN was accepted is only known from the reply, so the tracker's per-packet
facts pass through a short look-ahead (until the reply, at most ``PENDING_S`` seconds of
capture time) before they reach the table: a refused or unanswered SYN never makes a
listener or a server socket appear.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from capdissect.errors import CapdissectError
from capdissect.report.flowstream import End, Step
from capdissect.report.textsafe import clean
from capdissect.track.states import TcpState
from capdissect.track.tcp import TcpConnection, Update
from capdissect.track.tracker import UdpUpdate
from capdissect.track.udp import Endpoint, UdpConversation

TIME_WAIT_S: Final = 60.0  # Linux include/net/tcp.h TCP_TIMEWAIT_LEN
PENDING_S: Final = 3.0  # a SYN unanswered this long (Linux retries after 1 s) was not accepted
MAX_PENDING: Final = 100_000  # facts held back waiting for a reply, at most
EPOCH_FROM: Final = 1e9  # an --at value this large is a Unix time, not an offset

NETSTAT_TITLE: Final = "Active Internet connections (servers and established)"
# net-tools netstat.c: the header and "%-4s  %6ld %6ld %-*s %-*s %-11s" per socket, with
# address columns at least 23 wide.  Trailing blanks are dropped.
NETSTAT_HEADER: Final = ("Proto Recv-Q Send-Q Local Address           Foreign Address"
                         "         State")
_PROTO_ORDER: Final = {"tcp": 0, "tcp6": 1, "udp": 2, "udp6": 3}


class SocketError(CapdissectError):
    """A moment that the capture does not have, or cannot be read as a time."""


# ----- per-packet facts, decided when the tracker reports the packet -------------------
@dataclass(slots=True)
class TcpFacts:
    conn_id: int
    proto: str  # tcp | tcp6
    client: Endpoint
    server: Endpoint
    client_state: TcpState | None
    server_state: TcpState | None
    listen: bool | None  # the server was listening; None: not known until it replies
    syn: bool = False  # the segment is the client's SYN


@dataclass(slots=True)
class Facts:
    """What one packet means for the socket table."""

    frame: int
    ts: float
    what: str
    tcp: TcpFacts | None = None
    udp_sender: tuple[str, Endpoint, int] | None = None  # proto, sender, conversation id
    retired_udp: tuple[tuple[str, int, Endpoint, Endpoint], ...] = ()  # proto, id, a, b


def _proto(base: str, addr: bytes) -> str:
    return base if len(addr) == 4 else base + "6"


def _tcp_facts(update: Update) -> TcpFacts:
    conn: TcpConnection = update.connection
    client_state, server_state = update.event.states
    listen: bool | None
    if conn.crossed_syns or conn.refused:
        listen = False
    elif conn.server.sent_synack:
        listen = True
    elif server_state is TcpState.SYN_RECEIVED:
        listen = None  # a SYN to a would-be listener: the reply will tell
    else:
        listen = False
    return TcpFacts(conn.id, _proto("tcp", conn.client.addr), (conn.client.addr, conn.client.port),
                    (conn.server.addr, conn.server.port), client_state, server_state, listen,
                    update.event.label == "SYN")


def _facts(step: Step) -> Facts:
    facts = Facts(step.frame, step.ts, "")
    seen = step.seen
    if isinstance(seen, Update):
        facts.tcp = _tcp_facts(seen)
        facts.what = "; ".join((f"the {seen.event.sender} sends {seen.event.label}",
                                *seen.notes))
    elif isinstance(seen, UdpUpdate):
        conv, datagram = seen.conversation, seen.datagram
        sender = conv.a if datagram.sender == "a" else conv.b
        facts.udp_sender = (_proto("udp", sender[0]), sender, conv.id)
        facts.what = f"UDP datagram from {netstat_address(sender)}"
    retired = [(_proto("udp", flow.a[0]), flow.id, flow.a, flow.b)
               for flow in step.retired if isinstance(flow, UdpConversation)]
    if retired:
        facts.retired_udp = tuple(retired)
    return facts


def facts_stream(steps: Iterable[Step | End]) -> Iterator[Facts | End]:
    """One Facts per packet, in capture order, each SYN's acceptance resolved; then End."""
    held: deque[Facts] = deque()
    unresolved: dict[int, deque[TcpFacts]] = {}  # per connection, in capture order

    def settle(tcp: TcpFacts, listen: bool) -> None:
        tcp.listen = listen
        if not listen:  # refused or never answered: no server-side socket existed
            tcp.server_state = None

    def resolve(conn_id: int, listen: bool) -> None:
        for tcp in unresolved.pop(conn_id, ()):
            settle(tcp, listen)

    for step in steps:
        if isinstance(step, End):
            for conn_id in list(unresolved):
                resolve(conn_id, False)
            yield from held
            yield step
            return
        facts = _facts(step)
        tcp = facts.tcp
        if tcp is not None:
            if tcp.listen is None:
                unresolved.setdefault(tcp.conn_id, deque()).append(tcp)
            elif tcp.conn_id in unresolved:
                resolve(tcp.conn_id, tcp.listen)
        held.append(facts)
        while held:
            front = held[0].tcp
            if front is not None and front.listen is None:
                if step.ts - held[0].ts <= PENDING_S and len(held) <= MAX_PENDING:
                    break
                # No reply in time: this SYN was not accepted (a later copy may still be).
                waiting = unresolved[front.conn_id]
                settle(waiting.popleft(), False)
                if not waiting:
                    del unresolved[front.conn_id]
            yield held.popleft()


# ----- the table ----------------------------------------------------------------------
class Socket(NamedTuple):
    proto: str
    local: Endpoint
    foreign: Endpoint | None  # None: a listener or an unconnected UDP socket (*)


class Moment(NamedTuple):
    """A point where the table may have changed: after a frame, or just before it."""

    frame: int
    ts: float
    before: bool  # the moment just before *frame* (a listener inferred from its SYN)
    what: str
    changes: tuple[str, ...]


@dataclass(slots=True)
class _Row:
    state: str
    since: float


@dataclass
class SocketTable:
    """The sockets at one moment; ``apply`` moves it on by one packet's facts."""

    rows: dict[Socket, _Row] = field(default_factory=dict)
    _udp_users: dict[tuple[str, Endpoint], set[int]] = field(default_factory=dict)
    _time_wait: deque[tuple[float, Socket]] = field(default_factory=deque)
    _changes: list[str] = field(default_factory=list)

    def apply(self, facts: Facts) -> Iterator[Moment]:
        """Apply *facts*; yield the moment before it (if a listener appears) and after it.

        The table is in the state the moment describes when the moment is yielded.
        """
        self._changes = []
        self._expire(facts.ts)
        tcp = facts.tcp
        if tcp is not None and tcp.listen:
            self._set(Socket(tcp.proto, tcp.server, None), "LISTEN", facts.ts)
            if self._changes:
                why = (f"the server accepts the SYN of frame {facts.frame}, so it was already "
                       "listening" if tcp.syn else
                       f"the server's SYN-ACK of frame {facts.frame} shows it was listening")
                yield Moment(facts.frame, facts.ts, True, why, tuple(self._changes))
                self._changes = []
        if tcp is not None:
            self._tcp(tcp, facts.ts)
        if facts.udp_sender is not None:
            proto, sender, conv_id = facts.udp_sender
            self._udp_users.setdefault((proto, sender), set()).add(conv_id)
            self._set(Socket(proto, sender, None), "", facts.ts)
        for proto, conv_id, a, b in facts.retired_udp:
            self._forget_udp(proto, conv_id, a)
            self._forget_udp(proto, conv_id, b)
        yield Moment(facts.frame, facts.ts, False, facts.what, tuple(self._changes))

    def _tcp(self, tcp: TcpFacts, ts: float) -> None:
        self._put(Socket(tcp.proto, tcp.client, tcp.server), tcp.client_state, ts, "client ")
        server = Socket(tcp.proto, tcp.server, tcp.client)
        if tcp.server_state is TcpState.LISTEN:  # that is the listener, not this socket
            self._put(server, None, ts, "server ")
        else:
            self._put(server, tcp.server_state, ts, "server ")

    def _put(self, sock: Socket, state: TcpState | None, ts: float, role: str) -> None:
        if state is None or state is TcpState.CLOSED:
            self._drop(sock, "CLOSE", role)
        elif self._set(sock, state.netstat, ts, role) and state is TcpState.TIME_WAIT:
            self._time_wait.append((ts + TIME_WAIT_S, sock))

    def _set(self, sock: Socket, state: str, ts: float, role: str = "") -> bool:
        """Put *sock* in *state*; True if that changed anything."""
        row = self.rows.get(sock)
        who = role + netstat_address(sock.local)
        if row is None:
            self.rows[sock] = _Row(state, ts)
            self._changes.append(f"{who} {state or 'bound'}")
        elif row.state != state:
            self._changes.append(f"{who} {row.state} -> {state}")
            row.state, row.since = state, ts
        else:
            return False
        return True

    def _drop(self, sock: Socket, why: str, role: str = "") -> None:
        row = self.rows.pop(sock, None)
        if row is not None:
            self._changes.append(f"{role}{netstat_address(sock.local)} {row.state} -> {why} "
                                 "(gone from the table)")

    def _expire(self, now: float) -> None:
        queue = self._time_wait
        while queue and queue[0][0] <= now:
            _expiry, sock = queue.popleft()
            row = self.rows.get(sock)
            if row is not None and row.state == "TIME_WAIT" and row.since + TIME_WAIT_S <= now:
                self._drop(sock, f"CLOSE after {TIME_WAIT_S:g} s")

    def _forget_udp(self, proto: str, conv_id: int, ep: Endpoint) -> None:
        users = self._udp_users.get((proto, ep))
        if users is None:
            return
        users.discard(conv_id)
        if not users:
            del self._udp_users[(proto, ep)]
            self._drop(Socket(proto, ep, None), "unused")

    def ordered(self) -> list[tuple[Socket, str]]:
        """(socket, state) as netstat lists them: TCP, TCP6, UDP, UDP6, listeners first.

        Within that, the order the sockets appeared (netstat's is the kernel's hash order,
        which a capture cannot know).
        """
        rows = sorted(enumerate(self.rows.items()),
                      key=lambda x: (_PROTO_ORDER[x[1][0].proto], x[1][1].state != "LISTEN",
                                     x[0]))
        return [(sock, row.state) for _, (sock, row) in rows]

    def states(self) -> list[str]:
        """The State column, in table order."""
        return [state for _, state in self.ordered()]

    def lines(self) -> list[str]:
        """The table as netstat prints it (title, header, one line per socket)."""
        out = [NETSTAT_TITLE, NETSTAT_HEADER]
        for sock, state in self.ordered():
            local = netstat_address(sock.local)
            foreign = (netstat_address(sock.foreign) if sock.foreign is not None
                       else _wildcard(sock.local))
            out.append(f"{sock.proto:<4}  {0:>6} {0:>6} {local:<23} {foreign:<23} "
                       f"{state:<11}".rstrip())
        return out


def netstat_address(ep: Endpoint) -> str:
    """netstat's numeric spelling: 127.0.0.1:30002, ::1:30002 (no brackets)."""
    addr, port = ep
    family = socket.AF_INET if len(addr) == 4 else socket.AF_INET6
    return f"{socket.inet_ntop(family, addr)}:{port}"


def _wildcard(local: Endpoint) -> str:
    return "0.0.0.0:*" if len(local[0]) == 4 else ":::*"


# ----- the command's outputs ----------------------------------------------------------
def every_lines(steps: Iterable[Step | End]) -> Iterator[str]:
    """A snapshot after each packet that changed the table (and before a new listener)."""
    table = SocketTable()
    first_ts: float | None = None
    printed = 0
    end: End | None = None
    for facts in facts_stream(steps):
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
            yield from table.lines()
    if not printed:
        yield "no sockets: the capture shows no TCP connection or UDP datagram"
    yield from _cut_short(end)


def snapshot_lines(steps: Iterable[Step | End], *, after: int | None = None,
                   at: str | None = None) -> Iterator[str]:
    """One snapshot: after frame *after*, at time *at*, or (neither) at the end."""
    table = SocketTable()
    first_ts: float | None = None
    target: float | None = None
    last: Facts | None = None
    end: End | None = None
    for facts in facts_stream(steps):
        if isinstance(facts, End):
            end = facts
            if (after is not None and (last is None or last.frame < after)
                    and end.truncated is None):  # cut short: the table at the damage
                raise SocketError(f"no frame {after}: the capture has {facts.packets} packets")
            break
        if first_ts is None:
            first_ts = facts.ts
            if at is not None:
                value, absolute = parse_time(at)
                target = value if absolute else first_ts + value
        if target is not None and facts.ts > target:
            break
        for _ in table.apply(facts):
            pass
        last = facts
        if after is not None and facts.frame >= after:
            break
    yield clean(_snapshot_header(last, first_ts, target, after))
    yield from table.lines()
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
                     after: int | None) -> str:
    if first_ts is None:
        return "the capture has no packets"
    if target is not None:
        prefix = f"at +{target - first_ts:.6f} s"
        if last is None:
            return f"{prefix}, before the first packet"
        return f"{prefix} (after frame {last.frame}, +{last.ts - first_ts:.6f} s)"
    assert last is not None
    where = "" if after is not None else ", the end of the capture"
    return f"after frame {last.frame} (+{last.ts - first_ts:.6f} s){where}"


def parse_time(text: str) -> tuple[float, bool]:
    """``--at``: seconds since the first packet (``0.25``), a Unix time (``1589017316.1``)
    or an ISO date and time (``2020-05-09T10:21:56.089``, local time unless it says).

    Returns (value, absolute).
    """
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value != value or value in (float("inf"), float("-inf")):
            raise SocketError(f"--at {text!r}: not a time")
        return value, value >= EPOCH_FROM
    try:
        return dt.datetime.fromisoformat(text).timestamp(), True
    except (ValueError, OverflowError, OSError):
        raise SocketError(f"--at {text!r}: give seconds since the first packet (0.25), "
                          "a Unix time or an ISO date and time") from None
