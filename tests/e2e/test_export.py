"""``capdissect export`` and ``sql``: the Parquet tables hold what the JSON reports say.

The corpus and the bundled captures are exported once (the CLI, -j 2); each table is then
read back with DuckDB and compared, file by file and field by field, with what
``read --json``, ``flows --json``, ``timeline --json`` and ``sockets`` give for the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capdissect.commands import reports as analyze
from capdissect.commands.read import ReadOptions, read_lines
from tests.support.processes import left_behind, naming

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted(
    [p for p in (ROOT / "tests" / "corpus").iterdir() if p.suffix in (".pcap", ".pcapng")]
    + list((ROOT / "captures").glob("*.pcap")))
CAPDISSECT = [sys.executable, "-m", "capdissect"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CAPDISSECT, *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "out"
    cli("export", *map(str, CAPTURES), "-o", str(out), "-j", "2")
    return out


@pytest.fixture(scope="module")
def db(exported: Path) -> Iterator[Any]:
    from capdissect.export.sql import connect

    con = connect(str(exported))
    yield con
    con.close()


def rows(db: Any, sql: str, *params: object) -> list[dict[str, Any]]:
    result = db.execute(sql, list(params))
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


# ----- packets: read --json -----------------------------------------------------------
def expected_packet(obj: dict[str, Any]) -> dict[str, Any]:
    """The packets-table row of one ``read --json`` object (docs/export-schema.md)."""
    ip = obj["ip"] or {}
    kind = next((k for k in ("tcp", "udp", "icmp", "icmp6") if k in obj), None)
    t = obj.get(kind, {}) if kind else {}
    v4 = ip.get("version") == 4
    return {
        "frame": obj["frame"], "ts_ns": obj["ts_sec"] * 10**9 + obj["ts_nsec"],
        "ts_sec": obj["ts_sec"], "ts_nsec": obj["ts_nsec"],
        "captured_len": obj["captured_len"], "wire_len": obj["wire_len"],
        "interface": obj["interface"],
        "link_type": None if obj["link"] is None else obj["link"]["type"],
        "ip_version": ip.get("version"), "ip_src": ip.get("src"), "ip_dst": ip.get("dst"),
        "ip_proto": ip.get("proto") if v4 else None,
        "ip_next_header": None if v4 else ip.get("next_header"),
        "ip_ttl": ip.get("ttl") if v4 else ip.get("hop_limit"),
        "ip_id": ip.get("id"),
        "transport": kind,
        "src_port": t.get("src_port"), "dst_port": t.get("dst_port"),
        "tcp_seq": t.get("seq") if kind == "tcp" else None,
        "tcp_ack": t.get("ack") if kind == "tcp" else None,
        "tcp_flags": t.get("flags") if kind == "tcp" else None,
        "tcp_window": t.get("window"), "tcp_hdr_len": t.get("hdr_len"),
        "udp_len": t.get("len") if kind == "udp" else None,
        "icmp_type": t.get("type"), "icmp_code": t.get("code"),
        "payload_len": obj["payload_len"], "fragment": obj["fragment"],
        "partial": obj["partial"],
        "error": None if obj["error"] is None else obj["error"]["message"],
    }


def file_error(path: Path) -> str | None:
    try:
        for _ in analyze.decoded(path):
            pass
    except Exception as exc:  # the export must have recorded the same error
        return str(exc)
    return None


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_packets_table_is_read_json(db: Any, path: Path) -> None:
    got = rows(db, "SELECT *, epoch_ns(ts) AS ts_ns FROM packets WHERE file = ? "
               "ORDER BY frame", str(path))
    expected = []
    try:
        for line in read_lines(path, ReadOptions(json=True)):
            expected.append(expected_packet(json.loads(line)))
    except Exception:  # a damaged file: the packets before the damage
        pass
    assert len(got) == len(expected) > 0
    for row, want in zip(got, expected, strict=True):
        assert {k: row[k] for k in want} == want


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_files_table_records_each_file(db: Any, path: Path) -> None:
    (row,) = rows(db, "SELECT * FROM files WHERE file = ?", str(path))
    count = rows(db, "SELECT count(*) AS n FROM packets WHERE file = ?", str(path))[0]["n"]
    assert row["packets"] == count
    assert row["error"] == file_error(path)
    assert row["schema_version"] == 1
    assert row["size"] == path.stat().st_size


# ----- flows: flows --json; events: timeline --json -------------------------------------
def flow_object(row: dict[str, Any]) -> dict[str, Any]:
    """A flows-table row written back as its ``flows --json`` object."""
    extra = json.loads(row["extra"]) if row["extra"] is not None else {}
    if row["proto"] == "udp":
        return {"id": row["id"], "a": row["client"], "b": row["server"],
                "datagrams": row["packets"], "payload": row["udp_payload"],
                "icmp_unreachable": row["icmp_unreachable"], "conn_state": row["conn_state"],
                "start": row["start"], "duration": row["duration"], **extra}
    obj: dict[str, Any] = {"id": row["id"], "client": row["client"], "server": row["server"],
           "open": row["open"], "close": row["close"], "closer": row["closer"],
           "packets": row["packets"],
           "payload": {"client": row["payload_client"], "server": row["payload_server"]},
           "final": {"client": row["final_client"], "server": row["final_server"]},
           "path": {"client": row["path_client"], "server": row["path_server"]},
           "conn_state": row["conn_state"], "history": row["history"],
           "completeness": row["completeness"], "analysis": dict(row["analysis"]),
           "start": row["start"], "duration": row["duration"]}
    if row["anomalies"]:
        obj["anomalies"] = row["anomalies"]
    if row["hints"]:
        obj["hints"] = row["hints"]
    return {**obj, **extra}


def event_object(row: dict[str, Any]) -> dict[str, Any]:
    extra = json.loads(row["extra"]) if row["extra"] is not None else {}
    if row["icmp"] is not None:
        return {"frame": row["frame"], "ts": row["ts"], "icmp": row["icmp"],
                "answers_frame": row["answers_frame"], **extra}
    if row["proto"] == "udp":
        return {"frame": row["frame"], "ts": row["ts"], "from": row["sender"],
                "len": row["len"], **extra}
    obj = {"frame": row["frame"], "ts": row["ts"], "from": row["sender"],
           "flags": row["flags"], "seq": row["seq"], "ack": row["ack"], "len": row["len"],
           "phase": row["phase"], "label": row["label"],
           "states": {"client": row["state_client"], "server": row["state_server"]},
           "analysis": row["analysis"]}
    through = {role: row[f"through_{role}"] for role in ("client", "server")
               if row[f"through_{role}"] is not None}
    if through:
        obj["through"] = through
    return {**obj, **extra}


def report(pieces: Iterator[str]) -> dict[str, Any] | None:
    try:
        return json.loads("".join(pieces))  # type: ignore[no-any-return]
    except Exception:  # a damaged file: the JSON reports stop at the damage
        return None


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_flows_table_is_flows_json(db: Any, path: Path) -> None:
    doc = report(analyze.flows(path, "json"))
    if doc is None:
        pytest.skip("damaged file: flows --json has no complete document")
    got = [flow_object(r) for r in rows(db, "SELECT * FROM flows WHERE file = ? ORDER BY id",
                                        str(path))]
    assert got == sorted(doc["tcp"] + doc["udp"], key=lambda f: f["id"])


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_events_table_is_timeline_json(db: Any, path: Path) -> None:
    doc = report(analyze.timeline(path, "json"))
    if doc is None:
        pytest.skip("damaged file: timeline --json has no complete document")
    got: dict[int, list[dict[str, Any]]] = {}
    for r in rows(db, "SELECT * FROM events WHERE file = ? ORDER BY flow_id, index",
                  str(path)):
        got.setdefault(r["flow_id"], []).append(event_object(r))
    want = {f["id"]: f["events"] for f in doc["tcp"] + doc["udp"] if f["events"]}
    assert got == want


def netstat_rows(lines: list[str]) -> list[tuple[str, str, str, str]]:
    """(proto, local, foreign, state) of each socket line of a netstat table."""
    out = []
    for line in lines[3:]:  # the moment, netstat's title and header
        words = line.split()
        out.append((words[0], words[3], words[4], words[5] if len(words) > 5 else ""))
    return sorted(out)


@pytest.mark.parametrize("path", sorted((ROOT / "captures").glob("*.pcap")),
                         ids=lambda p: p.name)
def test_sockets_table_is_sockets_after_every_frame(db: Any, path: Path) -> None:
    """After each frame, the intervals that cover it are `sockets --after FRAME`'s table."""
    intervals = rows(db, "SELECT * FROM sockets WHERE file = ?", str(path))
    frames = rows(db, "SELECT count(*) AS n FROM packets WHERE file = ?", str(path))[0]["n"]
    assert intervals
    for frame in range(1, frames + 1):
        got = sorted((r["proto"], r["local_address"],
                      r["foreign_address"] or ("0.0.0.0:*" if "." in r["local_address"]
                                               else ":::*"), r["state"])
                     for r in intervals if r["since_frame"] <= frame
                     and (r["until_frame"] is None or r["until_frame"] > frame))
        assert got == netstat_rows(list(analyze.sockets(path, after=frame))), frame


def test_sockets_table_has_the_lesson_path(db: Any) -> None:
    """tcp-basic: the client goes ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, as the
    `sockets --every` snapshots show."""
    got = rows(db, "SELECT state FROM sockets WHERE file LIKE '%captures/tcp-basic.pcap' "
               "AND local_address = (SELECT client FROM flows WHERE file LIKE "
               "'%captures/tcp-basic.pcap') ORDER BY since_frame")
    assert [r["state"] for r in got] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
                                         "TIME_WAIT"]


# ----- damaged files, bad input, interrupted exports -----------------------------------
def test_damaged_file_exports_what_is_readable(tmp_path: Path) -> None:
    whole = ROOT / "captures" / "tcp-basic.pcap"
    cut = tmp_path / "cut.pcap"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) - 30])  # the last record loses its end
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all")
    out = tmp_path / "out"
    done = cli("export", str(cut), str(garbage), str(whole), "-o", str(out), check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "truncated capture file" in done.stderr and "not a pcap" in done.stderr
    from capdissect.export.sql import connect

    con = connect(str(out))
    files = {Path(r[0]).name: r[1:] for r in
             con.execute("SELECT file, packets, error IS NULL FROM files").fetchall()}
    assert files == {"cut.pcap": (10, False), "garbage.pcap": (0, False),
                     "tcp-basic.pcap": (11, True)}
    per_file = dict(con.execute("SELECT file, count(*) FROM packets GROUP BY file").fetchall())
    assert per_file == {str(cut): 10, str(whole): 11}
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    for args in (["export", str(tmp_path / "nothing*.pcap"), "-o", str(tmp_path / "o")],
                 ["export", str(ROOT / "captures"), "-o", str(tmp_path / "o"),
                  "--tables", "packets,bogus"],
                 ["sql", str(tmp_path), "SELECT 1"]):
        done = cli(*args, check=False)
        assert done.returncode == 1, args
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_sql_error_is_one_line(exported: Path) -> None:
    done = cli("sql", str(exported), "SELECT nonsense FROM flows", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("capdissect: ") and len(done.stderr.splitlines()) == 1


@contextlib.contextmanager
def _export_under_way(src: Path, count: int, out: Path, *args: str) -> Iterator[None]:
    """``export`` of *count* copies of the lesson put in *src*, to *out*, running with
    *args* once it has written 3 partitions; killed (SIGKILL) on the way out."""
    src.mkdir()
    for i in range(count):
        shutil.copy(ROOT / "captures" / "tcp-basic.pcap", src / f"s{i:02}.pcap")
    proc = subprocess.Popen([*CAPDISSECT, "export", str(src), "-o", str(out), *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = out / "files"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if files.exists() and len(list(files.glob("*.parquet"))) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the export ended before it could be interrupted"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_interrupted_export_leaves_only_complete_partitions(tmp_path: Path) -> None:
    """SIGKILL in the middle: every partition there is whole, and the next run ends the
    job (and removes the temporary files)."""
    src, out = tmp_path / "src", tmp_path / "out"
    with _export_under_way(src, 40, out):
        pass
    assert len(list((out / "files").glob("*.parquet"))) < 40
    import pyarrow.parquet as pq

    for part in out.rglob("*.parquet"):
        pq.read_table(part)  # each named partition is a whole Parquet file
    cli("export", str(src), "-o", str(out))
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{out}/packets/*.parquet')").fetchone()
    assert n == (40 * 11,)


def test_pool_workers_end_with_a_parent_killed_outright(tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer) gives ``export -j 2`` no chance to shut its pool down:
    the workers must not wait for ever for their next job."""
    src = tmp_path / "src-of-a-killed-pool"
    with _export_under_way(src, 60, tmp_path / "out", "-j", "2"):
        assert len(naming(src)) == 3  # the parent and its two workers
    assert not left_behind(src)


def test_interactive_sql(exported: Path) -> None:
    done = subprocess.run([*CAPDISSECT, "sql", str(exported), "--interactive"],
                          input="SELECT count(*) AS n FROM files;\nSELECT bad;\n.quit\n",
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert str(len(CAPTURES)) in done.stdout.split()
    assert "error:" in done.stdout


def test_core_install_does_not_import_the_extras() -> None:
    code = ("import sys, capdissect.cli, capdissect.api; "
            "print(sorted(m for m in ('pyarrow', 'duckdb', 'dask', 'distributed') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ})
    assert done.stdout.strip() == "[]"


def test_schema_doc_lists_every_column() -> None:
    """docs/export-schema.md is the schema: every column, type and source, in order."""
    from capdissect.export.schema import TABLES

    doc = (ROOT / "docs" / "export-schema.md").read_text()
    lines = [line for line in doc.splitlines() if line.startswith("| `")]
    want = [f"| `{name}` | `{kind}` | {source} |"
            for columns in TABLES.values() for name, kind, source in columns]
    assert lines == want


@pytest.mark.parametrize(("blocked", "args", "extra"), [
    ("pyarrow", ["export", "captures", "-o", "OUT"], "sql"),
    ("duckdb", ["sql", "OUT", "SELECT 1"], "sql"),
])
def test_missing_extra_is_one_line(tmp_path: Path, blocked: str, args: list[str],
                                   extra: str) -> None:
    """Without the extra, the command says in one line which extra to install."""
    args = [str(tmp_path / "o") if a == "OUT" else a for a in args]
    code = (f"import sys; sys.modules[{blocked!r}] = None; sys.argv = ['capdissect', *{args!r}]; "
            "from capdissect.console import main; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert f"pip install 'capdissect[{extra}]'" in done.stderr


def test_a_bug_in_one_file_leaves_the_others(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure of ours on one capture (made here by breaking the flow rows of one file)
    is that file's error in `files`; the other files are exported whole."""
    from capdissect.export import job as export_job
    from capdissect.export import run as export_run
    from capdissect.export.sql import connect

    real = export_job.flow_row

    def broken(item: Any, file: str) -> Any:
        if file.endswith("tcp-reset.pcap"):
            raise ZeroDivisionError("made to fail")
        return real(item, file)

    monkeypatch.setattr(export_job, "flow_row", broken)
    captures = sorted(str(p) for p in (ROOT / "captures").glob("*.pcap"))
    summary = export_run.export(captures, str(tmp_path / "out"))
    assert len(summary.errors) == 1 and "ZeroDivisionError: made to fail" in summary.errors[0]
    con = connect(str(tmp_path / "out"))
    errors = con.execute("SELECT file FROM files WHERE error IS NOT NULL").fetchall()
    assert errors == [(str(ROOT / "captures" / "tcp-reset.pcap"),)]
    files = {r[0] for r in con.execute("SELECT DISTINCT file FROM flows").fetchall()}
    assert files == set(captures) - {str(ROOT / "captures" / "tcp-reset.pcap")}
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp-" in p.name]


def test_export_to_an_fsspec_url() -> None:
    """-o as a URL goes through fsspec (here its in-memory filesystem, in this process):
    written there, and queried there by sql."""
    fsspec = pytest.importorskip("fsspec")
    from capdissect.export.run import export
    from capdissect.export.sql import query

    url = "memory://capdissect-test/run"
    try:
        summary = export([str(ROOT / "captures")], url)
        assert summary.packets == 79 and not summary.errors
        names = fsspec.filesystem("memory").ls("/capdissect-test/run/packets", detail=False)
        assert len(names) == 10 and all(n.endswith(".parquet") for n in names)
        assert "".join(query(url, "SELECT sum(packets) AS n FROM files", "csv")) == "n\n79\n"
    finally:
        fsspec.filesystem("memory").rm("/capdissect-test", recursive=True)
