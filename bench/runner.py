"""From run options to cells and back: resolve the sweep, build a worker's context, run it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from itertools import groupby
from pathlib import Path

from bench.data import ImageSource, folder_images, prior_samples, select_ids
from bench.execute import RunContext
from bench.grid import expand_overrides, is_grid, resolve_value
from bench.hf_data import is_hf_data
from bench.options import RunOptions
from bench.presets import preset_solver_defaults
from bench.priors import load_prior
from bench.priors.base import Prior
from bench.runspec import EXECUTORS, RunSpec
from bench.store import existing_status
from bench.sweep import (
    Cell,
    SolverChoice,
    canonical_spec,
    coerce_like,
    parse_solver_overrides,
    parse_solver_token,
    plan_cells,
    split_top_level,
)
from bench.timing import configure_precision
from bench.tuned import apply_tuned
from bench.validate import (
    check_counts,
    check_images,
    check_out,
    check_steps,
    parse_seeds,
    parse_sigmas,
)
from operators import build_degradation
from operators.latent.lookup import FOLDERS_ENV, active_operator_folders, find_operator
from solvers import SolverSpec, get_solver

ORACLE_SAMPLES = 1000  # ids the oracle's own data set offers
ORACLE_DEFAULT_IMAGES = "8"


def split_specs(text: str) -> list[str]:
    """'blur:sigma=2,size=31,sr4' -> ['blur:sigma=2,size=31', 'sr4'] (params stay with their op)."""
    specs: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if "=" in token and ":" not in token and specs:
            specs[-1] += "," + token
        else:
            specs.append(token)
    return specs


def resolve_solvers(
    text: str,
    degradations: list[str],
    steps: int | None,
    set_items: list[str],
    task_overrides: dict[str, dict[str, dict]] | None = None,
) -> list[SolverChoice]:
    """Solver tokens ('psld[omega=0.5]') + --set + --steps -> hyperparameters per degradation.

    `task_overrides` ({solver: {degradation name: hparams}}, a preset's) sit above the
    registry's defaults and below --set and [brackets].
    Grid values (lists, log ranges, multiples '*k' of the official value) in brackets or --set
    expand to the Cartesian product, one labelled row per point ('ldps[zeta=0.5]')."""
    tokens = [parse_solver_token(t) for t in split_top_level(text)]
    if not tokens:
        raise ValueError("--solvers is empty; see `bench list` for the valid names")
    global_overrides = parse_solver_overrides(set_items)
    unknown = sorted(set(global_overrides) - {name for name, _ in tokens})
    if unknown:
        raise ValueError(f"--set names solver(s) not in --solvers: {', '.join(unknown)}")
    choices, labels = [], set()
    for name, bracket in tokens:
        spec = get_solver(name)
        fixed = {k: v for k, v in global_overrides.get(name, {}).items() if k not in bracket}
        set_grid = {k: v for k, v in fixed.items() if is_grid(v)}
        for point in expand_overrides({**bracket, **set_grid}):
            shown = {k: point[k] for k in [*bracket, *set_grid]}
            label = name + (
                "[" + ",".join(f"{k}={v}" for k, v in shown.items()) + "]" if shown else ""
            )
            if label in labels:
                raise ValueError(f"solver {label!r} is listed twice in --solvers")
            labels.add(label)
            overrides = {**fixed, **point}
            choices.append(
                SolverChoice(
                    name,
                    label,
                    hparams_per_degradation(
                        spec, degradations, steps, overrides, (task_overrides or {}).get(name, {})
                    ),
                )
            )
    return choices


def hparams_per_degradation(
    spec: SolverSpec,
    degradations: list[str],
    steps: int | None,
    overrides: dict[str, str],
    task_overrides: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """The solver's resolved hyperparameters for each degradation (its per-task defaults, a
    preset's per-task values, then --steps, then the overrides; '*k' multiplies that
    degradation's default, the preset's where it sets one)."""
    per_deg = {}
    for deg in degradations:
        task = deg.split(":")[0]
        spec.hparams(task, overrides)  # an unknown name fails here, listing the valid ones
        preset = (task_overrides or {}).get(task, {})
        base = spec.hparams(task, preset)
        given = {k: v for k, v in base.items() if k in preset}
        given |= {k: resolve_value(v, base.get(k, v), coerce_like) for k, v in overrides.items()}
        if steps is not None and "steps" in base:
            given.setdefault("steps", steps)
        per_deg[deg] = spec.hparams(task, given)
    return per_deg


def image_source(prior: Prior, data: str | None) -> ImageSource:
    """--data FOLDER / hf:NAME / a saved `datasets` folder, else the prior's default set
    (embedded: held-out crops; oracle: samples)."""
    if data and is_hf_data(data):
        from bench.hf_data import hf_images

        return hf_images(data, prior.image_size)
    if data:
        return folder_images(data, prior.image_size)
    default = getattr(prior, "default_source", None)
    return default() if default else prior_samples(prior, ORACLE_SAMPLES)


def load_run_prior(spec: RunSpec) -> Prior:
    """Set precision flags, then load the prior in the matching dtype."""
    dtype = configure_precision(spec.precision)
    return load_prior(
        spec.prior,
        prompt=spec.prompt,
        device=spec.device,
        dtype=None if spec.prior == "gaussian" else dtype,
    )


def build_context(spec: RunSpec, prior: Prior | None = None) -> RunContext:
    """A worker's context: the prior, its images, where to write and where operators are."""
    if spec.operators:  # the environment reaches spawned and SLURM workers too
        os.environ[FOLDERS_ENV] = os.pathsep.join(spec.operators)
    prior = prior or load_run_prior(spec)
    context = RunContext(
        prior=prior,
        source=image_source(prior, spec.data),
        out=spec.out,
        save_images=spec.save_images,
    )
    context.env["executor"] = spec.executor  # next to env["threads"]
    return context


@dataclass
class Plan:
    """A resolved sweep: every cell, the ones still to run, and the context to run them in."""

    options: RunOptions
    cells: list[Cell]
    todo: list[Cell]
    context: RunContext
    degradations: list[str]
    solvers: list[SolverChoice]
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)  # (solver, deg) -> why

    def config(self) -> dict:
        """The resolved configuration saved next to the results."""
        return {
            "options": asdict(self.options),
            "degradations": self.degradations,
            "solvers": [asdict(s) for s in self.solvers],
            "images": sorted({c.image_id for c in self.cells}),
            "cells": len(self.cells),
            "cell_keys": [c.key for c in self.cells],  # what `--status` counts against
            "skipped": [
                {"solver": s, "degradation": d, "why": w} for (s, d), w in self.skipped.items()
            ],
            "dataset": self.context.source.name,
            "env": self.context.env,
        }


def make_plan(options: RunOptions) -> Plan:
    """Validate every option, load the prior, resolve the sweep and the cells left to run."""
    if not options.solvers:
        raise ValueError("--solvers is required (see `bench list`)")
    if options.executor not in EXECUTORS:
        raise ValueError(f"unknown executor {options.executor!r}; valid: {', '.join(EXECUTORS)}")
    for name, _ in map(parse_solver_token, split_top_level(options.solvers)):
        get_solver(name)
    check_counts(options.steps, options.batch, options.workers)
    check_out(Path(options.out))
    sigmas, seeds = parse_sigmas(options.sigma), parse_seeds(options.seeds)
    spec = options.spec()
    context = build_context(spec)
    prior = context.prior
    degradations = [
        canonical_spec(build_degradation(s, prior.image_size)) for s in split_specs(options.deg)
    ]
    default_images = None if options.data else ORACLE_DEFAULT_IMAGES
    ids = select_ids(context.source.ids, options.images or default_images)
    check_images(ids, options.images, len(context.source.ids))
    run_defaults = getattr(prior, "run_defaults", {})
    options.steps = options.steps or run_defaults.get("steps")
    options.batch = options.batch or run_defaults.get("batch", 1)
    solvers = [
        with_artifacts(choice, prior, degradations)
        for choice in resolve_solvers(
            options.solvers,
            degradations,
            options.steps,
            options.set,
            preset_solver_defaults(options.preset),
        )
    ]
    check_steps(solvers, options.steps, len(prior.alphas_cumprod))
    cells = plan_cells(
        prior=options.prior,
        dataset=context.source.name,
        image_ids=ids,
        degradations=degradations,
        sigmas_01=sigmas,
        solvers=solvers,
        seeds=seeds,
    )
    cells, skipped = drop_unsupported(apply_tuned(cells, options.tuned), prior.image_size)
    if not cells:
        raise ValueError("nothing to run:\n  " + "\n  ".join(skipped.values()))
    out = Path(options.out)
    todo = [c for c in cells if needs_run(out, c, options.force, options.retry_failed)]
    return Plan(options, cells, todo, context, degradations, solvers, skipped)


def drop_unsupported(
    cells: list[Cell], image_size: int
) -> tuple[list[Cell], dict[tuple[str, str], str]]:
    """The cells whose solver supports their degradation, and why each other (solver, deg) not."""
    ops = {d: build_degradation(d, image_size) for d in {c.degradation for c in cells}}
    reasons: dict[tuple[str, str], str | None] = {}
    for c in cells:
        if (c.label, c.degradation) not in reasons:
            why = get_solver(c.solver).why_unsupported(ops[c.degradation], c.hparams)
            reasons[(c.label, c.degradation)] = why
    kept = [c for c in cells if reasons[(c.label, c.degradation)] is None]
    return kept, {k: why for k, why in reasons.items() if why is not None}


def with_artifacts(choice: SolverChoice, prior: Prior, degradations: list[str]) -> SolverChoice:
    """Put the identity (file name and sha256) of each trained operator a solver loads into its
    cells' keys, so retraining H reruns SILO; a missing operator fails here, before any solve,
    with the `bench train-operator` command."""
    if "latent_operator" not in get_solver(choice.name).needs or hasattr(
        prior, "exact_latent_operator"
    ):
        return choice
    artifacts = {}
    for deg in degradations:
        path = find_operator(prior.name, deg, active_operator_folders())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        artifacts[deg] = {"latent_operator": f"{path.name}@{digest}"}
    return replace(choice, artifacts=artifacts)


def needs_run(out: Path, cell: Cell, force: bool, retry_failed: bool) -> bool:
    """Resume rule: skip cells with a record, unless forced or a failure to retry."""
    status = existing_status(out, cell.key)
    return force or status is None or (retry_failed and status != "ok")


def describe_plan(plan: Plan) -> list[dict]:
    """One row per (solver, degradation, sigma): cells, to run, steps, network calls to run."""
    rows: dict[tuple, dict] = {}
    for cell in plan.cells:
        row = rows.setdefault(
            (cell.label, cell.degradation, cell.sigma_01),
            {
                "solver": cell.label,
                "degradation": cell.degradation,
                "sigma_01": cell.sigma_01,
                "cells": 0,
                "to_run": 0,
                "steps": cell.hparams.get("steps", "-"),
                **dict.fromkeys(CALL_COLUMNS, 0),
            },
        )
        row["cells"] += 1
    for cell in plan.todo:
        rows[(cell.label, cell.degradation, cell.sigma_01)]["to_run"] += 1
    batch = plan.options.batch or 1
    for _, group in groupby(sorted(plan.todo, key=lambda c: c.group), key=lambda c: c.group):
        group = list(group)
        row = rows[(group[0].label, group[0].degradation, group[0].sigma_01)]
        for column, passes in network_passes(group, batch).items():
            row[column] += passes
    return list(rows.values())


def network_passes(cells: list[Cell], batch: int) -> dict[str, int]:
    """Declared network passes (per CALL_COLUMNS) to solve cells of one group in batches of
    `batch`, from the solver's cost model; a batched call counts once per solve."""
    head = cells[0]
    cost = get_solver(head.solver).cost
    calls = cost(head.hparams) if cost else {}
    solves = -(-len(cells) // batch)
    return {
        column: solves * sum(calls.get(n, 0) for n in names)
        for column, names in CALL_COLUMNS.items()
    }


CALL_COLUMNS = {  # network passes still to run (batched calls count once)
    "unet f+b": ("unet_fwd", "unet_bwd"),
    "dec f+b": ("dec_fwd", "dec_bwd"),
    "enc f+b": ("enc_fwd", "enc_bwd"),
}


def save_config(plan: Plan) -> Path:
    """Write the resolved config next to the results (config.json)."""
    out = Path(plan.options.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    path.write_text(json.dumps(plan.config(), indent=1, default=str))
    return path
