"""Suite-wide hooks: the markers a test's folder implies, and the golden corpus and option
matrix tallies at the end of every run (``make test``).

tests/live/ opens real sockets and captures them: every test there is ``live``.  A ``live``
test needs root (or CAP_NET_RAW) and tcpdump, so it is also ``root`` and ``tcpdump``,
wherever it lives; the tool markers (``tcpdump``, ``tshark``, ``chromium``) are otherwise
set by the tests themselves, beside the skip that names what is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import matrix
from tests.support.golden import RESULTS, summary_lines

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(TESTS / "live"):
            item.add_marker(pytest.mark.live)
        if item.get_closest_marker("live") is not None:
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.tcpdump)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = summary_lines(RESULTS)
    if lines:
        terminalreporter.write_sep("=", "golden corpus: identical packet blocks per file")
        for line in lines:
            terminalreporter.write_line(line)
    lines = matrix.summary_lines(matrix.RESULTS)
    if lines:
        terminalreporter.write_sep("=", "option matrix: tcpdump -r vs capdissect read --plain")
        for line in lines:
            terminalreporter.write_line(line)
