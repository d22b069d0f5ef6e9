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
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from capdissect import cli
from capdissect.console import COLOUR, ColourChoice, parse_read
from capdissect.reader import ReadOptions
from tests.compare import capdissect_command, fixed_env

ROOT: Final = Path(__file__).parent.parent
CAPTURE: Final = str(ROOT / "captures" / "tcp-basic.pcap")

# Never on any read: the CLI framework and what only other commands use (a filter loads
# scapy's libpcap binding, never scapy's packet layers).
NOT_ON_READ: Final = ("typer", "click", "rich", "pydantic", "tabulate", "scapy.all",
                      "scapy.layers", "scapy.sendrecv",
                      "importlib.metadata", "capdissect.cli", "capdissect.clihelp",
                      "capdissect.api", "capdissect.analyze", "capdissect.live",
                      "capdissect.report.flows", "capdissect.report.timeline",
                      "capdissect.report.sockets")
# Not on tcpdump's text either: the annotations, the tracker, JSON, colour, the filter
# compiler, the printers of protocols the capture does not hold (MPTCP, ICMP).
NOT_ON_PLAIN: Final = (*NOT_ON_READ, "scapy", "capdissect.track", "capdissect.report.annotate",
                       "capdissect.report.packetjson", "capdissect.report.colour",
                       "capdissect.capture.filter", "capdissect.dissect.mptcp",
                       "capdissect.report.tcpdump_icmp", "capdissect.report.tcpdump_icmp6",
                       "capdissect.progress")


def imported(*args: str) -> set[str]:
    """Every module the console script imported running ``capdissect *args``."""
    done = subprocess.run([sys.executable, "-X", "importtime", *capdissect_command(), *args],
                          capture_output=True, text=True, timeout=120, env=fixed_env(),
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("\n") >= 11  # the 11 packets were printed
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def offending(modules: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == b or m.startswith(f"{b}.") for b in banned))


def test_read_plain_imports_only_what_it_prints() -> None:
    modules = imported("read", CAPTURE, "--plain", "-nn")
    assert "capdissect.report.tcpdump" in modules  # the listing is real
    assert offending(modules, NOT_ON_PLAIN) == []


@pytest.mark.parametrize("options", [("-n",), ("--json",), ("-nn", "--plain", "tcp"),
                                     ("--color", "always", "-n")], ids=" ".join)
def test_other_reads_skip_the_cli_framework(options: tuple[str, ...]) -> None:
    assert offending(imported("read", CAPTURE, *options), NOT_ON_READ) == []


def test_importing_the_package_loads_no_api() -> None:
    code = ("import json, sys, capdissect, capdissect.console; "
            "print(json.dumps([m for m in sys.modules if m.startswith('capdissect')]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = json.loads(done.stdout)
    assert "capdissect.api" not in loaded and "capdissect.reader" not in loaded


def test_the_api_names_are_the_api() -> None:
    import capdissect
    import capdissect.capture.files
    import capdissect.track.tracker
    from capdissect import api

    # capture and track are subpackages too: importing them must not hide the functions.
    for name in ("read", "track", "capture", "Capture", "Tracked", "LiveCapture"):
        assert getattr(capdissect, name) is getattr(api, name)
    assert set(capdissect.__all__) <= set(dir(capdissect))


# ----- the parse --------------------------------------------------------------------------
def typer_parse(args: list[str]) -> tuple[str, ReadOptions, ColourChoice | None] | None:
    """What typer's ``read`` would run with, or None if typer answers otherwise."""
    seen: list[tuple[str, ReadOptions, ColourChoice | None]] = []
    token = COLOUR.set(ColourChoice.auto)

    def record(path: str, options: ReadOptions) -> None:
        colour = COLOUR.get()
        seen.append((path, options, None if colour is ColourChoice.auto else colour))

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cli, "run_read", record)
            result = CliRunner().invoke(cli.app, ["read", *args])
    finally:
        COLOUR.reset(token)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return seen[0] if seen else None


def same_as_typer(args: list[str]) -> tuple[str, ReadOptions, ColourChoice | None] | None:
    ours = parse_read(args)
    if ours is not None:
        path, options, colour = ours
        # --color auto is the default: typer's record cannot tell it from none
        ours = path, options, None if colour is ColourChoice.auto else colour
        assert ours == typer_parse(args), args
    return ours


# Command lines people type: each must take the fast path (and mean what typer means).
COMMON: Final = [
    ["f.pcap", "--plain", "-nn"],
    ["f.pcap", "-n"],
    ["-nn", "--plain", "f.pcap", "tcp", "and", "port", "80"],
    ["f.pcap", "-nn", "-v", "-X", "-e", "-S", "-K", "-tttt"],
    ["f.pcap", "-nnvX", "-c", "5"],
    ["f.pcap", "-c5", "--json"],
    ["f.pcap", "-nc", "3", "udp"],
    ["-", "-nn", "--plain"],
    ["f.pcap", "--plain", "--", "-weird-expression"],
    ["f.pcap", "--color", "never", "-n"],
    ["f.pcap", "--color=always"],
    ["f.pcap", "--no-color", "-vv"],
    ["f.pcap", "-c", "1", "-c", "2"],
    ["f.pcap", "-c", "0"],
    ["f.pcap", "-ttttttt"],
    ["f.pcap", ""],
]
# Left to typer: help, errors and what the fast parse does not take on.
TO_TYPER: Final = [
    [], ["--plain"], ["f.pcap", "-h"], ["f.pcap", "--help"], ["f.pcap", "-Q"],
    ["f.pcap", "--bogus"], ["f.pcap", "-c"], ["f.pcap", "-c", "x"], ["f.pcap", "-c", "-1"],
    ["f.pcap", "-c", "1.5"], ["f.pcap", "--plain=1"], ["f.pcap", "--color", "blue"],
    ["f.pcap", "--color"], ["f.pcap", "--no-color", "--color", "always"],
    ["f.pcap", "-c", "99999999999999999999"],
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
                "-", "-n-"]


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=7))
def test_any_command_line_means_what_typer_means(args: list[str]) -> None:
    same_as_typer(args)


def test_a_real_read_through_both_paths_prints_the_same(tmp_path: Path) -> None:
    """End to end: the console script (fast path) and typer's app print the same."""
    args = ["read", CAPTURE, "-nn", "-v", "-c", "7"]
    fast = subprocess.run([*capdissect_command(), *args], capture_output=True, text=True,
                          timeout=120, env=fixed_env(), cwd=ROOT)
    code = (f"import sys; sys.argv = ['capdissect', *{args!r}]; "
            "from capdissect.cli import app; app()")
    slow = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=fixed_env(), cwd=ROOT)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout,
                                                           slow.stderr)
    assert fast.stdout.count("\n") > 7  # annotated: more lines than packets
