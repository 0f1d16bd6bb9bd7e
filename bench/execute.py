"""Execute cells: build y with common random numbers, solve (timed, counted), score, record."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import torch

from bench import metrics
from bench.claims import claim, release
from bench.counters import CALL_COUNT_COLUMNS, CountedPrior, counting
from bench.data import ImageSource
from bench.outputs import save_cell_images
from bench.priors.base import Prior
from bench.seeding import generator_for
from bench.store import record_mtime, write_record
from bench.sweep import Cell
from bench.timing import Timing, environment, timed
from operators import build_degradation, measure
from operators.base import Degradation
from solvers import SolverDiverged, get_solver

WARMUP_CAP = 2  # warm-up solves cap steps and optimiser iterations at this


@dataclass
class RunContext:
    """What every cell of one worker shares: the prior, the images, where records go."""

    prior: Prior
    source: ImageSource
    out: Path
    save_images: bool = True
    resources: Callable[[Cell, Degradation], dict] | None = None
    env: dict = field(default_factory=dict)
    warmed: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.time)  # newer records were written by others

    def __post_init__(self) -> None:
        self.env = self.env or environment(self.prior.device, self.prior.dtype)


def measurement_generators(cell: Cell) -> tuple[torch.Generator, torch.Generator]:
    """(mask, noise) generators: the mask depends on (image, deg, seed), the noise also on sigma."""
    mask = generator_for("mask", cell.dataset, cell.image_id, cell.degradation, cell.seed)
    noise = generator_for(
        "noise", cell.dataset, cell.image_id, cell.degradation, cell.sigma_01, cell.seed
    )
    return mask, noise


def solver_generator(cell: Cell) -> torch.Generator:
    """z_T and every later solver draw depend on (image, seed) only."""
    return generator_for("solver", cell.dataset, cell.image_id, cell.seed)


def make_measurement(
    prior: Prior, cells: list[Cell], x: torch.Tensor
) -> tuple[Degradation, torch.Tensor]:
    """The seeded operator and y = A(x) + sigma_pm1 n for a batch of cells of one group."""
    masks, noises = zip(*(measurement_generators(c) for c in cells), strict=True)
    op = build_degradation(cells[0].degradation, prior.image_size).seeded(list(masks))
    return op, measure(op, x, cells[0].sigma_pm1, list(noises))


def oracle_metrics(
    prior: Prior, cell: Cell, x_hat: torch.Tensor, y: torch.Tensor
) -> dict[str, float | None]:
    """psnr_post and post_ratio against the exact posterior (gaussian prior, linear A, sigma>0)."""
    posterior = getattr(prior, "posterior", None)
    if posterior is None or cell.sigma_01 <= 0:
        return {"psnr_post": None, "post_ratio": None}
    op = build_degradation(cell.degradation, prior.image_size).seeded(
        [measurement_generators(cell)[0]]
    )
    if not op.is_linear:
        return {"psnr_post": None, "post_ratio": None}
    post = posterior(y[None], op, cell.sigma_pm1)
    return {
        "psnr_post": float(metrics.psnr(x_hat[None], post.mean[None])[0]),
        "post_ratio": metrics.post_ratio(x_hat, post.mean, post.trace),
    }


def base_record(cell: Cell) -> dict:
    """The identifying columns every record carries."""
    return {
        "key": cell.key,
        "prior": cell.prior,
        "dataset": cell.dataset,
        "image_id": cell.image_id,
        "degradation": cell.degradation,
        "sigma_01": cell.sigma_01,
        "sigma_pm1": cell.sigma_pm1,
        "solver": cell.solver,
        "solver_label": cell.label,
        "hparams": json.dumps(cell.hparams, sort_keys=True),
        "artifacts": json.dumps(cell.artifacts, sort_keys=True) if cell.artifacts else None,
        "seed": cell.seed,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def failure_record(cell: Cell, status: str, error: BaseException, env: dict | None = None) -> dict:
    """A record for a cell that did not produce an image; the message says why and where."""
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, SolverDiverged):
        message += f" (step {error.step})"
    where = "".join(traceback.format_exception(error, limit=-3)) if status == "error" else None
    record = {**base_record(cell), "status": status, "error": message, "traceback": where}
    return record | ({"env": env} if env else {})


def status_of(error: BaseException) -> str:
    """diverged / oom / error."""
    if isinstance(error, SolverDiverged):
        return "diverged"
    if isinstance(error, torch.OutOfMemoryError):
        return "oom"
    return "error"


def warmup_hparams(hparams: dict) -> dict:
    """The same solver, shortened: steps and *_iters capped (compiles kernels, fills caches)."""
    return {
        k: min(v, WARMUP_CAP)
        if (k == "steps" or k.endswith("_iters")) and isinstance(v, int)
        else v
        for k, v in hparams.items()
    }


def timed_solve(
    solve: Callable[..., torch.Tensor],
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    generators: list[torch.Generator],
    sigma_pm1: float,
    hparams: dict,
) -> tuple[torch.Tensor, Timing, dict[str, int]]:
    """One synchronized, counted solve y -> x_hat: the result, its timing and its call counts."""
    with counting() as counts, timed(prior.device) as timing:
        x_hat = solve(
            CountedPrior(prior), op, y, generator=generators, sigma_pm1=sigma_pm1, **hparams
        )
    return x_hat, timing, {name: counts[name] for name in CALL_COUNT_COLUMNS}


def solve_batch(ctx: RunContext, cells: list[Cell], x: torch.Tensor) -> list[dict]:
    """One batched, timed, counted solve of cells that share a group; one record per cell."""
    prior, head = ctx.prior, cells[0]
    op, y = make_measurement(prior, cells, x)
    solve = get_solver(head.solver).fn
    extra = ctx.resources(head, op) if ctx.resources else {}
    if head.solver not in ctx.warmed:  # one untimed warm-up per solver and process
        solve(
            prior,
            op,
            y,
            generator=[solver_generator(c) for c in cells],
            sigma_pm1=head.sigma_pm1,
            **warmup_hparams(head.hparams),
            **extra,
        )
        ctx.warmed.add(head.solver)
    generators = [solver_generator(c) for c in cells]
    x_hat, timing, costs = timed_solve(
        solve, prior, op, y, generators, head.sigma_pm1, {**head.hparams, **extra}
    )
    with torch.no_grad():
        op_x_hat, op_x = op.forward(x_hat), op.forward(x)
        up = op.upsample_for_encoding
        consistency = metrics.psnr(up(op_x_hat), up(op_x))
    psnr = metrics.psnr(metrics.quantize_8bit(x_hat), x)
    rms = metrics.residual_rms(op_x_hat, y)
    records = []
    for i, cell in enumerate(cells):
        record = {
            **base_record(cell),
            "status": "ok",
            "error": None,
            "psnr": float(psnr[i]),
            "residual_rms": float(rms[i]),
            "consistency_psnr": float(consistency[i]),
            "runtime_s": timing.seconds / len(cells),
            "batch_runtime_s": timing.seconds,
            "peak_mem_mb": timing.peak_mem_mb,
            "memory_kind": timing.memory_kind,
            "batch": len(cells),
            **costs,
            **oracle_metrics(prior, cell, x_hat[i], y[i]),
            "env": ctx.env,
        }
        if ctx.save_images:
            record.update(
                save_cell_images(
                    ctx.out,
                    cell.key,
                    cell.dataset,
                    cell.image_id,
                    x=x[i],
                    y=y[i],
                    x_hat=x_hat[i],
                    op_x_hat=op_x_hat[i],
                )
            )
        records.append(record)
    return records


def run_cells(
    ctx: RunContext,
    cells: Iterable[Cell],
    *,
    batch: int = 1,
    on_record: Callable[[dict], None] | None = None,
    on_batch: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run cells in batches of one group; every record is written as soon as its batch ends
    (on_record per record, then on_batch with the batch's records). Each batch's cells are
    claimed first, so processes sharing the run folder split the work."""
    done: list[dict] = []
    ordered = sorted(cells, key=lambda c: (c.group, c.image_id))
    for _, group in groupby(ordered, key=lambda c: c.group):
        group = list(group)
        for start in range(0, len(group), batch):
            mine = claim_cells(ctx, group[start : start + batch])
            try:
                chunk = run_chunk(ctx, mine) if mine else []
                for record in chunk:
                    write_record(ctx.out, record)
                    done.append(record)
                    if on_record:
                        on_record(record)
            finally:
                for cell in mine:
                    release(ctx.out, cell.key)
            if on_batch and chunk:
                on_batch(chunk)
    return done


def claim_cells(ctx: RunContext, chunk: list[Cell]) -> list[Cell]:
    """The cells of `chunk` this process claimed and no other process finished since this one
    started (those and the ones held by others are left out)."""
    mine = []
    try:
        for cell in chunk:
            if not claim(ctx.out, cell.key):
                continue
            mine.append(cell)
            finished = record_mtime(ctx.out, cell.key)
            if finished is not None and finished >= ctx.started:
                release(ctx.out, mine.pop().key)
    except BaseException:  # Ctrl-C / SIGTERM / a full disk while claiming: hold nothing
        for cell in mine:
            release(ctx.out, cell.key)
        raise
    return mine


RUN_FOLDER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def is_run_folder_error(e: BaseException, out: Path) -> bool:
    """An OSError of the disk (full, read-only, over quota) or of a path in the run folder; a
    missing input (an operator file, an image) stays that cell's error."""
    if not isinstance(e, OSError):
        return False
    if e.errno in RUN_FOLDER_ERRNOS:
        return True
    return bool(e.filename) and Path(os.fsdecode(e.filename)).resolve().is_relative_to(
        Path(out).resolve()
    )


def run_chunk(ctx: RunContext, chunk: list[Cell]) -> list[dict]:
    """Load images (bad files -> error records), solve the rest, turn failures into records."""
    records, ready, images = [], [], []
    for cell in chunk:
        try:
            images.append(ctx.source.load(cell.image_id).to(ctx.prior.device, ctx.prior.dtype))
            ready.append(cell)
        except Exception as e:
            records.append(failure_record(cell, "error", e, ctx.env))
    if not ready:
        return records
    try:
        with torch.enable_grad():
            records.extend(solve_batch(ctx, ready, torch.stack(images)))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        if is_run_folder_error(e, ctx.out):  # a full or read-only disk is not the cell's failure
            raise
        if isinstance(e, torch.OutOfMemoryError) and ctx.prior.device.type == "cuda":
            torch.cuda.empty_cache()
        records.extend(failure_record(cell, status_of(e), e, ctx.env) for cell in ready)
    return records
