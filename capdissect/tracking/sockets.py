"""The netstat model: the sockets a capture shows, moment by moment (SPEC §3.5).

Each TCP endpoint the tracker follows is a socket: the client's, and on the server the
socket ``accept`` returns, in the endpoint's state with netstat's spelling (``SYN_RECV``,
``FIN_WAIT1``, ``TIME_WAIT``...).  A socket that reaches CLOSED leaves the table, as it
leaves netstat's; TIME_WAIT stays for Linux's 60 seconds (``TCP_TIMEWAIT_LEN``) of
capture time.  A server that answers a SYN with a SYN-ACK was listening: it gets a
``LISTEN`` socket on the address it answered from, with netstat's ``0.0.0.0:*`` (``:::*``)
foreign address, from just before that SYN (it must have listened already) until the
capture ends.  A UDP endpoint that sent a datagram had a socket (netstat prints UDP
sockets with an empty state); it leaves the table when the tracker retires its last
conversation (quiet for the tracker's linger time).  A TCP socket leaves it too when the
tracker retires its connection (quiet for the linger time, or the oldest of more than
``MAX_OPEN`` open at once), as ``flows`` does: so the table, like the tracker, holds at
most the connections open at once, not every socket the capture ever showed.

Whether a SYN was accepted is only known from the reply, so the tracker's per-packet
facts pass through a short look-ahead (until the reply, at most ``PENDING_S`` seconds of
capture time) before they reach the table: a refused or unanswered SYN never makes a
listener or a server socket appear.  ``report/tables/sockets.py`` prints the tables.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from capdissect.addresses import netstat_address
from capdissect.tracking.states import TcpState
from capdissect.tracking.stream import End, Step
from capdissect.tracking.tcp import (
    LISTENER_UNKNOWN,
    LISTENER_YES,
    Event,
    TcpConnection,
    Update,
)
from capdissect.tracking.tracker import IcmpUpdate, Observation, UdpUpdate
from capdissect.tracking.udp import Endpoint, UdpConversation

TIME_WAIT_S: Final = 60.0  # Linux include/net/tcp.h TCP_TIMEWAIT_LEN
PENDING_S: Final = 3.0  # a SYN unanswered this long (Linux retries after 1 s) was not accepted
# Facts held back waiting for a reply, at most (about 750 bytes each in pure Python): a
# flood of 100,000 SYNs a second would otherwise hold 300,000 of them for PENDING_S.
MAX_PENDING: Final = 20_000
PROTO_ORDER: Final = {"tcp": 0, "tcp6": 1, "udp": 2, "udp6": 3}


class Socket(NamedTuple):
    proto: str
    local: Endpoint
    foreign: Endpoint | None  # None: a listener or an unconnected UDP socket (*)


class ConnectionSockets(NamedTuple):
    """A TCP connection's keys in the table: its two sockets and its server's listener."""

    client: Socket
    server: Socket
    listener: Socket


# Facts and TcpFacts are plain classes, native when compiled: one of each is made per
# packet, and a dataclass's generated __init__ runs as Python (130 ns instead of 20).
class TcpFacts:
    __slots__ = ("client_state", "conn_id", "listen", "server_state", "sockets", "syn")

    def __init__(self, conn_id: int, sockets: ConnectionSockets,
                 client_state: TcpState | None, server_state: TcpState | None,
                 listen: bool | None, syn: bool) -> None:
        self.conn_id = conn_id
        self.sockets = sockets  # the connection's rows in the table
        self.client_state = client_state
        self.server_state = server_state
        self.listen = listen  # the server was listening; None: not known until it replies
        self.syn = syn  # the segment is the client's SYN


class Facts:
    """What one packet means for the socket table."""

    __slots__ = ("frame", "retired_tcp", "retired_udp", "seen", "tcp", "ts", "udp_connected",
                 "udp_sender")

    def __init__(self, frame: int, ts: float, seen: Observation | None) -> None:
        self.frame = frame
        self.ts = ts
        self.seen = seen  # the tracker's record of the packet (its words: ``what``)
        self.tcp: TcpFacts | None = None
        # proto, sender, conversation id
        self.udp_sender: tuple[str, Endpoint, int] | None = None
        # proto, a UDP socket and the peer an ICMP error showed it is connect()ed to
        self.udp_connected: tuple[str, Endpoint, Endpoint] | None = None
        # proto, id, a, b
        self.retired_udp: tuple[tuple[str, int, Endpoint, Endpoint], ...] = ()
        self.retired_tcp: tuple[ConnectionSockets, ...] = ()

    @property
    def what(self) -> str:
        """The packet in words, for a moment that changed the table (spelt only then:
        most packets change nothing, and ``export`` follows every one)."""
        seen = self.seen
        if isinstance(seen, Update):
            return "; ".join((f"the {seen.event.sender} sends {seen.event.label}", *seen.notes))
        if isinstance(seen, UdpUpdate):
            conv = seen.conversation
            sender = conv.a if seen.datagram.sender == "a" else conv.b
            return f"UDP datagram from {netstat_address(sender)}"
        if (isinstance(seen, IcmpUpdate) and seen.connected_to is not None
                and seen.quoted):
            return (f"ICMP port unreachable: {netstat_address(seen.quoted[1])} refuses a "
                    f"datagram from {netstat_address(seen.quoted[0])}, so it is "
                    f"connect()ed to {netstat_address(seen.connected_to)}")
        return ""


def _proto(base: str, addr: bytes) -> str:
    return base if len(addr) == 4 else base + "6"


def _listening(conn: TcpConnection) -> bool | None:
    """Whether the server had a listening socket: known from its reply to the SYN."""
    if conn.listener == LISTENER_UNKNOWN:
        return None
    return conn.listener == LISTENER_YES and conn.server.sent_synack


def _connection_sockets(conn: TcpConnection) -> ConnectionSockets:
    proto = _proto("tcp", conn.client.addr)
    client = (conn.client.addr, conn.client.port)
    server = (conn.server.addr, conn.server.port)
    return ConnectionSockets(Socket(proto, client, server), Socket(proto, server, client),
                             Socket(proto, server, None))


def _tcp_facts(conn: TcpConnection, event: Event, sockets: ConnectionSockets) -> TcpFacts:
    client_state, server_state = event.states
    return TcpFacts(conn.id, sockets, client_state, server_state, _listening(conn),
                    event.label == "SYN" and event.sender == "client")


# connection id -> the client endpoint its sockets were made for, and the sockets
Known = dict[int, tuple[object, ConnectionSockets]]


def _sockets(conn: TcpConnection, known: Known) -> ConnectionSockets:
    """*conn*'s sockets, made once while its roles stay (a simultaneous open may swap
    them: tracking/tcp.py ``_cross_syns``)."""
    held = known.get(conn.id)
    if held is not None and held[0] is conn.client:
        return held[1]
    sockets = _connection_sockets(conn)
    known[conn.id] = (conn.client, sockets)
    return sockets


def _facts(step: Step, known: Known) -> Facts:
    """The facts of *step*; *known* keeps each open connection's sockets (a packet's
    facts would otherwise build the same three keys again)."""
    seen = step.seen
    facts = Facts(step.frame, step.ts, seen)
    if isinstance(seen, Update):
        conn = seen.connection
        facts.tcp = _tcp_facts(conn, seen.event, _sockets(conn, known))
    elif isinstance(seen, UdpUpdate):
        conv, datagram = seen.conversation, seen.datagram
        sender = conv.a if datagram.sender == "a" else conv.b
        facts.udp_sender = (_proto("udp", sender[0]), sender, conv.id)
    elif isinstance(seen, IcmpUpdate) and seen.connected_to is not None and seen.quoted:
        refuser = seen.quoted[1]
        facts.udp_connected = (_proto("udp", refuser[0]), refuser, seen.connected_to)
    if step.retired:
        facts.retired_udp = tuple(
            (_proto("udp", flow.a[0]), flow.id, flow.a, flow.b)
            for flow in step.retired if isinstance(flow, UdpConversation))
        facts.retired_tcp = tuple(
            _sockets(flow, known) for flow in step.retired if isinstance(flow, TcpConnection))
    return facts


def facts_stream(steps: Iterable[Step | End]) -> Iterator[Facts | End]:
    """One Facts per packet, in capture order, with each connection's states settled; End.

    The tracker may rewrite a connection's recent states when a later segment shows what
    really happened (a SYN's reply shows whether anything listened; crossing FINs).  So
    the facts of a connection that is not settled wait here (at most ``PENDING_S`` seconds
    of capture time, ``MAX_PENDING`` packets) and take the rewritten states.
    """
    settling = FactsSettler()
    for step in steps:
        yield from settling.push(step)
        if isinstance(step, End):
            return


class FactsSettler:
    """``facts_stream`` a step at a time: ``push`` takes the tracker's next step and
    returns the facts that are settled by then (all of them, and the End, at the End).
    A caller that reads the steps for something else too (``export``) feeds it here."""

    def __init__(self) -> None:
        self.held: deque[Facts] = deque()
        # connection id -> its held facts, in frame order (a list: a flood's unanswered
        # SYNs are one each, and a connection's window is at most tracking/tcp.py's
        # MAX_WINDOW)
        self.waiting: dict[int, list[Facts]] = {}
        # connection id -> its sockets, until the tracker retires it
        self.sockets: Known = {}

    def _final(self, conn: TcpConnection) -> None:
        listen = _listening(conn)
        for facts in self.waiting.pop(conn.id, ()):
            if facts.tcp is not None:
                facts.tcp.listen = bool(listen)

    def push(self, step: Step | End) -> list[Facts | End]:
        waiting, held = self.waiting, self.held
        if isinstance(step, End):
            self.sockets.clear()
            for flow in step.retired:
                if isinstance(flow, TcpConnection):
                    self._final(flow)
            for conn_id in list(waiting):
                for facts in waiting.pop(conn_id):
                    if facts.tcp is not None and facts.tcp.listen is None:
                        facts.tcp.listen = False
            out: list[Facts | End] = [*held, step]
            held.clear()
            return out
        facts = _facts(step, self.sockets)
        seen = step.seen
        if isinstance(seen, Update):
            conn = seen.connection
            mine = waiting.get(conn.id)
            if mine is not None and facts.tcp is not None:
                for event in seen.revised:
                    for earlier in mine:
                        if earlier.frame == event.frame:
                            earlier.tcp = _tcp_facts(conn, event, facts.tcp.sockets)
            if conn.settled:
                self._final(conn)
            else:
                waiting.setdefault(conn.id, []).append(facts)
        for flow in step.retired:
            if isinstance(flow, TcpConnection):
                self._final(flow)
                self.sockets.pop(flow.id, None)
        held.append(facts)
        out = []
        while held:
            front = held[0]
            tcp = front.tcp
            mine = waiting.get(tcp.conn_id) if tcp is not None else None
            if tcp is not None and mine is not None and mine[0] is front:
                if step.ts - front.ts <= PENDING_S and len(held) <= MAX_PENDING:
                    break
                # Held as long as it may be: take the states as they are now.
                del mine[0]
                if not mine:  # no empty list per unanswered SYN of a flood
                    del waiting[tcp.conn_id]
                if tcp.listen is None:
                    tcp.listen = False
            out.append(held.popleft())
        return out


# ----- the table ----------------------------------------------------------------------
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
    _udp_peer: dict[tuple[str, Endpoint], Endpoint] = field(default_factory=dict)
    _time_wait: deque[tuple[float, Socket]] = field(default_factory=deque)
    _changes: list[str] = field(default_factory=list)
    # The sockets the last moment put, changed or removed (export follows the table by them).
    _touched: list[Socket] = field(default_factory=list)

    def apply(self, facts: Facts) -> Iterator[Moment]:
        """Apply *facts*; yield the moment before it (if a listener appears) and the one
        after it, if it changed the table (most packets change nothing).

        The table is in the state the moment describes when the moment is yielded.
        """
        tcp = facts.tcp
        if self._before(facts) and tcp is not None:
            why = (f"the server accepts the SYN of frame {facts.frame}, so it was already "
                   "listening" if tcp.syn else
                   f"the server's SYN-ACK of frame {facts.frame} shows it was listening")
            yield Moment(facts.frame, facts.ts, True, why, tuple(self._changes))
            self._changes, self._touched = [], []
        self._after(facts)
        changes = self._changes
        if changes:
            yield Moment(facts.frame, facts.ts, False, facts.what, tuple(changes))

    def update(self, facts: Facts) -> bool:
        """``apply`` without its moments: whether *facts* changed the table (``touched``
        says which sockets).  ``export`` follows every packet this way."""
        self._before(facts)
        self._after(facts)
        return bool(self._touched)

    def _before(self, facts: Facts) -> bool:
        """The part of *facts* that comes before its packet: whether it changed the table
        and a listener is known (the moment just before the packet)."""
        self._changes, self._touched = [], []
        self._expire(facts.ts)
        # A connection the tracker retired goes first: a SYN that reuses its ports is the
        # same packet's fact and makes new sockets with the same addresses.
        for sockets in facts.retired_tcp:
            self._drop(sockets.client, "retired", "client ")
            self._drop(sockets.server, "retired", "server ")
        tcp = facts.tcp
        if tcp is None or not tcp.listen:
            return False
        self._set(tcp.sockets.listener, "LISTEN", facts.ts)
        return bool(self._changes)

    def _after(self, facts: Facts) -> None:
        """The packet's own facts."""
        tcp = facts.tcp
        if tcp is not None:
            self._tcp(tcp, facts.ts)
        if facts.udp_sender is not None:
            proto, sender, conv_id = facts.udp_sender
            self._udp_users.setdefault((proto, sender), set()).add(conv_id)
            peer = self._udp_peer.get((proto, sender))
            self._set(Socket(proto, sender, peer), "ESTABLISHED" if peer else "", facts.ts)
        if facts.udp_connected is not None:
            proto, local, peer = facts.udp_connected
            if (proto, local) in self._udp_users and (proto, local) not in self._udp_peer:
                # netstat shows a connect()ed UDP socket with its peer, as ESTABLISHED.
                self._udp_peer[(proto, local)] = peer
                row = self.rows.pop(Socket(proto, local, None), None)
                if row is not None:
                    self._touched.append(Socket(proto, local, None))
                    self.rows[Socket(proto, local, peer)] = _Row("ESTABLISHED", facts.ts)
                    self._touched.append(Socket(proto, local, peer))
                    self._changes.append(f"{netstat_address(local)} connected to "
                                         f"{netstat_address(peer)}: ESTABLISHED")
        for proto, conv_id, a, b in facts.retired_udp:
            self._forget_udp(proto, conv_id, a)
            self._forget_udp(proto, conv_id, b)

    def _tcp(self, tcp: TcpFacts, ts: float) -> None:
        sockets = tcp.sockets
        self._put(sockets.client, tcp.client_state, ts, "client ")
        if tcp.server_state is TcpState.LISTEN:  # that is the listener, not this socket
            self._put(sockets.server, None, ts, "server ")
        else:
            self._put(sockets.server, tcp.server_state, ts, "server ")

    def _put(self, sock: Socket, state: TcpState | None, ts: float, role: str) -> None:
        if state is None or state is TcpState.CLOSED:
            self._drop(sock, "CLOSE", role)
        elif self._set(sock, state.netstat, ts, role) and state is TcpState.TIME_WAIT:
            self._time_wait.append((ts + TIME_WAIT_S, sock))

    def _set(self, sock: Socket, state: str, ts: float, role: str = "") -> bool:
        """Put *sock* in *state*; True if that changed anything."""
        row = self.rows.get(sock)
        if row is None:
            self.rows[sock] = _Row(state, ts)
            self._changes.append(f"{role}{netstat_address(sock.local)} {state or 'bound'}")
        elif row.state != state:
            self._changes.append(f"{role}{netstat_address(sock.local)} {row.state} -> {state}")
            row.state, row.since = state, ts
        else:
            return False
        self._touched.append(sock)
        return True

    def _drop(self, sock: Socket, why: str, role: str = "") -> None:
        row = self.rows.pop(sock, None)
        if row is not None:
            self._touched.append(sock)
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
            self._drop(Socket(proto, ep, self._udp_peer.pop((proto, ep), None)), "unused")

    def ordered(self) -> list[tuple[Socket, str]]:
        """(socket, state) as netstat lists them: TCP, TCP6, UDP, UDP6, listeners first.

        Within that, the order the sockets appeared (netstat's is the kernel's hash order,
        which a capture cannot know).
        """
        rows = sorted(enumerate(self.rows.items()),
                      key=lambda x: (PROTO_ORDER[x[1][0].proto], x[1][1].state != "LISTEN",
                                     x[0]))
        return [(sock, row.state) for _, (sock, row) in rows]

    def states(self) -> list[str]:
        """The State column, in table order."""
        return [state for _, state in self.ordered()]

    def changed(self) -> tuple[list[tuple[Socket, str]], int] | None:
        """The rows the last moment put or changed, in table order, and how many other
        sockets the table holds unchanged; None when that is every row.  Rows that left
        the table are named in the moment's changes."""
        touched = dict.fromkeys(s for s in self._touched if s in self.rows)
        if len(touched) == len(self.rows):
            return None
        # Table order without a pass over the table: the touched rows in the order they
        # changed, which is the order they appeared among themselves.
        shown = sorted(touched, key=lambda s: (PROTO_ORDER[s.proto],
                                               self.rows[s].state != "LISTEN"))
        return [(sock, self.rows[sock].state) for sock in shown], len(self.rows) - len(shown)

    def touched(self) -> list[Socket]:
        """Every socket the last moment put in the table, changed or removed, once each,
        in the order it did."""
        return list(dict.fromkeys(self._touched))
