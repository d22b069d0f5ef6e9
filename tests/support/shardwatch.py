"""The -j workers of commands/rounds.py under test: how they dealt the UDP datagrams,
told by the workers themselves (each notes its PID and how: a refusing endpoint pinned
to worker 0, all of UDP in worker 0, or by the hash alone, in a file of its own); and
captures written for them, with a flow placed in a worker of its own."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from capdissect.commands import rounds
from capdissect.dissect.route import route_decoded
from capdissect.packets import RawPacket
from capdissect.sources.writer import PacketWriter
from capdissect.tracking.shards import Shard, Survey, alone
from tests.support.reportwire import Wire


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


def capture_file(path: Path, raws: list[RawPacket]) -> Path:
    """*raws* as a pcap file at *path*."""
    with PacketWriter(path, raws[0].linktype, 262144) as writer:
        for raw in raws:
            writer.write(raw)
    return path


def apart(w: Wire, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Shard 0 of two has the flow of *w*'s last packet and nothing else
    (``shards.alone``); *w* as a file in *folder*."""
    last = route_decoded(w.packets[-1])
    monkeypatch.setattr(Survey, "plan", lambda self, count, udp_alone=False: alone(last))
    return capture_file(folder / "crafted.pcap", [pkt.raw for pkt in w.packets])
