"""The tracker on real lesson scenarios: what SPEC §4 says each one must show.

Every scenario of capdissect.demo.scenarios is run for real (marker ``live``: root,
tcpdump, and for the two crossing scenarios iproute2 and nftables), over 127.0.0.1 and
::1; its capture first passes the scenario's own shape check (raw headers, not the
tracker), then goes through the tracker and the §4 JSON, which must give exactly the
open, close, closer, final states and paths below.  The bundled captures in captures/
get the same checks without privileges, so the expectations run everywhere.

A failing live test leaves its capture in pytest's tmp_path (the path is in the message).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from capdissect.demo.netns import Namespace, list_namespaces, namespace_problem, tool
from capdissect.demo.scenarios import SCENARIOS, Ports, free_ports, verify_capture
from capdissect.dissect.stack import decode
from capdissect.errors import ScenarioError
from capdissect.report.json.flow import tcp_json, udp_json
from capdissect.sources import open_capture
from capdissect.tracking.tcp import TcpConnection
from capdissect.tracking.tracker import Tracker
from tests.support.livecap import pytest_scenario

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
FAMILIES = [pytest.param(4, id="ipv4"), pytest.param(6, id="ipv6")]

LESSON_CLIENT = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
LESSON_SERVER = ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
ACTIVE_SERVER = ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                 "TIME_WAIT"]
PASSIVE_CLIENT = ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
CROSSED_OPEN = ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"]


class TcpExpect(NamedTuple):
    open: str
    close: str
    closer: str | None
    final: tuple[str, str | None]  # client, server (None: no socket)
    path: tuple[list[str], list[str]]
    conn_state: str  # Zeek's
    payload: tuple[int, int]
    # Retransmissions Wireshark (tshark 4.0) flags on the same captures: the FINs or SYNs
    # the namespace dropped were sent again.  Includes the SYN-ACKs of a simultaneous
    # open, which reuse the SYN's sequence number.
    retransmissions: int = 0


TCP_EXPECT: dict[str, TcpExpect] = {
    "tcp-basic": TcpExpect("three-way", "normal", "client", ("TIME_WAIT", "CLOSED"),
                           (LESSON_CLIENT, LESSON_SERVER), "SF", (11, 11)),
    "tcp-server-closes-first": TcpExpect(
        "three-way", "normal", "server", ("CLOSED", "TIME_WAIT"),
        (PASSIVE_CLIENT, ACTIVE_SERVER), "SF", (11, 11)),
    "tcp-half-close": TcpExpect("three-way", "half-close", "client", ("TIME_WAIT", "CLOSED"),
                                (LESSON_CLIENT, LESSON_SERVER), "SF", (11, 11)),
    "tcp-reset": TcpExpect(
        "three-way", "reset", "client", ("CLOSED", "CLOSED"),
        (["SYN_SENT", "ESTABLISHED", "CLOSED"], ["LISTEN", "SYN_RECEIVED", "ESTABLISHED",
                                                 "CLOSED"]), "RSTO", (11, 11)),
    # SPEC §4: nothing listened, so no server socket existed: nothing to close.
    "tcp-refused": TcpExpect("refused", "none", None, ("CLOSED", None),
                             (["SYN_SENT", "CLOSED"], []), "REJ", (0, 0)),
    "tcp-simultaneous-close": TcpExpect(
        "three-way", "simultaneous", "both", ("TIME_WAIT", "TIME_WAIT"),
        (["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "CLOSING", "TIME_WAIT"],
         ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "CLOSING", "TIME_WAIT"]),
        "SF", (11, 11), retransmissions=2),
    # The lower port (the client, SPEC §4) closes first after the crossed open.
    "tcp-simultaneous-open": TcpExpect(
        "simultaneous", "normal", "client", ("TIME_WAIT", "CLOSED"),
        ([*CROSSED_OPEN, "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"],
         [*CROSSED_OPEN, "CLOSE_WAIT", "LAST_ACK", "CLOSED"]), "SF", (11, 11),
        retransmissions=4),
}


class UdpExpect(NamedTuple):
    a_port: int | None  # the first sender's port, when the scenario fixes it (index in ports)
    b_port: int  # index in the scenario's ports
    datagrams: int
    conn_state: str
    icmp_unreachable: int
    answers_frame: int | None  # the frame the ICMP error quotes


UDP_EXPECT: dict[str, list[UdpExpect]] = {
    "udp-basic": [UdpExpect(None, 0, 2, "SF", 0, None)],
    # B (ports[1]) talks with A (ports[0]); the third party's datagram to B is refused.
    "udp-connected": [UdpExpect(1, 0, 2, "SF", 0, None), UdpExpect(None, 1, 1, "S0", 1, 3)],
    "udp-unreachable": [UdpExpect(None, 0, 1, "S0", 1, 1)],
}


def test_every_scenario_has_expectations() -> None:
    assert set(SCENARIOS) == set(TCP_EXPECT) | set(UDP_EXPECT)


# ----- tracking a capture ----------------------------------------------------------------
def track(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Tracker]:
    tracker = Tracker()
    with open_capture(path) as cap:
        for frame, raw in enumerate(cap, 1):
            tracker.feed(frame, decode(raw))
    flows = tracker.close()
    tcp = [tcp_json(f) for f in flows if isinstance(f, TcpConnection)]
    udp = [udp_json(f) for f in sorted((f for f in flows if not isinstance(f, TcpConnection)),
                                       key=lambda f: f.id)]
    return tcp, udp, tracker


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def address_of(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


def check_tracker(name: str, path: Path, ports: Ports, family: int) -> None:
    tcp, udp, tracker = track(path)
    host = "127.0.0.1" if family == 4 else "::1"
    where = f"capture kept at {path}"
    if name in TCP_EXPECT:
        want = TCP_EXPECT[name]
        assert len(tcp) == 1 and not udp, f"{len(tcp)} TCP and {len(udp)} UDP flows; {where}"
        (conn,) = tcp
        got = TcpExpect(
            conn["open"], conn["close"], conn["closer"],
            (conn["final"]["client"], conn["final"]["server"]),
            (conn["path"]["client"], conn["path"]["server"]), conn["conn_state"],
            (conn["payload"]["client"], conn["payload"]["server"]),
            conn["analysis"].get("retransmission", 0))
        assert got == want, f"{name}: tracker gave {got}, SPEC §4 says {want}; {where}"
        assert "anomalies" not in conn, f"{conn['anomalies']}; {where}"
        assert {address_of(conn["client"]), address_of(conn["server"])} == {host}
        # The server is on the lesson port; after a simultaneous open the client is the
        # lower port of the two (SPEC §4 roles).
        if name == "tcp-simultaneous-open":
            assert (port_of(conn["client"]), port_of(conn["server"])) == (min(ports), max(ports))
        else:
            assert port_of(conn["server"]) == ports[0], where
        assert len(conn["events"]) == conn["packets"]
        return
    wants = UDP_EXPECT[name]
    assert not tcp and len(udp) == len(wants), f"{len(tcp)} TCP, {len(udp)} UDP flows; {where}"
    for conv, expect in zip(udp, wants, strict=True):
        assert port_of(conv["b"]) == ports[expect.b_port], where
        if expect.a_port is not None:
            assert port_of(conv["a"]) == ports[expect.a_port], where
        seen = (conv["datagrams"], conv["conn_state"], conv["icmp_unreachable"])
        assert seen == (expect.datagrams, expect.conn_state, expect.icmp_unreachable), (
            f"{name}: tracker gave {seen}; {where}")
        answers = [e["answers_frame"] for e in conv["events"] if "icmp" in e]
        assert answers == ([expect.answers_frame] if expect.answers_frame else []), where
    assert tracker.icmp_unreachable == sum(w.icmp_unreachable for w in wants)
    assert tracker.udp.unmatched_unreachable == 0


# ----- the bundled captures (no privileges needed) ---------------------------------------
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_bundled_capture(name: str) -> None:
    """captures/NAME.pcap (IPv4, the lesson's ports) has its shape and tracks as SPEC §4."""
    path = CAPTURES / f"{name}.pcap"
    verify_capture(name, path)
    check_tracker(name, path, SCENARIOS[name].ports, 4)


@pytest.mark.parametrize(("name", "other"), [
    ("tcp-simultaneous-close", "tcp-basic"),
    ("tcp-simultaneous-open", "tcp-basic"),
    ("tcp-basic", "tcp-server-closes-first"),
    ("tcp-half-close", "tcp-basic"),
    ("tcp-reset", "tcp-basic"),
    ("tcp-refused", "tcp-reset"),
    ("udp-connected", "udp-basic"),
    ("udp-unreachable", "udp-basic"),
    ("udp-basic", "udp-unreachable"),
])
def test_shape_check_rejects_another_scenario(name: str, other: str) -> None:
    """Each shape check fails, with its reason, on a capture of a different scenario."""
    with pytest.raises(ScenarioError, match=name):
        verify_capture(name, CAPTURES / f"{other}.pcap")


# ----- live: run every scenario for real --------------------------------------------------
@pytest.mark.live
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_live_scenario(name: str, family: int, tmp_path: Path) -> None:
    run = pytest_scenario(name, family, tmp_path)
    assert run.packets >= SCENARIOS[name].min_packets
    check_tracker(name, run.path, run.ports, family)


def _our_namespaces() -> list[str]:
    # Only this process's: other test runs on the machine may have theirs open right now.
    return [n for n in list_namespaces() if n.startswith(f"capd-{os.getpid()}-")]


@pytest.mark.live
def test_namespace_and_its_rule_are_deleted_on_error() -> None:
    problem = namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    with pytest.raises(RuntimeError, match="scenario blew up"), Namespace("fin") as ns:
        assert ns.name in list_namespaces()
        tables = subprocess.run(ns.command([tool("nft") or "nft", "list", "tables"]),
                                capture_output=True, text=True, timeout=10, check=True)
        assert "inet capdissect" in tables.stdout
        main = subprocess.run([tool("nft") or "nft", "list", "tables"],
                              capture_output=True, text=True, timeout=10, check=False)
        assert "capdissect" not in main.stdout  # the main namespace's firewall is untouched
        raise RuntimeError("scenario blew up")
    assert ns.name not in list_namespaces()


@pytest.mark.live
def test_no_namespace_left_behind() -> None:
    """Runs after the live scenarios (pytest keeps file order): none left a namespace."""
    problem = namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    assert _our_namespaces() == []


def test_free_ports_are_distinct() -> None:
    try:
        ports = free_ports("udp-connected", 4)
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.1 here: {exc}")
    assert len(set(ports)) == 2
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", ports[0]))  # still free
