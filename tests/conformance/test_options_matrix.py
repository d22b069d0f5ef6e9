"""Every option set of SPEC 3.2 (and an EXPRESSION) against tcpdump 4.99.3, on the core
corpus and on fresh loopback captures: ``capdissect read FILE --plain OPTIONS`` must print
what ``tcpdump -r FILE OPTIONS`` prints for >= 99 % of the packet blocks of each option
set.  tests/support/matrix.py says how the ~1,800 pairs of runs stay fast; the tally per option
set is printed at the end of the run (conftest.pytest_terminal_summary).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from capdissect.demo import tcp_lesson, udp_exchange
from tests.support.livecap import pytest_capture
from tests.support.matrix import (
    MIN_SHARE,
    OPTION_SETS,
    RESULTS,
    JobResult,
    MatrixRuns,
    SetTally,
    corpus_jobs,
    file_jobs,
    set_id,
    split_packets,
    summary_lines,
    tally,
)

pytestmark = pytest.mark.tcpdump

LESSON_PORT = 30002  # the lessons' port, so that 'tcp and port 30002' has live packets
SETS = [pytest.param(options, id=set_id(options)) for options in OPTION_SETS]


@pytest.fixture(scope="session")
def corpus_matrix() -> Iterator[tuple[MatrixRuns, list[str]]]:
    jobs, left_out = corpus_jobs()
    runs = MatrixRuns(jobs)
    yield runs, left_out
    runs.close()


def lesson_port(host: str, kind: socket.SocketKind, wanted: int | None) -> int:
    """*wanted* if it is free on *host* now, else a port the kernel picks."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ([wanted] if wanted else []) + [0]:
        try:
            with socket.socket(family, kind) as probe:
                probe.bind((host, port))
                chosen: int = probe.getsockname()[1]
                return chosen
        except OSError:
            continue
    pytest.skip(f"cannot bind {host} on this machine")


@pytest.fixture(scope="session")
def live_matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixRuns]:
    """One capture of the TCP lesson and a UDP exchange over 127.0.0.1 and ::1."""
    plan = [
        (host, kind, lesson_port(host, kind, LESSON_PORT if kind == socket.SOCK_STREAM
                                 else None))
        for host in ("127.0.0.1", "::1")
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)
    ]
    ports = sorted({port for _host, _kind, port in plan})
    path = tmp_path_factory.mktemp("matrix") / "loopback-lessons.pcap"
    with pytest_capture(path, " or ".join(f"port {port}" for port in ports)) as cap:
        for host, kind, port in plan:
            if kind == socket.SOCK_STREAM:
                tcp_lesson(host, port)
            else:
                udp_exchange(host, port)
        count = cap.stop(expect_packets=2 * 11 + 2 * 2)
    assert count >= 2 * 10 + 2 * 2, f"tcpdump captured {count} packets: {cap.stderr_lines}"
    runs = MatrixRuns(file_jobs("live", [path]))
    yield runs
    runs.close()


def check(group: str, options: tuple[str, ...], results: list[JobResult]) -> None:
    assert results, f"no {group} file ran with {set_id(options)}"
    found = tally(results)
    RESULTS[group, set_id(options)] = found
    crashed = [f"{r.source}: {r.problem}" for r in results if r.problem]
    assert not crashed, "\n".join(crashed[:3])
    # Both tools fail or succeed together (e.g. an expression libpcap refuses for a link
    # type), with the same message.
    status = [
        f"{r.source}: tcpdump exit {r.tcpdump_status} ({r.tcpdump_error!r}), capdissect exit "
        f"{r.capdissect_status} ({r.capdissect_error!r})"
        for r in results
        if r.tcpdump_status != r.capdissect_status
        or (r.tcpdump_status and r.tcpdump_error.removeprefix("tcpdump: ")
            != r.capdissect_error.removeprefix("capdissect: "))
    ]  # fmt: skip
    assert not status, "\n".join(status[:5])
    detail = "\n\n".join(found.differing[:3])
    assert found.share >= MIN_SHARE, (
        f"{set_id(options)}: {found.same}/{found.total} = {found.share:.2%} identical, need "
        f"{MIN_SHARE:.0%}; {len(found.differing)} of {found.files} files differ. Worst "
        f"first:\n{detail}"
    )


@pytest.mark.parametrize("options", SETS)
def test_option_set_on_corpus(
    options: tuple[str, ...], corpus_matrix: tuple[MatrixRuns, list[str]]
) -> None:
    runs, left_out = corpus_matrix
    results = [r for (_source, opts), r in runs.results().items() if opts == options]
    if not results:
        pytest.skip("; ".join(left_out))
    check("corpus", options, results)


@pytest.mark.live
@pytest.mark.parametrize("options", SETS)
def test_option_set_on_loopback_capture(options: tuple[str, ...], live_matrix: MatrixRuns
                                        ) -> None:
    results = [r for (_source, opts), r in live_matrix.results().items() if opts == options]
    if not results:
        pytest.skip("option sets without -n need `unshare -n` to keep tcpdump off DNS")
    check("live", options, results)


def test_option_sets_cover_the_spec() -> None:
    """SPEC 3.2's list: each option alone, combinations, -c and filter expressions."""
    singles = {options[0] for options in OPTION_SETS if len(options) == 1}
    spec = {"-n", "-nn", "-v", "-vv", "-x", "-xx", "-X", "-XX", "-e", "-S", "-K", "-t",
            "-tt", "-ttt", "-tttt", "-ttttt"}
    assert spec <= singles
    assert () in OPTION_SETS and ("-c", "5") in OPTION_SETS
    assert sum(1 for options in OPTION_SETS if options and not options[-1].startswith("-")
               and not options[-1].isdigit()) >= 4  # filter expressions


def test_relative_timestamps_start_packet_blocks() -> None:
    text = (" 00:00:00.000000 IP (tos 0x0)\n    1.2.3.4.1 > 5.6.7.8.2: UDP\n"
            "\t0x0000:  4500\n-00:00:01.000000 IP 1.2.3.4.1 > 5.6.7.8.2: UDP\n")
    blocks = split_packets(text, ("-nn", "-ttt"))
    assert [block.count("\n") for block in blocks] == [3, 1]


def test_summary_is_printable() -> None:
    lines = summary_lines({("corpus", "-n"): SetTally(9, 10, 2, ("a: diff",))})
    assert any("9/10 (90.00%)" in line and " 1/2" in line for line in lines)
