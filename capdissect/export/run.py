"""``capdissect export``: captures in, Parquet partitions out, locally, in ``-j N``
processes or on a Dask cluster (``cluster.py``); each partition is one ``job.py`` job."""

from __future__ import annotations

import os
from collections.abc import Sequence

from capdissect.errors import ExportError
from capdissect.export.job import Job, JobResult, Progress, Summary, export_job, plan
from capdissect.export.parquet import filesystem, remove_leftovers
from capdissect.export.schema import DATA_TABLES


def export(inputs: Sequence[str], out: str, tables: Sequence[str] = DATA_TABLES, *,
           processes: int = 1, continuous: bool = False, scheduler: str | None = None,
           progress: Progress | None = None) -> Summary:
    """``capdissect export``: plan the jobs of *inputs* and run them."""
    unknown = [t for t in tables if t not in DATA_TABLES]
    if unknown:
        raise ExportError(f"no table {unknown[0]!r}: choose from {', '.join(DATA_TABLES)}")
    if processes < 1:
        raise ExportError(f"-j {processes}: give 1 or more processes")
    jobs = plan(inputs, out, tables, continuous)
    return run(jobs, processes=processes, scheduler=scheduler, progress=progress)


def run(jobs: Sequence[Job], *, processes: int = 1, scheduler: str | None = None,
        progress: Progress | None = None) -> Summary:
    """Run *jobs* here (``processes`` 1), in a pool of processes, or on the Dask
    cluster at *scheduler*; then remove the temporary files interrupted ones left."""
    if not jobs:
        return Summary([])
    if scheduler is not None:
        from capdissect.export.cluster import run_on_cluster

        results = run_on_cluster(jobs, scheduler, progress)
    elif processes > 1 and len(jobs) > 1:
        results = _run_pool(jobs, processes, progress)
    else:
        results = []
        for done, job in enumerate(jobs, 1):
            results.append(export_job(job))
            if progress is not None:
                progress(done, len(jobs), job.partition)
    fs, root = filesystem(jobs[0].out)
    remove_leftovers(fs, root)
    return Summary(results)


def _run_pool(jobs: Sequence[Job], processes: int, progress: Progress | None
              ) -> list[JobResult]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork: the workers start at once with everything imported (spawn would import
    # capdissect and pyarrow again in each, a second of start-up per process).
    context = multiprocessing.get_context("fork")
    results: dict[int, JobResult] = {}
    with ProcessPoolExecutor(max_workers=processes, mp_context=context,
                             initializer=_end_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(export_job, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(len(results), len(jobs), jobs[futures[future]].partition)
    return [results[i] for i in range(len(jobs))]


# prctl(2): PR_SET_PDEATHSIG, the signal a process gets when its parent ends.
_PR_SET_PDEATHSIG = 1


def _end_with_parent(parent: int) -> None:
    """A pool worker's start: have Linux end it when the export ends, however it ends.

    A parent killed outright (SIGKILL, the OOM killer) cannot shut its pool down, and
    its workers would wait for ever for the next job (seen: two of them, one reading
    the job pipe and one waiting on its lock, with the parent gone).  The workers are
    forked by the thread that runs the whole pool, so the signal comes no earlier than
    the end of the export.  Elsewhere than Linux nothing changes.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        set_death_signal = libc.prctl
    except (OSError, AttributeError):  # no prctl here
        return
    if set_death_signal(_PR_SET_PDEATHSIG, signal.SIGTERM) == 0 and os.getppid() != parent:
        os._exit(1)  # the parent ended before the signal was asked for
