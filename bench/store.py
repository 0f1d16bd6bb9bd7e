"""Results on disk: one JSON record per cell, written atomically, and `per_image.csv`."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pandas as pd

from bench.counters import CALL_COUNT_COLUMNS

PER_IMAGE_COLUMNS = [
    "solver_label",
    "solver",
    "degradation",
    "sigma_01",
    "sigma_pm1",
    "image_id",
    "seed",
    "psnr",
    "psnr_post",
    "post_ratio",
    "residual_rms",
    "consistency_psnr",
    "runtime_s",
    "peak_mem_mb",
    *CALL_COUNT_COLUMNS,
    "batch",
    "status",
    "error",
    "prior",
    "dataset",
    "hparams",
    "key",
]


def records_dir(out: Path) -> Path:
    """Where the per-cell records live."""
    return out / "records"


def record_path(out: Path, key: str) -> Path:
    """The record file of one cell."""
    return records_dir(out) / f"{key}.json"


def _clean(value: object) -> object:
    """NaN/Inf -> None so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_record(out: Path, record: dict) -> Path:
    """Write `record` to records/<key>.json via a temp file + rename: never a torn file."""
    text = json.dumps({k: _clean(v) for k, v in record.items()}, indent=1, sort_keys=True)
    return write_atomic(record_path(out, record["key"]), text.encode())


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` via a hidden temp file, fsync and rename: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_records(out: Path) -> list[dict]:
    """Every complete record under out/records (temp files are ignored)."""
    folder = records_dir(out)
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("[!.]*.json"))]


def existing_status(out: Path, key: str) -> str | None:
    """The status of a cell's record, or None when it has none."""
    path = record_path(out, key)
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("status")


def write_per_image_csv(out: Path) -> Path:
    """per_image.csv: one row per record, known columns first, then the rest (env_* flattened)."""
    records = load_records(out)
    frame = pd.json_normalize(records, sep="_") if records else pd.DataFrame()
    for column in PER_IMAGE_COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = sorted(c for c in frame.columns if c not in PER_IMAGE_COLUMNS)
    frame = frame[PER_IMAGE_COLUMNS + extra]
    if len(frame):
        frame = frame.sort_values(["solver_label", "degradation", "sigma_01", "seed", "image_id"])
    path = out / "per_image.csv"
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
