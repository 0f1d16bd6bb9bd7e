"""Output into logs and pipes: plain progress lines, tables never cut to 80 columns."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from bench.cli import app
from bench.progress import ProgressLines, clock


def test_clock_formats_hours_minutes_seconds():
    assert clock(3725) == "1:02:05" and clock(59.6) == "0:01:00" and clock(0) == "0:00:00"


def test_lines_count_cells_and_end_with_no_time_left():
    written: list[str] = []
    lines = ProgressLines(4, written.append)
    lines.finished(3, "ldps psnr 20.00")
    lines.finished(1)
    assert written[0].startswith("3/4 cells") and written[0].endswith("| ldps psnr 20.00")
    assert written[1].startswith("4/4 cells") and "ETA 0:00:00" in written[1]


def test_a_run_into_a_pipe_prints_one_line_per_batch(tmp_path):
    args = ["run", "--prior", "gaussian", "--solvers", "ldps", "--deg", "sr4"]
    args += ["--images", "3", "--steps", "3", "--batch", "2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    progress = [ln for ln in result.output.splitlines() if re.match(r"\d+/3 cells", ln)]
    assert [ln.split()[0] for ln in progress] == ["2/3", "3/3"]  # batches of 2 and 1
    assert all("ETA" in ln and "ldps psnr" in ln for ln in progress)


def test_tables_into_a_pipe_are_not_cut_at_80_columns():
    from solvers import SOLVERS

    result = CliRunner().invoke(app, ["list"], catch_exceptions=False)
    assert result.exit_code == 0
    for spec in SOLVERS.values():  # whole descriptions, each on one line
        assert spec.description in result.output
    assert "…" not in result.output


def test_messages_into_a_pipe_keep_their_lines_whole(tmp_path):
    args = ["run", "--prior", "gaussian", "--solvers", "psld", "--deg", "jpeg,sr4"]
    args += ["--images", "1", "--steps", "2", "--out", str(tmp_path), "--dry-run"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (skipped,) = [ln for ln in result.output.splitlines() if ln.startswith("skipped psld")]
    assert skipped.rstrip().endswith("A^T := identity") and len(skipped) > 80
