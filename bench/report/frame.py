"""One frame of records from one or more run dirs, deduplicated, with per-image PNG metrics."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bench import metrics
from bench.counters import CALL_COUNT_COLUMNS
from bench.store import PER_IMAGE_COLUMNS, read_record, record_files
from bench.weights import WeightsMissing, lpips_backbone

GROUP = ["prior", "dataset", "solver_label", "degradation", "sigma_01"]
BLOCK = ["prior", "dataset", "degradation", "sigma_01"]  # a table: every solver of one setting
PAIR = ["prior", "dataset", "image_id", "degradation", "sigma_01", "seed"]
FAILURES = ("diverged", "oom", "error")
PER_IMAGE_METRICS = [
    "psnr",
    "ssim",
    "lpips_alex",
    "lpips_vgg",
    "consistency_psnr",
    "psnr_post",
    "post_ratio",
    "residual_rms",
    "runtime_s",
    "peak_mem_mb",
]
CALL_COUNTS = CALL_COUNT_COLUMNS
PNG_COLUMNS = ["recon_png", "truth_png", "measurement_png", "grid_png"]
IMAGE_METRICS = {
    "ssim": metrics.ssim,
    **{f"lpips_{net}": partial(metrics.lpips, net=net) for net in metrics.LPIPS_NETS},
}


@dataclass
class Notes:
    """Messages for the user (missing weights, skipped metrics), each kept once, in order."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Record `text` unless it is already there."""
        if text not in self.lines:
            self.lines.append(text)


def _timestamp(record: dict, mtime: float) -> float:
    """The record's finished_at (ISO string or epoch seconds) as epoch seconds, else its mtime."""
    stamp = record.get("finished_at")
    if isinstance(stamp, int | float):
        return float(stamp)
    if isinstance(stamp, str):
        try:
            return dt.datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    return mtime


def read_run(run_dir: Path) -> list[dict]:
    """The records of one run dir, each tagged with its run_dir and its finishing time (a bad
    record is quarantined and named, not fatal)."""
    rows = []
    for path in record_files(run_dir):
        record = read_record(path)
        if record is None:
            continue
        record["run_dir"] = str(run_dir.resolve())
        record["_finished"] = _timestamp(record, path.stat().st_mtime)
        rows.append(record)
    return rows


def load_frame(run_dirs: list[Path]) -> pd.DataFrame:
    """All records of the run dirs, one per key (the last finished), missing columns as NaN."""
    rows = [r for d in run_dirs for r in read_run(Path(d))]
    frame = pd.DataFrame(rows)
    for column in {*PER_IMAGE_COLUMNS, *GROUP, *PER_IMAGE_METRICS, *CALL_COUNTS, *PNG_COLUMNS}:
        if column not in frame:
            frame[column] = np.nan
    if frame.empty:
        return frame
    frame["solver_label"] = frame["solver_label"].astype(object).fillna(frame["solver"])
    for column in ["sigma_01", *PER_IMAGE_METRICS, *CALL_COUNTS]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, dict | list)).any():
            frame[column] = frame[column].map(
                lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
            )
    frame = frame.sort_values("_finished", kind="stable").drop_duplicates("key", keep="last")
    return frame.drop(columns="_finished").reset_index(drop=True)


def png_path(row: pd.Series, column: str) -> Path | None:
    """The absolute path of a record's PNG (paths are relative to its run dir), if it exists."""
    value = row.get(column)
    if not isinstance(value, str) or not value:
        return None
    path = Path(row["run_dir"]) / value
    return path if path.is_file() else None


def load_png(path: Path) -> torch.Tensor:
    """An 8-bit PNG as a (3, H, W) float tensor in [-1, 1]."""
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1) * 2 - 1


def _available(names: list[str], notes: Notes) -> list[str]:
    """The image metrics whose weights are present; a note with the fix for each missing one."""
    ready = []
    for name in names:
        if name.startswith("lpips_"):
            try:
                lpips_backbone(name.removeprefix("lpips_")).require()
            except WeightsMissing as e:
                notes.add(f"{name} left empty (never scored by a random network). {e}")
                continue
        ready.append(name)
    return ready


def add_image_metrics(
    frame: pd.DataFrame, *, lpips: bool, device: str, notes: Notes
) -> pd.DataFrame:
    """Fill ssim, lpips_alex, lpips_vgg from the recon and truth PNGs where the record has none."""
    frame = frame.copy()
    wanted = [m for m in IMAGE_METRICS if lpips or not m.startswith("lpips_")]
    if not lpips:
        notes.add("LPIPS not computed (--no-lpips).")
    names = _available(wanted, notes)
    todo = frame.index[(frame.status == "ok") & frame[names].isna().any(axis=1)] if names else []
    missing_png = 0
    truths: dict[Path, torch.Tensor] = {}
    for i in todo:
        recon, truth = png_path(frame.loc[i], "recon_png"), png_path(frame.loc[i], "truth_png")
        if recon is None or truth is None:
            missing_png += 1
            continue
        if truth not in truths:
            truths[truth] = load_png(truth)[None].to(device)
        x_hat, x = load_png(recon)[None].to(device), truths[truth]
        for name in names:
            if math.isnan(frame.at[i, name]):
                frame.at[i, name] = float(IMAGE_METRICS[name](x_hat, x)[0])
    if missing_png:
        notes.add(
            f"{missing_png} ok record(s) have no recon/truth PNG: their {', '.join(names)} "
            "stay empty and they are left out of FID/KID."
        )
    return frame


def per_image_table(frame: pd.DataFrame) -> pd.DataFrame:
    """per_image.csv: the store's columns first, then the computed metrics, then the rest."""
    first = [*PER_IMAGE_COLUMNS, *(m for m in PER_IMAGE_METRICS if m not in PER_IMAGE_COLUMNS)]
    rest = sorted(c for c in frame.columns if c not in first)
    table = frame[first + rest]
    return table.sort_values(["solver_label", "degradation", "sigma_01", "seed", "image_id"])
