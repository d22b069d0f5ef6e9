"""The IO edge of writing files: never write over a file that is being read.

``annotate F -o F`` used to empty F before reading it, and so did a hard link or a
symlink to F: the same file under another name.  Names cannot tell; the device and
inode numbers can, so every command that writes a file compares them with its inputs'
before it opens the output.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from capdissect.errors import OutputError


def refuse_input(out: str | Path, *inputs: str | Path) -> None:
    """Raise OutputError if *out* is one of *inputs* (``-`` is stdin), under any name."""
    try:
        target = os.stat(out)  # follows a symlink to the file it names
    except OSError:
        return  # nothing there yet (or unreachable: opening it will say why)
    if not stat.S_ISREG(target.st_mode):
        return  # /dev/null, a pipe, a terminal: writing destroys nothing
    for given in inputs:
        try:
            source = os.fstat(0) if str(given) == "-" else os.stat(given)
        except OSError:
            continue
        if (source.st_dev, source.st_ino) == (target.st_dev, target.st_ino):
            raise OutputError(str(out), f"this output is the input file {given}; "
                              "refusing to write over it")
