"""`bench report`: summary maths, tables, plots, paired comparison, a real run end to end."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from fabricate import fabricate_run, go_offline, noisy, psnr_01, truth_image
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from bench import weights
from bench.cli import app
from bench.report import report_command
from bench.report.compare import compare, parse_pair
from bench.report.frame import Notes, add_image_metrics, load_frame
from bench.report.tables import summarize

T_975_DF2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (tables)
LABELS = ("gml-dps", "ldps[zeta=3]", "my_solver")
PSNRS = {
    "gml-dps": [20.0, 22.0, 27.0],
    "ldps[zeta=3]": [21.0, 25.0, 26.0],
    "my_solver": [18, 19, 20],
}
RUNTIMES = {"gml-dps": 2.0, "ldps[zeta=3]": 1.0, "my_solver": 0.5}
POST_RATIOS = {"gml-dps": 0.5, "ldps[zeta=3]": 1.1, "my_solver": 3.0}


@pytest.fixture(autouse=True)
def offline_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs without pretrained files."""
    go_offline(monkeypatch, tmp_path)


def _rows(sigma: float = 0.01) -> list[dict]:
    """Three solvers x three images with known values, plus diverged / oom / error records."""
    rows = []
    for label in LABELS:
        for i, psnr in enumerate(PSNRS[label]):
            image_id = f"{i:04d}"
            rows.append(
                {
                    "key": f"{label}-{i}-{sigma}",
                    "solver_label": label,
                    "image_id": image_id,
                    "sigma_01": sigma,
                    "psnr": psnr,
                    "runtime_s": RUNTIMES[label],
                    "post_ratio": POST_RATIOS[label],
                    "recon": noisy(truth_image(image_id), 5 + 10 * i + 4 * LABELS.index(label), i),
                }
            )
    failures = [("ldps[zeta=3]", "diverged"), ("ldps[zeta=3]", "oom"), ("my_solver", "error")]
    for j, (label, status) in enumerate(failures):
        rows.append(
            {
                "key": f"{label}-fail{j}-{sigma}",
                "solver_label": label,
                "image_id": f"{10 + j:04d}",
                "sigma_01": sigma,
                "status": status,
            }
        )
    return rows


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A fabricated run dir of one setting."""
    return fabricate_run(tmp_path / "run", _rows())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One full report (offline) of two settings: sigma 0.01 (3 solvers), 0.05 (2 solvers)."""
    home = tmp_path_factory.mktemp("report")
    rows = _rows(0.01) + [r for r in _rows(0.05) if r["solver_label"] != "my_solver"]
    run = fabricate_run(home / "run", rows)
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stderr(err):
        go_offline(monkeypatch, home)
        out = report_command([run], out=home / "report", compare="gml-dps,ldps[zeta=3]")
    return SimpleNamespace(out=out, err=err.getvalue().replace("\n", ""), home=home)


def _summary_row(summary: pd.DataFrame, label: str) -> pd.Series:
    return summary.set_index("solver_label").loc[label]


def test_summary_mean_std_ci_against_hand_computation(run):
    row = _summary_row(summarize(load_frame([run])), "gml-dps")
    # psnr 20, 22, 27: mean 23, deviations -3, -1, 4, sample variance 26 / 2 = 13
    assert row.psnr_mean == pytest.approx(23.0)
    assert row.psnr_std == pytest.approx(math.sqrt(13))
    assert row.psnr_ci95 == pytest.approx(T_975_DF2 * math.sqrt(13) / math.sqrt(3))
    assert row.runtime_s_mean == 2.0 and row.runtime_s_std == 0.0


def test_failures_are_counted_by_status_and_left_out_of_means(run):
    summary = summarize(load_frame([run]))
    ldps, mine = _summary_row(summary, "ldps[zeta=3]"), _summary_row(summary, "my_solver")
    assert (ldps.n, ldps.n_failed, ldps.n_diverged, ldps.n_oom, ldps.n_error) == (3, 2, 1, 1, 0)
    assert (mine.n, mine.n_failed, mine.n_error) == (3, 1, 1)
    assert ldps.psnr_mean == pytest.approx(24.0)


def test_missing_columns_are_tolerated(tmp_path):
    """Old records without solver_label, PNGs or call counts still summarise."""
    out = fabricate_run(tmp_path / "old", [{"psnr": 20.0}, {"psnr": 30.0, "image_id": "0001"}])
    for path in (out / "records").glob("*.json"):
        text = path.read_text().replace('"solver_label": "naive", ', "")
        path.write_text(text)
    row = summarize(load_frame([out])).iloc[0]
    assert row.solver_label == "naive" and row.n == 2 and row.psnr_mean == 25.0
    assert math.isnan(row.unet_fwd_mean) and math.isnan(row.ssim_mean)


@pytest.mark.parametrize("newer", ["finished_at", "mtime"])
def test_duplicates_across_run_dirs_count_once_keeping_the_last(tmp_path, newer):
    stamps = ("2026-01-01T10:00:00+00:00", "2026-01-01T09:00:00+00:00")
    runs = []
    for name, psnr, stamp in (("a", 10.0, stamps[0]), ("b", 30.0, stamps[1])):
        row = {"key": "same", "psnr": psnr, **({"finished_at": stamp} if newer != "mtime" else {})}
        extra = {"key": f"only-{name}", "image_id": "0001", "psnr": 20.0}
        runs.append(fabricate_run(tmp_path / name, [row, extra]))
    if newer == "mtime":  # no finished_at: the file written last wins (here run a's)
        os.utime(runs[1] / "records" / "same.json", (1_000, 1_000))
    frame = load_frame(runs)
    assert len(frame) == 3 and frame.key.is_unique
    row = summarize(frame).iloc[0]
    assert row.n == 3
    assert frame.set_index("key").loc["same", "psnr"] == 10.0  # run a's is the later one


def test_psnr_is_averaged_per_image_not_pooled_and_ssim_matches_skimage(tmp_path):
    truths = [truth_image(f"{i:04d}") for i in range(2)]
    recons = [noisy(truths[0], 1.0, seed=1), noisy(truths[1], 60.0, seed=2)]
    psnrs = [psnr_01(r, t) for r, t in zip(recons, truths, strict=True)]
    rows = [
        {"key": f"k{i}", "image_id": f"{i:04d}", "psnr": psnrs[i], "recon": recons[i]}
        for i in range(2)
    ]
    frame = load_frame([fabricate_run(tmp_path / "run", rows)])
    frame = add_image_metrics(frame, lpips=False, device="cpu", notes=Notes())
    summary = summarize(frame)
    pooled_mse = np.mean(
        [np.mean((r / 255 - t / 255) ** 2) for r, t in zip(recons, truths, strict=True)]
    )
    assert abs(psnrs[0] - psnrs[1]) > 20
    assert summary.psnr_mean[0] == pytest.approx(np.mean(psnrs))
    assert summary.psnr_mean[0] - 10 * np.log10(1 / pooled_mse) > 5
    per_image = frame.set_index("image_id")
    for i in range(2):
        reference = ssim_by_hand(recons[i] / 255, truths[i] / 255)
        assert per_image.loc[f"{i:04d}", "ssim"] == pytest.approx(reference, rel=1e-9)


def ssim_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. SSIM, Gaussian sigma 1.5 (radius 5), mirror borders, mean over the image."""
    blur = partial(gaussian_filter, sigma=(1.5, 1.5, 0), truncate=3.5, mode="mirror")
    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    index = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(index.mean())


def _unescaped(text: str, char: str) -> int:
    """Occurrences of `char` not preceded by a backslash."""
    return len(re.findall(r"(?<!\\)" + re.escape(char), text))


def _latex_tables(tex: str) -> list[str]:
    """The table environments of summary.tex."""
    return re.findall(r"\\begin\{table\}.*?\\end\{table\}", tex, flags=re.S)


def test_latex_table_structure_bold_and_escapes(report):
    tex = (report.out / "summary.tex").read_text()
    tables = _latex_tables(tex)
    assert sum("Overview: " in t for t in tables) == 4  # PSNR and SSIM per sigma
    tables = [t for t in tables if "Overview: " not in t]
    assert len(tables) == 2
    assert _unescaped(tex, "{") == _unescaped(tex, "}")
    for table in tables:
        for token in (r"\begin{tabular}", r"\toprule", r"\midrule", r"\bottomrule"):
            assert table.count(token) == 1
        spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", table).group(1)
        body = table.split(r"\toprule")[1].split(r"\bottomrule")[0]
        rows = [line for line in body.splitlines() if line.endswith(r"\\")]
        assert all(_unescaped(row, "&") == len(spec) - 1 for row in rows)
    rows = [line for line in tables[0].splitlines() if line.endswith(r"\\")]
    by_label = {row.split(" & ")[0]: row for row in rows[1:]}
    assert set(by_label) == {"gml-dps", "ldps[zeta=3]", r"my\_solver"}
    assert "my_solver" not in tex
    assert r"\textbf{24.00}" in by_label["ldps[zeta=3]"]  # PSNR: higher is better
    assert r"\textbf{0.500}" in by_label[r"my\_solver"]  # runtime: lower is better
    assert r"\textbf{1.100}" in by_label["ldps[zeta=3]"]  # post ratio: closest to 1
    assert sum(row.count(r"\textbf") for row in rows) == 4  # + SSIM: gml-dps is least noisy
    assert r"$\pm$" in by_label["gml-dps"]


def test_markdown_has_one_row_per_solver_per_table(report):
    text = (report.out / "summary.md").read_text()
    tables = [t for t in text.split("\n## ")[1:] if not t.startswith(("Notes", "Overview"))]
    assert len(tables) == 2
    expected = {"sigma=0.01": set(LABELS), "sigma=0.05": {"gml-dps", "ldps[zeta=3]"}}
    for table in tables:
        lines = [line for line in table.splitlines() if line.startswith("| ")]
        solvers = [line.split(" | ")[0].removeprefix("| ") for line in lines[2:]]
        key = next(k for k in expected if k in table.splitlines()[0])
        assert sorted(solvers) == sorted(expected[key])
    assert "24.00 ± " in text and "2 (1 diverged, 1 oom)" in text


def test_overview_is_solvers_by_degradations_with_the_best_bold(tmp_path):
    specs = [
        ("a", "sr4:factor=4", 20.0),
        ("b", "sr4:factor=4", 22.0),
        ("a", "blur:sigma=3.0", 25.0),
    ]
    rows = [
        {"solver_label": s, "degradation": d, "image_id": f"{i:04d}", "psnr": psnr + i}
        for s, d, psnr in specs
        for i in range(2)
    ]
    run = fabricate_run(tmp_path / "run", rows)
    out = report_command([run], out=tmp_path / "report", lpips=False, fid=False)
    text = (out / "summary.md").read_text()
    section = text.split("## Overview: PSNR, sigma=0.01 (prior gaussian, dataset d)\n")[1]
    lines = [line for line in section.split("\n## ")[0].splitlines() if line.startswith("| ")]
    assert lines[0] == "| solver | blur:sigma=3.0 | sr4:factor=4 |"
    assert lines[2:] == ["| a | 25.50 | 20.50 |", "| b | -- | **22.50** |"]
    tex = (out / "summary.tex").read_text()
    table = next(t for t in _latex_tables(tex) if "Overview: PSNR" in t)
    assert r"a & 25.50 & 20.50 \\" in table and r"b & -- & \textbf{22.50} \\" in table


def test_paired_compare_against_hand_computation_and_scipy(run):
    table = compare(load_frame([run]), "gml-dps", "ldps[zeta=3]")
    psnr = table.set_index("metric").loc["psnr"]
    # pairs per image: (20, 21), (22, 25), (27, 26) -> differences -1, -3, 1: mean -1, std 2
    assert psnr.n_pairs == 3
    assert psnr.mean_diff == pytest.approx(-1.0)
    assert psnr.ci95 == pytest.approx(T_975_DF2 * 2 / math.sqrt(3))
    assert psnr.ci95_low == pytest.approx(-1.0 - psnr.ci95)
    assert psnr.wilcoxon_p == pytest.approx(scipy.stats.wilcoxon([-1.0, -3.0, 1.0]).pvalue)
    assert table.set_index("metric").loc["runtime_s", "mean_diff"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="known: "):
        compare(load_frame([run]), "gml-dps", "nope")


def test_paired_compare_edge_cases(tmp_path):
    rows = [  # psnr equal on both images; runtime only known for image 0000
        {"key": "a0", "solver_label": "a", "psnr": 20.0, "runtime_s": 1.0},
        {"key": "b0", "solver_label": "b", "psnr": 20.0, "runtime_s": 3.0},
        {"key": "a1", "solver_label": "a", "image_id": "0001", "psnr": 25.0, "runtime_s": None},
        {"key": "b1", "solver_label": "b", "image_id": "0001", "psnr": 25.0, "runtime_s": None},
    ]
    table = compare(load_frame([fabricate_run(tmp_path / "r", rows)]), "a", "b").set_index("metric")
    assert table.loc["psnr", "n_pairs"] == 2 and table.loc["psnr", "wilcoxon_p"] == 1.0
    assert table.loc["psnr", "mean_diff"] == 0.0 and table.loc["psnr", "ci95"] == 0.0
    assert table.loc["runtime_s", "n_pairs"] == 1
    assert math.isnan(table.loc["runtime_s", "wilcoxon_p"])
    assert math.isnan(table.loc["runtime_s", "ci95"])
    assert parse_pair("ldps[zeta=3,eta=1], naive") == ("ldps[zeta=3,eta=1]", "naive")
    with pytest.raises(ValueError):
        parse_pair("ldps")


def test_plots_are_valid_pngs(report):
    names = sorted(p.name for p in (report.out / "plots").glob("*.png"))
    for sigma in ("0.01", "0.05"):
        setting = f"gaussian_d_sr4_factor_4_s{sigma}"
        assert f"tradeoff_{setting}.png" in names and f"montage_{setting}.png" in names
    assert {"bars_psnr.png", "bars_ssim.png", "bars_runtime_s.png"} <= set(names)
    for name in names:
        with Image.open(report.out / "plots" / name) as image:
            image.verify()
        with Image.open(report.out / "plots" / name) as image:
            assert image.format == "PNG" and image.width >= 300 and image.height >= 200


def test_missing_weights_leave_lpips_and_fid_empty_with_instructions(report):
    summary = pd.read_csv(report.out / "summary.csv")
    assert summary.lpips_alex_mean.isna().all() and summary.lpips_vgg_mean.isna().all()
    assert summary.ssim_mean.notna().all()
    assert summary.fid.isna().all() and summary.kid_x1e3.isna().all()
    assert summary.fid_note.str.startswith("missing weights-inception-2015-12-05").all()
    assert (summary.fid_n == 3).all()
    for text in (
        "alexnet-owt-7be5be79.pth",
        "vgg16-397923af.pth",
        "weights-inception-2015-12-05-6726825d.pth",
        str(report.home / "torch_home" / "hub" / "checkpoints"),
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        weights.WEIGHTS_ENV,
    ):
        assert text in report.err
    assert "not downloaded (HF_HUB_OFFLINE=1)" in report.err  # tests run with it set


def test_tables_keep_the_pretrained_metric_columns_with_a_footnote(report):
    summary = pd.read_csv(report.out / "summary.csv")
    assert {"lpips_alex_mean", "lpips_vgg_mean", "fid", "kid_x1e3"} <= set(summary.columns)
    assert (
        summary.missing_weights
        == "lpips_alex: alexnet-owt-7be5be79.pth; lpips_vgg: vgg16-397923af.pth; "
        "fid: weights-inception-2015-12-05-6726825d.pth; "
        "kid_x1e3: weights-inception-2015-12-05-6726825d.pth"
    ).all()
    md = (report.out / "summary.md").read_text()
    tex = (report.out / "summary.tex").read_text()
    for sigma in ("0.01", "0.05"):
        block = md.split(f"## sr4:factor=4, sigma={sigma} ")[1].split("\n## ")[0]
        rows = [line.split(" | ") for line in block.splitlines() if line.startswith("| ")]
        header = rows[0]
        assert {"LPIPS-alex", "LPIPS-vgg", "FID", "KIDx1e3"} <= set(header)
        for row in rows[2:]:
            assert all(row[header.index(m)] == "--" for m in ("LPIPS-alex", "FID", "KIDx1e3"))
        assert (
            "-- (FID, KIDx1e3): not computed, weights-inception-2015-12-05-6726825d.pth is "
            "missing; `bench fetch-weights fid-inception` installs it" in block
        )
        assert "`bench fetch-weights lpips-vgg`" in block
    table = tex.split("sr4:factor=4, sigma=0.05")[1].split(r"\end{table}")[0]
    header = table.split(r"\toprule")[1].split(r"\midrule")[0].strip().split(" & ")
    first = table.split(r"\midrule")[1].splitlines()[1].split(" & ")
    for label in ("LPIPS-A", "LPIPS-V", "FID", r"KID$\times 10^3$"):
        (column,) = [i for i, h in enumerate(header) if h.startswith(label)]
        assert first[column] == "--"
    assert r"\texttt{bench fetch-weights lpips-alex} installs it" in table


def test_compare_file_is_written(report):
    table = pd.read_csv(report.out / "compare_gml-dps_vs_ldps_zeta_3.csv")
    assert set(table.sigma_01) == {0.01, 0.05} and "psnr" in set(table.metric)


def test_bad_arguments_are_clear_errors(run, tmp_path):
    with pytest.raises(ValueError, match="no records"):
        report_command([tmp_path / "nothing"])
    with pytest.raises(ValueError, match="valid: torchmetrics, clean-fid"):
        report_command([run], fid_backend="pytorch-fid")


def test_end_to_end_real_run(tmp_path):
    run = tmp_path / "run"
    args = ["run", "--prior", "gaussian", "--solvers", "ldps,naive", "--deg", "sr4"]
    args += ["--images", "2", "--steps", "10", "--out", str(run)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = report_command([run], out=tmp_path / "report", compare="ldps,naive")
    for name in ("per_image.csv", "summary.csv", "summary.md", "summary.tex"):
        assert (out / name).stat().st_size > 0
    assert (out / "compare_ldps_vs_naive.csv").exists()
    assert len(list((out / "plots").glob("tradeoff_*.png"))) == 1
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary.solver_label) == ["ldps", "naive"] and (summary.n == 2).all()
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 4 and "ssim" in per_image and "lpips_alex" in per_image
