"""`bench report`: merge run dirs, score the PNGs, write the tables, plots and comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from torch import nn

from bench.console import output_console
from bench.fetch import fetch_missing, weights_used
from bench.report.compare import compare as paired_compare
from bench.report.compare import compare_filename, parse_pair
from bench.report.frame import GROUP, Notes, add_image_metrics, load_frame, per_image_table
from bench.report.latex import latex
from bench.report.perceptual import SCORERS, empty_scores, set_scores
from bench.report.plots import plot_all
from bench.report.tables import (
    METRICS,
    mark_missing_weights,
    markdown,
    number,
    summarize,
    value,
)
from bench.run_state import run_state
from bench.store import records_dir
from bench.weights import MANIFEST, report_keys

SHOWN = ("psnr", "ssim", "lpips_alex", "fid", "runtime_s")


def report_command(
    run_dirs: list[Path],
    out: Path | None = None,
    compare: str | None = None,
    fid_backend: str = "torchmetrics",
    lpips: bool = True,
    fid: bool = True,
    *,
    fid_features: str | nn.Module | None = None,
    device: str | None = None,
    offline: bool = False,
) -> Path:
    """Write per_image.csv, summary.{csv,md,tex}, plots/ (and compare_A_vs_B.csv) into `out`."""
    run_dirs = [Path(d) for d in run_dirs]
    empty = [str(d) for d in run_dirs if not records_dir(d).is_dir()]
    if not run_dirs or empty:
        raise ValueError(f"no records folder in: {', '.join(empty) or '(no run dirs given)'}")
    if fid_backend not in SCORERS:
        raise ValueError(f"unknown --fid-backend {fid_backend!r}; valid: {', '.join(SCORERS)}")
    pair = parse_pair(compare) if compare else None
    out = Path(out) if out is not None else run_dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    notes, err = Notes(), Console(stderr=True)
    for run_dir in run_dirs:  # claimed cells are still running: the tables are partial
        err.print(escape(run_state(run_dir).line()), soft_wrap=True)
    frame = load_frame(run_dirs)
    if frame.empty:
        raise ValueError(f"no records in {', '.join(map(str, run_dirs))}")
    keys = report_keys(
        lpips=lpips, fid=fid, fid_backend=fid_backend, custom_features=fid_features is not None
    )
    for key, why in fetch_missing(keys, offline=offline, console=err).items():
        notes.add(f"{MANIFEST[key].filename} {why}")
    for line in weights_used(keys):
        notes.add(line)
    frame = add_image_metrics(frame, lpips=lpips, device=device, notes=notes)
    if fid:
        scores = set_scores(
            frame, backend=fid_backend, custom=fid_features, device=device, notes=notes
        )
    else:
        scores = empty_scores(frame, "not computed (--no-fid)")
    summary = summarize(frame).merge(scores, on=GROUP, how="left")
    summary = mark_missing_weights(summary, missing_weight_files(keys))
    comparison = paired_compare(frame, *pair) if pair else None
    per_image_table(frame).to_csv(out / "per_image.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    plot_all(frame, summary, out / "plots", notes)
    (out / "summary.md").write_text(markdown(summary, notes))
    (out / "summary.tex").write_text(latex(summary))
    if comparison is not None:
        comparison.to_csv(out / compare_filename(*pair), index=False)
    print_report(summary, comparison, notes, out)
    return out


def missing_weight_files(keys: list[str]) -> dict[str, str]:
    """{kept metric: its weight file} for the report's files that are still absent."""
    metrics = {"lpips-alex": ["lpips_alex"], "lpips-vgg": ["lpips_vgg"]}
    absent = [MANIFEST[k] for k in keys if MANIFEST[k].find() is None]
    return {
        name: entry.filename
        for entry in absent
        for name in metrics.get(entry.key, ["fid", "kid_x1e3"])
    }


def print_report(
    summary: pd.DataFrame, comparison: pd.DataFrame | None, notes: Notes, out: Path
) -> None:
    """A short table per solver x setting, the comparison, the notes and where files went."""
    console, err = output_console(), Console(stderr=True)
    table = Table("solver", "degradation", "sigma", "n", "fail", *(METRICS[m].label for m in SHOWN))
    for _, row in summary.iterrows():
        cells = [number(value(row, METRICS[m]), METRICS[m].digits) for m in SHOWN]
        table.add_row(
            escape(row["solver_label"]),
            escape(row["degradation"]),
            f"{row['sigma_01']:g}",
            str(row["n"]),
            str(row["n_failed"]),
            *cells,
        )
    console.print(table)
    if comparison is not None and not comparison.empty:
        pairs = Table("setting", "metric", "pairs", "mean A-B", "95% CI", "Wilcoxon p")
        pairs.title = escape(f"{comparison.a.iloc[0]} vs {comparison.b.iloc[0]}")
        for _, row in comparison.iterrows():
            low, high = row["ci95_low"], row["ci95_high"]
            ci = f"[{low:.4g}, {high:.4g}]" if np.isfinite(row["ci95"]) else "-"
            pairs.add_row(
                escape(f"{row['degradation']} sigma={row['sigma_01']:g}"),
                row["metric"],
                str(row["n_pairs"]),
                f"{row['mean_diff']:.4g}",
                ci,
                f"{row['wilcoxon_p']:.3g}",
            )
        console.print(pairs)
    for line in notes.lines:
        err.print(f"[yellow]note:[/yellow] {escape(line)}", soft_wrap=True, highlight=False)
    err.print(f"report written to {out} (summary.csv, summary.md, summary.tex, plots/)")
