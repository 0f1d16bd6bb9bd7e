"""Grids (lists, log ranges, multiples of the official value), labels in tables, `bench tune`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import tomllib
from test_driver import bench, records
from typer.testing import CliRunner

from bench.cli import app
from bench.grid import expand_value
from bench.runner import resolve_solvers
from bench.tune import choose, grid_items

runner = CliRunner()
GAUSSIAN = ["--prior", "gaussian", "--steps", "3", "--no-save-images"]


def test_grid_values_expand_to_lists_log_ranges_and_multiples():
    assert expand_value("[0.5,1, 2]") == ["0.5", "1", "2"]
    assert expand_value("log(0.1,10,3)") == ["0.1", "1", "10"]
    assert expand_value("log(1,1000,4)") == ["1", "10", "100", "1e+03"]
    assert expand_value("*log(0.1,10,5)") == ["*0.1", "*0.316", "*1", "*3.16", "*10"]
    assert expand_value("0.5") == ["0.5"]
    for bad in ("log(0,1,3)", "log(1,2)", "[1,,2]", "[1,2"):
        with pytest.raises(ValueError):
            expand_value(bad)


def test_solver_grids_are_a_cartesian_product_of_labelled_rows():
    degs = ["inpaint:size=32", "sr4:factor=4"]
    rows = resolve_solvers("ldps[zeta=[0.5,2]],psld[omega=log(0.1,10,3),gamma=0.1]", degs, 100, [])
    assert [r.label for r in rows] == [
        "ldps[zeta=0.5]",
        "ldps[zeta=2]",
        "psld[omega=0.1,gamma=0.1]",
        "psld[omega=1,gamma=0.1]",
        "psld[omega=10,gamma=0.1]",
    ]
    assert rows[1].hparams["sr4:factor=4"]["zeta"] == 2.0
    psld = rows[4].hparams["inpaint:size=32"]
    assert (psld["omega"], psld["gamma"], psld["steps"]) == (10.0, 0.1, 100)
    # --set grids join the label; a fixed --set value does not
    rows = resolve_solvers("ldps", degs, 100, ["ldps.zeta=[1,3]"])
    assert [r.label for r in rows] == ["ldps[zeta=1]", "ldps[zeta=3]"]
    assert [r.label for r in resolve_solvers("ldps", degs, 100, ["ldps.zeta=3"])] == ["ldps"]


def test_multiples_scale_each_degradations_official_value():
    # SILO's official eta: 1.0 for box inpainting, 0.5 elsewhere (reference/silo.md)
    rows = resolve_solvers("silo", ["inpaint:size=32", "sr4:factor=4"], 100, ["silo.eta=*[2,4]"])
    assert [r.label for r in rows] == ["silo[eta=*2]", "silo[eta=*4]"]
    assert rows[0].hparams["inpaint:size=32"]["eta"] == 2.0
    assert rows[0].hparams["sr4:factor=4"]["eta"] == 1.0
    assert rows[1].hparams["sr4:factor=4"]["eta"] == 2.0
    with pytest.raises(ValueError, match="not a number"):
        resolve_solvers("psld", ["sr4:factor=4"], 100, ["psld.fresh_noise=*[2]"])
    with pytest.raises(ValueError, match="valid: "):
        resolve_solvers("ldps", ["sr4:factor=4"], 100, ["ldps.zetta=[1,2]"])


def test_auto_grid_uses_the_declared_step_sizes():
    assert grid_items(["auto"], "ldps,naive,psld") == [
        "ldps.zeta=*log(0.1,10,5)",
        "psld.omega=*log(0.1,10,5)",
        "psld.gamma=*log(0.1,10,3)",
    ]
    assert grid_items(["psld.omega=[1,2]", "auto"], "psld") == [
        "psld.omega=[1,2]",
        "psld.gamma=*log(0.1,10,3)",
    ]
    with pytest.raises(ValueError, match="fixed values go in --set"):
        grid_items(["ldps.zeta=2"], "ldps")


def test_labels_with_brackets_survive_the_tables(tmp_path):
    out = bench(
        "run",
        *GAUSSIAN,
        "--solvers",
        "ldps[zeta=[1,2]]",
        "--deg",
        "sr4",
        "--images",
        "1",
        "--out",
        str(tmp_path),
    ).output
    for label in ("ldps[zeta=1]", "ldps[zeta=2]"):
        assert out.count(label) == 2, out  # the plan table and the summary table
    assert {r["solver_label"] for r in records(tmp_path)} == {"ldps[zeta=1]", "ldps[zeta=2]"}
    wide = runner.invoke(
        app, ["report", str(tmp_path), "--no-lpips", "--no-fid"], env={"COLUMNS": "200"}
    )
    report = wide.output
    assert "ldps[zeta=1]" in report and "ldps[zeta=2]" in report


def test_choose_takes_the_best_eligible_point_and_breaks_ties_by_runtime():
    points = pd.DataFrame(
        {
            "solver_label": ["a[x=1]", "a[x=2]", "a[x=3]", "a[x=4]"],
            "solver": "a",
            "degradation": "sr4",
            "sigma_01": 0.01,
            "steps": 10,
            "psnr": [20.0, 25.0, 25.0, 30.0],
            "runtime_s": [1.0, 3.0, 2.0, 1.0],
            "n": 4,
            "failed": [0, 0, 0, 1],  # the best mean had a diverged image: not eligible
            "hparams": "{}",
        }
    )
    assert choose(points, "psnr").chosen.tolist() == [False, False, True, False]
    lpips = points.rename(columns={"psnr": "lpips_alex"})
    assert choose(lpips, "lpips_alex").chosen.tolist() == [True, False, False, False]


def test_a_two_dimensional_grid_gives_a_curve_per_step_size_through_the_chosen_point(tmp_path):
    from bench.tuning_report import curves, tuning_curves

    grid = [(omega, gamma) for omega in (0.5, 1.0, 2.0) for gamma in (0.05, 0.1)]
    points = pd.DataFrame(
        {
            "solver_label": [f"psld[omega={o},gamma={g}]" for o, g in grid],
            "solver": "psld",
            "degradation": "sr4",
            "sigma_01": 0.01,
            "psnr": [20.0, 21.0, 22.0, 24.0, 23.0, 19.0],  # best: omega 1, gamma 0.1
            "hparams": [json.dumps({"omega": o, "gamma": g, "steps": 10}) for o, g in grid],
        }
    ).assign(chosen=lambda f: f.psnr == 24.0)
    entry = {
        "solver": "psld",
        "degradation": "sr4",
        "sigma_01": 0.01,
        "hparams": {"omega": 1.0, "gamma": 0.1},
        "official": {"omega": 1.0, "gamma": 0.1},
    }
    lines = curves(points, entry)
    assert sorted(lines) == ["gamma", "omega"]
    assert lines["omega"].multiple.tolist() == [0.5, 1.0, 2.0]  # at the chosen gamma 0.1
    assert lines["omega"].psnr.tolist() == [21.0, 24.0, 19.0]
    assert lines["gamma"].multiple.tolist() == [0.5, 1.0]  # at the chosen omega 1.0
    assert lines["gamma"].psnr.tolist() == [22.0, 24.0]
    path = tuning_curves(points, [entry], "psnr", tmp_path / "curves.png")
    assert path.stat().st_size > 0


def test_tune_refuses_overlapping_splits(tmp_path):
    result = runner.invoke(
        app,
        ["tune", *GAUSSIAN, "--solvers", "ldps", "--deg", "sr4", "--val", "0:3"]
        + ["--test", "2:4", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "share 1 image(s): 0002" in result.output
    assert not (tmp_path / "val").exists()
    result = runner.invoke(
        app,
        ["tune", *GAUSSIAN, "--solvers", "ldps", "--val", "0:2", "--test", "2:4"]
        + ["--metric", "fid", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2 and "valid: psnr, ssim, lpips_alex" in result.output


def test_tune_end_to_end_on_the_gaussian_prior(tmp_path):
    args = ["tune", *GAUSSIAN[:-1], "--solvers", "ldps,naive", "--deg", "sr4,inpaint"]
    args += ["--grid", "ldps.zeta=[0.1,1,10]", "--val", "0:2", "--test", "2:4"]
    bench(*args, "--out", str(tmp_path))
    val = pd.DataFrame(records(tmp_path / "val"))
    assert sorted(set(val.image_id)) == ["0000", "0001"]
    # the best point by mean validation PSNR, computed here from the records
    ldps = val[val.solver == "ldps"]
    best = ldps.groupby(["degradation", "solver_label"]).psnr.mean().groupby(level=0).idxmax()
    config = tomllib.loads((tmp_path / "tuned.toml").read_text())
    chosen = {e["degradation"]: e for e in config["tuned"]}
    assert set(chosen) == {"sr4:factor=4", "inpaint:size=16"}
    for deg, (_, label) in best.items():
        assert chosen[deg]["point"] == label
        assert chosen[deg]["official"] == {"zeta": 1.0} and chosen[deg]["steps"] == 3
    # common random numbers: every grid point saw the same y for an image and degradation
    run_dir = tmp_path / "val"
    ys = ldps.measurement_png.map(lambda p: (run_dir / p).read_bytes())
    assert ldps.assign(y=ys).groupby(["image_id", "degradation"]).y.nunique().max() == 1
    # the test split ran with the chosen values, under a [tuned] label
    test = pd.DataFrame(records(tmp_path / "test"))
    assert sorted(set(test.image_id)) == ["0002", "0003"]
    for _, row in test[test.solver == "ldps"].iterrows():
        assert row.solver_label == "ldps[tuned]"
        assert json.loads(row.hparams)["zeta"] == chosen[row.degradation]["hparams"]["zeta"]
    assert set(test[test.solver == "naive"].solver_label) == {"naive"}
    # tuned.toml is a `bench run` config: it resumes the finished test split
    rerun = bench("run", "--config", str(tmp_path / "tuned.toml"))
    assert "8 cells, 8 already done, 0 to run" in rerun.output
    # and `bench tune` resumes too: nothing is solved again
    again = bench(*args, "--out", str(tmp_path))
    assert again.output.count("0 to run") == 2
    report = (tmp_path / "tuning.md").read_text()
    assert "| ldps | inpaint:size=16 | 0.01 | 3 | zeta | 1 |" in report
    assert (tmp_path / "plots" / "tuning_curves.png").stat().st_size > 0
