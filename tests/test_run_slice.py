"""`bench run` end to end: the oracle slice, resume, bad input, failures recorded."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.execute import make_measurement
from bench.priors.gaussian import GaussianPrior
from bench.sweep import Cell
from solvers import registry
from solvers.common import SolverDiverged

runner = CliRunner()
ORACLE_SWEEP = [
    "run",
    "--prior",
    "gaussian",
    "--solvers",
    "ldps,naive,unconditional",
    "--deg",
    "sr4,inpaint",
    "--images",
    "3",
    "--steps",
    "50",
    "--set",
    "ldps.zeta=3",
]
REQUIRED = [
    "solver",
    "degradation",
    "sigma_01",
    "sigma_pm1",
    "image_id",
    "seed",
    "psnr",
    "psnr_post",
    "post_ratio",
    "status",
]


def bench(*args: str) -> "CliRunner.invoke":
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oracle")
    result = bench(
        *ORACLE_SWEEP,
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    return out


def test_slice_writes_per_image_csv(oracle_run):
    frame = pd.read_csv(oracle_run / "per_image.csv", dtype={"image_id": str})
    assert set(REQUIRED) <= set(frame.columns)
    assert len(frame) == 3 * 2 * 3 and (frame.status == "ok").all()
    assert (frame.sigma_pm1 == 2 * frame.sigma_01).all()
    assert frame.psnr_post.notna().all() and frame.post_ratio.notna().all()


@pytest.mark.parametrize("deg", ["sr4", "inpaint"])
def test_ldps_uses_the_measurement(oracle_run, deg):
    """On the oracle LDPS sits far closer to the posterior than a sample that ignores y."""
    frame = pd.read_csv(oracle_run / "per_image.csv")
    rows = frame[frame.degradation.str.startswith(deg)]
    ratio = rows.groupby("solver").post_ratio.mean()
    assert ratio["ldps"] < ratio["unconditional"] / 3
    rms = rows.groupby("solver").residual_rms.mean()
    assert rms["ldps"] < 2.5 * 0.02  # data consistency within a small factor of sigma_pm1


def test_rerun_resumes_without_recomputing(oracle_run):
    before = (oracle_run / "per_image.csv").read_text()
    result = bench(
        *ORACLE_SWEEP,
        "--out",
        str(oracle_run),
    )
    assert "18 already done, 0 to run" in result.output
    assert (oracle_run / "per_image.csv").read_text() == before


def test_every_solver_sees_the_same_measurement():
    prior = GaussianPrior()
    x = prior.sample_images([torch.Generator().manual_seed(0)])
    ys = []
    for solver in ("ldps", "naive"):
        cell = Cell("gaussian", "d", "0000", "inpaint-random:margin=1,size=16", 0.01, solver, {})
        ys.append(make_measurement(prior, [cell], x)[1])
    assert torch.equal(ys[0], ys[1])
    other_seed = Cell(
        "gaussian", "d", "0000", "inpaint-random:margin=1,size=16", 0.01, "naive", {}, seed=1
    )
    assert not torch.equal(ys[0], make_measurement(prior, [other_seed], x)[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--solvers", "nope"], "valid solvers: "),
        (["--solvers", "naive", "--deg", "warp"], "inpaint-random"),
        (["--solvers", "naive", "--deg", "blur:radius=3"], "sigma"),
        (["--solvers", "naive", "--set", "ldps.zeta=2"], "not in --solvers"),
        (["--solvers", "ldps", "--set", "ldps.mystery=2"], "valid: "),
        (["--solvers", "naive", "--prior", "/no/such/model"], "/no/such/model"),
        (["--solvers", "naive", "--prior", "sd15"], "hf download"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    result = runner.invoke(app, ["run", "--prior", "gaussian", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output


def test_list_prints_registries():
    result = bench("list")
    for name in ("ldps", "naive", "unconditional", "sr8", "jpeg", "inpaint-random", "gaussian"):
        assert name in result.output


def test_unreadable_image_is_an_error_record(tmp_path, tiny_sd):
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGBA", (40, 23), (200, 10, 10, 128)).save(data / "a.png")
    Image.fromarray((torch.rand(30, 30).numpy() * 65535).astype("uint16")).save(data / "b.png")
    (data / "c.png").write_bytes(b"not a png")
    result = bench(
        "run",
        "--prior",
        str(tiny_sd),
        "--data",
        str(data),
        "--solvers",
        "naive",
        "--deg",
        "sr4",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.exit_code == 3, result.output  # a failed cell: every record written, exit 3
    assert "1 of 3 cells failed (error 1)" in result.output
    frame = pd.read_csv(tmp_path / "out" / "per_image.csv").set_index("image_id")
    assert (
        frame.loc["a", "status"] == "ok" and frame.loc["b", "status"] == "ok"
    )  # ids: no extension
    assert frame.loc["c", "status"] == "error"
    assert "cannot read image" in frame.loc["c", "error"]


def _patched_solver(monkeypatch, fn):
    spec = registry.SOLVERS["naive"]
    monkeypatch.setitem(
        registry.SOLVERS, "naive", registry.SolverSpec("naive", fn, spec.description)
    )


def test_divergence_is_recorded_with_its_step(tmp_path, monkeypatch):
    def diverging(prior, op, y, **_):
        raise SolverDiverged(7)

    _patched_solver(monkeypatch, diverging)
    result = bench(
        "run",
        "--prior",
        "gaussian",
        "--solvers",
        "naive",
        "--deg",
        "sr4",
        "--images",
        "2",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 3 and "2 of 2 cells failed (diverged 2)" in result.output
    frame = pd.read_csv(tmp_path / "per_image.csv")
    assert (frame.status == "diverged").all() and frame.error.str.contains("step 7").all()


def test_ctrl_c_keeps_finished_cells_and_resumes(tmp_path, monkeypatch):
    real = registry.SOLVERS["naive"].fn
    calls = []

    def interrupted_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # the untimed warm-up, two timed cells, then Ctrl-C
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    _patched_solver(monkeypatch, interrupted_on_third)
    args = [
        "run",
        "--prior",
        "gaussian",
        "--solvers",
        "naive",
        "--deg",
        "sr4",
        "--images",
        "4",
        "--out",
        str(tmp_path),
    ]
    assert runner.invoke(app, args).exit_code == 130
    assert len(pd.read_csv(tmp_path / "per_image.csv")) == 2
    monkeypatch.setitem(registry.SOLVERS, "naive", registry.SolverSpec("naive", real, ""))
    result = bench(*args)
    assert "2 already done, 2 to run" in result.output
    assert len(pd.read_csv(tmp_path / "per_image.csv")) == 4
