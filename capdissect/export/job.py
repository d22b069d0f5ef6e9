"""One export job: a partition of captures in, its Parquet files out (``run.py`` runs many).

A ``Job`` is one partition: one capture file, or with ``--continuous`` all of them in
timestamp order as one capture.  ``export_job`` runs one job anywhere (this process, a
``-j N`` process, a Dask worker).  It reads the capture once for all four tables:
the streaming pass of ``flows`` and ``timeline`` (tracking.stream.track and finished over
a Tracker, as commands/reports.py runs them), with the socket table made from the same
steps on their way (``SocketIntervals.follow``: a ``FactsSettler`` sees each step before
``finished`` pulls it).  Each table's partition is
written under a temporary name and renamed when complete, then the partition's rows of
the ``files`` table.  A damaged file gives what was read before the damage and its
error in ``files``; the run goes on.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from capdissect._version import __version__
from capdissect.errors import CapdissectError, ExportError, OutputError
from capdissect.export.parquet import CHUNK, PartitionWriter, filesystem
from capdissect.export.rows import SocketIntervals, decoded, event_rows, flow_row
from capdissect.export.schema import DATA_TABLES, SCHEMA_VERSION
from capdissect.packets import RawPacket
from capdissect.sources.files import GZIP_MAGIC, open_capture
from capdissect.sources.pcap import is_pcap
from capdissect.sources.pcapng import is_pcapng
from capdissect.tracking.stream import Totals, finished, track
from capdissect.tracking.tracker import Tracker

Progress = Callable[[int, int, str], None]  # jobs done, jobs in all, what finished
# A Dask task that raised is run again this many times (one whose worker died is
# rescheduled by the scheduler itself, up to its distributed.scheduler.allowed-failures).
RETRIES: Final = 3
_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
GC_THRESHOLD: Final = 50_000  # new containers between two collections (_fewer_collections)


@dataclass(frozen=True)
class Job:
    """One partition to write: *files* read as one capture, in this order."""

    partition: str
    files: tuple[str, ...]  # as given (the tables' ``file``), relative to *cwd*
    out: str
    tables: tuple[str, ...]
    cwd: str = "."  # where the export was started: a Dask worker's own may differ


@dataclass
class FileRecord:
    """A row of the ``files`` table (export/schema.py FILE_COLUMNS)."""

    file: str
    partition: str
    position: int
    format: str | None = None
    size: int = 0
    packets: int = 0
    first_frame: int = 0
    error: str | None = None

    def row(self) -> tuple[object, ...]:
        return (self.file, self.partition, self.position, self.format, self.size,
                self.packets, self.first_frame, self.error, SCHEMA_VERSION, __version__)


@dataclass
class JobResult:
    partition: str
    files: list[FileRecord]
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written

    @property
    def errors(self) -> list[str]:
        return [f.error for f in self.files if f.error is not None]


@dataclass
class Summary:
    """What an export did: the jobs' results, in the order of the jobs."""

    results: list[JobResult]

    @property
    def errors(self) -> list[str]:
        return [error for result in self.results for error in result.errors]

    @property
    def packets(self) -> int:
        return sum(result.rows.get("packets", 0) for result in self.results)


# ----- planning ----------------------------------------------------------------------
def expand(inputs: Sequence[str]) -> list[str]:
    """The capture files named by *inputs*: files, directories (every capture file under
    them: files that start as pcap, pcapng or gzip do, whatever their name, as rotated
    files often have none) and glob patterns, each in name order, without repeats."""
    found: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            names = sorted(str(p) for p in path.rglob("*") if p.is_file() and _looks_like(p))
        elif path.exists():
            names = [text]
        else:
            names = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not names:
            raise ExportError(f"{text}: no such file, or no capture files there")
        found.extend(names)
    return list(dict.fromkeys(found))


def _looks_like(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return True  # let the export say why it cannot be read
    return is_pcap(head) or is_pcapng(head) or head[:2] == GZIP_MAGIC


def partition_name(files: Sequence[str]) -> str:
    """A name for the partition of *files*: the first one's name (made safe for any
    filesystem) and a digest of all their absolute paths, so that two captures with the
    same name in different directories do not meet."""
    digest = hashlib.sha1("\0".join(os.path.abspath(f) for f in files).encode()).hexdigest()
    stem = _SAFE.sub("_", Path(files[0]).name)[:80] or "capture"
    return f"{stem}-{digest[:10]}"


def first_timestamp(path: str) -> tuple[int, str]:
    """The key that puts rotated files in time order: their first packet's timestamp
    (nanoseconds; files without a readable packet go last), then the name."""
    try:
        with open_capture(path) as capture:
            for raw in capture:
                return raw.ts_sec * 1_000_000_000 + raw.ts_nsec, path
    except CapdissectError:
        pass
    return 1 << 63, path


def plan(inputs: Sequence[str], out: str, tables: Sequence[str],
         continuous: bool = False) -> list[Job]:
    """The jobs of an export: one per file, or one for all of them with *continuous*."""
    files = expand(inputs)
    chosen = tuple(t for t in DATA_TABLES if t in tables)
    if "://" not in out:
        out = os.path.abspath(out)
    cwd = os.getcwd()
    if continuous:
        ordered = tuple(sorted(files, key=first_timestamp))
        return [Job(partition_name(ordered), ordered, out, chosen, cwd)]
    return [Job(partition_name((f,)), (f,), out, chosen, cwd) for f in files]


# ----- one job -------------------------------------------------------------------------
def _raw_packets(job: Job, records: list[FileRecord]) -> Iterator[list[RawPacket]]:
    """The packets of the job's files, one after the other, each file's readable part,
    a list at a time (``CaptureFile.lists``); fills *records* (one per file) on the way."""
    frame = 0
    for position, path in enumerate(job.files):
        record = FileRecord(path, job.partition, position, first_frame=frame + 1)
        records.append(record)
        where = os.path.join(job.cwd, path)
        read = 0
        try:
            record.size = os.path.getsize(where)
            with open_capture(where) as capture:
                record.format = capture.format
                for packets in capture.lists():
                    read += len(packets)
                    yield packets
        except (CapdissectError, OSError) as exc:
            record.error = str(exc) if isinstance(exc, CapdissectError) else f"{path}: {exc}"
        finally:
            record.packets = read
            frame += read


def export_job(job: Job) -> JobResult:
    """Write the job's partitions and its rows of ``files``; safe to run again (a retry
    replaces the partition whole)."""
    with _fewer_collections():
        return _write(job)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a job runs, as mypy's build
    does.  An export keeps about 5 more containers a packet than it frees (rows held
    until their batch is converted, the tracker's records), so at the default threshold
    of 700 the collector ran 1,552 times over 200,000 packets of the bench capture, 12 of
    them over everything alive; at 50,000, 55 times and never over everything.  The whole
    bench capture (1,067,412 packets, every table) then took 15.8 s instead of 19.0, in
    the same peak memory (231 MB against 226).  Rows and records make no cycles."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], GC_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def _write(job: Job) -> JobResult:
    fs, root = filesystem(job.out)
    label = job.files[0] if len(job.files) == 1 else job.partition
    records: list[FileRecord] = []
    writers = {t: PartitionWriter(fs, root, t, job.partition) for t in job.tables}
    try:
        packets, flows, events, sockets = (
            writers.get(t) for t in ("packets", "flows", "events", "sockets"))
        packets_decoded = decoded(_raw_packets(job, records), label,
                                  None if packets is None else packets.extend, CHUNK)
        if flows is None and events is None and sockets is None:
            for _ in packets_decoded:
                pass
        else:
            steps = track(packets_decoded, Tracker(keep_events=False))
            if sockets is not None:  # the same steps, one pass over the packets
                steps = SocketIntervals(label).follow(steps, sockets.extend, CHUNK)
            for item in finished(steps, Totals(), events=events is not None):
                if flows is not None:
                    flows.add(flow_row(item, label))
                if events is not None:
                    events.extend(event_rows(item, label))
        for writer in writers.values():
            writer.commit()
    except Exception as exc:
        for writer in writers.values():
            writer.abort()
        # The output cannot be written (a full disk...): the run cannot go on.
        if isinstance(exc, OSError):
            raise OutputError(job.out, str(exc)) from None
        if isinstance(exc, CapdissectError):
            raise
        # A bug of ours must not end a run over hundreds of files: this partition's data
        # is left out and each of its files says so in `files`.
        _blame(job, records, f"capdissect could not export it ({type(exc).__name__}: "
                             f"{exc}); please report it with the capture")
        writers = {}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    files = PartitionWriter(fs, root, "files", job.partition)
    for record in records:
        files.add(record.row())
    files.commit()
    return JobResult(job.partition, records, {t: w.count for t, w in writers.items()})


def _blame(job: Job, records: list[FileRecord], error: str) -> None:
    """Give every file of *job* a record, with *error* where it has none."""
    for position, path in enumerate(job.files[len(records):], len(records)):
        records.append(FileRecord(path, job.partition, position))
    for record in records:
        record.error = record.error or error
