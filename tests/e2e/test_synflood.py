"""A SYN flood's shape, scaled down: every flow listed, the early retirements counted.

benchmarks/synflood.py makes the capture (distinct SYNs, never answered) and measures the
full size, a million flows (benchmarks/SYNFLOOD.md); here 120,000 flows, more than the
tracker keeps of unanswered SYNs at once (MAX_HALF_OPEN), go through the whole `flows`
command.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from capdissect.tracking.tcp import MAX_HALF_OPEN
from tests.support.compare import capdissect_command

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
FLOWS = 120_000


def synflood() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # synflood.py imports its neighbour bench.py
    try:
        spec = importlib.util.spec_from_file_location("synflood", BENCHMARKS / "synflood.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flood") / "synflood.pcap"
    synflood().write_flood(path, FLOWS)
    return path


def test_json_lists_every_flow_and_counts_the_evicted(flood: Path) -> None:
    run = subprocess.run([*capdissect_command(), "flows", str(flood), "--json"],
                         capture_output=True, timeout=300, check=True)
    doc = json.loads(run.stdout)
    assert len(doc["tcp"]) == FLOWS
    assert {flow["id"] for flow in doc["tcp"]} == set(range(1, FLOWS + 1))
    assert all(flow["open"] == "partial" and flow["conn_state"] == "S0" for flow in doc["tcp"])
    # The table holds MAX_HALF_OPEN unanswered SYNs; each SYN beyond that retires the oldest.
    assert doc["evicted"] == FLOWS - MAX_HALF_OPEN
    assert doc["packets"] == FLOWS


def test_table_says_how_many_were_retired_early(flood: Path) -> None:
    run = subprocess.run([*capdissect_command(), "flows", str(flood)],
                         capture_output=True, text=True, timeout=300, check=True)
    last = run.stdout.rstrip("\n").splitlines()[-1]
    assert last == (f"{FLOWS - MAX_HALF_OPEN:,} flows were retired early because too many were "
                    "open at once; each is reported with what was seen until then")
