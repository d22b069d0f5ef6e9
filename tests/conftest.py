"""Suite-wide hooks: the golden corpus tally at the end of every run (``make test``)."""

from __future__ import annotations

import pytest

from tests.golden import RESULTS, summary_lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = summary_lines(RESULTS)
    if not lines:
        return
    terminalreporter.write_sep("=", "golden corpus: identical packet blocks per file")
    for line in lines:
        terminalreporter.write_line(line)
