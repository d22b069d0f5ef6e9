"""Capture real loopback traffic with tcpdump, for the live tests, the sample captures and
the benchmark capture: ``capdissect.demo.tcpdump.TcpdumpCapture`` does the work (the demo
scenarios use it too); this module adds ``pytest_capture`` and ``pytest_scenario``, which
turn "cannot capture on this machine" into a skip with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from capdissect.demo.scenarios import ScenarioRun, free_ports, run_scenario
from capdissect.demo.tcpdump import TcpdumpCapture, capture_problem, count_pcap_records
from capdissect.errors import DemoUnavailable as CaptureUnavailable

__all__ = ["CaptureUnavailable", "TcpdumpCapture", "capture_problem", "count_pcap_records",
           "pytest_capture", "pytest_scenario"]


@contextmanager
def pytest_capture(path: Path, bpf_filter: str) -> Iterator[TcpdumpCapture]:
    """``TcpdumpCapture`` for tests: skips the test when this machine cannot capture."""
    import pytest  # only the test suite uses this wrapper

    cap = TcpdumpCapture(path, bpf_filter)
    try:
        cap.start()
    except CaptureUnavailable as exc:
        pytest.skip(str(exc))
    with cap:
        yield cap


def pytest_scenario(name: str, family: int, directory: Path) -> ScenarioRun:
    """The demo scenario *name* run for real over IPv*family* on ports free right now,
    captured into *directory*; skips the test when this machine cannot bind that
    loopback or run the scenario."""
    import pytest

    try:
        ports = free_ports(name, family)
    except OSError as exc:
        pytest.skip(f"cannot bind IPv{family} loopback here: {exc}")
    try:
        return run_scenario(name, directory / f"{name}-v{family}.pcap", family=family,
                            ports=ports)
    except CaptureUnavailable as exc:
        pytest.skip(str(exc))
