"""The annotation lines ``read`` prints under each packet: what the tracker saw, in words.

Each line names one thing: the segment's phase and role (``handshake 1/3 SYN``), an
endpoint's state change (``client 127.0.0.1.48496: SYN_SENT -> ESTABLISHED``), a
crossing or anomaly, an analysis finding, UDP's lack of state, the datagram an ICMP
error answers, and (once, with -v) why checksums on loopback print as incorrect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from capdissect.dissect.checksum import pseudo_sum, verify
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import TcpHeader
from capdissect.dissect.udp import UdpHeader
from capdissect.report.tcpdump.names import Names
from capdissect.tracking.tcp import CLIENT, SERVER, Event, TcpConnection, Update, is_loopback
from capdissect.tracking.tracker import IcmpUpdate, Observation, Tracker, UdpUpdate
from capdissect.tracking.udp import Endpoint

# Annotation lines start with this, so they are easy to tell from tcpdump's lines (and to
# strip: `grep -v '^    | '`); the indent keeps them inside the packet's block.
ANNOTATION_PREFIX: Final = "    | "
LOOPBACK_NOTE: Final = (
    "checksum: 'incorrect' on loopback is expected: the kernel leaves checksums to the "
    "network card (offload), and loopback has none, so the data is not corrupt"
)
_HANDSHAKE_STEPS: Final = {"SYN": "1/3", "SYN-ACK": "2/3", "ACK": "3/3"}




class Annotator:
    """Feeds a Tracker and words what each packet did.

    *checksums* is tcpdump's -v level (0 with -K): the loopback checksum note is given
    once, at the first packet whose checksum verdict tcpdump prints at that level (TCP
    from -v, UDP over IPv6 from -v, UDP over IPv4 from -vv).  *names* spells endpoints as
    the packet line above does (names without -n); numeric without it.
    """

    def __init__(self, tracker: Tracker | None = None, checksums: int = 0,
                 names: Names | None = None,
                 conversation: Callable[[int], str] = str) -> None:
        self.tracker = tracker or Tracker(keep_events=False)
        self._checksum_level = checksums
        self.names = names or Names(numeric=True)
        # How a conversation's id is written (a -j worker marks it for the parent, which
        # alone knows the capture's numbering: commands/rounds.py).
        self.conversation = conversation
        self.noted = False  # the loopback checksum note was given (once, with -v)

    def annotate(self, frame: int, pkt: Packet) -> list[str]:
        seen = self.tracker.feed(frame, pkt)
        self.tracker.drain()  # read reports packets, not flows: let finished ones go
        return self.lines(seen, pkt)

    def lines(self, seen: Observation | None, pkt: Packet) -> list[str]:
        """The words of *pkt*, which the tracker saw as *seen*."""
        notes: list[str] = []
        if isinstance(seen, Update):
            notes += self._tcp_lines(seen, pkt)
            if isinstance(pkt.transport, TcpHeader):
                self._note_checksum(pkt, 6, pkt.transport.offset, notes)
        elif isinstance(seen, UdpUpdate):
            notes.append(_udp_line(seen, _payload_text(pkt), self.conversation))
            udp = pkt.transport
            ipv4 = pkt.ip is not None and len(pkt.ip.src) == 4
            if (isinstance(udp, UdpHeader) and udp.checksum
                    and self._checksum_level >= (2 if ipv4 else 1)):
                self._note_checksum(pkt, 17, udp.offset, notes)
        elif isinstance(seen, IcmpUpdate):
            notes.append(self._icmp_line(seen))
        elif pkt.fragment:
            notes.append("fragment: a later piece of a fragmented datagram")
        elif pkt.error is not None:
            notes.append(f"damaged: {pkt.error}")
        return notes

    def _note_checksum(self, pkt: Packet, proto: int, offset: int, notes: list[str]) -> None:
        loopback = pkt.ip is not None and is_loopback(pkt.ip.src)
        if (self._checksum_level and not self.noted and loopback
                and not checksum_ok(pkt, proto, offset)):
            notes.append(LOOPBACK_NOTE)
            self.noted = True

    def _tcp_name(self, ep: Endpoint) -> str:
        return f"{self.names.ip(ep[0])}.{self.names.tcp_port(ep[1])}"

    def _udp_name(self, ep: Endpoint) -> str:
        return f"{self.names.ip(ep[0])}.{self.names.udp_port(ep[1])}"

    def _tcp_lines(self, update: Update, pkt: Packet) -> list[str]:
        conn, event = update.connection, update.event
        line = _phase_line(conn, event)
        if event.length:
            line += _payload_text(pkt)
        lines = [line]
        for change in event.changes:
            ep = conn.endpoint(change.role)
            before = change.before.value if change.before is not None else "?"
            lines.append(f"{change.role} {self._tcp_name((ep.addr, ep.port))}: {before} -> "
                         f"{change.after.value}")
        lines += update.notes
        lines += update.corrections
        lines += [f"{finding.name.replace('_', ' ')}: {finding.why}"
                  for finding in event.analysis]
        return lines

    def _icmp_line(self, update: IcmpUpdate) -> str:
        if update.quoted is None:
            return f"icmp: {update.kind}"
        src, dst = update.quoted
        text = (f"icmp: {update.kind} for the UDP datagram {self._udp_name(src)} > "
                f"{self._udp_name(dst)}")
        if update.connected_to is not None:
            text += (f": that socket is connect()ed to {self._udp_name(update.connected_to)} "
                     "(it sent datagrams to that peer only), so the kernel refuses datagrams "
                     "from anyone else (or the socket was closed in between)")
        elif update.kind == "port unreachable":
            text += f": nothing listens on port {dst[1]}"
        if update.conversation is not None:
            text += f" (conversation {self.conversation(update.conversation.id)})"
        return text


MAX_SHOWN: Final = 40  # payload bytes quoted on a data line


def _payload_text(pkt: Packet) -> str:
    """The segment's payload as a quoted, escaped, shortened string: ``: "hello world"``."""
    start = pkt.payload_offset
    data = pkt.raw.data[start : start + min(pkt.payload_len, MAX_SHOWN)]
    if not data:
        return ""
    more = pkt.payload_len - len(data)
    tail = f" ... {more} more bytes" if more > 0 else ""
    return f': "{quote_bytes(data)}"{tail}'


def quote_bytes(data: bytes) -> str:
    """Printable ASCII as it is (quote and backslash escaped), ``\\n``, ``\\r``,
    ``\\t``, and every other byte as ``\\xNN``: no byte from a capture reaches a
    terminal or a document unescaped.  Python's ``unicode_escape`` spells the bytes
    read as Latin-1 so, all but the quote; a data line of 40 binary bytes takes 0.4 us
    so, against 1.4 us through a 256-entry ``str.translate`` table."""
    text = data.decode("latin-1")
    if text.isascii() and text.isprintable():  # a text protocol's line: two C scans
        return text.replace("\\", "\\\\").replace('"', '\\"')
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def _phase_line(conn: TcpConnection, event: Event) -> str:
    who = event.sender
    label = event.label
    if event.phase == "handshake":
        if conn.crossed_syns and label == "SYN":
            return (f"handshake SYN: the {who} asks to open a connection too: the SYNs "
                    "cross, a simultaneous open (a SYN takes one sequence number)")
        step = "" if conn.crossed_syns else f" {_HANDSHAKE_STEPS.get(label, '')}".rstrip()
        meaning = {
            "SYN": f"the {who} asks to open a connection (a SYN takes one sequence number)",
            "SYN-ACK": (f"the {who} acknowledges the other SYN and sends its own"
                        if conn.crossed_syns else f"the {who} accepts and sends its own SYN"),
            "ACK": f"the {who} acknowledges the SYN: the connection is established",
        }[label]
        return f"handshake{step} {label}: {meaning}"
    if event.phase == "reset":
        if conn.refused and who == SERVER:
            return "reset: the server's kernel refuses the connection with RST"
        return f"reset: the {who} aborts the connection with RST"
    if label == "FIN":
        extra = f" after {event.length} bytes of data" if event.length else ""
        return (f"teardown FIN: the {who} has no more data to send{extra} "
                "(a FIN takes one sequence number)")
    if label == "data":
        return f"data: {event.length} bytes from the {who}"
    other = SERVER if who == CLIENT else CLIENT
    if event.phase == "teardown" and any(c.role == other for c in event.changes):
        return f"teardown ACK: the {who} acknowledges the {other}'s FIN (ack {event.ack})"
    if event.phase == "teardown":
        return f"teardown ACK: the {who} acknowledges up to {event.ack}"
    return (f"ack: the {who} has received everything before byte {event.ack} "
            "(ack = the next byte it expects)")


def _udp_line(update: UdpUpdate, payload: str, conversation: Callable[[int], str]) -> str:
    conv, datagram = update.conversation, update.datagram
    text = (f"udp: {datagram.length} bytes{payload}; datagram {conv.datagrams} of "
            f"conversation {conversation(conv.id)}")
    if update.new:
        text += "; UDP has no handshake and no connection state"
    return text


def checksum_ok(pkt: Packet, proto: int, offset: int) -> bool:
    ip = pkt.ip
    if ip is None:
        return True
    data = pkt.raw.data
    length = pkt.payload_offset + pkt.payload_len - offset
    if offset + length > len(data):
        return True  # not all captured: nothing to say
    initial = pseudo_sum(ip.src, ip.dst, proto, length)
    return verify(data[offset : offset + length], initial) == 0

