"""The driver: config files, dry runs, solver rows, honest records, executors, SIGKILL resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.data import folder_images
from bench.execute import measurement_generators, solver_generator
from bench.sweep import Cell

runner = CliRunner()
VOLATILE = ["runtime_s", "batch_runtime_s", "peak_mem_mb", "finished_at", "traceback"]


def bench(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]


def stable(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-image table without the columns that legitimately differ between runs."""
    keep = [c for c in frame.columns if c not in VOLATILE and not c.startswith("env_")]
    return frame[keep].sort_values("key").reset_index(drop=True)


def test_config_file_fills_options_and_cli_wins(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(
        'prior = "gaussian"\nsolvers = ["naive", "ldps"]\ndeg = "sr4"\nimages = "2"\nsteps = 5\n'
        f'out = "{tmp_path / "from_file"}"\nset = ["ldps.zeta=2"]\n'
    )
    bench("run", "--config", str(config), "--images", "1")
    saved = json.loads((tmp_path / "from_file" / "config.json").read_text())
    assert saved["options"]["images"] == "1" and saved["options"]["steps"] == 5
    rows = records(tmp_path / "from_file")
    assert len(rows) == 2
    ldps = next(r for r in rows if r["solver"] == "ldps")
    assert json.loads(ldps["hparams"])["zeta"] == 2.0


def test_yaml_config_and_unknown_key(tmp_path):
    good = tmp_path / "a.yaml"
    good.write_text(
        f"prior: gaussian\nsolvers: naive\ndeg: inpaint\nimages: 1\nout: {tmp_path / 'y'}\n"
    )
    bench("run", "--config", str(good))
    assert len(records(tmp_path / "y")) == 1
    bad = tmp_path / "b.yaml"
    bad.write_text("solvers: naive\nsigmas: 0.1\n")
    result = runner.invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2 and "unknown option 'sigmas'" in result.output


def test_dry_run_plans_without_running(tmp_path):
    result = bench(
        "run",
        "--prior",
        "gaussian",
        "--solvers",
        "ldps,naive",
        "--deg",
        "sr4,inpaint",
        "--sigma",
        "0,0.01",
        "--images",
        "3",
        "--out",
        str(tmp_path),
        "--dry-run",
    )
    assert "24 cells, 0 already done, 24 to run" in result.output
    assert not (tmp_path / "records").exists()


def test_solver_rows_with_bracket_overrides(tmp_path):
    bench(
        "run",
        "--prior",
        "gaussian",
        "--solvers",
        "ldps[zeta=3],ldps",
        "--deg",
        "sr4",
        "--images",
        "1",
        "--steps",
        "5",
        "--out",
        str(tmp_path),
    )
    rows = {r["solver_label"]: r for r in records(tmp_path)}
    assert set(rows) == {"ldps[zeta=3]", "ldps"}
    assert json.loads(rows["ldps[zeta=3]"]["hparams"])["zeta"] == 3.0
    assert rows["ldps"]["key"] != rows["ldps[zeta=3]"]["key"]


def test_records_are_honest_about_time_memory_and_environment(tmp_path):
    bench(
        "run",
        "--prior",
        "gaussian",
        "--solvers",
        "ldps",
        "--deg",
        "sr4",
        "--images",
        "2",
        "--steps",
        "5",
        "--batch",
        "2",
        "--out",
        str(tmp_path),
    )
    for r in records(tmp_path):
        assert r["runtime_s"] > 0 and r["batch_runtime_s"] == pytest.approx(2 * r["runtime_s"])
        assert r["peak_mem_mb"] > 0 and r["memory_kind"] == "process_peak_rss"
        assert r["unet_fwd"] == 5 and r["dec_bwd"] == 5 and r["batch"] == 2
        env = r["env"]
        assert env["tf32_matmul"] is False and env["matmul_precision"] == "highest"
        assert env["dtype"] == "float64" and env["torch"] == torch.__version__
        for name in ("recon_png", "measurement_png", "grid_png", "truth_png"):
            assert (tmp_path / r[name]).is_file()
        grid = Image.open(tmp_path / r["grid_png"])
        assert grid.size == (4 * 32, 32)  # x, y, x_hat, A(x_hat) side by side
    frame = pd.read_csv(tmp_path / "per_image.csv")
    assert "env_device" in frame and frame.peak_mem_mb.gt(0).all()


def test_common_random_numbers_keys():
    """z_T depends on (image, seed) only; the noise also on sigma; the mask not on sigma."""
    a = Cell("p", "d", "0001", "sr4:factor=4", 0.01, "ldps", {}, 0)
    b = Cell("p", "d", "0001", "blur:sigma=3.0,size=61", 0.05, "silo", {}, 0)
    assert torch.equal(
        torch.randn(3, generator=solver_generator(a)), torch.randn(3, generator=solver_generator(b))
    )
    c = Cell("p", "d", "0001", "sr4:factor=4", 0.05, "ldps", {}, 0)
    mask_a, noise_a = measurement_generators(a)
    mask_c, noise_c = measurement_generators(c)
    assert torch.equal(torch.rand(3, generator=mask_a), torch.rand(3, generator=mask_c))
    assert not torch.equal(torch.rand(3, generator=noise_a), torch.rand(3, generator=noise_c))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGBA", (50, 40), (10, 200, 30, 100)),
        lambda: Image.new("L", (64, 64), 90),
        lambda: Image.fromarray(np.full((48, 80), 40000, dtype=np.uint16)),
        lambda: Image.new("P", (5, 3)),
        lambda: Image.new("CMYK", (2000, 1500), (0, 50, 100, 0)),
    ],
    ids=["rgba", "gray", "16bit", "tiny", "huge-cmyk"],
)
def test_any_image_mode_and_size_loads(tmp_path, make):
    make().save(tmp_path / "img.tif")
    image = folder_images(tmp_path, 32).load("img")
    assert image.shape == (3, 32, 32) and image.min() >= -1 and image.max() <= 1


def test_sixteen_bit_scale_is_kept(tmp_path):
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "g.png")
    image = folder_images(tmp_path, 8).load("g")
    assert image.mean().item() == pytest.approx(32768 / 65535 * 2 - 1, abs=1e-3)


SWEEP = [
    "--prior",
    "gaussian",
    "--solvers",
    "ldps,naive",
    "--deg",
    "sr4,inpaint",
    "--images",
    "3",
    "--steps",
    "8",
]


def test_local_workers_match_a_single_process(tmp_path):
    bench("run", *SWEEP, "--out", str(tmp_path / "one"))
    bench("run", *SWEEP, "--out", str(tmp_path / "two"), "--workers", "2")
    one = stable(pd.read_csv(tmp_path / "one" / "per_image.csv"))
    two = stable(pd.read_csv(tmp_path / "two" / "per_image.csv"))
    pd.testing.assert_frame_equal(one, two)
    shared = max(1, (os.cpu_count() or 1) // 2)  # two CPU workers split the cores
    assert {r["env"]["threads"] for r in records(tmp_path / "two")} == {shared}


def test_submitit_debug_executor(tmp_path):
    pytest.importorskip("submitit")
    bench(
        "run", *SWEEP, "--out", str(tmp_path), "--executor", "submitit", "--slurm", "cluster=debug"
    )
    assert len(records(tmp_path)) == 12


def test_executor_mistakes_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["run", *SWEEP, "--out", str(tmp_path), "--executor", "dask"])
    assert result.exit_code == 2 and "valid: local, submitit, ray" in result.output
    args = ["run", *SWEEP, "--out", str(tmp_path), "--executor", "ray", "--ray", "gpus"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--ray takes KEY=VALUE items" in result.output


def test_sigkill_mid_run_resumes_to_the_same_csv(tmp_path):
    """A run killed with SIGKILL resumes to the same per-image results as an uninterrupted run."""
    sweep = [*SWEEP, "--sigma", "0.01,0.05"]
    bench("run", *sweep, "--out", str(tmp_path / "clean"))
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "bench.cli", "run", *sweep, "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((killed / "records").glob("[!.]*"))) < 5:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list((killed / "records").glob("[!.]*")))  # a torn .tmp-* file is ignored
    assert 5 <= partial < 24
    result = bench("run", *sweep, "--out", str(killed))
    assert f"{partial} already done, {24 - partial} to run" in result.output
    pd.testing.assert_frame_equal(
        stable(pd.read_csv(tmp_path / "clean" / "per_image.csv")),
        stable(pd.read_csv(killed / "per_image.csv")),
    )


def test_tiny_diffusers_sweep_and_report(tmp_path, tiny_sd):
    """2 solvers x 2 degradations x 2 sigmas on the tiny SD pipeline, then the report."""
    data = tmp_path / "photos"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "run"
    bench(
        "run",
        "--prior",
        str(tiny_sd),
        "--data",
        str(data),
        "--solvers",
        "ldps,psld",
        "--deg",
        "sr4,inpaint",
        "--sigma",
        "0,0.01",
        "--steps",
        "3",
        "--out",
        str(out),
    )
    frame = pd.read_csv(out / "per_image.csv")
    assert len(frame) == 16 and (frame.status == "ok").all()
    assert frame.psnr_post.isna().all()  # no closed-form posterior for a real prior
    assert (frame.unet_fwd == 3).all() and (frame[frame.solver == "psld"].enc_bwd == 3).all()
    from bench.report import report_command

    report_command([out], lpips=False, fid=False)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * 2 * 2


def test_unsupported_pairs_are_left_out_with_the_reason(tmp_path):
    args = ["run", "--prior", "gaussian", "--deg", "jpeg", "--images", "1", "--dry-run"]
    result = bench(*args, "--solvers", "psld,naive", "--out", str(tmp_path))
    assert "skipped psld x jpeg:quality=10: PSLD is linear-only" in result.output
    assert "1 cells, 0 already done, 1 to run" in result.output
    result = runner.invoke(app, [*args, "--solvers", "psld", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "nothing to run" in result.output
    result = bench(*args, "--solvers", "psld[allow_nonlinear=true]", "--out", str(tmp_path))
    assert "skipped" not in result.output and "1 cells" in result.output
