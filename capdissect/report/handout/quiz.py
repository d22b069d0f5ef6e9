"""Questions with answers, from the capture's own facts: the handout's Questions and
``capdissect quiz`` (JSON, or GIFT for Moodle and other learning platforms).

One generator for both, reading the same segment events the ladders and the timeline JSON
show, so an answer cannot disagree with the pictures.  Each question carries *checks*:
the facts of the timeline JSON it rests on (``{"flow": 1, "frame": 5, "field":
"states.server", "value": "ESTABLISHED"}``), which the tests look up there.  Kinds:

- ``state``: an endpoint's state after a packet;  ``next-seq``: the next sequence number;
- ``closer``, ``time-wait``, ``close-wait``, ``refused``, ``isn``, ``ack``, ``icmp``,
  ``handshake``: why something happened, in words (the handout's reasoning questions);
- ``flag``: what a flag means (multiple choice);  ``field``: a field blanked out;
- ``order``: put shuffled packets in capture order;  ``count``: how many.

*seed* picks which packets and fields are asked about and shuffles choices and orders;
the same seed gives the same quiz.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from typing import Final, NamedTuple

from capdissect._version import __version__
from capdissect.addresses import endpoint
from capdissect.report.handout.explain import FLAG_MEANINGS
from capdissect.tracking.eventlog import Segment
from capdissect.tracking.states import TcpState
from capdissect.tracking.stream import Finished
from capdissect.tracking.tcp import CLIENT, SERVER, Event, TcpConnection
from capdissect.tracking.udp import Datagram, UdpConversation, Unreachable

MOD: Final = 1 << 32
FLOWS_ASKED: Final = 3  # questions about the first three flows: a lesson, not a census
# The kinds a handout lists in full; of the drills it shows the first of each kind.
REASONING: Final = frozenset({"state", "refused", "isn", "ack", "closer", "time-wait",
                              "close-wait", "handshake", "icmp"})
Check = dict[str, object]


class Question(NamedTuple):
    text: str
    answer: str  # the answer in words, as the handout prints it
    kind: str = "explain"
    key: str = ""  # the short answer a quiz grades ("TIME_WAIT", "13", "C A B D")
    choices: tuple[str, ...] = ()  # wrong options, for a multiple-choice question
    checks: tuple[Check, ...] = ()  # the timeline JSON facts the answer rests on


def questions(flows: Sequence[Finished], seed: int = 0) -> list[Question]:
    """Every question about the first flows; never the same question twice."""
    out: list[Question] = []
    shown = flows[:FLOWS_ASKED]
    for item in shown:
        rng = random.Random(f"{seed}:{item.flow.id}")
        if isinstance(item.flow, TcpConnection):
            found = _tcp(item.flow, [s.event for s in item.events if isinstance(s, Segment)],
                         rng)
            noun = "connection"
        elif isinstance(item.flow, UdpConversation):
            found = _udp(item.flow, list(item.events), rng)
            noun = "conversation"
        else:
            continue
        if len(shown) > 1:
            found = [q._replace(text=f"({noun} {item.flow.id}) {q.text}") for q in found]
        seen = {q.text for q in out}
        out += [q for q in found if q.text not in seen]
    return out


def handout_questions(flows: Sequence[Finished]) -> list[Question]:
    """The handout's selection: every reasoning question, the first drill of each kind."""
    drills: set[str] = set()
    out = []
    for q in questions(flows):
        if q.kind in REASONING or q.kind not in drills:
            drills.add(q.kind)
            out.append(q)
    return out


# ----- TCP ---------------------------------------------------------------------------------
def _check(flow: int, field: str, value: object, frame: int | None = None, op: str = "eq"
           ) -> Check:
    check: Check = {"flow": flow, "field": field, "value": value, "op": op}
    if frame is not None:
        check["frame"] = frame
    return check


def _describe(event: Event) -> str:
    seq = "" if event.seq is None else f", seq {event.seq}"
    ack = "" if event.ack is None else f", ack {event.ack}"
    return f"{event.sender} -> {_other(event.sender)}, flags [{event.flags}]{seq}{ack}, " \
           f"{event.length} data bytes"


def _other(role: str) -> str:
    return SERVER if role == CLIENT else CLIENT


def _next_seq(event: Event) -> int | None:
    if event.seq is None:
        return None
    return (event.seq + event.length + ("S" in event.flags) + ("F" in event.flags)) % MOD


def _tcp(conn: TcpConnection, events: list[Event], rng: random.Random) -> list[Question]:
    return [*_states(conn, events, rng), *_reasons(conn, events), *_ports(conn, events),
            *_next_seqs(conn, events, rng), *_flags(conn, events, rng),
            *_blanks(conn, events, rng), *_order(conn.id, events, rng)]


def _states(conn: TcpConnection, events: list[Event], rng: random.Random
            ) -> Iterator[Question]:
    for role in (SERVER, CLIENT):
        index = 0 if role == CLIENT else 1
        changed = [e for e in events if any(c.role == role for c in e.changes)]
        if not changed:
            continue
        picked = [changed[len(changed) // 2]]
        rest = [e for e in changed if e is not picked[0]]
        if rest:
            picked.append(rng.choice(rest))
        for event in sorted(picked, key=lambda e: e.frame):
            hops = [c for c in event.changes if c.role == role]
            after = event.states[index]
            before = hops[0].before.value if hops[0].before is not None else "unknown"
            state = after.value if after is not None else "no socket"
            via = " -> ".join([before, *(c.after.value for c in hops)])
            yield Question(
                f"What state is the {role} in after packet {event.frame}?",
                f"{state}. Packet {event.frame} is the {event.sender}'s {event.label} "
                f"({event.flags}); the {role} went {via}.", "state", state,
                checks=(_check(conn.id, f"states.{role}", None if after is None else state,
                        event.frame),))


def _reasons(conn: TcpConnection, events: list[Event]) -> Iterator[Question]:
    if conn.refused:
        rst = next((e for e in events if e.label == "RST"), None)
        if rst is not None:
            yield Question(
                f"Packet {rst.frame} is the server's RST. Which socket did it close?",
                "None: nothing listened on that port, so there was no server socket. The "
                "server's kernel answers the SYN with RST, and the client's connect() fails "
                "with ECONNREFUSED (\"connection refused\").", "refused", "none",
                checks=(_check(conn.id, "flags", "R", rst.frame, "contains"),
                        _check(conn.id, "from", SERVER, rst.frame)))
    data = next((e for e in events if e.length and e.sender == CLIENT), None)
    if data is not None and data.seq is not None:
        yield Question(
            f"Why does the client's data in packet {data.frame} start at sequence number "
            f"{data.seq}?",
            "Sequence numbers are counted from the client's ISN, the number in its SYN. The "
            "SYN itself took number 0, so the first data byte is number 1"
            + ("." if data.seq == 1 else f", and {data.seq - 1} bytes came before these."),
            "isn", str(data.seq), checks=(_check(conn.id, "seq", data.seq, data.frame),))
        end = (data.seq + data.length) % MOD
        ack = next((e for e in events if e.sender == SERVER and e.frame > data.frame
                    and e.ack == end), None)
        if ack is not None:
            yield Question(
                f"Which ack number acknowledges the {data.length} bytes of packet "
                f"{data.frame}, and in which packet?",
                f"ack {end}, in packet {ack.frame}: the bytes were numbered {data.seq} to "
                f"{end - 1}, and an ack names the next number expected.", "ack",
                f"{end} {ack.frame}",
                checks=(_check(conn.id, "next-seq", end, data.frame, "next-seq"),
                        _check(conn.id, "ack", end, ack.frame)))
    yield from _closing(conn, events)


def _closing(conn: TcpConnection, events: list[Event]) -> Iterator[Question]:
    fins = [e for e in events if "F" in e.flags]
    if fins and conn.closer is not None:
        if conn.closer == "both":
            second = next((e for e in fins if e.sender != fins[0].sender), fins[0])
            answer = (f"Both at once: the FINs of packets {fins[0].frame} and {second.frame} "
                      "crossed (neither acknowledges the other), a simultaneous close.")
            first = fins[0]
        else:
            first = next((e for e in fins if e.sender == conn.closer), fins[0])
            answer = (f"The {conn.closer}: its FIN in packet {first.frame} is the first FIN "
                      "of the connection.")
        yield Question("Who closed the connection first, and how can you tell?", answer,
                       "closer", conn.closer, checks=(
                           _check(conn.id, "closer", conn.closer),
                           _check(conn.id, "flags", "F", first.frame, "contains")))
    ending = [role for role in (CLIENT, SERVER)
              if conn.endpoint(role).path[-1:] == [TcpState.TIME_WAIT]]
    if ending:
        who = "Both" if len(ending) == 2 else f"The {ending[0]}"
        why = ("each sent the last ACK of the other's FIN" if len(ending) == 2
               else "it sent the last ACK (of the other side's FIN)")
        yield Question(
            "Which side ends in TIME_WAIT, and why does it wait there?",
            f"{who}, because {why}. It waits 2 MSL (60 s on Linux) in case that ACK is lost "
            "and the FIN comes again, and so that old segments of this connection die out "
            "before the ports are reused.", "time-wait", " ".join(ending),
            checks=tuple(_check(conn.id, f"final.{role}", "TIME_WAIT") for role in ending))
    for hint in conn.hints:
        role = CLIENT if hint.startswith("the client") else SERVER
        yield Question(f"Why does the {role} stay in CLOSE_WAIT?",
                       hint[0].upper() + hint[1:] + ".", "close-wait", "CLOSE_WAIT",
                       checks=(_check(conn.id, f"final.{role}", "CLOSE_WAIT"),))


def _ports(conn: TcpConnection, events: list[Event]) -> Iterator[Question]:
    syn = next((e for e in events if e.flags == "S" and e.sender == CLIENT), None)
    if syn is not None:
        port = conn.server.port
        yield Question(
            f"Packet {syn.frame} is the client's SYN. Which port does it go to, and who "
            "listens there?",
            f"{port}, the server's port: a server listens on a known port, the client's "
            f"kernel picks its own ({conn.client.port}) from the ephemeral range.", "field",
            str(port), checks=(_check(conn.id, "port-dst", port, syn.frame, "port-dst"),))


def _next_seqs(conn: TcpConnection, events: list[Event], rng: random.Random
               ) -> Iterator[Question]:
    using = [e for e in events if _next_seq(e) is not None
             and (e.length or "S" in e.flags or "F" in e.flags)]
    for event in sorted(rng.sample(using, min(3, len(using))), key=lambda e: e.frame):
        nxt = _next_seq(event)
        took = [f"{event.length} data bytes"] + [f"the {f} (one number)" for f, on in
                                                  (("SYN", "S" in event.flags),
                                                   ("FIN", "F" in event.flags)) if on]
        yield Question(
            f"Packet {event.frame} is {_describe(event)}. What sequence number comes next "
            f"from the {event.sender}, the ack the {_other(event.sender)} must send for it?",
            f"{nxt}: seq {event.seq} plus {' plus '.join(took)}.", "next-seq", str(nxt),
            checks=(_check(conn.id, "next-seq", nxt, event.frame, "next-seq"),))


def _flags(conn: TcpConnection, events: list[Event], rng: random.Random
           ) -> Iterator[Question]:
    meanings = {name: text for _, name, text in FLAG_MEANINGS}
    letters = {"S": "SYN", ".": "ACK", "P": "PSH", "F": "FIN", "R": "RST", "U": "URG",
               "E": "ECE", "W": "CWR"}
    asked: set[str] = set()
    for event in events:
        for letter in event.flags:
            name = letters.get(letter)
            if name is None or name in asked:
                continue
            asked.add(name)
            wrong = rng.sample([t for n, t in meanings.items() if n != name], 3)
            yield Question(
                f"Packet {event.frame} has flags [{event.flags}]. What does its {name} flag "
                f"('{letter}' in tcpdump's flags) mean?",
                f"{name}: {meanings[name]}.", "flag", meanings[name], tuple(wrong),
                (_check(conn.id, "flags", letter, event.frame, "contains"),))


_BLANKS: Final = (("seq", "sequence number"), ("ack", "acknowledgement number"),
                  ("len", "number of data bytes"))


def _blanks(conn: TcpConnection, events: list[Event], rng: random.Random
            ) -> Iterator[Question]:
    """A packet with one field blanked, which the packets before it let you work out."""
    candidates = []
    for i, event in enumerate(events[1:], 1):
        for field, name in _BLANKS:
            value = {"seq": event.seq, "ack": event.ack, "len": event.length}[field]
            if value is not None and (field != "len" or event.length):
                candidates.append((event, field, name, value, events[i - 1]))
    for event, field, name, value, before in sorted(
            rng.sample(candidates, min(4, len(candidates))), key=lambda c: (c[0].frame, c[1])):
        shown = {"seq": event.seq, "ack": event.ack}
        parts = [f"{k} {'____' if k == field else v}" for k, v in shown.items() if v is not None]
        length = "____" if field == "len" else str(event.length)
        yield Question(
            f"Packet {before.frame} was {_describe(before)}. Packet {event.frame} is "
            f"{event.sender} -> {_other(event.sender)}, flags [{event.flags}], "
            f"{', '.join(parts)}, {length} data bytes. What is the blanked {name}?",
            f"{value}.", "field", str(value), checks=(_check(conn.id, field, value, event.frame),))


def _order(flow: int, events: list[Event], rng: random.Random) -> Iterator[Question]:
    if len(events) < 3:
        return
    start = rng.randrange(0, len(events) - min(4, len(events)) + 1)
    picked = events[start : start + 4]
    shuffled = picked[:]
    while len(picked) > 1 and shuffled == picked:
        rng.shuffle(shuffled)
    letters = "ABCD"
    listed = "; ".join(f"{letters[i]}: {_describe(e)}" for i, e in enumerate(shuffled))
    key = " ".join(letters[shuffled.index(e)] for e in picked)
    yield Question(
        f"Put these packets in the order they crossed the wire: {listed}.",
        f"{key}: packets {', '.join(str(e.frame) for e in picked)}; each one's seq and ack "
        "follow from the packets before it.", "order", key,
        checks=tuple(c for e in shuffled for c in (
            _check(flow, "from", e.sender, e.frame), _check(flow, "flags", e.flags, e.frame),
            _check(flow, "seq", e.seq, e.frame), _check(flow, "ack", e.ack, e.frame),
            _check(flow, "order", picked.index(e), e.frame, "order"))))


# ----- UDP ---------------------------------------------------------------------------------
def _udp(conv: UdpConversation, items: list[object], rng: random.Random) -> list[Question]:
    out = []
    grams = [i for i in items if isinstance(i, Datagram)]
    if grams:
        first = grams[0]
        out.append(Question(
            f"How many packets were exchanged before the first datagram of {endpoint(conv.a)} "
            f"(packet {first.frame}) could be sent?",
            "None: UDP has no handshake. A datagram goes out as soon as the application calls "
            "sendto() (or send() on a connected socket), and no state is kept on the wire.",
            "handshake", "0", checks=(_check(conv.id, "first-frame", first.frame),)))
    for item in items:
        if isinstance(item, Unreachable):
            answered = (f"packet {item.quoted_frame}" if item.quoted_frame is not None
                        else "a datagram the capture does not hold")
            if item.connected_to is not None:
                why = (f"The socket there is connect()ed to {endpoint(item.connected_to)} (it "
                       "sent datagrams to that peer only), so its kernel refuses datagrams "
                       f"from {endpoint(conv.a)}.")
            else:
                why = f"No socket there accepts datagrams from {endpoint(conv.a)}."
            out.append(Question(
                f"Packet {item.frame} is an ICMP port unreachable. Which datagram does it "
                "answer, and what does the sender learn?",
                f"It answers {answered}: it quotes that datagram's addresses and ports. {why} "
                "A connected UDP sender learns it as ECONNREFUSED on its next call.", "icmp",
                str(item.quoted_frame),
                checks=(_check(conv.id, "answers_frame", item.quoted_frame, item.frame),)))
            if item.quoted_frame is not None:
                quoted = next((g for g in grams if g.frame == item.quoted_frame), None)
                if quoted is not None:
                    port = (conv.b if quoted.sender == "a" else conv.a)[1]
                    out.append(Question(
                        f"Packet {item.frame} is an ICMP error: what are its type and code, "
                        "and which port does it say is unreachable?",
                        f"Type 3 (destination unreachable), code 3 (port unreachable), for "
                        f"port {port}, the destination of the datagram it quotes.", "icmp",
                        f"3 3 {port}", checks=(
                            _check(conv.id, "icmp", "port unreachable", item.frame),
                            _check(conv.id, "port-dst", port, quoted.frame, "port-dst"))))
                    delay = round((item.ts - quoted.ts) * 1e6)
                    out.append(Question(
                        f"How many microseconds after the datagram it answers (packet "
                        f"{quoted.frame}) was the ICMP error (packet {item.frame}) captured?",
                        f"{delay} µs: the refusing host answers at once, from its kernel; no "
                        "application is involved.", "count", str(delay), checks=(
                            _check(conv.id, "delay-us", delay, item.frame, "delay-us"),
                            _check(conv.id, "answers_frame", quoted.frame, item.frame))))
            break
    names = {"a": endpoint(conv.a), "b": endpoint(conv.b)}
    for gram in grams[:4]:
        out.append(Question(
            f"Packet {gram.frame} is a datagram of {names['a']} <-> {names['b']}. How many "
            "bytes of data does it carry (UDP's length field minus its 8-byte header)?",
            f"{gram.length}.", "field", str(gram.length),
            checks=(_check(conv.id, "len", gram.length, gram.frame),)))
        sender = names[gram.sender]
        out.append(Question(
            f"Which endpoint sent packet {gram.frame}, {names['a']} or {names['b']}?",
            f"{sender}: the source address and port of packet {gram.frame}.", "field", sender,
            (names["b" if gram.sender == "a" else "a"],),
            (_check(conv.id, "from", gram.sender, gram.frame),)))
        port = (conv.b if gram.sender == "a" else conv.a)[1]
        out.append(Question(
            f"What is the destination port of packet {gram.frame}?", f"{port}.", "field",
            str(port), checks=(_check(conv.id, "port-dst", port, gram.frame, "port-dst"),)))
        port = (conv.a if gram.sender == "a" else conv.b)[1]
        out.append(Question(
            f"What is the source port of packet {gram.frame}?", f"{port}.", "field",
            str(port), checks=(_check(conv.id, "port-src", port, gram.frame, "port-src"),)))
    if grams:
        for role in ("a", "b"):
            mine = [g for g in grams if g.sender == role]
            out.append(Question(
                f"How many datagrams did {names[role]} send, and how many bytes of data in all?",
                f"{len(mine)} datagrams, {sum(g.length for g in mine)} bytes.", "count",
                f"{len(mine)} {sum(g.length for g in mine)}",
                checks=(_check(conv.id, "count", [len(mine), sum(g.length for g in mine)],
                               None, f"count-{role}"),)))
    if len(grams) >= 3:
        picked = grams[:4]
        shuffled = picked[:]
        while shuffled == picked:
            rng.shuffle(shuffled)
        listed = "; ".join(f"{'ABCD'[i]}: {names[g.sender]} sends {g.length} bytes"
                           for i, g in enumerate(shuffled))
        key = " ".join("ABCD"[shuffled.index(g)] for g in picked)
        out.append(Question(
            f"Put these datagrams in the order they crossed the wire: {listed}.",
            f"{key}: packets {', '.join(str(g.frame) for g in picked)}.", "order", key,
            checks=tuple(c for g in shuffled for c in (
                _check(conv.id, "from", g.sender, g.frame),
                _check(conv.id, "len", g.length, g.frame),
                _check(conv.id, "order", picked.index(g), g.frame, "order")))))
    return out


# ----- quiz formats ------------------------------------------------------------------------
def quiz_json(name: str, seed: int, asked: Sequence[Question]) -> str:
    """The quiz as one JSON document: each question with its answer, choices and checks."""
    return json.dumps({
        "capdissect": __version__, "file": name, "seed": seed,
        "questions": [{"id": i, "kind": q.kind, "text": q.text, "answer": q.key,
                       "explanation": q.answer, "choices": [q.key, *q.choices] if q.choices
                       else None, "checks": list(q.checks)}
                      for i, q in enumerate(asked, 1)]}, indent=1) + "\n"


_GIFT_SPECIAL: Final = str.maketrans({c: "\\" + c for c in "~=#{}:\\"} | {"\n": " ", "\r": " "})


def gift(text: str) -> str:
    """*text* as GIFT literal text: its markup characters escaped, on one line."""
    return text.translate(_GIFT_SPECIAL)


def quiz_gift(name: str, seed: int, asked: Sequence[Question]) -> str:
    """The quiz in GIFT, the text format Moodle imports: numeric answers as ``{#n}``,
    choices as ``{=right ~wrong}``, the rest as short answers; the explanation as
    general feedback."""
    lines = [f"// capdissect {__version__} quiz of {gift(name)} (seed {seed})",
             f"$CATEGORY: capdissect/{gift(name)}", ""]
    for i, q in enumerate(asked, 1):
        feedback = f" ####{gift(q.answer)}"
        if q.choices:
            options = [q.key, *q.choices]
            random.Random(f"{seed}:{i}").shuffle(options)
            body = " ".join(("=" if o == q.key else "~") + gift(o) for o in options)
        elif q.key.isdigit():
            body = f"#{q.key}"
        else:
            body = "=" + gift(q.key)
        lines += [f"::q{i} {q.kind}::{gift(q.text)} {{{body}{feedback}}}", ""]
    return "\n".join(lines)
