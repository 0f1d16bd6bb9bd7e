"""The tuning report: chosen vs official values (tuning.csv, tuning.md) and tuning curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.report.tables import METRICS, md_row
from bench.tune import SETTING


def curves(block: pd.DataFrame, entry: dict) -> dict[str, pd.DataFrame]:
    """The points of one setting along each varied hyperparameter, the others held at their
    chosen values: {name: frame with a column `multiple` (value / official)}; a
    hyperparameter whose official value is not a nonzero number has no curve."""
    hparams = block.hparams.map(json.loads)
    lines = {}
    for name, official in entry["official"].items():
        if not isinstance(official, int | float) or isinstance(official, bool) or official == 0:
            continue
        others = {k: v for k, v in entry["hparams"].items() if k != name}
        keep = hparams.map(lambda h, others=others: all(h[k] == v for k, v in others.items()))
        multiple = hparams[keep].map(lambda h, name=name, official=official: h[name] / official)
        lines[name] = block[keep].assign(multiple=multiple).sort_values("multiple")
    return lines


def tuning_curves(points: pd.DataFrame, entries: list[dict], metric: str, path: Path) -> Path:
    """One panel per solver and tuned hyperparameter: validation metric vs the value as a
    multiple of the official one (1 = official, dashed), the solver's other tuned
    hyperparameters held at their chosen values, a line per degradation and sigma, the chosen
    point filled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple[str, str], list[tuple[str, pd.DataFrame]]] = {}
    for entry in sorted(entries, key=lambda e: e["solver"]):
        block = points[
            (points.solver == entry["solver"])
            & (points.degradation == entry["degradation"])
            & (points.sigma_01 == entry["sigma_01"])
        ]
        label = f"{entry['degradation'].split(':')[0]} σ={entry['sigma_01']:g}"
        for name, line in curves(block, entry).items():
            panels.setdefault((entry["solver"], name), []).append((label, line))
    cols = max(1, min(3, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, ((solver, name), lines) in zip(axes.flat, panels.items(), strict=False):
        for label, line in lines:
            (drawn,) = ax.plot(line.multiple, line[metric], "o-", mfc="none", label=label)
            best = line[line.chosen]
            ax.plot(best.multiple, best[metric], "o", color=drawn.get_color())
        ax.axvline(1.0, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(solver)
        ax.set_xlabel(f"{name} ÷ official")
        ax.set_ylabel(f"validation {METRICS[metric].label}")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def is_point(hparams: dict, values: dict) -> bool:
    """The hyperparameters hold these values (up to float rounding)."""
    return all(math.isclose(hparams[k], v, rel_tol=1e-9) for k, v in values.items())


def grid_edge(block: pd.DataFrame, chosen: dict) -> str:
    """'zeta high' when the chosen value is the grid's largest (widen the grid), '' inside."""
    grids = block.hparams.map(json.loads)
    edges = []
    for name, value in chosen.items():
        values = grids.map(lambda h, name=name: h[name])
        if value == values.max():
            edges.append(f"{name} high")
        elif value == values.min():
            edges.append(f"{name} low")
    return ", ".join(edges)


def chosen_table(points: pd.DataFrame, entries: list[dict], metric: str) -> pd.DataFrame:
    """Per tuned setting: each tuned hyperparameter's official and chosen value, the validation
    metric at the chosen point and at the official one (when the grid holds it), and whether
    the choice sits at an edge of the grid."""
    rows = []
    for e in entries:
        block = points[
            (points.solver == e["solver"])
            & (points.degradation == e["degradation"])
            & (points.sigma_01 == e["sigma_01"])
        ]
        at_official = block[
            block.hparams.map(lambda h, e=e: is_point(json.loads(h), e["official"]))
        ]
        rows.append(
            {
                **{k: e.get(k) for k in SETTING},
                "hyperparameter": ", ".join(e["hparams"]),
                "official": ", ".join(f"{v:g}" for v in e["official"].values()),
                "chosen": ", ".join(f"{v:g}" for v in e["hparams"].values()),
                f"val {metric} chosen": e[f"val_{metric}"],
                f"val {metric} official": at_official[metric].iloc[0]
                if len(at_official)
                else float("nan"),
                "val n": e["val_n"],
                "grid edge": grid_edge(block, e["hparams"]),
            }
        )
    return pd.DataFrame(rows)


def cell_text(value: object) -> str:
    """A table cell: floats with 4 significant digits, NaN and None as '--'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_tuning_report(
    out: Path, points: pd.DataFrame, entries: list[dict], metric: str
) -> list[Path]:
    """tuning.csv (every grid point, `chosen` marked), tuning.md (chosen vs official) and
    plots/tuning_curves.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    points_csv = out / "tuning.csv"
    points.to_csv(points_csv, index=False)
    table = chosen_table(points, entries, metric)
    md = out / "tuning.md"
    lines = [f"# Tuned step sizes (validation {metric})", ""]
    if len(table):
        lines += [md_row(list(table.columns)), md_row(["---"] * len(table.columns))]
        lines += [md_row([cell_text(v) for v in row]) for row in table.itertuples(index=False)]
    md.write_text("\n".join(lines or ["(nothing tuned)"]) + "\n")
    written = [points_csv, md]
    if entries:
        written.append(tuning_curves(points, entries, metric, out / "plots" / "tuning_curves.png"))
    return written
