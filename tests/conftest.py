"""Suite-wide hooks: the golden corpus and option matrix tallies at the end of every run
(``make test``)."""

from __future__ import annotations

import pytest

from tests.support import matrix
from tests.support.golden import RESULTS, summary_lines


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
