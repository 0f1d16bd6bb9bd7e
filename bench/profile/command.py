"""`bench profile`: time the networks alone and a few steps of each solver, predict full solves."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.profile.measure import (
    CallTime,
    SolveTime,
    count_flops,
    generators,
    network_calls,
    time_call,
    time_solve,
    weighted_calls,
)
from bench.profile.networks import native_size, profile_operator, profile_prior
from bench.profile.tables import write_outputs
from bench.timing import configure_precision, environment
from operators import build_degradation, measure
from operators.noise import sigma_01_to_pm1
from solvers import get_solver

DEFAULT_SOLVERS = "silo,ldps,psld,gml-dps"
REFERENCE = "silo"  # the ratio column divides by this solver's time


@dataclass
class ProfileOptions:
    """The options of `bench profile`."""

    arch: str = "sd15"
    size: int | None = None
    solvers: str = DEFAULT_SOLVERS
    deg: str = "sr4"
    sigma: float = 0.01
    device: str = "cpu"
    precision: str = "fp32"
    batch: str = "1"
    steps: int = 2
    warmup_steps: int = 1
    repeats: int = 3
    solve_repeats: int = 1
    out: str = "runs/profile"


def parse_batches(text: str) -> list[int]:
    """'1,4,8' -> [1, 4, 8]; anything else is a ValueError naming --batch."""
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise ValueError(f"--batch takes positive integers, e.g. 1,4,8; got {text!r}")
    return sorted(set(batches))


def solver_row(
    solve: SolveTime,
    hparams: dict,
    seconds: dict[tuple[str, str], float],
    flops: dict[tuple[str, str], float],
) -> dict:
    """Prediction of the full solve at official length from the solver's declared cost model.

    harness / limit is the timed steps over the same calls made alone in the same round (wall
    time; and process CPU time); the full solve and one step are the declared calls priced at
    their isolated times, times the measured wall-time ratio.
    """
    spec = get_solver(solve.solver)
    ratio = solve.ratio
    row = {
        "solver": solve.solver,
        "batch": solve.batch,
        "official_steps": hparams.get("steps"),
        "timed_steps": solve.steps,
        "timed_s": solve.seconds,
        "limit_s": solve.limit_seconds,
        "harness_over_limit": ratio,
        "harness_over_limit_cpu": solve.ratio_cpu,
        "rounds": solve.rounds,
        "peak_mem_mb": solve.peak_mem_mb,
        "memory_kind": solve.memory_kind,
        **{f"calls_{k}": v for k, v in solve.calls.items() if v},
    }
    if spec.cost is None:
        return row
    full = spec.cost(hparams)
    one, two = spec.cost({**hparams, "steps": 1}), spec.cost({**hparams, "steps": 2})
    step = {k: two.get(k, 0) - one.get(k, 0) for k in two}
    per_image = 1 / solve.batch
    row.update(
        s_per_image=ratio * weighted_calls(full, seconds) * per_image,
        step_s_per_image=ratio * weighted_calls(step, seconds) * per_image,
        tflop_per_image=weighted_calls(full, flops) * per_image / 1e12,
    )
    return row


def add_ratios(rows: list[dict]) -> None:
    """x SILO columns: each solver's time and FLOPs over the reference solver's at its batch."""
    reference = {r["batch"]: r for r in rows if r["solver"] == REFERENCE and "s_per_image" in r}
    for row in rows:
        ref = reference.get(row["batch"])
        if ref is None or "s_per_image" not in row:
            continue
        row["ratio_to_silo"] = row["s_per_image"] / ref["s_per_image"]
        row["flop_ratio_to_silo"] = row["tflop_per_image"] / ref["tflop_per_image"]


def profile_command(options: ProfileOptions, log: Callable[[str], None]) -> list[Path]:
    """Run the profile and write profile.{csv,md,tex}, calls.csv and the batch plot."""
    batches = parse_batches(options.batch)
    names = [s.strip() for s in options.solvers.split(",") if s.strip()]
    if not names:
        raise ValueError("--solvers is empty; see `bench list` for the valid names")
    specs = [get_solver(name) for name in names]
    if min(options.steps, options.repeats, options.solve_repeats) < 1 or options.warmup_steps < 0:
        raise ValueError("--steps, --repeats, --solve-repeats must be >= 1, --warmup-steps >= 0")
    dtype = configure_precision(options.precision)
    size = options.size or native_size(options.arch)
    start = time.perf_counter()
    prior = profile_prior(options.arch, size, options.device, dtype)
    # FLOPs are counted on a twin with "meta" tensors: shapes only, no arithmetic
    twin = prior if options.arch == "embedded" else profile_prior(options.arch, size, "meta", dtype)
    template = build_degradation(options.deg, prior.image_size)
    task = options.deg.split(":")[0]
    sigma_pm1 = sigma_01_to_pm1(options.sigma)
    env = environment(prior.device, prior.dtype)

    def progress(what: str) -> None:
        log(f"[{time.perf_counter() - start:7.1f} s] {what}")

    progress(f"{options.arch} at {size} px on {env['device_name']} ({options.precision})")
    call_times: list[CallTime] = []
    rows: list[dict] = []
    for batch in batches:
        op = template.seeded(generators(batch))
        operator = profile_operator(prior, op)
        seconds, flops = {}, {}
        twin_calls = network_calls(twin, profile_operator(twin, op), batch, sigma_pm1)
        alone = network_calls(prior, operator, batch, sigma_pm1)
        for (network, passes), call in alone.items():
            count = count_flops(twin_calls[(network, passes)])
            timing = time_call(
                network, passes, call, batch, prior.device, options.repeats, count, options.steps
            )
            call_times.append(timing)
            seconds[(network, passes)] = timing.seconds
            flops[(network, passes)] = timing.flops
            progress(f"batch {batch} {network} {passes}: {timing.seconds:.4f} s/call")
        x = torch.rand(batch, 3, size, size, device=prior.device, dtype=dtype) * 2 - 1
        y = measure(op, x, sigma_pm1, generators(batch))
        for spec in specs:
            hparams = spec.hparams(task)
            why = spec.why_unsupported(op, hparams)
            if why:
                progress(f"skipped {spec.name}: {why}")
                continue
            extra = {"latent_operator": operator} if "latent_operator" in spec.needs else {}
            solve = time_solve(
                prior,
                op,
                y,
                spec.name,
                {**hparams, **extra},
                alone,
                sigma_pm1=sigma_pm1,
                steps=options.steps,
                warmup_steps=options.warmup_steps,
                rounds=options.solve_repeats,
            )
            row = solver_row(solve, hparams, seconds, flops)
            rows.append(row)
            progress(
                f"batch {batch} {spec.name}: {solve.steps} steps in {solve.seconds:.3f} s, "
                f"harness/limit {row['harness_over_limit']:.3f} "
                f"(CPU time {row['harness_over_limit_cpu']:.3f})"
            )
    add_ratios(rows)
    context = {
        "arch": options.arch,
        "size": size,
        "degradation": options.deg,
        "precision": options.precision,
        **env,
    }
    command = shlex.join(["bench", *sys.argv[1:]])
    calls = [{**asdict(c), **context} for c in call_times]
    return write_outputs(
        Path(options.out), [{**r, **context} for r in rows], calls, command, context
    )
