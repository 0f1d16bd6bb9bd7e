"""summary.csv (per solver x setting: n, failures, mean/std/CI, call counts) and summary.md."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.frame import BLOCK, CALL_COUNTS, FAILURES, GROUP, PER_IMAGE_METRICS, Notes
from bench.report.stats import mean_std_ci
from bench.weights import MANIFEST

PER_BATCH_METRICS = ("runtime_s", "peak_mem_mb")  # measured per solve, shared by its images


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is shown: headers, the direction of "better", decimals."""

    name: str
    label: str
    latex: str
    better: str | None  # "max", "min", "one" (closest to 1) or None (no best)
    digits: int
    per_set: bool = False  # FID/KID: one value per set, no CI


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("psnr", "PSNR", r"PSNR $\uparrow$", "max", 2),
        MetricSpec("ssim", "SSIM", r"SSIM $\uparrow$", "max", 4),
        MetricSpec("lpips_alex", "LPIPS-alex", r"LPIPS-A $\downarrow$", "min", 4),
        MetricSpec("lpips_vgg", "LPIPS-vgg", r"LPIPS-V $\downarrow$", "min", 4),
        MetricSpec("fid", "FID", r"FID $\downarrow$", "min", 2, per_set=True),
        MetricSpec("kid_x1e3", "KIDx1e3", r"KID$\times 10^3$ $\downarrow$", "min", 2, True),
        MetricSpec("consistency_psnr", "cons. PSNR", r"Cons.\ PSNR $\uparrow$", "max", 2),
        MetricSpec("psnr_post", "PSNR vs post. mean", r"PSNR$_\mathrm{post}$ $\uparrow$", "max", 2),
        MetricSpec("post_ratio", "post. ratio", r"post.\ ratio $\to 1$", "one", 3),
        MetricSpec("residual_rms", "residual RMS", "residual RMS", None, 4),
        MetricSpec("runtime_s", "s/image (CI: batches)", r"Time (s) $\downarrow$", "min", 3),
        MetricSpec("peak_mem_mb", "peak MB (CI: batches)", r"Mem.\ (MB) $\downarrow$", "min", 0),
    )
}


def per_batch(ok: pd.DataFrame, metric: str) -> pd.Series:
    """One value per batched solve: its images share the solve's time and memory, so their
    spread over images would be zero by construction (a batch is told apart by its
    batch_runtime_s; records without it count one per image)."""
    if "batch_runtime_s" not in ok or ok["batch_runtime_s"].isna().any():
        return ok[metric]
    return ok.drop_duplicates("batch_runtime_s")[metric]


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (prior, dataset, solver_label, degradation, sigma_01) over its ok records."""
    rows = []
    for keys, group in frame.groupby(GROUP, dropna=False, sort=True):
        ok = group[group.status == "ok"]
        row: dict = dict(zip(GROUP, keys, strict=True))
        row["n"] = len(ok)
        row["n_failed"] = len(group) - len(ok)
        counts = group.status.value_counts()
        row.update({f"n_{s}": int(counts.get(s, 0)) for s in FAILURES})
        for m in PER_IMAGE_METRICS:
            values = per_batch(ok, m) if m in PER_BATCH_METRICS else ok[m]
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_ci95"] = mean_std_ci(values.to_numpy())
        row["n_batches"] = len(per_batch(ok, "runtime_s"))
        row.update({f"{c}_mean": ok[c].mean() for c in CALL_COUNTS})
        rows.append(row)
    return pd.DataFrame(rows)


def blocks(summary: pd.DataFrame) -> Iterator[tuple[dict, pd.DataFrame]]:
    """(setting, its solver rows) per prior x dataset x degradation x sigma."""
    for keys, block in summary.groupby(BLOCK, dropna=False, sort=True):
        yield dict(zip(BLOCK, keys, strict=True)), block.reset_index(drop=True)


KEPT = ("lpips_alex", "lpips_vgg", "fid", "kid_x1e3")  # columns every table keeps, "--" if empty
OVERVIEW = ["prior", "dataset", "sigma_01"]  # an overview table: solvers x degradations
OVERVIEW_METRICS = ("psnr", "ssim", "lpips_alex")


def overviews(summary: pd.DataFrame) -> Iterator[tuple[dict, MetricSpec, pd.DataFrame]]:
    """(setting, metric, solver x degradation table of its means) per prior x dataset x sigma,
    for each overview metric with a value: the paper-style table of a sweep."""
    for keys, part in summary.groupby(OVERVIEW, dropna=False, sort=True):
        for name in OVERVIEW_METRICS:
            column = f"{name}_mean"
            if column not in part or part[column].isna().all():
                continue
            table = part.pivot(index="solver_label", columns="degradation", values=column)
            table = table.reindex(
                index=part.solver_label.unique(), columns=part.degradation.unique()
            )
            yield dict(zip(OVERVIEW, keys, strict=True)), METRICS[name], table


def overview_title(setting: dict, spec: MetricSpec) -> str:
    """'PSNR, sigma=0.01 (prior embedded, dataset d)'."""
    return (
        f"{spec.label}, sigma={setting['sigma_01']:g} "
        f"(prior {setting['prior']}, dataset {setting['dataset']})"
    )


def value(row: pd.Series, spec: MetricSpec) -> float:
    """The shown value of a metric in a summary row: the mean, or the set metric itself."""
    return float(row.get(spec.name if spec.per_set else f"{spec.name}_mean", math.nan))


def shown(block: pd.DataFrame) -> list[MetricSpec]:
    """Metrics with a value in this block, and always the pretrained-network ones."""
    specs = []
    for spec in METRICS.values():
        values = block.apply(lambda r, s=spec: value(r, s), axis=1)
        if values.notna().any() or spec.name in KEPT:
            specs.append(spec)
    return specs


def missing_files(block: pd.DataFrame) -> dict[str, list[str]]:
    """{weight file: labels of the metrics it left empty} over a block's `missing_weights`."""
    found: dict[str, list[str]] = {}
    for text in block.get("missing_weights", pd.Series(dtype=object)).dropna():
        for item in filter(None, str(text).split("; ")):
            name, _, file = item.partition(": ")
            labels = found.setdefault(file, [])
            if METRICS[name].label not in labels:
                labels.append(METRICS[name].label)
    return found


def mark_missing_weights(summary: pd.DataFrame, missing: dict[str, str]) -> pd.DataFrame:
    """Add `missing_weights` ('lpips_alex: <file>; fid: <file>'): for each row, the kept
    metrics that are empty because `missing` (metric -> weight file) says their file is absent."""
    summary = summary.copy()
    summary["missing_weights"] = [
        "; ".join(
            f"{name}: {file}"
            for name, file in missing.items()
            if not np.isfinite(value(row, METRICS[name]))
        )
        for _, row in summary.iterrows()
    ]
    return summary


def footnotes(block: pd.DataFrame) -> list[str]:
    """What '--' means in this block (the missing files and their fetch command), and the n
    per set and KID subset size of FID/KID."""
    keys = {entry.filename: key for key, entry in MANIFEST.items()}
    lines = [
        f"-- ({', '.join(labels)}): not computed, {file} is missing; "
        f"`bench fetch-weights {keys.get(file, '')}` installs it"
        for file, labels in missing_files(block).items()
    ]
    scored = block[block.get("kid_subset_size", pd.Series(np.nan, index=block.index)).notna()]
    sets = {
        (int(r["fid_n"]), int(r["fid_real_n"]), int(r["kid_subset_size"]), int(r["kid_subsets"]))
        for _, r in scored.iterrows()
    }
    for n, n_real, size, subsets in sorted(sets):
        lines.append(
            f"FID/KID: n = {n} reconstructions vs {n_real} ground truths per set; "
            f"KID subset size {size} ({subsets} subset{'s' if subsets > 1 else ''})."
        )
    return lines


def best_rows(values: pd.Series, better: str | None, digits: int) -> pd.Series:
    """True where the value, as displayed, is the best of at least two; direction per metric."""
    shown_values = values.round(digits)
    if better is None or shown_values.notna().sum() < 2:
        return pd.Series(False, index=values.index)
    if better == "max":
        score = shown_values
    elif better == "min":
        score = -shown_values
    else:
        score = -np.abs(np.log(shown_values.where(shown_values > 0)))
    return score == score.max()


def number(x: float, digits: int) -> str:
    """A fixed-point number, or '--' for NaN."""
    return "--" if not np.isfinite(x) else f"{x:.{digits}f}"


def failures_text(row: pd.Series) -> str:
    """'0' or '3 (1 diverged, 2 oom)'."""
    parts = [f"{int(row[f'n_{s}'])} {s}" for s in FAILURES if row[f"n_{s}"]]
    return f"{int(row['n_failed'])}" + (f" ({', '.join(parts)})" if parts else "")


def block_title(setting: dict) -> str:
    """'sr4:factor=4, sigma=0.01 (prior gaussian, dataset d)'."""
    return (
        f"{setting['degradation']}, sigma={setting['sigma_01']:g} "
        f"(prior {setting['prior']}, dataset {setting['dataset']})"
    )


def markdown_cell(row: pd.Series, spec: MetricSpec) -> str:
    """'mean ± ci' for per-image metrics; the value for FID/KID; '--' when empty."""
    mean = value(row, spec)
    if spec.per_set:
        return number(mean, spec.digits)
    ci = float(row[f"{spec.name}_ci95"])
    text = number(mean, spec.digits)
    return f"{text} ± {number(ci, spec.digits)}" if np.isfinite(ci) else text


def markdown(summary: pd.DataFrame, notes: Notes) -> str:
    """summary.md: a table per setting, one row per solver, 'mean ± 95% CI' cells, then notes."""
    lines = ["# Summary", "", "Cells: mean ± 95% t-interval half-width over images (n)."]
    lines.append(
        "PSNR, SSIM (Gaussian 11x11, sigma 1.5) on [0, 1] per image; LPIPS v0.1 (torchmetrics) "
        "alex / vgg on [-1, 1]; KID x1e3, subset size min(n, 1000)."
    )
    features = sorted(set(summary.get("fid_features", pd.Series(dtype=str)).dropna()) - {""})
    if features:
        lines.append(f"FID/KID features: {'; '.join(features)}; n per set in summary.csv (fid_n).")
    for setting, spec, table in overviews(summary):
        lines += ["", f"## Overview: {overview_title(setting, spec)}", ""]
        lines += [md_row(["solver", *table.columns]), md_row(["---"] * (len(table.columns) + 1))]
        best = {d: best_rows(table[d], spec.better, spec.digits) for d in table.columns}
        for solver, row in table.iterrows():
            cells = [
                f"**{number(row[d], spec.digits)}**"
                if best[d][solver]
                else number(row[d], spec.digits)
                for d in table.columns
            ]
            lines.append(md_row([solver, *cells]))
    for setting, block in blocks(summary):
        specs = shown(block)
        header = ["solver", "n", "failed", *(s.label for s in specs)]
        lines += ["", f"## {block_title(setting)}", "", md_row(header)]
        lines.append(md_row(["---"] * len(header)))
        for _, row in block.iterrows():
            cells = [markdown_cell(row, s) for s in specs]
            lines.append(md_row([row["solver_label"], str(row["n"]), failures_text(row), *cells]))
        for line in footnotes(block):
            lines += ["", line]
    if notes.lines:
        lines += ["", "## Notes", ""] + [f"- {line}".replace("\n", "\n  ") for line in notes.lines]
    return "\n".join(lines) + "\n"


def md_row(cells: list[str]) -> str:
    """A Markdown table row, pipes in cells escaped."""
    return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"
