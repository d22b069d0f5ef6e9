"""Issue #13's invariants of the explanation, on every capture the tests have.

For each TCP connection:
- every state change shown is an edge of the RFC 9293 table (tracking/states.py);
- each endpoint's changes, collapsed, spell its ``path``, and so do its JSON events
  (``states`` plus the ``through`` states of a segment that moved it twice);
- roles never change: an event said to come from the client comes from the client's
  address and port;
- the states ``sockets`` works from are the JSON events' states at the same frame.

Over the corpus, the extra corpus, the bundled lesson captures, mutants of the lesson
captures (a packet dropped, two neighbours swapped: lost and reordered segments), and
fresh captures of every demo scenario over IPv4 and IPv6 (live).
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdissect.commands import reports as analyze
from capdissect.demo import SCENARIOS
from capdissect.dissect.stack import decode
from capdissect.sources import open_capture
from capdissect.tracking.sockets import Facts, facts_stream
from capdissect.tracking.states import TRANSITIONS, TcpState
from capdissect.tracking.stream import Finished, Totals, finished
from capdissect.tracking.tcp import CLIENT, SERVER, Event, TcpConnection
from tests.support.livecap import pytest_scenario

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT / "captures").glob("*.pcap"))
CORPUS = sorted(p for folder in ("tests/corpus", "tests/corpus-extra")
                for p in (ROOT / folder).iterdir()
                if p.suffix in (".pcap", ".pcapng", ".cap"))
EDGES = frozenset((before, after) for (before, _seen), after in TRANSITIONS.items()
                  if before is not after)


def check_connection(conn: TcpConnection, events: list[Event],
                     senders: dict[int, tuple[bytes, int]], where: str) -> None:
    for index, role in enumerate((CLIENT, SERVER)):
        ep = conn.endpoint(role)
        spelled: list[TcpState] = []
        for event in events:
            for change in event.changes:
                if change.role != role:
                    continue
                assert (change.before, change.after) in EDGES, (
                    f"{where} frame {event.frame}: {role} {change.before} -> {change.after} "
                    "is no edge of RFC 9293's table")
                spelled.append(change.after)
            state = event.states[index]
            mine = [c for c in event.changes if c.role == role]
            if mine:
                assert mine[-1].after is state, f"{where} frame {event.frame}: {role}"
            if state is not None:
                spelled.append(state)
        collapsed = [s for i, s in enumerate(spelled) if i == 0 or spelled[i - 1] is not s]
        # The first state may come before any event shows one: a capture that starts
        # mid-connection enters at the state the wire implies (ESTABLISHED).
        assert collapsed in (ep.path, ep.path[1:]), (
            f"{where}: {role} events {collapsed} path {ep.path}")
    client = (conn.client.addr, conn.client.port)
    for event in events:
        assert (senders[event.frame] == client) == (event.sender == CLIENT), (
            f"{where} frame {event.frame}: the {event.sender}'s segment comes from "
            f"{senders[event.frame]}")


def check_json(path: Path) -> None:
    doc = json.loads("".join(analyze.timeline(path, "json")))
    for conn in doc["tcp"]:
        for role in (CLIENT, SERVER):
            spelled: list[str] = []
            for event in conn["events"]:
                spelled += event.get("through", {}).get(role, [])
                if event["states"][role] is not None:
                    spelled.append(event["states"][role])
            collapsed = [s for i, s in enumerate(spelled) if i == 0 or spelled[i - 1] != s]
            assert collapsed in (conn["path"][role], conn["path"][role][1:]), (
                f"{path} conn {conn['id']} {role}: events {collapsed}")


def check_sockets(path: Path) -> None:
    """The states the netstat tables are built from are the events' states."""
    events: dict[int, tuple[str | None, str | None]] = {}
    doc = json.loads("".join(analyze.timeline(path, "json")))
    for conn in doc["tcp"]:
        for event in conn["events"]:
            states = event["states"]
            events[event["frame"]] = (states["client"], states["server"])
    for facts in facts_stream(analyze.steps(path)):
        if not isinstance(facts, Facts) or facts.tcp is None:
            continue
        got = tuple(s.value if s is not None else None
                    for s in (facts.tcp.client_state, facts.tcp.server_state))
        assert got == events[facts.frame], f"{path} frame {facts.frame}"


def check(path: Path) -> int:
    senders = {}
    for frame, pkt in enumerate(map(decode, open_capture(path)), 1):
        if pkt.ip is not None and pkt.transport is not None and hasattr(pkt.transport,
                                                                          "src_port"):
            senders[frame] = (pkt.ip.src, pkt.transport.src_port)
    flows: list[Finished] = list(finished(analyze.steps(path), Totals(), events=True))
    checked = 0
    for item in flows:
        if isinstance(item.flow, TcpConnection):
            events = [segment.event for segment in item.events]  # type: ignore[union-attr]
            check_connection(item.flow, events, senders, str(path))
            checked += 1
    check_json(path)
    check_sockets(path)
    return checked


@pytest.mark.parametrize("path", CAPTURES + CORPUS, ids=lambda p: p.name)
def test_invariants_hold_on_every_capture(path: Path) -> None:
    check(path)


def pcap_records(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    header, offset, records = data[:24], 24, []
    while offset + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        records.append(data[offset:offset + 16 + caplen])
        offset += 16 + caplen
    return header, records


def mutants(path: Path) -> Iterator[tuple[str, list[bytes], bytes]]:
    header, records = pcap_records(path)
    for i in range(len(records)):
        yield f"drop {i + 1}", records[:i] + records[i + 1:], header
    for i in range(len(records) - 1):
        swapped = [*records[:i], records[i + 1], records[i], *records[i + 2:]]
        yield f"swap {i + 1},{i + 2}", swapped, header


@pytest.mark.parametrize("path", [p for p in CAPTURES if p.stem.startswith("tcp")],
                         ids=lambda p: p.name)
def test_invariants_hold_on_lost_and_reordered_segments(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "mutant.pcap"
    count = 0
    for name, records, header in mutants(path):
        out.write_bytes(header + b"".join(records))
        try:
            count += check(out)
        except AssertionError as exc:
            raise AssertionError(f"{path.name} with {name}: {exc}") from None
    assert count >= len(pcap_records(path)[1])  # each mutant still has its connection


@pytest.mark.live
@pytest.mark.parametrize(("name", "family"), list(itertools.product(SCENARIOS, (4, 6))))
def test_invariants_hold_on_fresh_demo_captures(name: str, family: int, tmp_path: Path) -> None:
    run = pytest_scenario(name, family, tmp_path)
    check(run.path)
