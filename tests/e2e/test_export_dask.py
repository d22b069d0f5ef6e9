"""``export --scheduler``: a real Dask cluster on loopback, and a worker killed mid-run.

The test starts ``dask scheduler`` and two ``dask worker`` processes (no nanny, so that
killing a worker's process loses it for good), exports a set of captures on them,
kills one worker once the first partitions are written, and checks that the output is
complete, has no partition twice and no temporary file, and equals a local ``-j 1``
export row for row.  Every process it started is killed in ``finally``.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")
pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "captures" / "tcp-basic.pcap"
FILES = 6
REPEATS = 800  # lessons per file: 8,800 packets, about a second of export each
DEADLINE_S = 45

pytestmark = pytest.mark.slow


def lesson_file(path: Path, offset_s: int) -> None:
    """*REPEATS* copies of the lesson's packets, one after the other in time (a client
    port of its own each, so they are distinct connections)."""
    data = LESSON.read_bytes()
    header, pos, records = data[:24], 24, []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        records.append((sec, usec, orig, bytearray(data[pos + 16 : pos + 16 + incl])))
        pos += 16 + incl
    out = bytearray(header)
    client = struct.unpack_from("!H", records[0][3], 34)[0]  # Ethernet + IPv4: TCP sport
    for i in range(REPEATS):
        port = 20000 + i
        for sec, usec, orig, frame in records:
            frame = bytearray(frame)
            for at in (34, 36):  # rewrite the client's port on either side
                if struct.unpack_from("!H", frame, at)[0] == client:
                    struct.pack_into("!H", frame, at, port)
            out += struct.pack("<IIII", sec + offset_s + i, usec, len(frame), orig) + frame
    path.write_bytes(bytes(out))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def table(out: Path, name: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM read_parquet('{out / name}/*.parquet') "
                       "ORDER BY ALL").fetchall()
    con.close()
    return rows


def test_dask_cluster_export_survives_a_lost_worker(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(FILES):
        lesson_file(src / f"student{i:02}.pcap", i * 100_000)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs: list[subprocess.Popen[Any]] = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"], env=env, **quiet))
        workers = []
        for _ in range(2):
            worker = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny",
                 "--nthreads", "1", "--no-dashboard", "--death-timeout", "30",
                 "--host", "127.0.0.1"], env=env, cwd=ROOT, **quiet)
            procs.append(worker)
            workers.append(worker)
        out = tmp_path / "cluster"
        export = subprocess.Popen(
            [sys.executable, "-m", "capdissect", "export", str(src), "-o", str(out),
             "--scheduler", address], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        procs.append(export)
        # Kill a worker as soon as the first partition is whole: the others are under way.
        assert wait_for(lambda: len(list((out / "files").glob("*.parquet"))) >= 1
                        if (out / "files").exists() else False, DEADLINE_S), \
            "no partition written"
        written = len(list((out / "files").glob("*.parquet")))
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        _, stderr = export.communicate(timeout=DEADLINE_S)
        assert export.returncode == 0, stderr
        assert written < FILES  # the worker died with work left to do
        assert f"of {FILES} files" in stderr
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
    local = tmp_path / "local"
    done = subprocess.run([sys.executable, "-m", "capdissect", "export", str(src), "-o",
                           str(local), "-j", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    for name in ("packets", "flows", "events", "sockets", "files"):
        assert len(list((out / name).glob("*.parquet"))) == FILES, name
        assert table(out, name) == table(local, name), name
    assert len(table(out, "packets")) == FILES * REPEATS * 11
