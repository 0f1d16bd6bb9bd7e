"""The submitit executor: --slurm parameters typed from submitit's signatures, cluster defaults
(GPU, CPUs, a time limit from the plan's declared cost) and one job array over the shards."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.keyvalues import typed_items

PASS_SECONDS = 0.1  # default seconds per declared network pass (--slurm-pass-seconds)
SAFETY = 2.0  # time limit = SAFETY x the longest shard's passes x seconds per pass ...
STARTUP_MIN = 10  # ... + this, for loading the prior and the warm-up solve
TASK_CPUS = 4  # CPUs per task: the solve, PNG decoding/encoding and metrics in one process
GPU_KEYS = ("gpus_per_node", "slurm_gpus_per_node", "slurm_gpus_per_task", "slurm_gres")
CPU_KEYS = ("cpus_per_task", "slurm_cpus_per_task", "slurm_cpus_per_gpu")
TIME_KEYS = ("timeout_min", "slurm_time")
TIME_RULE = (
    "Cluster defaults (each overridable with --slurm): one GPU per task with --device cuda, "
    f"{TASK_CPUS} CPUs per task, and a time limit of ceil({SAFETY:g} x the longest shard's "
    f"declared network passes (see --dry-run) x --slurm-pass-seconds / 60) + {STARTUP_MIN} "
    "minutes"
)


def submitit_parameters() -> dict[str, object]:
    """Every --slurm key with the type submitit declares for it: AutoExecutor's shared keys
    (timeout_min, gpus_per_node, ...), `slurm_<name>` for each keyword of the sbatch writer
    (slurm_partition, slurm_array_parallelism, ...), and `cluster` (slurm, local or debug)."""
    import submitit
    from submitit.slurm import slurm

    hints = typing.get_type_hints(slurm._make_sbatch_string)
    sbatch = {f"slurm_{k}": hints[k] for k in submitit.SlurmExecutor._valid_parameters()}
    return {"cluster": str, **submitit.AutoExecutor._typed_parameters(), **sbatch}


def timeout_minutes(passes: int, pass_seconds: float) -> int:
    """The default time limit for a shard of `passes` declared network passes (TIME_RULE)."""
    return math.ceil(SAFETY * passes * pass_seconds / 60) + STARTUP_MIN


@dataclass
class SlurmSetup:
    """Where and how the job array runs: the submitit cluster and its parameters."""

    cluster: str
    parameters: dict[str, object]

    @property
    def cpus_per_task(self) -> int:
        """The torch threads of each task (the CPUs it asked for)."""
        value = self.parameters.get("slurm_cpus_per_task", self.parameters.get("cpus_per_task"))
        return int(value or TASK_CPUS)

    def default_time_limit(self, passes: int, pass_seconds: float) -> None:
        """Set timeout_min by TIME_RULE for the longest job, unless --slurm gave a time."""
        if not any(k in self.parameters for k in TIME_KEYS):
            self.parameters["timeout_min"] = timeout_minutes(passes, pass_seconds)


def slurm_setup(items: list[str], *, device: str, name: str) -> SlurmSetup:
    """--slurm items typed and checked, the cluster resolved, GPU/CPU/name defaults filled in."""
    try:
        import submitit
        from submitit.core import plugins
    except ImportError as e:
        raise RuntimeError(
            "the submitit executor needs the [slurm] extra: "
            "pip install 'latent-inverse-bench[slurm]'"
        ) from e
    parameters = typed_items(items, submitit_parameters(), "--slurm")
    clusters = list(plugins.get_executors())
    cluster = parameters.pop("cluster", None)
    if cluster is None and submitit.SlurmExecutor.affinity() <= 0:
        raise ValueError(
            "--executor submitit found no SLURM here (no srun on PATH); pass "
            "--slurm cluster=local to run the job array as local processes (or cluster=debug, "
            "in this process)"
        )
    cluster = cluster or "slurm"
    if cluster not in clusters:
        raise ValueError(f"unknown --slurm cluster={cluster!r}; valid: {', '.join(clusters)}")
    defaults: dict[str, object] = {"name": name}
    if device.startswith("cuda") and not any(k in parameters for k in GPU_KEYS):
        defaults["gpus_per_node"] = 1
    if not any(k in parameters for k in CPU_KEYS):
        defaults["cpus_per_task"] = TASK_CPUS
    return SlurmSetup(cluster, {**defaults, **parameters})


def run_job_array(
    jobs: list[Callable[[], int]], *, setup: SlurmSetup, folder: Path
) -> Iterator[int]:
    """Submit the jobs as one job array; yield each job's result as it finishes.

    A job that fails (killed, timed out for good, crashed) does not stop the others; at the
    end a RuntimeError names them: their finished cells are saved and rerunning the same
    command runs only the cells without a record.
    """
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=setup.cluster)
    executor.update_parameters(**setup.parameters)
    with executor.batch():
        submitted = [executor.submit(job) for job in jobs]
    failed = []
    for done in submitit.helpers.as_completed(submitted, poll_frequency=2):
        try:
            yield done.result()
        except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as e:
            failed.append(f"job {done.job_id}: {str(e).splitlines()[0]}")
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(submitted)} jobs did not finish (logs in {folder}):\n  "
            + "\n  ".join(failed)
            + "\nfinished cells are saved; rerun the same command to run the rest"
        )
