"""The fixed-seed part of issue 21's campaign (``fuzz/campaign.py``), in ``make test``.

2,000 structure-aware mutants of the corpus and the lesson captures (pcap, pcapng, gzip)
go through every command (``read`` two ways, ``timeline`` two ways, ``flows``, ``sockets``,
``handout`` two ways, ``annotate``), in-process in two long-lived workers under a time and
a memory cap; tcpdump (through zcat for gzip) counts the packets each must account for.
Any failure fails the test, the damaged captures' JSON reports (D1) and ``annotate`` on
a link type pcapng cannot hold (D15) included.
"""

from __future__ import annotations

import shutil
import time

import pytest

from fuzz.campaign import COMMANDS, KINDS, report, run_campaign

SEED = 21
MUTANTS = 2000
WORKERS = 2  # the machines this runs on have two cores


@pytest.mark.tcpdump
@pytest.mark.skipif(shutil.which("tcpdump") is None or shutil.which("zcat") is None,
                    reason="the campaign compares with tcpdump (and zcat)")
def test_fixed_seed_campaign() -> None:
    start = time.monotonic()
    summary = run_campaign(SEED, MUTANTS, WORKERS)
    print("\n" + report(summary, time.monotonic() - start))
    assert summary.mutants == MUTANTS
    assert all(summary.runs[command] == MUTANTS for command in COMMANDS)
    kinds = {kind: sum(1 for f in summary.failures if f.kind == kind) for kind in KINDS}
    assert not summary.failures, f"{kinds}\n" + "\n".join(
        f"{f.key()}: {f.detail[:400]}" for f in summary.failures[:20])
