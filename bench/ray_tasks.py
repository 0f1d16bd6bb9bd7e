"""The Ray executor: each shard a Ray task whose records and PNGs travel back to the driver as
object refs, so workers need no shared filesystem; only the driver writes into --out."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench.keyvalues import typed_items
from bench.runspec import RunSpec
from bench.store import write_atomic, write_record
from bench.sweep import Cell

RAY_PARAMETERS: dict[str, object] = {
    "address": str,  # auto (a running cluster), ray://head:10001, or unset (a local Ray)
    "num_cpus": int,  # per task (= its torch threads), default 1
    "num_gpus": float,  # per task, default 1 with --device cuda, else 0
    "runtime_env": dict,  # merged into default_runtime_env() when this command starts Ray
}


@dataclass
class ShardOutput:
    """What a Ray task sends back: its records and its PNGs (paths relative to --out)."""

    records: list[dict]
    files: dict[str, bytes]


def solve_shard(spec: RunSpec, cells: list[Cell], batch: int, threads: int) -> ShardOutput:
    """Run one shard in a Ray worker, writing only into a private scratch folder."""
    import torch

    from bench.execute import run_cells
    from bench.executors import worker_context

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench-shard-") as folder:
        scratch = Path(folder)
        records = run_cells(replace(worker_context(spec), out=scratch), cells, batch=batch)
        files = {str(p.relative_to(scratch)): p.read_bytes() for p in scratch.rglob("*.png")}
    return ShardOutput(records, files)


def deliver(out: Path, output: ShardOutput) -> int:
    """The driver writes a task's PNGs, then its records, each atomically (a record on disk
    implies its images are there); returns the number of records."""
    for relative, data in output.files.items():
        write_atomic(out / relative, data)
    for record in output.records:
        write_record(out, record)
    return len(output.records)


def default_runtime_env() -> dict:
    """Ship the code that is running here (bench, solvers, operators) to every worker; the
    third-party packages (torch, diffusers, ...) must be installed on the nodes."""
    import bench
    import operators
    import solvers

    return {"py_modules": [str(Path(m.__file__).parent) for m in (bench, solvers, operators)]}


def run_ray(
    spec: RunSpec, shards: list[list[Cell]], *, batch: int, items: list[str]
) -> Iterator[int]:
    """Each shard a Ray task on a running cluster (address=auto, ray://...) or a local Ray;
    the driver writes what each task returns. Tasks still pending when the caller stops
    (Ctrl-C, an error) are cancelled."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError(
            "the ray executor needs the [ray] extra: pip install 'latent-inverse-bench[ray]'"
        ) from e
    parameters = typed_items(items, RAY_PARAMETERS, "--ray")
    cpus = parameters.get("num_cpus", 1)
    gpus = parameters.get("num_gpus", 1 if spec.device.startswith("cuda") else 0)
    if not ray.is_initialized():  # else (a notebook's Ray) its own runtime_env applies
        runtime_env = {**default_runtime_env(), **parameters.get("runtime_env", {})}
        address = parameters.get("address")
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False)
    spec = replace(spec, executor=f"ray (num_cpus={cpus}, num_gpus={gpus:g} per task)")
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(solve_shard)
    pending = [task.remote(spec, shard, batch, cpus) for shard in shards]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield deliver(spec.out, ray.get(done[0]))
    finally:
        for ref in pending:
            ray.cancel(ref)
