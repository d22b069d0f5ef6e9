"""Build the extension modules: the hot path compiled with mypyc, when it can be.

The modules in HOT are plain typed Python that mypyc turns into C extensions (see
capdissect/report/tcpdump/fast.py for why).  Without a C compiler, or with
CAPDISSECT_PURE=1 in the environment, nothing is compiled and the same modules run as
Python: the output is the same, only slower.  Everything else is in pyproject.toml.
"""

import os
import sys
from pathlib import Path

# The modules every packet goes through: the record batches, the dissectors, the tracker
# with its event log and flow stream, and the fast printer.  This is the one list: the
# Makefile asks for it (``python3 setup.py --hot``) to know when to compile again.
HOT = [
    "capdissect/packets.py",
    "capdissect/addresses.py",  # an address spelled twice a packet
    "capdissect/sources/pcapng.py",  # pcapng framing: a packet a block
    "capdissect/report/tcpdump/fast.py",
    "capdissect/report/tcpdump/hexdump.py",
    "capdissect/report/json/packet.py",  # read --json builds an object a packet
    "capdissect/report/annotate.py",  # read -n words every packet
    "capdissect/report/json/flow.py",  # timeline --json and export: an object an event
    "capdissect/export/rows.py",  # export: a row a packet and an event
    *sorted(str(path) for folder in ("capdissect/dissect", "capdissect/tracking")
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


if sys.argv[1:] == ["--hot"]:  # the Makefile, with any python3: no setuptools needed
    print(" ".join(HOT))
else:
    from setuptools import setup

    setup(ext_modules=extensions())
