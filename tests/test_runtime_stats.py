"""Runtime and memory statistics over batched solves, not over the images that share them."""

from __future__ import annotations

import math

import pytest
from fabricate import fabricate_run

from bench.report.frame import load_frame
from bench.report.tables import summarize


def _batched(image: int, batch_seconds: float, batch: int, peak: float) -> dict:
    return {
        "image_id": f"{image:04d}",
        "psnr": 20.0 + image,
        "runtime_s": batch_seconds / batch,
        "batch_runtime_s": batch_seconds,
        "peak_mem_mb": peak,
        "batch": batch,
    }


def test_spread_is_over_batches_and_absent_for_a_single_batch(tmp_path):
    # two batches of two images: 4 s and 6 s per batch, i.e. 2 and 3 s per image
    rows = [_batched(0, 4.0, 2, 100.0), _batched(1, 4.0, 2, 100.0)]
    rows += [_batched(2, 6.0, 2, 140.0), _batched(3, 6.0, 2, 140.0)]
    row = summarize(load_frame([fabricate_run(tmp_path / "two", rows)])).iloc[0]
    assert row.n == 4 and row.n_batches == 2
    assert row.runtime_s_mean == pytest.approx(2.5)
    assert row.runtime_s_std == pytest.approx(math.sqrt(0.5))  # (2 - 2.5)^2 + (3 - 2.5)^2
    assert row.peak_mem_mb_std == pytest.approx(math.sqrt(800.0))  # (100 - 120)^2 * 2
    assert row.psnr_std == pytest.approx(math.sqrt(5 / 3))  # per image: 20, 21, 22, 23
    one = [_batched(i, 8.0, 4, 100.0) for i in range(4)]
    row = summarize(load_frame([fabricate_run(tmp_path / "one", one)])).iloc[0]
    assert row.runtime_s_mean == pytest.approx(2.0) and row.n_batches == 1
    assert math.isnan(row.runtime_s_std) and math.isnan(row.runtime_s_ci95)  # no "± 0.000"
