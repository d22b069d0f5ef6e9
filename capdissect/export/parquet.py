"""Writing one partition of one table: row groups streamed to a temporary name, then renamed.

A partition is ``OUT/<table>/<partition>.parquet``.  It is written as
``.<partition>.parquet.tmp-<random>`` and renamed only once complete, so a reader (and
``capdissect sql``, which reads ``*.parquet``) never sees half a partition: an export
that is interrupted, or a Dask worker lost mid-file, leaves at most a ``.tmp-`` file,
which the next run of the export removes.  A retried task renames its own complete copy
over the same name, so a partition is never there twice.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from itertools import islice
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from capdissect.errors import OutputError
from capdissect.export import load
from capdissect.export.schema import MEMORY, TABLES, arrow_schema, record_batch

ROW_GROUP: Final = 128 * 1024  # rows of a row group: large enough to compress well
# Rows are held as Python tuples only this many at a time, then as Arrow columns (about
# 40 bytes a packet instead of 600), so a row group costs little memory before it is written.
# A chunk of rows stays in the processor's cache: 2,048 took 3% less time than 8,192.
CHUNK: Final = 2 * 1024
TMP_MARK: Final = ".tmp-"
COMPRESSION: Final = "zstd"
# zstd's default.  Level 6 made the bench capture's packets table 4% smaller (11.2 bytes a
# packet instead of 11.6; the events table 1%) and the whole export 5% slower.
COMPRESSION_LEVEL: Final = 3
# Numbers that grow along the capture: deltas are small, dictionaries would not help.
# ts_nsec too: within a second it grows as ts does (5.6 bytes a packet in a dictionary, 1 so).
_DELTA: Final = {"packets": ("frame", "ts", "ts_sec", "ts_nsec"), "events": ("frame", "index")}
# Numbers that rarely repeat: a dictionary only costs time until the writer gives it up.
# Plain, on the first 300,000 bench packets: packets 19.0 -> 14.6 bytes a packet, events
# 12.7 -> 8.4 bytes a row, and the whole export about 3% faster.
_PLAIN: Final = {"packets": ("ip_id", "tcp_seq", "tcp_ack"), "events": ("ts", "seq", "ack"),
                 "flows": ("start", "duration"), "sockets": ("since_ts", "until_ts")}


def filesystem(out: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root path of *out*: a local path, or any fsspec URL
    (``s3://bucket/x``, ``memory://x``...) when fsspec is installed."""
    if "://" not in out or out.startswith("file://"):
        local = out.removeprefix("file://")
        return pafs.LocalFileSystem(), os.path.abspath(local)
    fsspec: Any = load("fsspec", f"the URL {out}")
    remote, root = fsspec.core.url_to_fs(out)
    return pafs.PyFileSystem(pafs.FSSpecHandler(remote)), root.rstrip("/")


def writer_options(table: str) -> dict[str, Any]:
    """Parquet options of *table*: zstd; dictionaries for text and small repeating numbers;
    delta encoding for the columns that grow along the capture."""
    delta = _DELTA.get(table, ())
    plain = _PLAIN.get(table, ())
    names = [name for name, _kind, _src in TABLES[table]]
    return {
        "compression": COMPRESSION,
        "compression_level": COMPRESSION_LEVEL,
        "use_dictionary": [name for name in names if name not in delta and name not in plain],
        "column_encoding": dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
        "write_statistics": True,
        "memory_pool": MEMORY,
    }


class PartitionWriter:
    """Rows of one table for one partition: ``add`` them, then ``commit`` (or ``abort``)."""

    def __init__(self, fs: pafs.FileSystem, root: str, table: str, partition: str) -> None:
        self.fs = fs
        self.table = table
        directory = f"{root}/{table}"
        self.final = f"{directory}/{partition}.parquet"
        # A leading dot hides it from Spark, Dask and pyarrow datasets, and the suffix
        # from the *.parquet of capdissect sql.
        self.tmp = f"{directory}/.{partition}.parquet{TMP_MARK}{uuid.uuid4().hex}"
        self.rows: list[tuple[object, ...]] = []
        self.batches: list[pa.RecordBatch] = []
        self.held = 0  # rows in self.batches
        self.count = 0
        try:
            fs.create_dir(directory, recursive=True)
            self._sink = fs.open_output_stream(self.tmp)
            self._writer = pq.ParquetWriter(self._sink, arrow_schema(table),
                                            **writer_options(table))
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(directory, f"cannot write: {exc}") from None

    def add(self, row: tuple[object, ...]) -> None:
        rows = self.rows
        rows.append(row)
        if len(rows) >= CHUNK:
            self._spill()

    def extend(self, rows: Iterable[tuple[object, ...]]) -> None:
        """``add`` each of *rows*, a chunk at a time, without a Python call per row."""
        rows = iter(rows)
        while True:
            held = self.rows
            held.extend(islice(rows, CHUNK - len(held)))
            if len(held) < CHUNK:
                return
            self._spill()

    def _spill(self) -> None:
        self._columns()
        if self.held >= ROW_GROUP:
            self.flush()

    def _columns(self) -> None:
        if self.rows:
            self.batches.append(record_batch(self.table, self.rows))
            self.held += len(self.rows)
            self.rows = []

    def flush(self) -> None:
        """Write the rows held as one row group."""
        self._columns()
        if self.batches:
            self._writer.write_table(pa.Table.from_batches(self.batches),
                                     row_group_size=ROW_GROUP)
            self.count += self.held
            self.batches, self.held = [], 0

    def commit(self) -> None:
        """Write what is held, close, and give the partition its final name."""
        self.flush()
        self._writer.close()
        self._sink.close()
        self.fs.move(self.tmp, self.final)

    def abort(self) -> None:
        """Close and remove the temporary file (after an error of ours)."""
        try:
            self._writer.close()
            self._sink.close()
        finally:
            self.fs.delete_file(self.tmp)


def remove_leftovers(fs: pafs.FileSystem, root: str) -> int:
    """Remove the temporary files an interrupted export or a lost worker left; how many."""
    removed = 0
    for table in TABLES:
        selector = pafs.FileSelector(f"{root}/{table}", allow_not_found=True)
        for info in fs.get_file_info(selector):
            if TMP_MARK in info.base_name:
                fs.delete_file(info.path)
                removed += 1
    return removed
