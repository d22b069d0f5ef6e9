"""``export --scheduler tcp://HOST:PORT``: the jobs as tasks on an existing Dask cluster.

One task per job (a file, or a ``--continuous`` group), each writing its own partitions
to the output the workers share (a path they all see, or an fsspec URL).  A worker lost
mid-task is Dask's to handle: the scheduler runs the task again elsewhere (``retries``
covers a task that itself failed), and since a partition only gets its name once
complete and a rerun replaces it whole, the output ends complete and without duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capdissect.errors import CapdissectError, ExportError
from capdissect.export import load
from capdissect.export.job import RETRIES, Job, JobResult, Progress, export_job

CONNECT_TIMEOUT_S = 10


def run_on_cluster(jobs: Sequence[Job], scheduler: str,
                   progress: Progress | None = None) -> list[JobResult]:
    # Any: distributed has no type hints to check these calls against.
    distributed: Any = load("distributed", "export --scheduler")
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ExportError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        # pure=False: each job is its own task, even one that looks like another.
        futures = client.map(export_job, list(jobs), retries=RETRIES,
                                           pure=False, key=[f"export-{j.partition}"
                                                            for j in jobs])
        index = {future.key: i for i, future in enumerate(futures)}
        results: dict[int, JobResult] = {}
        for future in distributed.as_completed(futures, loop=client.loop):
            i = index[future.key]
            try:
                results[i] = future.result()
            except CapdissectError:
                raise
            except Exception as exc:  # KilledWorker (lost too often), a worker's own error
                raise ExportError(f"{jobs[i].files[0]}: the cluster could not export it: "
                                  f"{type(exc).__name__}: {exc}") from None
            if progress is not None:
                progress(len(results), len(jobs), jobs[i].partition)
        return [results[i] for i in range(len(jobs))]
    finally:
        client.close()
