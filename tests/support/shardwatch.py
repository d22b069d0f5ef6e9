"""How the -j workers of commands/rounds.py dealt the UDP datagrams, told by the workers
themselves: each notes its PID and how (a refusing endpoint pinned to worker 0, all of
UDP in worker 0, or by the hash alone) in a file of its own."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from capdissect.commands import rounds
from capdissect.tracking.shards import Shard, Survey


def watch_dealing(folder: Path, monkeypatch: pytest.MonkeyPatch, *,
                  found: bool) -> Callable[[], list[tuple[str, str]]]:
    """Make the workers note how they deal UDP in *folder*; with *found* False, the
    survey misses the endpoints that refused a datagram.  Returns what lists the
    workers that ran so far: (PID, "pinned", "alone" or "hash")."""
    folder.mkdir(exist_ok=True)

    def recorded(index: int, count: int, **options: object) -> Shard:
        how = "alone" if options["udp_alone"] else "pinned" if options["pinned"] else "hash"
        (folder / f"{os.getpid()}-{how}").touch()
        return Shard(index, count, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(rounds, "Shard", recorded)
    if not found:
        surveyed = rounds._surveyed

        def unaware(path: str) -> Survey:
            survey = surveyed(path)
            survey.refusers.clear()
            return survey

        monkeypatch.setattr(rounds, "_surveyed", unaware)

    def workers() -> list[tuple[str, str]]:
        return [(pid, how) for pid, how in (name.name.split("-") for name in folder.iterdir())]

    return workers
