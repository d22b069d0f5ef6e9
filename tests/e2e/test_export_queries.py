"""The README's export queries, run as written, on an export of the bundled captures.

Each ```sql block of the README's export section goes through ``capdissect sql`` and
its answer is checked against the JSON reports of the same captures.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from capdissect.commands import reports as analyze

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT / "captures").glob("*.pcap"))


def readme_queries() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Usage: `capdissect export`"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


QUERIES = readme_queries()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("queries") / "out"
    done = subprocess.run([sys.executable, "-m", "capdissect", "export", "captures", "-o",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def flows_json() -> dict[str, list[dict[str, Any]]]:
    return {f"captures/{p.name}": json.loads("".join(analyze.flows(p, "json")))["tcp"]
            for p in CAPTURES}


def run(out: Path, title: str) -> list[dict[str, Any]]:
    (query,) = [q for q in QUERIES if q.startswith(f"-- {title}")]
    done = subprocess.run([sys.executable, "-m", "capdissect", "sql", str(out), "--format",
                           "json", "--", query], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_readme_has_the_five_queries() -> None:
    assert len(QUERIES) == 5


def test_handshake_completion_per_file(out: Path, flows_json: dict[str, Any]) -> None:
    got = run(out, "Which students' captures complete the handshake?")
    want = [{"file": file, "connections": len(flows),
             "completed": sum(f["open"] in ("three-way", "simultaneous") for f in flows),
             "all_completed": all(f["open"] in ("three-way", "simultaneous") for f in flows)}
            for file, flows in sorted(flows_json.items()) if flows]
    assert got == want
    assert {r["file"] for r in got if not r["all_completed"]} == {"captures/tcp-refused.pcap"}


def test_close_distribution(out: Path, flows_json: dict[str, Any]) -> None:
    got = run(out, "How are closes distributed")
    want = Counter((f["close"], f["closer"]) for flows in flows_json.values() for f in flows)
    assert {(r["close"], r["closer"]): r["connections"] for r in got} == dict(want)
    assert {"normal", "half-close", "reset", "simultaneous"} <= {r["close"] for r in got}


def test_top_retransmitting_flows(out: Path, flows_json: dict[str, Any]) -> None:
    got = run(out, "The top retransmitting flows")
    want = sorted(((f["analysis"].get("retransmission", 0), file, f["id"])
                   for file, flows in flows_json.items() for f in flows
                   if f["analysis"].get("retransmission", 0) > 0),
                  key=lambda x: (-x[0], x[1], x[2]))
    assert [(r["retransmissions"], r["file"], r["id"]) for r in got] == want[:10]
    assert got


def test_time_wait_duration(out: Path, flows_json: dict[str, Any]) -> None:
    got = run(out, "How long do sockets stay in TIME_WAIT?")
    want = sorted((file, f[role] if f["final"][role] == "TIME_WAIT" else None)
                  for file, flows in flows_json.items() for f in flows
                  for role in ("client", "server") if f["final"][role] == "TIME_WAIT")
    assert sorted((r["file"], r["local_address"]) for r in got) == want
    for row in got:  # still there at the end: from its frame to the capture's last packet
        assert row["at_end"] and 0 <= row["seconds"] < 1


def test_packet_counts_reproduce_flows_json(out: Path, flows_json: dict[str, Any]) -> None:
    got = run(out, "flows --json's packet counts")
    want = [{"file": file, "id": f["id"], "flows_json": f["packets"], "counted": f["packets"]}
            for file, flows in sorted(flows_json.items()) for f in flows]
    assert got == want
