"""PNG plots: quality vs runtime per setting, a bar chart per metric, solver montages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from bench.outputs import safe_name
from bench.report.frame import BLOCK, Notes, png_path
from bench.report.tables import METRICS, MetricSpec, block_title, blocks, value

DPI = 120
MONTAGE_IMAGES = 4


def setting_slug(setting: dict) -> str:
    """'gaussian_d_sr4_factor_4_s0.01': prior, dataset, degradation, sigma."""
    parts = [setting["prior"], setting["dataset"], setting["degradation"]]
    return "_".join(safe_name(str(p)).strip("_") for p in parts) + f"_s{setting['sigma_01']:g}"


def _ci(row: pd.Series, spec: MetricSpec) -> float:
    """The CI half-width of a summary row's metric; 0 where undefined (no whisker)."""
    ci = np.nan if spec.per_set else float(row[f"{spec.name}_ci95"])
    return ci if np.isfinite(ci) else 0.0


def tradeoff_plot(setting: dict, block: pd.DataFrame, path: Path) -> Path | None:
    """LPIPS-alex (PSNR without LPIPS) vs mean runtime, one point per solver, 95% CI whiskers."""
    metric = METRICS["lpips_alex" if block["lpips_alex_mean"].notna().any() else "psnr"]
    time = METRICS["runtime_s"]
    usable = block[block[f"{metric.name}_mean"].notna() & block["runtime_s_mean"].notna()]
    if usable.empty:
        return None
    fig = Figure(figsize=(6, 4.5), dpi=DPI)
    ax = fig.subplots()
    for _, row in usable.iterrows():
        ax.errorbar(
            value(row, time),
            value(row, metric),
            xerr=_ci(row, time),
            yerr=_ci(row, metric),
            fmt="o",
            capsize=3,
            label=row["solver_label"],
        )
    runtimes = usable["runtime_s_mean"]
    if (runtimes > 0).all() and runtimes.max() > 20 * runtimes.min():
        ax.set_xscale("log")
    ax.set_xlabel("mean runtime per image (s)")
    ax.set_ylabel(f"{metric.label} (mean ± 95% CI)")
    ax.set_title(block_title(setting), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def bar_plot(summary: pd.DataFrame, spec: MetricSpec, path: Path) -> Path | None:
    """Bars of one metric: a group per setting, a bar per solver, 95% CI error bars."""
    settings = list(blocks(summary))
    labels = sorted(summary["solver_label"].unique())
    if not any(pd.notna(value(r, spec)) for _, r in summary.iterrows()):
        return None
    fig = Figure(figsize=(max(5.0, 1.2 * len(settings) * max(1, len(labels)) / 2), 4), dpi=DPI)
    ax = fig.subplots()
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        heights, errors = [], []
        for _, block in settings:
            rows = block[block.solver_label == label]
            heights.append(value(rows.iloc[0], spec) if len(rows) else np.nan)
            errors.append(_ci(rows.iloc[0], spec) if len(rows) else 0.0)
        x = np.arange(len(settings)) + (j - (len(labels) - 1) / 2) * width
        ax.bar(x, heights, width, yerr=errors, capsize=2, label=label)
    ax.set_xticks(
        np.arange(len(settings)),
        [f"{s['degradation']}\nsigma={s['sigma_01']:g}" for s, _ in settings],
        fontsize=7,
    )
    ax.set_ylabel(spec.label if spec.per_set else f"{spec.label} (mean ± 95% CI)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def montage(frame: pd.DataFrame, setting: dict, path: Path) -> Path | None:
    """Rows = the first images, columns = truth, measurement, each solver's recon (first seed)."""
    match = np.logical_and.reduce(
        [(frame[k] == v) | (frame[k].isna() & pd.isna(v)) for k, v in setting.items()]
    )
    rows = frame[match & (frame.status == "ok")]
    rows = rows[rows.seed == rows.seed.min()]
    with_truth = rows[rows.apply(lambda r: png_path(r, "truth_png") is not None, axis=1)]
    image_ids = sorted(with_truth.image_id.astype(str).unique())[:MONTAGE_IMAGES]
    if not image_ids:
        return None
    labels = sorted(rows.solver_label.unique())
    columns = ["truth", "measurement", *labels]
    fig = Figure(figsize=(1.6 * len(columns), 1.6 * len(image_ids) + 0.5), dpi=DPI)
    axes = fig.subplots(len(image_ids), len(columns), squeeze=False)
    for r, image_id in enumerate(image_ids):
        cells = rows[rows.image_id.astype(str) == image_id]
        first = cells.iloc[0]
        shown = [(png_path(first, "truth_png"), ""), (png_path(first, "measurement_png"), "")]
        for label in labels:
            solved = cells[cells.solver_label == label]
            recon = png_path(solved.iloc[0], "recon_png") if len(solved) else None
            psnr = solved.iloc[0]["psnr"] if len(solved) else np.nan
            shown.append((recon, f"{psnr:.2f} dB" if np.isfinite(psnr) else ""))
        for c, (image, caption) in enumerate(shown):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if image is not None:
                pixels = np.asarray(Image.open(image).convert("RGB"))
                ax.imshow(pixels, interpolation="nearest")  # the pixels as solved, unsmoothed
            else:
                ax.text(0.5, 0.5, "-", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel(caption, fontsize=7)
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
        axes[r][0].set_ylabel(image_id, fontsize=8)
    fig.suptitle(block_title(setting), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_all(frame: pd.DataFrame, summary: pd.DataFrame, out: Path, notes: Notes) -> list[Path]:
    """Every plot under out/plots; a note for settings that have nothing to draw."""
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path | None] = []
    for setting, block in blocks(summary):
        name = setting_slug(setting)
        made.append(tradeoff_plot(setting, block, out / f"tradeoff_{name}.png"))
        picture = montage(frame, {k: setting[k] for k in BLOCK}, out / f"montage_{name}.png")
        if picture is None:
            notes.add(f"no montage for {block_title(setting)}: its records have no PNGs")
        made.append(picture)
    made += [bar_plot(summary, s, out / f"bars_{s.name}.png") for s in METRICS.values()]
    return [p for p in made if p is not None]
