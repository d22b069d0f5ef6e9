"""strace's text as socket-call records (pure: text in, records out), the way the
dissectors turn bytes into headers.  ``tracking/syscalls.py`` joins the records to the
flows of a capture.

``capdissect trace`` runs a program under ``strace -f -yy -ttt -T`` (sources/strace.py)
while capturing.  This module turns strace's lines into ``Call`` records, gives each
call the addresses of its socket, joins it to the TCP connection or UDP conversation it
touched, and places it among the packets by time:

- **Two moments.**  strace prints a line's timestamp when the call *enters*; ``-T``
  adds the time spent inside, so the return is ``start + duration``.  A call that
  blocks while another process runs is printed as ``NAME(ARGS <unfinished ...>`` and,
  later, ``<... NAME resumed>REST``, whose own timestamp is the return.
- **Addresses.**  ``-yy`` prints each socket descriptor with its addresses as they are
  when the call enters: ``3<TCP:[127.0.0.1:48496->127.0.0.1:30002]>``, or only the
  inode (``3<TCP:[41321]>``) before the socket is bound.  A ``connect()`` therefore
  shows its own socket unbound; the same socket (pid and descriptor, from ``socket()``
  or ``accept()`` to ``close()``) shows its addresses on later calls, and the call gets
  them from there.
- **Order.**  Capture timestamps and strace's are the same wall clock (CLOCK_REALTIME).
  ``after_frame`` is the last frame whose timestamp is at or before the return.  The
  tracer only ever makes its stamps *later* than the kernel's moment (the entry stamp is
  taken while the caller is stopped before the call runs, the return stamp after it
  ran), so "returned after frame N" holds whenever the kernel's order says it does.
  A call printed on one line has only its entry stamp; its return is bounded by the
  next line of the log (``_bounded``), which is why the waits (poll, select, epoll) are
  traced too.

Everything strace prints from the traced program (payload strings, paths) is untrusted
text: this module keeps only numbers, addresses and strace's own words, and the
renderers escape even those.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

Endpoint = tuple[bytes, int]  # as track.udp.Endpoint: packed address, port

# The calls traced: strace's -e trace= list (SPEC §3.10).  read/write and close are
# traced for every descriptor; only those on sockets are kept (below).
TRACED: Final = ("socket", "bind", "listen", "accept", "accept4", "connect", "send",
                 "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg",
                 "read", "write", "shutdown", "close", "setsockopt")
# Traced only for their stamps: a program waits for the network in these, so their lines
# bound the return of the whole-line call before them (``_bounded``); never shown.
WAITS: Final = ("poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait")
_SOCKET_ONLY: Final = frozenset({"read", "write", "close", "setsockopt", "send", "sendto",
                                 "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg",
                                 "recvmmsg", "shutdown", "listen", "bind", "accept",
                                 "accept4", "connect"})
_RECEIVES: Final = frozenset({"recv", "recvfrom", "recvmsg", "recvmmsg", "read"})
_SENDS: Final = frozenset({"send", "sendto", "sendmsg", "sendmmsg", "write"})

_LINE: Final = r"(\d+) +(\d+\.\d+) (.*)"
_START: Final = r"([a-z0-9_]+)\((.*)"
_RESUMED: Final = r"<\.\.\. ([a-z0-9_]+) resumed>(.*)"
_UNFINISHED: Final = " <unfinished ...>"
# The end of a finished call: ") = RET[<fd decoding>][ ERRNO (text)] <duration>".
_END: Final = (
    r"(.*)\) += (-?\d+|\?)(<.*>)?(?: (E[A-Z0-9]+) \([^()]*\))?(?: \([^()]*\))?"
    r" <(\d+\.\d+|unavailable)>$")
# A descriptor with -yy's decoding: 3<TCP:[...]>, 4<UDPv6:[...]>, 5<UNIX-STREAM:[...]>.
_FD: Final = r"(\d+)<([A-Z][A-Z0-9-]*?)(v6)?:\[(.*?)\]>"
# Inside args: a string literal (skipped: payload never matches an address) or a sockaddr.
_ARG_PARTS: Final = (
    r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?'
    r'|\{sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([0-9.]+)"\)\}'
    r'|\{sa_family=AF_INET6, sin6_port=htons\((\d+)\),[^{}]*?inet_pton\(AF_INET6, '
    r'"([0-9a-fA-F:.]+)"')
_LINGER: Final = r"\{l_onoff=(\d+), l_linger=(\d+)\}"
_SHUT: Final = r"SHUT_(RD|WR|RDWR)"
_OPTIONS: Final = ("SO_LINGER", "SO_RCVBUF", "SO_SNDBUF", "SO_REUSEADDR", "SO_REUSEPORT",
                   "TCP_NODELAY")
_PROTOS: Final = {"TCP": "tcp", "UDP": "udp"}


@functools.cache
def _re(pattern: str) -> re.Pattern[str]:
    """*pattern* compiled on first use: compiling them all cost every command that
    imports the reports about 10 ms at start-up, trace or not."""
    return re.compile(pattern)
# The longest strace is taken to spend decoding a call's arguments before it runs.
MAX_DECODE_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class Call:
    """One socket call: who made it, on which socket, when it started and returned."""

    pid: int
    name: str  # connect, accept4, recvfrom, ...
    start_ts: float
    ts: float  # the return (start_ts + duration); the last moment seen if it never returned
    ret: str  # "0", "12", "-1 ECONNREFUSED", "?" (never returned: the process ended)
    fd: int | None = None  # the socket the call is on (socket/accept: the one returned)
    proto: str | None = None  # "tcp" | "udp" (None: not an IP socket we know)
    local: Endpoint | None = None
    remote: Endpoint | None = None
    target: Endpoint | None = None  # the address argument (connect, bind, sendto)
    detail: str = ""  # "SHUT_WR", "SO_LINGER 0", "12 bytes": strace's own words
    linger_zero: bool = False  # setsockopt(SO_LINGER, {l_onoff=1, l_linger=0})
    returned: bool = True

    @property
    def failed(self) -> bool:
        return self.ret.startswith("-")

    def summary(self) -> str:
        """``connect(127.0.0.1:30002)``, ``shutdown(SHUT_WR)``, ``setsockopt(SO_LINGER 0)``."""
        inside = spell(self.target) if self.target is not None else ""
        if self.detail and self.name not in _RECEIVES | _SENDS:
            inside = ", ".join(x for x in (inside, self.detail) if x)
        return f"{self.name}({inside})"


def spell(ep: Endpoint) -> str:
    """An endpoint as the JSON of SPEC §4 writes it: 127.0.0.1:30002, [::1]:30002."""
    addr = ipaddress.ip_address(ep[0])
    return f"[{addr}]:{ep[1]}" if addr.version == 6 else f"{addr}:{ep[1]}"


def _packed(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text.strip("[]")).packed
    except ValueError:
        return None


def _endpoint(text: str) -> Endpoint | None:
    """``127.0.0.1:30002`` or ``[::1]:30002`` (as -yy prints them) as an Endpoint."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    packed = _packed(host)
    return None if packed is None else (packed, int(port))


def _socket_of(text: str) -> tuple[int, str | None, Endpoint | None, Endpoint | None] | None:
    """The -yy descriptor *text* starts with: (fd, proto, local, remote); None if not a socket."""
    match = _re(_FD).match(text)
    if match is None:
        return None
    fd, kind, _v6, inside = int(match[1]), match[2], match[3], match[4]
    proto = _PROTOS.get(kind)
    if proto is None:
        return (fd, None, None, None) if kind.startswith(("UNIX", "NETLINK")) else None
    local_text, arrow, remote_text = inside.partition("->")
    local = _endpoint(local_text)
    remote = _endpoint(remote_text) if arrow else None
    return fd, proto, local, remote


def _address_argument(args: str) -> Endpoint | None:
    """The first sockaddr among *args* that is not inside a string literal."""
    for match in _re(_ARG_PARTS).finditer(args):
        if match[1] is not None:
            packed = _packed(match[2])
            return None if packed is None else (packed, int(match[1]))
        if match[3] is not None:
            packed = _packed(match[4])
            return None if packed is None else (packed, int(match[3]))
    return None


class _Pending(NamedTuple):
    name: str
    start_ts: float
    args: str


def parse(lines: Iterable[str]) -> Iterator[Call]:
    """The socket calls among strace's lines (``-f -yy -ttt -T`` output), in return order.

    Lines that are not calls (signals, exits) and calls on other descriptors (files,
    pipes) are skipped; a call left unfinished when its process ended is given with
    ``returned=False`` at the last moment the log shows.
    """
    pending: dict[int, _Pending] = {}
    last_ts = 0.0
    held: Call | None = None  # a whole-line call, whose return the next line bounds
    for line in lines:
        match = _re(_LINE).fullmatch(line.rstrip("\n"))
        if match is None:
            continue
        pid, ts, rest = int(match[1]), float(match[2]), match[3]
        last_ts = max(last_ts, ts)
        if held is not None:
            yield _bounded(held, ts)
            held = None
        if rest.endswith(_UNFINISHED):
            start = _re(_START).match(rest)
            if start is not None and start[1] in TRACED:
                pending[pid] = _Pending(start[1], ts, start[2][: -len(_UNFINISHED)])
            continue
        resumed = _re(_RESUMED).match(rest)
        if resumed is not None:
            began = pending.pop(pid, None)
            if began is None or began.name != resumed[1]:
                # Its start came before the log did (strace -p attached to a process
                # blocked in it): only the return is known.
                began = _Pending(resumed[1], ts, "")
            call = _finish(pid, began.name, began.start_ts, ts, began.args + resumed[2],
                           duration_is_end=True)
        else:
            start = _re(_START).match(rest)
            if start is None or start[1] not in TRACED:
                continue
            held = _finish(pid, start[1], ts, ts, start[2], duration_is_end=False)
            if held is None:
                # No return on the line: strace was stopped while the call ran, and
                # could not finish the line (the log's last); it never returned.
                pending[pid] = _Pending(start[1], ts, start[2])
            continue
        if call is not None:
            yield call
    if held is not None:
        yield held
    for pid, began in sorted(pending.items()):
        call = _unfinished(pid, began, last_ts)
        if call is not None:
            yield call


def _bounded(call: Call, next_ts: float) -> Call:
    """*call* (a whole line) returning when strace saw it return, as near as the log says.

    A whole line's stamp is taken when strace stops the caller at the call's entry,
    *before* strace decodes the arguments; ``-yy``'s decoding of an unbound socket asks
    the kernel for a dump of every socket, which can take milliseconds, and only then
    does the call run.  ``-T`` is the time the call itself ran.  So ``start + T`` can be
    long before the real return (a connect() "returning" before its own SYN).  strace
    handles one event at a time and a whole line means no other event came between the
    entry and the return, so the next line's stamp, whatever it is, comes after the
    return: that is the return used, at most MAX_DECODE_S past ``start + T``.
    """
    return replace(call, ts=round(max(call.ts, min(next_ts, call.ts + MAX_DECODE_S)), 6))


def _finish(pid: int, name: str, start_ts: float, ts: float, text: str,
            duration_is_end: bool) -> Call | None:
    end = _re(_END).match(text)
    if end is None:
        return None
    args, ret, ret_decoded, errno = end[1], end[2], end[3], end[4]
    if not duration_is_end and end[5] != "unavailable":
        ts = start_ts + float(end[5])
    ret_text = f"{ret} {errno}" if errno else ret
    return _call(pid, name, start_ts, round(ts, 6), ret_text, args, ret + (ret_decoded or ""))


def _unfinished(pid: int, began: _Pending, last_ts: float) -> Call | None:
    call = _call(pid, began.name, began.start_ts, max(began.start_ts, last_ts), "?",
                 began.args, "")
    return None if call is None else replace(call, returned=False)


def _call(pid: int, name: str, start_ts: float, ts: float, ret: str, args: str,
          ret_full: str) -> Call | None:
    """A Call from its parts, or None when the call is not on an IP or unix socket."""
    # socket() and accept() return the socket (an accept() that never returned: the
    # listening one it waited on); the others take it as their first argument.
    made = name in ("socket", "accept", "accept4") and ret_full
    sock = _socket_of(ret_full) if made else _socket_of(args)
    if sock is None:
        if name in _SOCKET_ONLY or not ret.startswith("-"):
            return None
        return Call(pid, name, start_ts, ts, ret)  # socket() that failed
    fd, proto, local, remote = sock
    if proto is None:
        return None  # a unix or netlink socket: not on the wire
    target = _address_argument(args) if name in ("connect", "bind", "sendto", "sendmsg",
                                                 "accept", "accept4", "recvfrom",
                                                 "recvmsg") else None
    if name in ("accept", "accept4", "recvfrom", "recvmsg") and target is not None:
        remote = remote or target  # the peer the kernel wrote back
        target = None
    detail, linger_zero = _detail(name, args, ret)
    return Call(pid, name, start_ts, ts, ret, fd, proto, local, remote, target, detail,
                linger_zero)


def _detail(name: str, args: str, ret: str) -> tuple[str, bool]:
    if name == "shutdown":
        how = _re(_SHUT).search(args)
        return (how[0] if how else ""), False
    if name == "setsockopt":
        option = next((opt for opt in _OPTIONS if f", {opt}," in args), "")
        linger = _re(_LINGER).search(args) if option == "SO_LINGER" else None
        if linger is not None:
            on, seconds = int(linger[1]), int(linger[2])
            return (f"SO_LINGER {seconds}" if on else "SO_LINGER off"), bool(on and seconds == 0)
        return option, False
    if name in _RECEIVES | _SENDS and ret.isdigit():
        return f"{ret} byte{'s' if ret != '1' else ''}", False
    return "", False


def with_sockets(calls: Iterable[Call]) -> list[Call]:
    """*calls* (in return order) with each socket's addresses filled in from the others.

    A socket is one descriptor of one process from the call that made it (``socket()``,
    ``accept()``) to its ``close()``; every call on it gets the addresses any of its
    calls showed (the connected ones first).
    """
    calls = sorted(calls, key=lambda c: c.ts)  # stable: at one moment, strace's order
    session: dict[tuple[int, int], int] = {}  # (pid, fd) -> socket number, while open
    sockets: list[list[Call]] = []
    owner: list[int | None] = []
    for call in calls:
        if call.fd is None:
            owner.append(None)
            continue
        key = (call.pid, call.fd)
        if call.name in ("socket", "accept", "accept4") or key not in session:
            session[key] = len(sockets)
            sockets.append([])
        number = session[key]
        sockets[number].append(call)
        owner.append(number)
        if call.name == "close":
            del session[key]
    known: list[tuple[Endpoint | None, Endpoint | None]] = []
    for members in sockets:
        local = next((c.local for c in members if c.local and c.remote), None) or next(
            (c.local for c in members if c.local), None)
        remote = next((c.remote for c in members if c.remote), None)
        if remote is None:  # -yy shows no peer for some connected sockets: connect()'s
            remote = next((c.target for c in members if c.name == "connect" and c.target),
                          None)
        known.append((local, remote))
    filled = []
    for call, owned in zip(calls, owner, strict=True):
        if owned is not None:
            number = owned
            local, remote = known[number]
            udp_unconnected = call.proto == "udp" and call.remote is None and not any(
                c.name == "connect" for c in sockets[number])
            call = replace(call, local=call.local or local,
                           remote=call.remote or call.target if udp_unconnected
                           else call.remote or remote)
        filled.append(call)
    return filled
