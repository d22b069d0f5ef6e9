"""Worker for the option matrix (tests/support/matrix.py):
``python -m tests.support.matrix_worker JOBS OUT``.

For each job it starts ``tcpdump -r FILE OPTIONS`` (its output goes to a temporary file,
so it runs while we work), runs ``capdissect read FILE --plain OPTIONS`` through the typer
app in this process (the same argv, option parsing, error handling and output as the
console script, without paying for a new interpreter each time), compares the two
outputs block by block and writes one JSON result per job to OUT.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import traceback
from dataclasses import asdict
from pathlib import Path

from typer.testing import CliRunner

from capdissect.cli import app
from tests.support.compare import RUN_TIMEOUT_S, compare_blocks
from tests.support.matrix import Job, JobResult, split_packets


def run_job(runner: CliRunner, job: Job) -> JobResult:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        reference = subprocess.Popen(["tcpdump", "-r", job.path, *job.options],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            ours = runner.invoke(app, ["read", job.path, "--plain", *job.options])
        finally:
            try:
                status = reference.wait(RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                reference.kill()
                status = reference.wait()
        out.seek(0)
        err.seek(0)
        want_text = out.read().decode("latin-1")
        want_err = err.read().decode("utf-8", "replace")
    problem = None
    if ours.exception is not None and not isinstance(ours.exception, SystemExit):
        problem = "".join(traceback.format_exception(ours.exception))[-3000:]
    tally = compare_blocks(split_packets(want_text, job.options),
                           split_packets(ours.stdout_bytes.decode("latin-1"), job.options))
    return JobResult(
        group=job.group, source=job.source, options=job.options, same=tally.same,
        total=tally.total, first_diff=tally.first_diff, tcpdump_status=status,
        tcpdump_error=_last_line(want_err), capdissect_status=ours.exit_code,
        capdissect_error=_last_line(ours.stderr), problem=problem,
    )  # fmt: skip


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def main(jobs_path: str, out_path: str) -> None:
    jobs = [Job(**{**raw, "options": tuple(raw["options"])})
            for raw in json.loads(Path(jobs_path).read_text())]
    runner = CliRunner()
    results = [asdict(run_job(runner, job)) for job in jobs]
    Path(out_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
