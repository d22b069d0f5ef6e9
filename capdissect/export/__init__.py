"""``capdissect export`` and ``capdissect sql``: Parquet tables of many captures, and DuckDB.

The IO edge of the columnar export (SPEC §3.11).  The rows come from the same records
and functions as ``read --json`` (the decoded ``Packet``), ``flows --json`` and
``timeline --json`` (``report/json/flow.py``, ``report/json/document.py``) and ``sockets``
(``report/tables/sockets.py``); this package only lays them out as columns and writes them.
pyarrow, DuckDB and Dask are optional extras (``capdissect[sql]``, ``capdissect[scale]``),
imported only here, so the core install never needs them.  The schema is written down in
docs/export-schema.md.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

from capdissect.errors import MissingExtra

# The top-level modules each extra brings (pyproject.toml [project.optional-dependencies]).
_EXTRA_MODULES: Final = {"pyarrow": "sql", "duckdb": "sql", "dask": "scale",
                         "distributed": "scale", "fsspec": "scale"}



def load(module: str, command: str) -> ModuleType:
    """Import *module* of this package for *command*; a missing optional dependency
    becomes one line naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = (exc.name or "").split(".")[0]
        if top in _EXTRA_MODULES:
            raise MissingExtra(command, top, _EXTRA_MODULES[top]) from None
        raise
