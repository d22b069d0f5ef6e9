"""Start-up: ``read`` runs without the typer app, and means what typer would have meant.

capdissect/console.py parses ``read``'s command line itself (typer, click and pydantic
cost more than a small capture's whole run).  Two things must hold, and neither depends
on timing:

- what a command imports: the installed console script, run with ``-X importtime``,
  lists every module it imported; ``read --plain`` must not import typer, rich,
  tabulate, scapy, the API, the tracker or the annotations;
- what a command line means: wherever console.parse_read accepts one, typer's own
  parse of it (in process, through the app) reaches the same ``read`` with the same
  file, options and colour choice; everything else goes to typer as before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from capdissect import cli
from capdissect.console import COLOUR, ColourChoice, parse_command
from tests.support.compare import capdissect_command, fixed_env

ROOT: Final = Path(__file__).parents[2]
CAPTURE: Final = str(ROOT / "captures" / "tcp-basic.pcap")

# Never on any read: the CLI framework and what only other commands use (a filter loads
# scapy's libpcap binding, never scapy's packet layers).
NOT_ON_READ: Final = ("typer", "click", "rich", "pydantic", "tabulate", "scapy.all",
                      "scapy.layers", "scapy.sendrecv",
                      "importlib.metadata", "capdissect.cli", "capdissect.clihelp",
                      "capdissect.api", "capdissect.commands.reports", "capdissect.commands.live",
                      "capdissect.report.tables.flows", "capdissect.report.timeline.ladder",
                      "capdissect.report.tables.sockets")
# Not on tcpdump's text either: the annotations, the tracker, JSON, colour, the filter
# compiler, the printers of protocols the capture does not hold (MPTCP, ICMP).
NOT_ON_PLAIN: Final = (*NOT_ON_READ, "scapy", "capdissect.tracking", "capdissect.report.annotate",
                       "capdissect.report.json.packet", "capdissect.report.colour",
                       "capdissect.sources.filter", "capdissect.dissect.mptcp",
                       "capdissect.report.tcpdump.icmp", "capdissect.report.tcpdump.icmp6",
                       "capdissect.commands.progress")


def imported(*args: str) -> set[str]:
    """Every module the console script imported running ``capdissect *args``."""
    done = subprocess.run([sys.executable, "-X", "importtime", *capdissect_command(), *args],
                          capture_output=True, text=True, timeout=120, env=fixed_env(),
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout  # it ran
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def offending(modules: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == b or m.startswith(f"{b}.") for b in banned))


def test_read_plain_imports_only_what_it_prints() -> None:
    modules = imported("read", CAPTURE, "--plain", "-nn")
    assert "capdissect.report.tcpdump.printer" in modules  # the listing is real
    assert offending(modules, NOT_ON_PLAIN) == []


@pytest.mark.parametrize("options", [("-n",), ("--json",), ("-nn", "--plain", "tcp"),
                                     ("--color", "always", "-n")], ids=" ".join)
def test_other_reads_skip_the_cli_framework(options: tuple[str, ...]) -> None:
    assert offending(imported("read", CAPTURE, *options), NOT_ON_READ) == []


# The reports' commands: no CLI framework either, nor what only read or live use.
NOT_ON_REPORTS: Final = ("typer", "click", "rich", "pydantic", "scapy", "capdissect.cli",
                         "capdissect.clihelp", "capdissect.api", "capdissect.commands.live",
                         "capdissect.report.json.packet")


@pytest.mark.parametrize("command", [("flows",), ("flows", "--json"), ("timeline",),
                                     ("sockets", "--every")], ids=" ".join)
def test_reports_skip_the_cli_framework(command: tuple[str, ...]) -> None:
    # The flows table is drawn in tabulate's layout without it (report/tables/simple.py)
    # when its cells are printable ASCII, as the lesson's are.
    assert offending(imported(command[0], CAPTURE, *command[1:]),
                     (*NOT_ON_REPORTS, "tabulate", "wcwidth")) == []


def test_importing_the_package_loads_no_api() -> None:
    code = ("import json, sys, capdissect, capdissect.console; "
            "print(json.dumps([m for m in sys.modules if m.startswith('capdissect')]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = json.loads(done.stdout)
    assert "capdissect.api" not in loaded and "capdissect.commands.read" not in loaded


def test_the_api_names_are_the_api() -> None:
    import capdissect
    import capdissect.sources.files
    import capdissect.tracking.tracker
    from capdissect import api

    # capture and track are subpackages too: importing them must not hide the functions.
    for name in ("read", "track", "capture", "Capture", "Tracked", "LiveCapture"):
        assert getattr(capdissect, name) is getattr(api, name)
    assert set(capdissect.__all__) <= set(dir(capdissect))


# ----- the parse --------------------------------------------------------------------------
Call = tuple[str, dict[str, Any], ColourChoice | None]
RUNS: Final = ("run_read", "run_flows", "run_timeline", "run_sockets")


def typer_parse(args: list[str]) -> Call | None:
    """What typer's app would run (console's function, its arguments, the colour), or None
    if typer answers otherwise (help, a usage error)."""
    seen: list[Call] = []
    token = COLOUR.set(ColourChoice.auto)

    def recorder(name: str) -> Callable[..., None]:
        def record(**kwargs: Any) -> None:
            colour = COLOUR.get()
            seen.append((name, kwargs, None if colour is ColourChoice.auto else colour))
        return record

    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in RUNS:
                patch.setattr(cli, name, recorder(name))
            result = CliRunner().invoke(cli.app, args)
    finally:
        COLOUR.reset(token)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return seen[0] if seen else None


def same_as_typer(args: list[str]) -> Call | None:
    parsed = parse_command(args)
    if parsed is None:
        return None
    run, kwargs, colour = parsed
    # --color auto is the default: typer's record cannot tell it from none
    ours = run.__name__, kwargs, None if colour is ColourChoice.auto else colour
    assert ours == typer_parse(args), args
    return ours


# Command lines people type: each must take the fast path (and mean what typer means).
COMMON: Final = [
    ["read", "f.pcap", "--plain", "-nn"],
    ["read", "f.pcap", "-n"],
    ["read", "-nn", "--plain", "f.pcap", "tcp", "and", "port", "80"],
    ["read", "f.pcap", "-nn", "-v", "-X", "-e", "-S", "-K", "-tttt"],
    ["read", "f.pcap", "-nnvX", "-c", "5"],
    ["read", "f.pcap", "-c5", "--json"],
    ["read", "f.pcap", "-nc", "3", "udp"],
    ["read", "-", "-nn", "--plain"],
    ["read", "f.pcap", "--plain", "--", "-weird-expression"],
    ["read", "f.pcap", "--color", "never", "-n"],
    ["read", "f.pcap", "--color=always"],
    ["read", "f.pcap", "--no-color", "-vv"],
    ["read", "f.pcap", "-c", "1", "-c", "2"],
    ["read", "f.pcap", "-c", "0"],
    ["read", "f.pcap", "-ttttttt"],
    ["read", "f.pcap", ""],
    ["flows", "f.pcap"],
    ["flows", "f.pcap", "--json"],
    ["flows", "--wide", "f.pcap", "--csv"],
    ["flows", "f.pcap", "--json", "-j", "2"],
    ["flows", "-j3", "f.pcap", "--jobs=4"],
    ["timeline", "f.pcap", "--json", "--jobs", "2"],
    ["timeline", "f.pcap", "--conn", "2", "--mermaid"],
    ["timeline", "f.pcap", "--conn=0", "--svg", "out.svg", "--calls", "f.strace"],
    ["timeline", "f.pcap", "--svg", "--json"],  # the value of --svg, whatever it looks like
    ["timeline", "--json", "--", "-f.pcap"],
    ["sockets", "f.pcap", "--every"],
    ["sockets", "f.pcap", "--after", "3"],
    ["sockets", "f.pcap", "--at", "-0.5"],
    ["sockets", "f.pcap", "--at="],
]
# Left to typer: help, errors and what the fast parse does not take on.
TO_TYPER: Final = [
    [], ["--version"], ["--help"], ["follow", "f.pcap", "--conn", "1"], ["read"],
    ["read", "--plain"], ["read", "f.pcap", "-h"], ["read", "f.pcap", "--help"],
    ["read", "f.pcap", "-Q"], ["read", "f.pcap", "--bogus"], ["read", "f.pcap", "-c"],
    ["read", "f.pcap", "-c", "x"], ["read", "f.pcap", "-c", "-1"],
    ["read", "f.pcap", "-c", "1.5"], ["read", "f.pcap", "--plain=1"],
    ["read", "f.pcap", "--color", "blue"], ["read", "f.pcap", "--color"],
    ["read", "f.pcap", "--no-color", "--color", "always"],
    ["read", "f.pcap", "-c", "99999999999999999999"],
    ["flows", "f.pcap", "--json", "--csv"], ["flows", "f.pcap", "g.pcap"], ["flows"],
    ["flows", "f.pcap", "-n"], ["timeline", "f.pcap", "--json", "--mermaid"],
    ["timeline", "f.pcap", "--conn", "-1"], ["timeline", "f.pcap", "--svg"],
    ["sockets", "f.pcap", "--after", "0"], ["sockets", "f.pcap", "--every", "--at", "1"],
]


@pytest.mark.parametrize("args", COMMON, ids=" ".join)
def test_common_command_lines_take_the_fast_path(args: list[str]) -> None:
    assert same_as_typer(args) is not None


@pytest.mark.parametrize("args", TO_TYPER, ids=" ".join)
def test_the_rest_goes_to_typer(args: list[str]) -> None:
    assert same_as_typer(args) is None


WORDS: Final = ["f.pcap", "-", "--", "", "tcp", "port 80", "-n", "-nn", "-v", "-X", "-x",
                "-e", "-S", "-K", "-t", "-ttttt", "-nvXxeSKt", "-c", "-c3", "-nc", "-cn",
                "0", "7", "007", "-1", " 5", "5 ", "1_0", "٣", "--plain", "--json",
                "--color", "--color=never", "--color=", "auto", "always", "never", "AUTO",
                "--no-color", "--no-color=1", "--plain=", "--pla", "-h", "--help", "-Q",
                "-n-", "--csv", "--wide", "--conn", "--conn=2", "--mermaid", "--svg",
                "--svg=o.svg", "--calls", "--at", "--at=0.1", "--after", "--every"]


@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["read", "flows", "timeline", "sockets"]),
       st.lists(st.sampled_from(WORDS), max_size=7))
def test_any_command_line_means_what_typer_means(command: str, args: list[str]) -> None:
    same_as_typer([command, *args])


@pytest.mark.parametrize("args", [["read", CAPTURE, "-nn", "-v", "-c", "7"],
                                  ["read", CAPTURE, "-n", "--color", "always"],
                                  ["flows", CAPTURE, "--wide"], ["timeline", CAPTURE],
                                  ["sockets", CAPTURE, "--every"], ["--version"]],
                         ids=lambda args: " ".join(w for w in args if w != CAPTURE))
def test_both_paths_print_the_same(args: list[str]) -> None:
    """End to end: the console script (fast path) and typer's app print the same."""
    fast = subprocess.run([*capdissect_command(), *args], capture_output=True, text=True,
                          timeout=120, env=fixed_env(), cwd=ROOT)
    code = (f"import sys; sys.argv = ['capdissect', *{args!r}]; "
            "from capdissect.cli import app; app()")
    slow = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=fixed_env(), cwd=ROOT)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout,
                                                           slow.stderr)
    assert fast.returncode == 0 and fast.stdout


def test_reading_without_a_filter_does_not_load_scapy() -> None:
    """scapy's import costs more than reading a small file: only a filter pays for it."""
    import sys

    sample = str(ROOT / "tests" / "corpus" / "pcpp_tls.pcap")
    code = (
        "import sys\n"
        "from capdissect.commands.read import ReadOptions, read_lines\n"
        f"lines = list(read_lines({sample!r}, ReadOptions(plain=True)))\n"
        "assert lines and 'scapy' not in sys.modules, sorted(sys.modules)\n"
        f"list(read_lines({sample!r}, "
        "ReadOptions(plain=True, expression='tcp')))\n"
        "assert 'scapy.libs.winpcapy' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
