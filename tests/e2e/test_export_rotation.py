"""``export --continuous``: rotated files (editcap -c) are one capture again.

A capture cut into pieces (the way ``tcpdump -C`` or ``-G`` rotates) is exported with
--continuous; its flows and events must be those of the whole file, and without it the
connections that span a cut come out as pieces.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capdissect.commands import reports as analyze

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[2]
EDITCAP = shutil.which("editcap")
FLOW_COLUMNS = ("id, proto, client, server, open, close, closer, packets, payload_client, "
                "payload_server, final_client, final_server, path_client, path_server, "
                "conn_state, history, completeness, udp_payload, start, duration")


def split(capture: Path, per_file: int, into: Path) -> list[Path]:
    """*capture* cut into files of *per_file* packets, renamed so that name order is not
    time order (the export must sort them by their first packet)."""
    into.mkdir()
    subprocess.run([EDITCAP, "-c", str(per_file), str(capture), str(into / "part.pcap")],
                   check=True, capture_output=True, timeout=60)
    parts = sorted(into.iterdir())
    renamed = []
    for i, part in enumerate(parts):
        target = into / f"rot-{len(parts) - i:03}.pcap"  # the last piece first by name
        part.rename(target)
        renamed.append(target)
    return renamed  # in time order; by name, the reverse


def export(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "capdissect", "export", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(EDITCAP is None, reason="editcap (tshark's tools) is not installed")
@pytest.mark.parametrize(("name", "per_file"), [
    ("captures/tcp-basic.pcap", 4),
    ("tests/corpus/zeek_tcp_timestamp.pcap", 100),
])
def test_continuous_is_the_unsplit_capture(tmp_path: Path, name: str, per_file: int) -> None:
    whole = ROOT / name
    parts = split(whole, per_file, tmp_path / "parts")
    assert len(parts) >= 3
    export(str(whole), "-o", str(tmp_path / "whole"))
    export(str(tmp_path / "parts"), "-o", str(tmp_path / "continuous"), "--continuous")
    export(str(tmp_path / "parts"), "-o", str(tmp_path / "pieces"))
    con = duckdb.connect()

    def query(out: str, sql: str) -> list[tuple[object, ...]]:
        for table in ("flows", "events", "packets", "files"):
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM "
                        f"read_parquet('{tmp_path / out / table}/*.parquet')")
        return con.execute(sql).fetchall()

    flows_sql = f"SELECT {FLOW_COLUMNS} FROM flows ORDER BY id"
    whole_flows = query("whole", flows_sql)
    assert query("continuous", flows_sql) == whole_flows
    # ... which is flows --json of the unsplit file
    doc = json.loads("".join(analyze.flows(whole, "json")))
    assert [f["id"] for f in doc["tcp"] + doc["udp"]] == sorted(r[0] for r in whole_flows)
    events_sql = ("SELECT flow_id, index, frame, ts, sender, flags, seq, ack, len, phase, "
                  "label, state_client, state_server FROM events ORDER BY flow_id, index")
    assert query("continuous", events_sql) == query("whole", events_sql)
    packets_sql = "SELECT frame, ts, ip_src, tcp_seq FROM packets ORDER BY frame"
    assert query("continuous", packets_sql) == query("whole", packets_sql)
    # The files table keeps each piece, in time order, with its first frame.
    pieces = query("continuous", "SELECT file, position, first_frame, packets FROM files "
                   "ORDER BY position")
    assert [Path(str(p[0])).name for p in pieces] == [p.name for p in parts]  # time order
    assert sum(int(str(p[3])) for p in pieces) == len(query("whole", packets_sql))
    # Without --continuous, a connection across a cut is counted in pieces.
    assert len(query("pieces", "SELECT * FROM flows")) > len(whole_flows)
