"""bench run with trained SILO operators: lookup, clear error when missing, identity in keys."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def run(*args: str):
    return runner.invoke(app, list(args))


def test_missing_operator_prints_the_train_command(tmp_path, tiny_sd, photos):
    result = run(
        "run",
        "--prior",
        str(tiny_sd),
        "--data",
        str(photos),
        "--solvers",
        "silo",
        "--deg",
        "sr4",
        "--operators",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 2
    assert "bench train-operator --prior" in result.output and "sr4" in result.output
    assert not (tmp_path / "records").exists()


def test_trained_operator_is_found_and_keyed(tmp_path, tiny_sd, photos):
    ops = tmp_path / "ops"
    args = [
        "train-operator",
        "--prior",
        str(tiny_sd),
        "--deg",
        "sr4",
        "--data",
        str(photos),
        "--steps",
        "3",
        "--batch",
        "2",
        "--checkpoint-every",
        "0",
    ]
    found = run(*args, "--out", str(ops / "placeholder.pt"))
    assert found.exit_code == 0, found.output
    # the run looks operators up by their canonical file name: train to the default name
    (ops / "placeholder.pt").unlink()
    missing = run(
        "run",
        "--prior",
        str(tiny_sd),
        "--data",
        str(photos),
        "--solvers",
        "silo",
        "--deg",
        "sr4",
        "--operators",
        str(ops),
        "--out",
        str(tmp_path / "x"),
    )
    expected = next(
        line.split("--out ")[1].split()[0]
        for line in missing.output.splitlines()
        if "--out " in line
    )
    assert run(*args, "--out", expected).exit_code == 0
    sweep = [
        "run",
        "--prior",
        str(tiny_sd),
        "--data",
        str(photos),
        "--solvers",
        "silo",
        "--deg",
        "sr4",
        "--steps",
        "3",
        "--operators",
        str(ops),
    ]
    first = run(*sweep, "--out", str(tmp_path / "run"))
    assert first.exit_code == 0, first.output
    frame = pd.read_csv(tmp_path / "run" / "per_image.csv")
    assert (frame.status == "ok").all() and (frame.op_fwd == 3).all()
    assert (frame.dec_bwd == 0).all() and (frame.enc_bwd == 0).all()  # never through the VAE
    assert frame.artifacts.str.contains("latent_operator").all()
    # retraining H (another seed) changes the operator's identity, so SILO's cells rerun
    assert run(*args, "--out", expected, "--seed", "1").exit_code == 0
    again = run(*sweep, "--out", str(tmp_path / "run"))
    assert "0 already done, 3 to run" in again.output
