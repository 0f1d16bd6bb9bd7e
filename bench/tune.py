"""`bench tune`: a grid on a validation split, the best point per setting, then the test split."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from bench.data import select_ids
from bench.grid import auto_grid, is_grid
from bench.report.frame import IMAGE_METRICS, Notes, add_image_metrics, load_frame
from bench.report.tables import METRICS
from bench.runner import RunOptions
from bench.sweep import parse_solver_overrides, parse_solver_token, split_top_level
from solvers import get_solver

SETTING = ["solver", "degradation", "sigma_01", "steps"]  # one chosen point per setting
TUNABLE = [n for n, m in METRICS.items() if m.better in ("max", "min") and not m.per_set]
TIE_DIGITS = 6  # metric means equal to this many decimals are a tie, broken by runtime


def check_metric(metric: str) -> str:
    """A per-image metric with a direction (psnr, ssim, lpips_*, ...), else a ValueError."""
    if metric not in TUNABLE:
        raise ValueError(f"--metric {metric!r} cannot be tuned on; valid: {', '.join(TUNABLE)}")
    return metric


def grid_items(grid: list[str], solvers: str) -> list[str]:
    """--grid items as --set items; 'auto' adds each solver's declared step-size ranges for the
    hyperparameters the other items leave alone."""
    names = [parse_solver_token(t)[0] for t in split_top_level(solvers)]
    explicit = [g for g in grid if g != "auto"]
    for item in explicit:
        value = item.partition("=")[2]
        if not is_grid(value):
            raise ValueError(
                f"--grid {item!r}: a grid is a list [a,b], log(a,b,n) or *log(a,b,n) "
                "(multiples of the official value); fixed values go in --set"
            )
    given = parse_solver_overrides(explicit)
    auto = []
    if "auto" in grid:
        for name in dict.fromkeys(names):
            steps = get_solver(name).step_sizes
            auto += auto_grid(
                name, {k: r for k, r in steps.items() if k not in given.get(name, {})}
            )
    return explicit + auto


def validation_options(base: RunOptions, grid: list[str], val: str) -> RunOptions:
    """The grid run: the test options with the grid added to --set, on the validation images."""
    return replace(
        base,
        set=[*base.set, *grid_items(grid, base.solvers)],
        images=val,
        out=str(Path(base.out) / "val"),
    )


def test_options(base: RunOptions, test: str, tuned: list[dict]) -> RunOptions:
    """The test run: the solvers without grids, the chosen points applied, the test images."""
    solvers = []
    for token in split_top_level(base.solvers):
        name, bracket = parse_solver_token(token)
        fixed = [f"{k}={v}" for k, v in bracket.items() if not is_grid(v)]
        solvers.append(name + (f"[{','.join(fixed)}]" if fixed else ""))
    return replace(
        base,
        solvers=",".join(solvers),
        set=[s for s in base.set if not is_grid(s.partition("=")[2])],
        images=test,
        out=str(Path(base.out) / "test"),
        tuned=tuned,
    )


def check_disjoint(ids: list[str], val: str, test: str) -> None:
    """Refuse a validation split that shares an image with the test split."""
    overlap = sorted(set(select_ids(ids, val)) & set(select_ids(ids, test)))
    if overlap:
        raise ValueError(
            f"--val and --test share {len(overlap)} image(s): {', '.join(overlap)}; "
            "tuning on test images overstates every tuned row (choose disjoint splits)"
        )


def score_points(val_dir: Path, keys: set[str], metric: str) -> pd.DataFrame:
    """One row per grid point and setting: mean metric and runtime over the validation images,
    images scored and failed, and the point's hyperparameters (records outside `keys` ignored)."""
    frame = load_frame([val_dir])
    frame = frame[frame.key.isin(keys)]
    if metric in IMAGE_METRICS:
        frame = add_image_metrics(frame, lpips=True, device="cpu", notes=Notes())
    frame = frame.assign(steps=[json.loads(h).get("steps") for h in frame.hparams])
    rows = []
    for (label, *setting), block in frame.groupby(
        ["solver_label", *SETTING], dropna=False, sort=True
    ):
        ok = block[block.status == "ok"]
        rows.append(
            {
                "solver_label": label,
                **dict(zip(SETTING, setting, strict=True)),
                metric: ok[metric].mean(),
                "runtime_s": ok.runtime_s.mean(),
                "n": len(ok),
                "failed": len(block) - len(ok),
                "hparams": block.hparams.iloc[0],
            }
        )
    return pd.DataFrame(rows)


def choose(points: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The best point of each setting by `metric` (ties by runtime); points with a failed or
    unscored image are not eligible. A `chosen` column marks them."""
    sign = -1.0 if METRICS[metric].better == "max" else 1.0
    eligible = (points.failed == 0) & points[metric].notna()
    order = points.assign(
        _rank=(sign * points[metric]).round(TIE_DIGITS), _eligible=~eligible
    ).sort_values(["_eligible", "_rank", "runtime_s"], kind="stable")
    best = order.groupby(SETTING, dropna=False, sort=False).head(1)
    best = best[~best._eligible]
    return points.assign(chosen=points.index.isin(best.index))


def tuned_entries(points: pd.DataFrame, metric: str) -> list[dict]:
    """[[tuned]] tables: per setting, the chosen values of the hyperparameters its grid varied,
    beside their official values and the validation score (settings without a grid are left out)."""
    entries = []
    for setting, block in points.groupby(SETTING, dropna=False, sort=True):
        solver, degradation, sigma_01, steps = setting
        chosen = block[block.chosen]
        grids = [json.loads(h) for h in block.hparams]
        spec = get_solver(solver)
        names = [*spec.step_sizes, *sorted(set(grids[0]) - set(spec.step_sizes))]
        varied = [k for k in names if len({json.dumps(g[k]) for g in grids}) > 1]
        if chosen.empty or not varied:
            continue
        row = chosen.iloc[0]
        hparams = json.loads(row.hparams)
        official = spec.hparams(degradation.split(":")[0])
        entry = {
            "solver": solver,
            "degradation": degradation,
            "sigma_01": float(sigma_01),
            "hparams": {k: hparams[k] for k in varied},
            "official": {k: official[k] for k in varied},
            "point": row.solver_label,
            f"val_{metric}": float(row[metric]),
            "val_n": int(row.n),
        }
        if not pd.isna(steps):
            entry["steps"] = int(steps)
        entries.append(entry)
    return entries


def tuned_toml(options: RunOptions) -> dict:
    """The test run's options as a `bench run --config` file (None values left out)."""
    return {k: v for k, v in asdict(options).items() if v is not None and v != []}
