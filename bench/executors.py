"""Where cells run (DESIGN.md §6): in this process, in N local worker processes, as a SLURM
job array (submitit) or as Ray tasks.

A sweep is cut into shards of (solver, degradation, sigma, seed) x image chunks, so a worker
loads the prior once per shard. Local and SLURM workers write their records into the shared run
folder themselves (atomically); Ray tasks send theirs back to the driver, which writes them.
CPU workers split the cores under every executor; each record carries the executor and threads.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import groupby
from pathlib import Path

from bench.execute import RunContext, run_cells
from bench.options import RunOptions
from bench.runner import build_context, network_passes
from bench.runspec import RunSpec
from bench.slurm import PASS_SECONDS
from bench.store import record_path
from bench.sweep import Cell

IMAGES_PER_SHARD = 8  # at least; a shard is also never smaller than one batch


@dataclass
class ClusterOptions:
    """The executor-specific command-line options: --slurm, --slurm-pass-seconds, --ray."""

    slurm: list[str] = field(default_factory=list)
    slurm_pass_seconds: float = PASS_SECONDS
    ray: list[str] = field(default_factory=list)


def shard_cells(cells: list[Cell], images_per_shard: int) -> list[list[Cell]]:
    """Groups of cells that share a solve configuration, cut into chunks of images."""
    ordered = sorted(cells, key=lambda c: (c.group, c.image_id))
    shards = []
    for _, group in groupby(ordered, key=lambda c: c.group):
        group = list(group)
        shards += [group[i : i + images_per_shard] for i in range(0, len(group), images_per_shard)]
    return shards


def local_threads(processes: int) -> int:
    """Torch threads per process when `processes` share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // processes)


@lru_cache(maxsize=2)
def _context(spec: RunSpec) -> RunContext:
    """The worker's RunContext, built once per process and spec (the prior loads once)."""
    return build_context(spec)


def worker_context(spec: RunSpec) -> RunContext:
    """A worker's context; a CUDA worker uses the GPU it was given ('cuda': local workers, SLURM
    and Ray set CUDA_VISIBLE_DEVICES to the task's GPU)."""
    if spec.device.startswith("cuda"):
        spec = replace(spec, device="cuda")
    return _context(spec)


def run_shard(spec: RunSpec, cells: list[Cell], batch: int = 1) -> int:
    """Run one shard in this process; returns the number of records written."""
    return len(run_cells(worker_context(spec), cells, batch=batch))


@dataclass(frozen=True)
class ShardJob:
    """One submitit job: its shards in turn with `threads` torch threads; records written.

    Checkpointable: on SLURM's USR2 (timeout or preemption) submitit requeues the job as it
    is; every attempt skips the cells recorded since `submitted_at`, so none is solved twice.
    """

    spec: RunSpec
    shards: list[list[Cell]]
    batch: int
    threads: int
    submitted_at: float

    def __call__(self) -> int:
        import torch

        torch.set_num_threads(self.threads)
        out, since = self.spec.out, self.submitted_at
        todo = [[c for c in s if not recorded_since(out, c, since)] for s in self.shards]
        skipped = sum(map(len, self.shards)) - sum(map(len, todo))
        if skipped:
            print(
                f"skipping {skipped} cells recorded by an earlier attempt of this job", flush=True
            )
        return sum(run_shard(self.spec, shard, self.batch) for shard in todo if shard)

    def checkpoint(self):
        """What submitit requeues: this job, unchanged."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def recorded_since(out: Path, cell: Cell, since: float) -> bool:
    """Whether the cell has a record written at or after `since` (a time.time() value)."""
    path = record_path(out, cell.key)
    return path.exists() and path.stat().st_mtime >= since


def _init_worker(devices: list[str], counter, cpu_threads: int) -> None:
    """Pin each local worker to one device before CUDA initialises (one process per GPU);
    CPU workers share the cores (cpu_threads torch threads each, not all cores each)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    device = devices[index % len(devices)]
    if device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    if device == "cpu":
        import torch

        torch.set_num_threads(cpu_threads)


def _star_run(args: tuple) -> int:
    return run_shard(*args)


def run_local(
    spec: RunSpec, shards: list[list[Cell]], *, workers: int, batch: int, devices: list[str]
) -> Iterator[int]:
    """Run shards in `workers` spawned processes; yields records per shard."""
    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    init = (devices, counter, local_threads(workers))
    with ctx.Pool(workers, initializer=_init_worker, initargs=init) as pool:
        yield from pool.imap_unordered(_star_run, [(spec, s, batch) for s in shards])


def run_submitit(
    spec: RunSpec, shards: list[list[Cell]], options: RunOptions, cluster: ClusterOptions
) -> Iterator[int]:
    """One job array over the shards: one task per shard on SLURM; on cluster=local, the shards
    packed into --workers concurrent processes that split the cores."""
    from bench.slurm import run_job_array, slurm_setup

    name = f"bench-{Path(options.out).name}"
    setup = slurm_setup(cluster.slurm, device=options.device, name=name)
    if setup.cluster == "local":
        count = min(options.workers, len(shards))
        jobs, threads = [shards[i::count] for i in range(count)], local_threads(count)
        label = f"submitit:local ({count} jobs)"
    else:
        jobs = [[shard] for shard in shards]
        threads = setup.cpus_per_task if setup.cluster == "slurm" else local_threads(1)
        label = f"submitit:{setup.cluster}"
    batch = options.batch or 1
    passes = [sum(sum(network_passes(s, batch).values()) for s in job) for job in jobs]
    setup.default_time_limit(max(passes), cluster.slurm_pass_seconds)
    spec = replace(spec, executor=label)
    yield from run_job_array(
        [ShardJob(spec, job, batch, threads, time.time()) for job in jobs],
        setup=setup,
        folder=Path(options.out) / "submitit",
    )


def run_on_executor(
    options: RunOptions, cells: list[Cell], cluster: ClusterOptions
) -> Iterator[int]:
    """Run cells on --executor (local with --workers > 1, submitit or ray); yields the number
    of records as each shard (or job) finishes."""
    shards = shard_cells(cells, max(options.batch or 1, IMAGES_PER_SHARD))
    spec = options.spec()
    if options.executor == "submitit":
        yield from run_submitit(spec, shards, options, cluster)
    elif options.executor == "ray":
        from bench.ray_tasks import run_ray

        yield from run_ray(spec, shards, batch=options.batch or 1, items=cluster.ray)
    else:
        cuda = options.device.startswith("cuda")
        devices = [f"cuda:{i}" for i in range(options.workers)] if cuda else [options.device]
        spec = replace(spec, executor=f"local ({options.workers} workers)")
        yield from run_local(
            spec, shards, workers=options.workers, batch=options.batch or 1, devices=devices
        )
