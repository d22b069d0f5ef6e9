"""The fixed-seed part of issue 21's campaign (``fuzz/campaign.py``), in ``make test``.

2,000 structure-aware mutants of the corpus and the lesson captures (pcap, pcapng, gzip)
go through every command (``read`` two ways, ``timeline`` two ways, ``flows``, ``sockets``,
``handout`` two ways, ``annotate``), in-process in two long-lived workers under a time and
a memory cap; tcpdump (through zcat for gzip) counts the packets each must account for.
Any failure fails the test, except the cases of ``fuzz/known_failures.txt``: defects with an open
issue being fixed elsewhere, each with its reason.  A known case that no longer fails is
reported, to be taken off the list.
"""

from __future__ import annotations

import shutil
import time

import pytest

from fuzz.campaign import COMMANDS, KINDS, known_failures, report, run_campaign

SEED = 21
MUTANTS = 2000
WORKERS = 2  # the machines this runs on have two cores


@pytest.mark.tcpdump
@pytest.mark.skipif(shutil.which("tcpdump") is None or shutil.which("zcat") is None,
                    reason="the campaign compares with tcpdump (and zcat)")
def test_fixed_seed_campaign() -> None:
    start = time.monotonic()
    summary = run_campaign(SEED, MUTANTS, WORKERS)
    known = known_failures()
    print("\n" + report(summary, time.monotonic() - start, known))
    assert summary.mutants == MUTANTS
    assert all(summary.runs[command] == MUTANTS for command in COMMANDS)
    found = {failure.key(): failure for failure in summary.failures}
    gone = sorted(set(known) - set(found), key=lambda key: int(key.split()[0]))
    if gone:
        print(f"{len(gone)} known failures no longer happen; take them off "
              f"fuzz/known_failures.txt: {', '.join(gone)}")
    unknown = [failure for key, failure in found.items() if key not in known]
    kinds = {kind: sum(1 for f in unknown if f.kind == kind) for kind in KINDS}
    assert not unknown, f"{kinds}\n" + "\n".join(
        f"{f.key()}: {f.detail[:400]}" for f in unknown[:20])
