"""The TCP connection state machine of RFC 9293 §3.3.2 (Figure 5), as data.

One table maps (state, what the endpoint did or saw) to the next state.  The tracker
looks transitions up here; a missing key is an anomaly it records and carries on
from (captures start mid-connection, segments get lost).  The state diagram in
handouts is drawn from the same table, so the picture cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final, NamedTuple


class TcpState(Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    # Enum hashes a member by its name, in Python (Enum.__hash__).  Members are singletons
    # that compare by identity, so identity's C-level hash is equivalent, and the tracker
    # looks states up in dicts and sets several times a segment.
    __hash__ = object.__hash__

    @property
    def netstat(self) -> str:
        """The spelling `netstat -tan` uses (Linux net-tools)."""
        return NETSTAT_NAMES[self]


class Seen(Enum):
    """What an endpoint did or saw, as RFC 9293 Figure 5 labels its arrows."""

    PASSIVE_OPEN = "passive open"  # listen(): inside the host, never on the wire
    SEND_SYN = "snd SYN"
    RECV_SYN = "rcv SYN"
    RECV_SYN_ACK = "rcv SYN,ACK"
    RECV_ACK_OF_SYN = "rcv ACK of SYN"
    SEND_FIN = "snd FIN"
    RECV_FIN = "rcv FIN"
    RECV_ACK_OF_FIN = "rcv ACK of FIN"
    RECV_FIN_ACK_OF_FIN = "rcv FIN, ACK of FIN"  # FIN and the ACK of ours in one segment
    SEND_RST = "snd RST"
    RECV_RST = "rcv RST"
    TIMEOUT = "timeout = 2MSL"

    __hash__ = object.__hash__  # as TcpState's


S = TcpState

# (state, what this endpoint did or saw) -> next state.  RFC 9293 §3.3.2, Figure 5;
# RST handling from §3.10.7.
TRANSITIONS: Final[Mapping[tuple[TcpState, Seen], TcpState]] = MappingProxyType({
    # Opening.
    (S.CLOSED, Seen.PASSIVE_OPEN): S.LISTEN,  # listen(); the tracker infers LISTEN instead
    (S.CLOSED, Seen.SEND_SYN): S.SYN_SENT,  # active open
    (S.LISTEN, Seen.RECV_SYN): S.SYN_RECEIVED,  # passive open: snd SYN,ACK
    (S.SYN_SENT, Seen.RECV_SYN_ACK): S.ESTABLISHED,  # snd ACK
    (S.SYN_SENT, Seen.RECV_SYN): S.SYN_RECEIVED,  # simultaneous open: snd SYN,ACK
    (S.SYN_RECEIVED, Seen.RECV_ACK_OF_SYN): S.ESTABLISHED,
    (S.SYN_RECEIVED, Seen.RECV_SYN_ACK): S.ESTABLISHED,  # simultaneous open: the peer's SYN,ACK
    # Closing, by this side first.
    (S.SYN_RECEIVED, Seen.SEND_FIN): S.FIN_WAIT_1,
    (S.ESTABLISHED, Seen.SEND_FIN): S.FIN_WAIT_1,
    (S.FIN_WAIT_1, Seen.RECV_ACK_OF_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, Seen.RECV_FIN): S.CLOSING,  # simultaneous close: the FINs crossed
    (S.FIN_WAIT_1, Seen.RECV_FIN_ACK_OF_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_2, Seen.RECV_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_2, Seen.RECV_FIN_ACK_OF_FIN): S.TIME_WAIT,
    (S.CLOSING, Seen.RECV_ACK_OF_FIN): S.TIME_WAIT,
    (S.TIME_WAIT, Seen.TIMEOUT): S.CLOSED,
    # Closing, by the other side first.
    (S.ESTABLISHED, Seen.RECV_FIN): S.CLOSE_WAIT,
    (S.CLOSE_WAIT, Seen.SEND_FIN): S.LAST_ACK,
    (S.LAST_ACK, Seen.RECV_ACK_OF_FIN): S.CLOSED,
    # Resets (§3.10.7): an acceptable RST closes the connection in any synchronized state.
    **{(state, seen): S.CLOSED
       for state in (S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2,
                     S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT)
       for seen in (Seen.SEND_RST, Seen.RECV_RST)},
    (S.LISTEN, Seen.SEND_RST): S.LISTEN,  # a listener refusing a stray segment stays put
})

NETSTAT_NAMES: Final[Mapping[TcpState, str]] = MappingProxyType({
    S.CLOSED: "CLOSE",
    S.LISTEN: "LISTEN",
    S.SYN_SENT: "SYN_SENT",
    S.SYN_RECEIVED: "SYN_RECV",
    S.ESTABLISHED: "ESTABLISHED",
    S.FIN_WAIT_1: "FIN_WAIT1",
    S.FIN_WAIT_2: "FIN_WAIT2",
    S.CLOSE_WAIT: "CLOSE_WAIT",
    S.CLOSING: "CLOSING",
    S.LAST_ACK: "LAST_ACK",
    S.TIME_WAIT: "TIME_WAIT",
})

FINISHED: Final = frozenset({S.CLOSED, S.TIME_WAIT})


def next_state(state: TcpState, seen: Seen) -> TcpState | None:
    """The state after *seen*, or None when Figure 5 has no such arrow."""
    return TRANSITIONS.get((state, seen))


class FigureEdge(NamedTuple):
    """One arrow of the figure: its states, its label, and how it is drawn: ``event`` (a
    segment or a call), ``timer`` (the 2MSL timeout) or ``reset`` (§3.10.7's RSTs)."""

    before: TcpState
    after: TcpState
    label: str
    style: str


RESETS: Final = frozenset({Seen.SEND_RST, Seen.RECV_RST})


def _style(seen: Seen) -> str:
    if seen in RESETS:
        return "reset"
    return "timer" if seen is Seen.TIMEOUT else "event"


def figure_edges() -> list[FigureEdge]:
    """The diagram's arrows, merged by (from, to, style): what handouts draw."""
    labels: dict[tuple[TcpState, TcpState, str], list[str]] = {}
    for (state, seen), after in TRANSITIONS.items():
        if state is not after:
            labels.setdefault((state, after, _style(seen)), []).append(seen.value)
    return [FigureEdge(a, b, " / ".join(names), style)
            for (a, b, style), names in labels.items()]
