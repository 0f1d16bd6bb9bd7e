"""The README's Python API example and its "add a solver" file, run as written."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import tomllib
import torch
from test_driver import bench, records
from typer.testing import CliRunner

from bench.priors import load_prior
from operators import build_degradation, measure
from solvers import SOLVERS, get_solver, solve

README = Path(__file__).resolve().parents[1] / "README.md"
runner = CliRunner()


def readme_block(marker: str) -> str:
    """The fenced Python block right after `<!-- test:MARKER -->` in the README."""
    found = re.search(rf"<!-- test:{marker} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert found, f"README has no <!-- test:{marker} --> python block"
    return found[1]


@pytest.fixture
def shrink(tmp_path):
    """The README's example solver, registered from a file of its own (and removed after)."""
    path = tmp_path / "shrink_solver.py"
    path.write_text(readme_block("add-solver"))
    spec = importlib.util.spec_from_file_location("shrink_solver", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["shrink_solver"] = module
    spec.loader.exec_module(module)
    yield get_solver("shrink")
    SOLVERS.pop("shrink")
    sys.modules.pop("shrink_solver")


def test_readme_api_example_runs(capsys):
    code = readme_block("api")
    assert len(code.strip().splitlines()) <= 10
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    x, x_hat = scope["x"], scope["x_hat"]
    assert x_hat.shape == x.shape and x_hat.abs().max() <= 1.0


def test_solve_applies_the_official_per_degradation_values():
    prior = load_prior("gaussian")
    x = prior.sample_images([torch.Generator().manual_seed(i) for i in (3, 4)])
    op = build_degradation("inpaint", prior.image_size)
    y = measure(op, x, 0.02, [torch.Generator().manual_seed(i) for i in (5, 6)])
    x_hat = solve("silo", prior, op, y, seed=7, sigma_01=0.01, steps=4)

    def direct(**hparams):
        generators = [torch.Generator().manual_seed(7 + i) for i in range(2)]
        return SOLVERS["silo"].fn(
            prior, op, y, generator=generators, sigma_pm1=0.02, steps=4, **hparams
        )

    # SILO's official box-inpainting values (reference/silo.md): eta 1.0, no clamp of w
    official = direct(eta=1.0, clamp_w=False, grad_clamp=1.0, encoder_sample=True)
    assert torch.equal(x_hat, official)
    assert not torch.equal(x_hat, direct())  # the function's own defaults differ
    with pytest.raises(ValueError, match="valid: "):
        solve("silo", prior, op, y, etaa=2.0)
    with pytest.raises(ValueError, match="linear-only"):
        solve("psld", prior, build_degradation("jpeg", prior.image_size), y)


def test_a_solver_from_a_file_runs_through_run_and_tune(shrink, tmp_path):
    common = ["--prior", "gaussian", "--deg", "sr4,inpaint", "--no-save-images"]
    out = tmp_path / "run"
    solvers = "shrink[scale=[1,0.5]],naive"
    bench("run", *common, "--solvers", solvers, "--images", "2", "--out", str(out))
    psnr = {(r["solver_label"], r["degradation"], r["image_id"]): r["psnr"] for r in records(out)}
    assert len(psnr) == 12
    for (label, deg, image), value in psnr.items():
        if label == "shrink[scale=1]":  # D(1 * E(up(y))) is the naive row exactly
            assert value == psnr[("naive", deg, image)]
        if label == "shrink[scale=0.5]":
            assert value < psnr[("naive", deg, image)]

    tuned = tmp_path / "tune"
    bench(
        "tune", *common, "--solvers", "shrink", "--val", "0:2", "--test", "2:3", "--out", str(tuned)
    )
    val = records(tuned / "val")
    scales = {
        deg: sorted(json.loads(r["hparams"])["scale"] for r in val if r["degradation"] == deg)
        for deg in ("sr4:factor=4", "inpaint:size=16")
    }
    assert scales["sr4:factor=4"] == [0.5, 0.5, 1.0, 1.0, 2.0, 2.0]  # x official 1.0
    assert scales["inpaint:size=16"] == pytest.approx([0.45, 0.45, 0.9, 0.9, 1.8, 1.8])
    config = tomllib.loads((tuned / "tuned.toml").read_text())
    assert {e["degradation"]: e["official"]["scale"] for e in config["tuned"]} == {
        "sr4:factor=4": 1.0,
        "inpaint:size=16": 0.9,
    }
    test = records(tuned / "test")
    assert {r["solver_label"] for r in test} == {"shrink[tuned]"} and len(test) == 2
