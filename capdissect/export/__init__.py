"""``capdissect export`` and ``capdissect sql``: Parquet tables of many captures, and DuckDB.

The IO edge of the columnar export (SPEC §3.11).  The rows come from the same records
and functions as ``read --json`` (the decoded ``Packet``), ``flows --json`` and
``timeline --json`` (``report/flowjson.py``, ``report/document.py``) and ``sockets``
(``report/sockets.py``); this package only lays them out as columns and writes them.
pyarrow, DuckDB and Dask are optional extras (``capdissect[sql]``, ``capdissect[scale]``),
imported only here, so the core install never needs them.  The schema is written down in
docs/export-schema.md.
"""
