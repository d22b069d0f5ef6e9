"""The netstat model: the sockets a capture shows, moment by moment (SPEC §3.5).

Each TCP endpoint the tracker follows is a socket: the client's, and on the server the
socket ``accept`` returns, in the endpoint's state with netstat's spelling
(``SYN_RECV``, ``FIN_WAIT1``, ``TIME_WAIT``...). A socket that reaches CLOSED leaves the
table, as it leaves netstat's; TIME_WAIT stays for Linux's 60 seconds
(``TCP_TIMEWAIT_LEN``) of capture time, each socket until the first packet at or past
its own 60 s (whatever the clock did for the others). A server that answers a SYN with a
SYN-ACK was listening: it gets a ``LISTEN`` socket on the address it answered from, with
netstat's ``0.0.0.0:*`` (``:::*``) foreign address, from just before that SYN (it must
have listened already) until the capture ends. A UDP endpoint that sent a datagram had a
socket (netstat prints UDP sockets with an empty state); it leaves the table when the
tracker retires its last conversation (quiet for the tracker's linger time). A TCP
socket leaves it too when the tracker retires its connection (quiet for the linger time,
or the oldest of more than ``MAX_OPEN`` open at once), as ``flows`` does: so the table,
like the tracker, holds at most the connections open at once, not every socket the
capture ever showed.

Whether a SYN was accepted is only known from the reply, so the tracker's per-packet
facts pass through a short look-ahead (until the reply, at most ``PENDING_S`` seconds of
capture time) before they reach the table: a refused or unanswered SYN never makes a
listener or a server socket appear.  ``report/tables/sockets.py`` prints the tables.

With ``-j N`` each worker settles its own flows' facts (``ShardSockets``) and the parent
puts what they tell back in frame order (``told_facts``) into a table that takes the
ends of TIME_WAIT from them (``SocketTable(timed=False)``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
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
_FOREVER: Final = float("inf")
PROTO_ORDER: Final = {"tcp": 0, "tcp6": 1, "udp": 2, "udp6": 3}
EXPIRED: Final = f"CLOSE after {TIME_WAIT_S:g} s"  # a TIME_WAIT socket's end
_ROLES: Final = ("client ", "server ")


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

    __slots__ = ("born", "expired", "frame", "retired_tcp", "retired_udp", "seen", "tcp", "ts",
                 "udp_connected", "udp_sender", "words")

    def __init__(self, frame: int, ts: float, seen: Observation | None) -> None:
        self.frame = frame
        self.ts = ts
        # The capture's clock when the packet came (its latest time so far, which never
        # goes back): how long the facts may wait to settle is counted on it.
        self.born = ts
        self.seen = seen  # the tracker's record of the packet (its words: ``what``)
        self.words: str | None = None  # ``what``, spelt already (by a -j worker)
        self.tcp: TcpFacts | None = None
        # proto, sender, conversation id
        self.udp_sender: tuple[str, Endpoint, int] | None = None
        # proto, a UDP socket and the peer an ICMP error showed it is connect()ed to
        self.udp_connected: tuple[str, Endpoint, Endpoint] | None = None
        # proto, id, a, b
        self.retired_udp: tuple[tuple[str, int, Endpoint, Endpoint], ...] = ()
        self.retired_tcp: tuple[ConnectionSockets, ...] = ()
        # The TIME_WAIT sockets whose 60 s are up by this packet, in the order they go,
        # for a table that does not end them itself (``SocketTable(timed=False)``).
        self.expired: tuple[Socket, ...] = ()

    @property
    def what(self) -> str:
        """The packet in words, for a moment its own facts changed the table (spelt only
        then: most packets change nothing, and ``export`` follows every one)."""
        if self.words is not None:
            return self.words
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
    of capture time, ``MAX_PENDING`` frames) and take the rewritten states.  The seconds
    are counted on the capture's clock, its latest time so far: a clock that steps back
    holds nothing longer.
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
        self.clock = -_FOREVER  # the capture's latest time so far

    def _final(self, conn: TcpConnection) -> None:
        listen = _listening(conn)
        for facts in self.waiting.pop(conn.id, ()):
            if facts.tcp is not None:
                facts.tcp.listen = bool(listen)

    def push(self, step: Step | End, clock: float | None = None) -> list[Facts | End]:
        """*clock*: the capture's latest time by *step*, when the caller knows packets
        that were not pushed (a -j worker: ``ShardSockets``); else it follows the steps."""
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
        if clock is None:
            clock = step.ts if step.ts > self.clock else self.clock
        self.clock = clock
        facts = _facts(step, self.sockets)
        facts.born = clock
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
                # (Every frame is a step here, or a -j worker's pushed frames are the ones
                # that matter: the count of frames since is what *held* would hold.)
                if (clock - front.born <= PENDING_S
                        and step.frame - front.frame < MAX_PENDING):
                    break
                # Held as long as it may be: take the states as they are now.
                del mine[0]
                if not mine:  # no empty list per unanswered SYN of a flood
                    del waiting[tcp.conn_id]
                if tcp.listen is None:
                    tcp.listen = False
            out.append(held.popleft())
        return out


# ----- -j: the table's facts from several shards -------------------------------------
# What a -j worker tells of one frame (all that may change the table there, each part
# or None/empty): frame, time, the packet's words, its TCP facts (sockets, client state,
# server state, listening, a SYN), its UDP sender (proto, endpoint, conversation), a
# connect()ed UDP socket (proto, socket, peer), the TIME_WAIT sockets that end (their
# ``SocketTable`` key), the connections retired ((pass, last frame) of
# ``shards.Place``, sockets) and the conversations ((pass, last frame), proto,
# conversation, a, b).
TcpPart = tuple[ConnectionSockets, TcpState | None, TcpState | None, bool | None, bool]
Told = tuple[int, float, str | None, TcpPart | None, tuple[str, Endpoint, int] | None,
             tuple[str, Endpoint, Endpoint] | None, tuple[tuple[float, int, int, Socket], ...],
             tuple[tuple[int, int, ConnectionSockets], ...],
             tuple[tuple[int, int, str, int, Endpoint, Endpoint], ...]]
NO_FRAME: Final = 1 << 62  # a frame no capture reaches
# A foreign frame is pushed from this much before a time something may happen at: a
# frame pushed for nothing changes nothing, and rounding must not skip one.
_EARLY: Final = 1e-3
_NO_USERS: Final[frozenset[int]] = frozenset()


class ShardSockets:
    """A -j worker's share of the socket table (commands/rounds.py ``sharded_sockets``):
    the facts of its own connections and conversations, settled as one process settles
    them, and what of them may change the whole table (``Told``), for the parent.

    Its connections' TCP sockets are its own (a connection's four addresses have one
    shard), so a table of them says exactly when they change: only those facts go to
    the parent.  Listeners and UDP sockets are shared by flows of several shards: a
    listener is told the first time the shard's facts name it (it never leaves), a UDP
    sender the first time in each conversation, and the parent's table decides.

    The shard (``Shard.on_step``) pushes its own packets, and another shard's packet
    when it retires a flow of this one, or when it may end a TIME_WAIT socket or a wait
    to settle (``step`` returns when that may be): one process would do those at that
    packet, and the parent puts the changes there.  The capture's clock comes from the
    shard, which reads every packet.
    """

    def __init__(self, index: int, shards: int) -> None:
        self.index = index
        self.shards = shards
        self.settler = FactsSettler()
        self.table = SocketTable()
        self.told: list[Told] = []
        # frame -> the (pass, last frame) of the connections and conversations retired
        # at it, in the order they were
        self._places: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self._low = _FOREVER  # no fact held is older than this

    def step(self, frame: int, ts: float, clock: float, seen: Observation | None,
             gone: list[tuple[TcpConnection | UdpConversation, tuple[int, int, int, int]]]
             ) -> tuple[float, int]:
        """Packet *frame* at *ts* (the capture's clock at *clock*), what the tracker saw
        of it if it is the shard's, and the flows retired at it; when the next packet of
        another shard must be pushed: at a clock or a frame."""
        retired: list[TcpConnection | UdpConversation] = []
        if gone:
            tcp: list[tuple[int, int]] = []
            udp: list[tuple[int, int]] = []
            for flow, place in gone:
                retired.append(flow)
                (tcp if isinstance(flow, TcpConnection) else udp).append((place[2], place[3]))
            self._places[frame] = (tcp, udp)
        if ts < self._low:
            self._low = ts
        for facts in self.settler.push(Step(frame, ts, seen, retired), clock):
            assert isinstance(facts, Facts)
            self._apply(facts)
        return self._due()

    def finish(self, retired: list[TcpConnection | UdpConversation]) -> None:
        """The end of the capture: *retired*, the shard's flows still open."""
        for facts in self.settler.push(End(0, 0, 0, retired)):
            if isinstance(facts, Facts):
                self._apply(facts)

    def frontier(self, frames: int) -> int:
        """The first frame not told for good yet, after *frames* were pushed."""
        held = self.settler.held
        return held[0].frame if held else frames + 1

    def take(self) -> list[Told]:
        told, self.told = self.told, []
        return told

    def _due(self) -> tuple[float, int]:
        due = self.table.next_expiry()
        held = self.settler.held
        if not held:
            self._low = _FOREVER
            return due - _EARLY, NO_FRAME
        front = held[0]
        # The front waits to settle; a fact held may put a socket in TIME_WAIT.
        due = min(due, front.born + PENDING_S, self._low + TIME_WAIT_S)
        return due - _EARLY, front.frame + MAX_PENDING

    def _apply(self, facts: Facts) -> None:
        table = self.table
        udp = facts.udp_sender
        first = udp is not None and udp[2] not in table._udp_users.get((udp[0], udp[1]),
                                                                        _NO_USERS)
        listened = table._before(facts)
        own = table._after(facts)
        tcp = facts.tcp
        tcp_part: TcpPart | None = None
        if tcp is not None and (own or listened):
            tcp_part = (tcp.sockets, tcp.client_state, tcp.server_state, tcp.listen, tcp.syn)
        sender = None
        if first and udp is not None:
            sender = (udp[0], udp[1], udp[2] * self.shards + self.index)
        connected = facts.udp_connected
        expired = tuple(table.expired_now)
        places = self._places.pop(facts.frame, None)
        if places is None:
            if not (tcp_part or sender or connected or expired):
                return
            retired_tcp: tuple[tuple[int, int, ConnectionSockets], ...] = ()
            retired_udp: tuple[tuple[int, int, str, int, Endpoint, Endpoint], ...] = ()
        else:
            retired_tcp = tuple((step, last, sockets) for (step, last), sockets
                                in zip(places[0], facts.retired_tcp, strict=True))
            retired_udp = tuple((step, last, proto, conv * self.shards + self.index, a, b)
                                for (step, last), (proto, conv, a, b)
                                in zip(places[1], facts.retired_udp, strict=True))
        words = (facts.what if tcp_part is not None or sender is not None
                 or connected is not None else None)
        self.told.append((facts.frame, facts.ts, words, tcp_part, sender, connected, expired,
                          retired_tcp, retired_udp))


def told_facts(told: list[Told]) -> Facts:
    """One frame's facts for the whole table, from what the shards told of it (each part
    of one shard's, or put in the order one process has them)."""
    frame, ts = told[0][0], told[0][1]
    facts = Facts(frame, ts, None)
    expired: list[tuple[float, int, int, Socket]] = []
    retired_tcp: list[tuple[int, int, ConnectionSockets]] = []
    retired_udp: list[tuple[int, int, str, int, Endpoint, Endpoint]] = []
    for _, _, words, tcp, sender, connected, ended, gone_tcp, gone_udp in told:
        if words is not None:
            facts.words = words
        if tcp is not None:
            sockets, client_state, server_state, listen, syn = tcp
            facts.tcp = TcpFacts(0, sockets, client_state, server_state, listen, syn)
        if sender is not None:
            facts.udp_sender = sender
        if connected is not None:
            facts.udp_connected = connected
        expired.extend(ended)
        retired_tcp.extend(gone_tcp)
        retired_udp.extend(gone_udp)
    if expired:
        expired.sort(key=itemgetter(0, 1, 2))  # when, then the order they began
        facts.expired = tuple(entry[3] for entry in expired)
    if retired_tcp:
        retired_tcp.sort(key=itemgetter(0, 1))  # as shards.Merge orders them
        facts.retired_tcp = tuple(entry[2] for entry in retired_tcp)
    if retired_udp:
        retired_udp.sort(key=itemgetter(0, 1))
        facts.retired_udp = tuple(entry[2:] for entry in retired_udp)
    return facts


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
    """The sockets at one moment; ``apply`` moves it on by one packet's facts.

    A moment's words (``Moment.what``) say what the packet did when its own facts changed
    the table.  Changes that only time brought (a TIME_WAIT socket's 60 s, a connection
    or conversation the tracker retired as quiet) have none: the packet that happened to
    come next did not cause them.
    """

    rows: dict[Socket, _Row] = field(default_factory=dict)
    # False: the facts say which TIME_WAIT sockets end (``Facts.expired``, made by the -j
    # workers that know the frames in between: ``ShardSockets``), not the table.
    timed: bool = True
    _udp_users: dict[tuple[str, Endpoint], set[int]] = field(default_factory=dict)
    _udp_peer: dict[tuple[str, Endpoint], Endpoint] = field(default_factory=dict)
    # The TIME_WAIT sockets by when they may end: (then, frame, 0 client or 1 server,
    # socket); each ends at the first packet at or past its time, whatever came before.
    _time_wait: list[tuple[float, int, int, Socket]] = field(default_factory=list)
    # Those the last moment ended, in the order it did.
    expired_now: list[tuple[float, int, int, Socket]] = field(default_factory=list)
    _changes: list[str] = field(default_factory=list)
    # The sockets the last moment put, changed or removed (export follows the table by them).
    _touched: list[Socket] = field(default_factory=list)

    def apply(self, facts: Facts) -> Iterator[Moment]:
        """Apply *facts*; yield the moment just before it (if a listener appears) and the
        one after it, if it changed the table (most packets change nothing).

        The table is in the state the moment describes when the moment is yielded.
        """
        tcp = facts.tcp
        if self._before(facts) and tcp is not None:
            why = (f"the server accepts the SYN of frame {facts.frame}, so it was already "
                   "listening" if tcp.syn else
                   f"the server's SYN-ACK of frame {facts.frame} shows it was listening")
            yield Moment(facts.frame, facts.ts, True, why, tuple(self._changes))
            self._changes, self._touched = [], []
        own = self._after(facts)
        changes = self._changes
        if changes:
            yield Moment(facts.frame, facts.ts, False, facts.what if own else "",
                         tuple(changes))

    def update(self, facts: Facts) -> bool:
        """``apply`` without its moments: whether *facts* changed the table (``touched``
        says which sockets).  ``export`` follows every packet this way."""
        self._before(facts)
        self._after(facts)
        return bool(self._touched)

    def next_expiry(self) -> float:
        """When the first TIME_WAIT socket may end (infinity: none is waiting)."""
        return self._time_wait[0][0] if self._time_wait else _FOREVER

    def _before(self, facts: Facts) -> bool:
        """The part of *facts* that comes before its packet: what time ended, and a
        listener that was there already.  Whether the listener appeared (the moment just
        before the packet)."""
        self._changes, self._touched = [], []
        if self.expired_now:
            self.expired_now = []
        if self.timed:
            self._expire(facts.ts)
        else:
            for sock in facts.expired:
                self._drop(sock, EXPIRED)
        # A connection the tracker retired goes first: a SYN that reuses its ports is the
        # same packet's fact and makes new sockets with the same addresses.
        for sockets in facts.retired_tcp:
            self._drop(sockets.client, "retired", "client ")
            self._drop(sockets.server, "retired", "server ")
        tcp = facts.tcp
        if tcp is None or not tcp.listen:
            return False
        return self._set(tcp.sockets.listener, "LISTEN", facts.ts)

    def _after(self, facts: Facts) -> bool:
        """The packet's own facts, then the conversations retired with it; whether its
        own facts changed the table."""
        before = len(self._changes)
        tcp = facts.tcp
        if tcp is not None:
            self._tcp(tcp, facts.ts, facts.frame)
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
        own = len(self._changes) > before
        for proto, conv_id, a, b in facts.retired_udp:
            self._forget_udp(proto, conv_id, a)
            self._forget_udp(proto, conv_id, b)
        return own

    def _tcp(self, tcp: TcpFacts, ts: float, frame: int) -> None:
        sockets = tcp.sockets
        self._put(sockets.client, tcp.client_state, ts, frame, 0)
        if tcp.server_state is TcpState.LISTEN:  # that is the listener, not this socket
            self._put(sockets.server, None, ts, frame, 1)
        else:
            self._put(sockets.server, tcp.server_state, ts, frame, 1)

    def _put(self, sock: Socket, state: TcpState | None, ts: float, frame: int,
             role: int) -> None:
        if state is None or state is TcpState.CLOSED:
            self._drop(sock, "CLOSE", _ROLES[role])
        elif (self._set(sock, state.netstat, ts, _ROLES[role])
              and state is TcpState.TIME_WAIT and self.timed):
            heapq.heappush(self._time_wait, (ts + TIME_WAIT_S, frame, role, sock))

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
        waiting = self._time_wait
        while waiting and waiting[0][0] <= now:
            entry = heapq.heappop(waiting)
            sock = entry[3]
            row = self.rows.get(sock)
            if row is not None and row.state == "TIME_WAIT" and row.since + TIME_WAIT_S <= now:
                self._drop(sock, EXPIRED)
                self.expired_now.append(entry)

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
