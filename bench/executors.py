"""Where cells run (DESIGN.md §6): in this process, in N local worker processes, via SLURM
(submitit) or as Ray tasks.

A sweep is cut into shards of (solver, degradation, sigma, seed) x image chunks, so a worker
loads the prior once per shard; every worker writes its records itself (atomically), so the
run directory is the only thing the backends share.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from pathlib import Path

from bench.sweep import Cell

EXECUTORS = ("local", "submitit", "ray")
RAY_PARAMETERS = ("address", "num_cpus", "num_gpus")


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to rebuild the run's context (picklable)."""

    prior: str
    prompt: str
    device: str
    precision: str
    data: str | None
    out: Path
    save_images: bool = True
    operators: tuple[str, ...] = field(default=())


def shard_cells(cells: list[Cell], images_per_shard: int) -> list[list[Cell]]:
    """Groups of cells that share a solve configuration, cut into chunks of images."""
    ordered = sorted(cells, key=lambda c: (c.group, c.image_id))
    shards = []
    for _, group in groupby(ordered, key=lambda c: c.group):
        group = list(group)
        shards += [group[i : i + images_per_shard] for i in range(0, len(group), images_per_shard)]
    return shards


@lru_cache(maxsize=2)
def _context(spec: RunSpec):
    """The worker's RunContext, built once per process and spec (the prior loads once)."""
    from bench.runner import build_context

    return build_context(spec)


def run_shard(spec: RunSpec, cells: list[Cell], batch: int = 1) -> int:
    """Run one shard in this process; returns the number of records written."""
    from bench.execute import run_cells

    return len(run_cells(_context(spec), cells, batch=batch))


def _init_worker(devices: list[str], counter, cpu_threads: int) -> None:
    """Pin each local worker to one device before CUDA initialises (one process per GPU);
    CPU workers share the cores (cpu_threads torch threads each, not all cores each)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    device = devices[index % len(devices)]
    if device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    os.environ["BENCH_WORKER_DEVICE"] = "cuda" if device.startswith("cuda") else device
    if device == "cpu":
        import torch

        torch.set_num_threads(cpu_threads)


def _star_run(args: tuple) -> int:
    spec, cells, batch = args
    device = os.environ.get("BENCH_WORKER_DEVICE")
    if device:
        spec = RunSpec(**{**spec.__dict__, "device": device})
    return run_shard(spec, cells, batch)


def run_local(
    spec: RunSpec, shards: list[list[Cell]], *, workers: int, batch: int, devices: list[str]
) -> Iterator[int]:
    """Run shards here (workers=1) or in `workers` spawned processes; yields records per shard."""
    if workers <= 1:
        for shard in shards:
            yield run_shard(spec, shard, batch)
        return
    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    threads = max(1, (os.cpu_count() or 1) // workers)
    init = (devices, counter, threads)
    with ctx.Pool(workers, initializer=_init_worker, initargs=init) as pool:
        yield from pool.imap_unordered(_star_run, [(spec, s, batch) for s in shards])


def run_submitit(
    spec: RunSpec,
    shards: list[list[Cell]],
    *,
    batch: int,
    folder: Path,
    cluster: str | None,
    parameters: dict,
) -> Iterator[int]:
    """One SLURM job array over the shards (submitit; cluster="local"/"debug" run without SLURM)."""
    try:
        import submitit
    except ImportError as e:
        raise RuntimeError(
            "the submitit executor needs the [slurm] extra: "
            "pip install 'latent-inverse-bench[slurm]'"
        ) from e
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**parameters)
    jobs = executor.map_array(run_shard, [spec] * len(shards), shards, [batch] * len(shards))
    for job in submitit.helpers.as_completed(jobs):
        yield job.result()


def _ray_shard(spec: RunSpec, cells: list[Cell], batch: int, threads: int) -> int:
    """One shard in a Ray worker: torch threads = the task's CPUs; Ray picks the task's GPU."""
    import torch

    torch.set_num_threads(threads)
    if spec.device.startswith("cuda"):  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU
        spec = RunSpec(**{**spec.__dict__, "device": "cuda"})
    return run_shard(spec, cells, batch)


def run_ray(
    spec: RunSpec, shards: list[list[Cell]], *, batch: int, parameters: dict[str, str]
) -> Iterator[int]:
    """Each shard a Ray task, on a running cluster (address=auto or ray://...) or a local one.

    parameters: address, num_cpus (per task, default 1), num_gpus (per task, default 1 on
    CUDA, else 0). Tasks still pending when the caller stops (Ctrl-C) are cancelled.
    """
    try:
        import ray
    except ImportError as e:
        raise RuntimeError(
            "the ray executor needs the [ray] extra: pip install 'latent-inverse-bench[ray]'"
        ) from e
    unknown = sorted(set(parameters) - set(RAY_PARAMETERS))
    if unknown:
        raise ValueError(
            f"unknown --ray parameter(s) {', '.join(unknown)}; valid: {', '.join(RAY_PARAMETERS)}"
        )
    cpus = int(parameters.get("num_cpus", 1))
    gpus = float(parameters.get("num_gpus", 1 if spec.device.startswith("cuda") else 0))
    if not ray.is_initialized():
        ray.init(address=parameters.get("address"), include_dashboard=False)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_ray_shard)
    pending = [task.remote(spec, shard, batch, cpus) for shard in shards]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)
