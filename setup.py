"""Build the extension modules: the hot path compiled with mypyc, when it can be.

The modules in HOT are plain typed Python that mypyc turns into C extensions (see
capdissect/report/tcpdump_fast.py for why).  Without a C compiler, or with
CAPDISSECT_PURE=1 in the environment, nothing is compiled and the same modules run as
Python: the output is the same, only slower.  Everything else is in pyproject.toml.
"""

import os
from pathlib import Path

from setuptools import setup

# The modules every packet goes through: the fast printer, the record batches, the
# dissectors, the tracker and the event log.  (Keep the Makefile's COMPILED in step.)
HOT = [
    "capdissect/report/tcpdump_fast.py",
    "capdissect/report/hexdump.py",
    "capdissect/report/eventlog.py",
    "capdissect/report/flowstream.py",
    "capdissect/capture/records.py",
    *sorted(str(path) for folder in ("capdissect/dissect", "capdissect/track")
            for path in Path(folder).glob("*.py") if path.name != "__init__.py"),
]


def extensions() -> list:
    if os.environ.get("CAPDISSECT_PURE"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    modules = mypycify(HOT, group_name="capdissect._speedups", opt_level="3")
    for module in modules:
        module.optional = True  # a failed compile leaves the Python modules in charge
    return modules


setup(ext_modules=extensions())
