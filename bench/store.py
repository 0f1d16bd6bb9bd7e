"""Results on disk: one JSON record per cell, written atomically, and `per_image.csv`."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

from bench.claims import Holder
from bench.counters import CALL_COUNT_COLUMNS

TEMP_PATTERN = re.compile(r"\.tmp-(\d+)@(.+)-[0-9a-f]{8}-")  # .tmp-<pid>@<host>-<hex>-<name>
ORPHAN_AFTER_S = 3600.0  # a temp file of a writer on another host this old lost its writer
OUTPUT_FOLDERS = ("records", "images", "grids", "truth")

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


def quarantine_dir(out: Path) -> Path:
    """Where records that are not valid JSON records are moved (never deleted)."""
    return records_dir(out) / "quarantine"


def temp_path(path: Path) -> Path:
    """A temp file next to `path`, unique to this process: .tmp-<pid>@<host>-<hex>-<name>."""
    tag = f"{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".tmp-{tag}-{path.name}")


def write_record(out: Path, record: dict) -> Path:
    """Write `record` to records/<key>.json via a temp file + rename: never a torn file."""
    text = json.dumps({k: _clean(v) for k, v in record.items()}, indent=1, sort_keys=True)
    return write_atomic(record_path(out, record["key"]), text.encode())


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` via a hidden temp file, fsync and rename: never a torn file.
    The file gets the umask's mode, like every other output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _record_problem(path: Path, text: str) -> str | None:
    """Why the text of records/<key>.json is not a record of that key; None if it is one."""
    try:
        record = json.loads(text)
    except ValueError as e:
        return f"not JSON ({e})"
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        return "not a record (no status)"
    if record.get("key") != path.stem:
        return f"its key {record.get('key')!r} is not its file name"
    return None


def quarantine(path: Path, why: str) -> None:
    """Move a bad record to records/quarantine/ and say so on one line (its cell will rerun)."""
    folder = path.parent / "quarantine"
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{time.time_ns()}{path.suffix}"
    try:
        folder.mkdir(exist_ok=True)
        os.rename(path, target)
        where = f"moved to {target}; its cell counts as not done"
    except FileNotFoundError:
        return  # another process quarantined it first
    except OSError as e:
        where = f"left in place (cannot move it: {e.strerror}); its cell counts as not done"
    print(f"warning: bad record {path}: {why}; {where}", file=sys.stderr, flush=True)


def read_record(path: Path) -> dict | None:
    """The record in `path`, or None when it is missing or bad (then it is quarantined)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        quarantine(path, f"not text ({e.reason})")
        return None
    problem = _record_problem(path, text)
    if problem is not None:
        quarantine(path, problem)
        return None
    return json.loads(text)


def record_files(out: Path) -> list[Path]:
    """The record files of a run folder (temp files and the quarantine are not records)."""
    return sorted(records_dir(out).glob("[!.]*.json"))


def load_records(out: Path) -> list[dict]:
    """Every valid record under out/records; bad ones are quarantined and named."""
    return [r for r in map(read_record, record_files(out)) if r is not None]


def existing_status(out: Path, key: str) -> str | None:
    """The status of a cell's record, or None when it has none (or a bad one, quarantined)."""
    record = read_record(record_path(out, key))
    return None if record is None else record["status"]


def record_mtime(out: Path, key: str) -> float | None:
    """When a cell's record was last written (epoch s), or None when it has none."""
    try:
        return record_path(out, key).stat().st_mtime
    except FileNotFoundError:
        return None


def remove_orphan_temps(out: Path) -> int:
    """Delete temp files whose writer is gone (dead pid on this host, or an hour old);
    returns how many. A live writer's temp file is left alone."""
    removed = 0
    for name in OUTPUT_FOLDERS:
        for path in (Path(out) / name).rglob(".tmp-*"):
            match = TEMP_PATTERN.match(path.name)
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            writer = (
                Holder(int(match[1]), match[2], mtime, "") if match else Holder(0, "", mtime, "")
            )
            if writer.is_stale(ORPHAN_AFTER_S):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


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
    tmp = temp_path(path)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
