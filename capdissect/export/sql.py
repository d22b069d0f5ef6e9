"""``capdissect sql OUT "SELECT ..."``: DuckDB (embedded) over an export.

Each table of the export is a view of the same name (``packets``, ``flows``, ``events``,
``sockets``, ``files``) over its partitions, ``OUT/<table>/*.parquet``: the temporary
files of an unfinished export are not among them.  A query's result is printed as a
table (tabulate), or as CSV or JSON Lines.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, TextIO

from capdissect.errors import ExportError
from capdissect.export.parquet import filesystem
from capdissect.export.schema import TABLES

if TYPE_CHECKING:
    import duckdb

SqlFormat = Literal["table", "csv", "json"]
PROMPT = "capdissect> "


def connect(out: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per table of the export at *out*."""
    try:
        import duckdb
    except ImportError:
        raise ExportError("sql needs DuckDB: pip install 'capdissect[sql]'") from None
    fs, path = filesystem(out)
    con = duckdb.connect()
    base = path
    if "://" in out and not out.startswith("file://"):  # DuckDB reads it through fsspec
        import fsspec

        con.register_filesystem(fsspec.core.url_to_fs(out)[0])
        base = out.rstrip("/")
    found = 0
    for table in TABLES:
        if not _has_partitions(fs, path, table):
            continue
        found += 1
        pattern = _quote(f"{base}/{table}/*.parquet")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({pattern}, "
                    "union_by_name = true)")
    if not found:
        con.close()
        raise ExportError(f"{out}: not an export (no table partitions there)")
    return con


def _has_partitions(fs: Any, root: str, table: str) -> bool:
    from pyarrow import fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{table}", allow_not_found=True))
    return any(info.base_name.endswith(".parquet") for info in infos)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def query(out: str, sql: str, fmt: SqlFormat = "table") -> Iterator[str]:
    """The result of *sql* over the export at *out*, as text pieces ending in newlines."""
    con = connect(out)
    try:
        return iter(list(_run(con, sql, fmt)))
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str, fmt: SqlFormat) -> Iterator[str]:
    import duckdb

    try:
        result = con.execute(sql)
    except duckdb.Error as exc:
        raise ExportError(str(exc).splitlines()[0]) from None
    if result.description is None:
        return
    names = [d[0] for d in result.description]
    rows = result.fetchall()
    if fmt == "json":
        for row in rows:
            yield json.dumps(dict(zip(names, row, strict=True)), default=str) + "\n"
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
        yield buffer.getvalue()
    else:
        from tabulate import tabulate

        yield tabulate(rows, headers=names) + "\n"


def interactive(out: str, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """A prompt: each query (ending in ``;``) is run and printed; an error is one line and
    the prompt comes back; end of input (Ctrl-D) or ``.quit`` ends it."""
    con = connect(out)
    try:
        stdout.write(f"views: {', '.join(TABLES)}; end a query with ';', .quit to leave\n")
        held: list[str] = []
        while True:
            stdout.write(PROMPT if not held else "   ...> ")
            stdout.flush()
            line = stdin.readline()
            if not line or (not held and line.strip() in (".quit", ".exit")):
                break
            held.append(line)
            text = "".join(held).strip()
            if not text.endswith(";"):
                continue
            held.clear()
            try:
                for piece in _run(con, text, "table"):
                    stdout.write(piece)
            except ExportError as exc:
                stdout.write(f"error: {exc}\n")
        stdout.write("\n")
    finally:
        con.close()
