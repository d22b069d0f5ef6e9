"""The kernel as a second oracle: ``ss -tanu`` at each step of every demo scenario against
``capdissect sockets --at`` the same moment (issue #13).

The live tests run every scenario for real over 127.0.0.1 and ::1 (marker ``live``:
root, tcpdump, ss; iproute2 and nftables for the crossing scenarios).  At each step the
kernel's table and capdissect's must hold the same sockets in the same states, apart
from the documented exceptions (``capdissect.demo.oracle.EXCEPTIONS``, README "The
kernel as a second oracle"): only the spelling of states and addresses is normalised,
and Recv-Q/Send-Q are not compared.

``KNOWN`` below is the one list of differences capdissect has today because of the
tracker bugs being fixed on main.  Each case is an expected failure (strict): when the
fix lands and the kernel agrees, the case fails as XPASS and its entry must go.  Only a
``KnownDifference`` at a listed step counts as the expected failure; any other
difference fails the test outright.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from capdissect.commands import reports as analyze
from capdissect.demo.kernel import Row, Snapshot, parse_row, parse_ss, ss_filter
from capdissect.demo.oracle import (
    EXCEPTIONS,
    Comparison,
    Evidence,
    compare_capture,
    differences,
)
from capdissect.demo.scenarios import SCENARIOS
from capdissect.demo.steps import BASELINE_STEP
from capdissect.report.tables.sockets import tables_at
from capdissect.sources import open_capture
from tests.support.compare import capdissect_command, fixed_env
from tests.support.livecap import pytest_scenario

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
FAMILIES = [pytest.param(4, id="ipv4"), pytest.param(6, id="ipv6")]


class KnownDifference(Exception):
    """A step listed in KNOWN differs as recorded there (the expected failure)."""


# (scenario, step) -> why capdissect differs from the kernel there today.  Same in IPv4
# and IPv6.  Flip (delete) an entry when the tracker fix makes the kernel agree.
KNOWN: dict[tuple[str, str], str] = {
    # Empty: crossing SYNs and FINs and connected UDP now agree with the kernel.
}


# ----- ss's spelling -----------------------------------------------------------------
@pytest.mark.parametrize(("line", "row"), [
    ("tcp   LISTEN 0      1          127.0.0.1:30002      0.0.0.0:*",
     Row("tcp", "127.0.0.1:30002", "0.0.0.0:*", "LISTEN")),
    ("tcp   ESTAB  0      0          127.0.0.1:48496    127.0.0.1:30002",
     Row("tcp", "127.0.0.1:48496", "127.0.0.1:30002", "ESTABLISHED")),
    ("tcp   TIME-WAIT 0   0              [::1]:48496        [::1]:30002",
     Row("tcp6", "::1:48496", "::1:30002", "TIME_WAIT")),
    ("tcp   LISTEN 0      128            [::1]:30002         [::]:*",
     Row("tcp6", "::1:30002", ":::*", "LISTEN")),
    ("tcp   SYN-RECV 0    0          127.0.0.1:30002    127.0.0.1:48496",
     Row("tcp", "127.0.0.1:30002", "127.0.0.1:48496", "SYN_RECV")),
    ("tcp   FIN-WAIT-1 0  1          127.0.0.1:48496    127.0.0.1:30002",
     Row("tcp", "127.0.0.1:48496", "127.0.0.1:30002", "FIN_WAIT1")),
    ("tcp   FIN-WAIT-2 0  0          127.0.0.1:48496    127.0.0.1:30002",
     Row("tcp", "127.0.0.1:48496", "127.0.0.1:30002", "FIN_WAIT2")),
    ("tcp   CLOSE-WAIT 1  0          127.0.0.1:30002    127.0.0.1:48496",
     Row("tcp", "127.0.0.1:30002", "127.0.0.1:48496", "CLOSE_WAIT")),
    ("tcp   LAST-ACK 0    1          127.0.0.1:30002    127.0.0.1:48496",
     Row("tcp", "127.0.0.1:30002", "127.0.0.1:48496", "LAST_ACK")),
    ("tcp   UNCONN 0      0          127.0.0.1:30002    127.0.0.1:48496",
     Row("tcp", "127.0.0.1:30002", "127.0.0.1:48496", "CLOSE")),
    ("udp   UNCONN 0      0          127.0.0.1:10001      0.0.0.0:*",
     Row("udp", "127.0.0.1:10001", "0.0.0.0:*", "")),
    ("udp   ESTAB  0      0          127.0.0.1:10002    127.0.0.1:10001",
     Row("udp", "127.0.0.1:10002", "127.0.0.1:10001", "ESTABLISHED")),
    ("udp   UNCONN 0      0               [::]:50306         [::]:*",
     Row("udp6", ":::50306", ":::*", "")),
    ("udp   UNCONN 0      0                  *:37566            *:*",  # dual-stack IPv6
     Row("udp6", ":::37566", ":::*", "")),
])
def test_ss_rows_in_netstat_spelling(line: str, row: Row) -> None:
    assert parse_row(line).row == row


def test_ss_queues_are_kept_but_not_in_the_row() -> None:
    sock = parse_row("tcp   LISTEN 1      128    [::1]:42017  [::]:*")
    assert (sock.recv_q, sock.send_q) == (1, 128)
    assert sock.row == Row("tcp6", "::1:42017", ":::*", "LISTEN")


@pytest.mark.parametrize("line", [
    "tcp   BOGUS 0 0 127.0.0.1:1 127.0.0.1:2",
    "raw   UNCONN 0 0 127.0.0.1:1 0.0.0.0:*",
    "tcp   LISTEN 0 1",
])
def test_ss_lines_that_are_not_sockets_are_errors(line: str) -> None:
    with pytest.raises(ValueError):
        parse_row(line)


def test_ss_header_is_skipped_and_filter_names_every_port() -> None:
    text = ("Netid State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess",
            "udp   UNCONN 0      0      127.0.0.1:10001   0.0.0.0:*")
    assert [s.row.local for s in parse_ss(text)] == ["127.0.0.1:10001"]
    assert ss_filter([10002, 10001, 10001]) == (
        "( sport = :10001 or dport = :10001 or sport = :10002 or dport = :10002 )")


# ----- the comparison is strict: each exception needs its own evidence -------------
LISTENER = Row("tcp", "127.0.0.1:30002", "0.0.0.0:*", "LISTEN")
CLIENT = Row("tcp", "127.0.0.1:48496", "127.0.0.1:30002", "ESTABLISHED")
SERVER = Row("tcp", "127.0.0.1:30002", "127.0.0.1:48496", "ESTABLISHED")
B_CONNECTED = Row("udp", "127.0.0.1:10002", "127.0.0.1:10001", "ESTABLISHED")
B_UNCONNECTED = Row("udp", "127.0.0.1:10002", "0.0.0.0:*", "")
NOTHING = Evidence(frozenset(), frozenset(), frozenset())


def explained(kernel: Sequence[Row], wire: Sequence[Row], evidence: Evidence = NOTHING,
              baseline: Sequence[Row] = (), earlier: Sequence[Row] = ()) -> list[str | None]:
    return [d.exception for d in differences(kernel, wire, evidence, frozenset(baseline),
                                             frozenset(earlier))]


def test_equal_tables_have_no_difference_whatever_the_order() -> None:
    assert explained([LISTENER, CLIENT, SERVER], [SERVER, LISTENER, CLIENT]) == []


def test_a_different_state_is_unexplained() -> None:
    wrong = SERVER._replace(state="CLOSE_WAIT")
    assert explained([LISTENER, CLIENT, SERVER], [LISTENER, CLIENT, wrong]) == [None, None]


def test_a_socket_the_kernel_lacks_is_unexplained() -> None:
    invented = Row("tcp", "127.0.0.1:30002", "127.0.0.1:48496", "SYN_RECV")
    assert explained([], [invented]) == [None]


def test_a_listener_is_excused_only_before_its_first_syn() -> None:
    assert explained([LISTENER], []) == ["listener-before-syn"]
    syn = Evidence(frozenset({"127.0.0.1:30002"}), frozenset(), frozenset())
    assert explained([LISTENER], [], syn) == [None]


def test_a_udp_socket_is_excused_only_before_it_sends() -> None:
    assert explained([B_UNCONNECTED], []) == ["udp-silent"]
    sent = Evidence(frozenset(), frozenset({"127.0.0.1:10002"}), frozenset())
    assert explained([B_UNCONNECTED], [], sent) == [None]


def test_a_connected_udp_socket_is_excused_only_until_it_refuses_someone() -> None:
    sent = Evidence(frozenset(), frozenset({"127.0.0.1:10002"}), frozenset())
    assert explained([B_CONNECTED], [B_UNCONNECTED], sent) == ["udp-connect-unseen"] * 2
    refused = Evidence(frozenset(), sent.udp_from,
                       frozenset({("127.0.0.1:10002", "127.0.0.1:40000")}))
    assert explained([B_CONNECTED], [B_UNCONNECTED], refused) == [None, None]
    # capdissect showing it unconnected with another port is no excuse either
    other = B_UNCONNECTED._replace(local="127.0.0.1:10003")
    assert explained([B_CONNECTED], [other], sent) == [None, None]


def test_a_wildcard_bound_socket_pairs_only_with_the_same_port_peer_and_state() -> None:
    kernel = Row("udp", "0.0.0.0:54175", "0.0.0.0:*", "")
    sent = Evidence(frozenset(), frozenset({"127.0.0.1:54175"}), frozenset())
    wire = Row("udp", "127.0.0.1:54175", "0.0.0.0:*", "")
    assert explained([kernel], [wire], sent) == ["wildcard-bind"] * 2
    assert explained([kernel], [wire._replace(local="127.0.0.1:54176")], sent) == [None, None]


def test_a_silently_closed_socket_is_excused_only_if_the_kernel_had_it() -> None:
    assert explained([], [LISTENER], earlier=[LISTENER]) == ["closed-silently"]
    assert explained([], [LISTENER]) == [None]
    # a TCP connection does not vanish silently: its close is on the wire
    assert explained([], [SERVER], earlier=[SERVER]) == [None]


def test_an_older_socket_is_excused_only_as_it_was() -> None:
    old = Row("tcp", "127.0.0.1:41000", "127.0.0.1:30002", "TIME_WAIT")
    assert explained([old], [], baseline=[old]) == ["older"]
    assert explained([old._replace(state="FIN_WAIT2")], [], baseline=[old]) == [None]


def test_every_exception_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The kernel as a second oracle", 1)[1].split("\n## ", 1)[0]
    for name in EXCEPTIONS:
        assert f"`{name}`" in section


# ----- capdissect's side is what `sockets --at` prints --------------------------------
@pytest.mark.parametrize("name", ["tcp-basic", "udp-connected", "tcp-simultaneous-close"])
def test_tables_at_are_sockets_at(name: str) -> None:
    """The library's table at a time is the one ``sockets --at`` prints, at every packet
    time and between them."""
    path = CAPTURES / f"{name}.pcap"
    with open_capture(path) as cap:
        stamps = [raw.ts for raw in cap]
    times = sorted({*stamps, *(t + 1e-4 for t in stamps), stamps[0] - 1})
    for table in analyze.sockets_at(path, times):
        printed = [line.rstrip("\n") for line in analyze.sockets(path, at=f"{table.at!r}")]
        assert printed[1:] == list(table.lines), f"--at {table.at!r}"


def test_tables_at_keep_the_order_asked() -> None:
    path = CAPTURES / "tcp-basic.pcap"
    late, early = analyze.sockets_at(path, [2e9, 1.0])
    assert (late.at, early.at) == (2e9, 1.0)
    assert early.frame is None and early.rows == ()
    assert late.frame == 11
    assert tables_at(analyze.steps(path), []) == []


# ----- live: every scenario, both families --------------------------------------------
def check_against_kernel(name: str, comparisons: Sequence[Comparison], path: Path) -> None:
    where = f"capture kept at {path}"
    assert comparisons[0].snapshot.step == BASELINE_STEP
    assert len(comparisons) >= 3, where
    known: list[str] = []
    for c in comparisons:
        if not c.unexplained:
            continue
        detail = (f"{name}, step {c.snapshot.step!r} (--at {c.at}, after frame "
                  f"{c.table.frame}): kernel {c.kernel}, capdissect {c.wire}; "
                  f"differences {list(c.unexplained)}; {where}")
        assert (name, c.snapshot.step) in KNOWN, detail
        known.append(detail)
    # Every listed step was reached (a renamed step must not pass unnoticed).
    steps = {c.snapshot.step for c in comparisons}
    for scenario, step in KNOWN:
        assert scenario != name or step in steps, f"{name} has no step {step!r}"
    if known:
        raise KnownDifference("; ".join(known))


def _live_cases() -> list[object]:
    names_with_known = {scenario for scenario, _ in KNOWN}
    cases: list[object] = []
    for name in SCENARIOS:
        for family in (4, 6):
            marks = [pytest.mark.live]
            if name in names_with_known:
                reasons = [why for (scenario, _), why in KNOWN.items() if scenario == name]
                marks.append(pytest.mark.xfail(strict=True, raises=KnownDifference,
                                               reason="; ".join(reasons)))
            cases.append(pytest.param(name, family, marks=marks, id=f"{name}-ipv{family}"))
    return cases


@pytest.mark.parametrize(("name", "family"), _live_cases())
def test_kernel_agrees_with_sockets_at(name: str, family: int, tmp_path: Path) -> None:
    if shutil.which("ss") is None and shutil.which("ss", path="/usr/sbin:/sbin") is None:
        pytest.skip("ss (iproute2) is not installed")
    run = pytest_scenario(name, family, tmp_path)
    path = run.path
    assert run.kernel_problem is None
    comparisons = compare_capture(path, run.snapshots)
    # capdissect's side of every step is exactly what `sockets --at` prints
    for c in comparisons:
        printed = [line.rstrip("\n") for line in analyze.sockets(path, at=c.at)]
        assert printed[1:] == list(c.table.lines), f"--at {c.at}"
    check_against_kernel(name, comparisons, path)


def two_free_udp_ports() -> tuple[int, int]:
    """P and P + 1, both free for UDP on 127.0.0.1 (``demo --port P`` uses both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port, port + 1
    pytest.skip("no two consecutive free UDP ports right now")


@pytest.mark.live
def test_demo_prints_the_kernel_beside_capdissect_and_confirms_connected_udp() -> None:
    if os.geteuid() != 0 or shutil.which("tcpdump") is None or shutil.which("ss") is None:
        pytest.skip("running the demo for real needs root, tcpdump and ss")
    ports = two_free_udp_ports()
    proc = subprocess.run([*capdissect_command(), "demo", "udp-connected", "--port",
                           str(ports[0])], capture_output=True, text=True, env=fixed_env(),
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split("-- the kernel's own table (ss) beside capdissect's", 1)[1]
    assert out.count("  kernel (ss -tanu):") == 4
    assert out.count("  capdissect, from the wire (capdissect sockets ") == 4
    a, b = (f"127.0.0.1:{p}" for p in ports)
    assert f"B's socket {b} is connect()ed to A, {a} (ESTAB in ss)" in out
    assert "(a UDP socket that has sent nothing yet" in out


def test_snapshot_round_trips_through_json() -> None:
    text = ("Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port",
            "udp   ESTAB 0      0      127.0.0.1:10002 127.0.0.1:10001")
    snap = Snapshot("B connected", 1.5, 1.6, ("ss", "-tanu"), text, parse_ss(text))
    assert Snapshot.from_json(snap.to_json()) == snap


# ----- end to end on a bundled capture, with a kernel table written by hand ---------------
def _snapshot_after_frame_8(server_state: str) -> Snapshot:
    """What ss printed (by hand, as ss spells it) between frames 8 (the client's FIN) and 9
    (the server's ACK of it) of captures/tcp-basic.pcap."""
    text = ("Netid State      Recv-Q Send-Q Local Address:Port  Peer Address:Port Process",
            "tcp   LISTEN     0      1          127.0.0.1:30002      0.0.0.0:*",
            "tcp   FIN-WAIT-1 0      1          127.0.0.1:59370    127.0.0.1:30002",
            f"tcp   {server_state} 1      0          127.0.0.1:30002    127.0.0.1:59370")
    return Snapshot("the client closed", 1795323927.320000, 1795323927.325000, ("ss",), text,
                    parse_ss(text))


def test_compare_capture_agrees_with_the_true_table() -> None:
    (c,) = compare_capture(CAPTURES / "tcp-basic.pcap", [_snapshot_after_frame_8("CLOSE-WAIT")])
    assert (c.at, c.table.frame, c.in_window, c.differences) == ("1795323927.320000", 8, 0, ())


def test_compare_capture_fails_on_a_wrong_state() -> None:
    (c,) = compare_capture(CAPTURES / "tcp-basic.pcap", [_snapshot_after_frame_8("LAST-ACK")])
    assert [(d.side, d.row.state, d.exception) for d in c.differences] == [
        ("kernel", "LAST_ACK", None), ("capdissect", "CLOSE_WAIT", None)]


def test_a_packet_during_ss_makes_the_table_after_it_a_candidate() -> None:
    """Frame 9 (the server's ACK of the FIN) was sent while ss ran: the kernel may have
    been read after it, and then matches capdissect's table after frame 9, not before."""
    base = _snapshot_after_frame_8("CLOSE-WAIT")
    text = tuple(line.replace("FIN-WAIT-1", "FIN-WAIT-2") for line in base.text)
    during = Snapshot(base.step, base.started, 1795323927.350000, ("ss",), text,
                      parse_ss(text))
    (c,) = compare_capture(CAPTURES / "tcp-basic.pcap", [during])
    assert (c.table.frame, c.in_window, c.differences) == (9, 1, ())
    # A table that matches no moment of the window is reported at its start.
    wrong = tuple(line.replace("CLOSE-WAIT", "LAST-ACK") for line in text)
    (c,) = compare_capture(CAPTURES / "tcp-basic.pcap",
                           [Snapshot(base.step, base.started, during.finished, ("ss",), wrong,
                                     parse_ss(wrong))])
    assert c.table.frame == 8 and len(c.unexplained) == 4
