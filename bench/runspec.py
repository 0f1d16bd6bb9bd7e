"""RunSpec: the picklable description of a run that every worker rebuilds its context from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("local", "submitit", "ray")


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to rebuild the run's context (picklable).

    executor says where the records were made, e.g. 'local (2 workers)' or 'submitit:slurm';
    it goes into each record's env next to the torch threads, since runtimes compare only
    within one executor configuration.
    """

    prior: str
    prompt: str
    device: str
    precision: str
    data: str | None
    out: Path
    save_images: bool = True
    operators: tuple[str, ...] = field(default=())
    executor: str = "local"
