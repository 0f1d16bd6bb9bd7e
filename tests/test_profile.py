"""`bench profile` on a tiny config, its FLOP counts, the shipped SD configs, a fast CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from bench.cli import app
from bench.profile.command import ProfileOptions, profile_command
from bench.profile.measure import count_flops, passes_made, timings, weighted_calls
from bench.profile.networks import config_folder
from bench.timing import timed

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def test_flops_of_a_matmul_and_of_cpu_attention_match_the_formulas():
    a, b = torch.randn(3, 5), torch.randn(5, 7)
    assert count_flops(lambda: a @ b) == 2 * 3 * 5 * 7
    q = torch.randn(2, 4, 16, 8)  # batch, heads, tokens, head dim
    # QK^T and (softmax)V: two batched matmuls of 2 L^2 d each, per batch and head
    expected = 2 * 4 * 2 * (2 * 16 * 16 * 8)
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == expected


def test_weighted_calls_prices_backward_passes_at_fwd_bwd_and_the_rest_at_fwd():
    per_call = {(n, p): 0.0 for n in ("unet", "dec", "enc", "op") for p in ("fwd", "fwd+bwd")}
    per_call.update({("unet", "fwd"): 1.0, ("unet", "fwd+bwd"): 3.0, ("dec", "fwd"): 10.0})
    calls = {"unet_fwd": 5, "unet_bwd": 2, "dec_fwd": 1}
    assert weighted_calls(calls, per_call) == 2 * 3.0 + 3 * 1.0 + 10.0


@pytest.mark.parametrize(
    ("arch", "unet_params", "vae_params"),
    [("sd15", 859_520_964, 83_653_863), ("sd21-base", 865_910_724, 83_653_863)],
)
def test_shipped_configs_have_the_published_parameter_counts(arch, unet_params, vae_params):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = config_folder(arch)
    with torch.device("meta"):  # shapes only: no memory, no time
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
    assert sum(p.numel() for p in unet.parameters()) == unet_params
    assert sum(p.numel() for p in vae.parameters()) == vae_params


def test_profile_of_a_tiny_folder_writes_the_tables_with_honest_columns(tiny_sd, tmp_path):
    options = ProfileOptions(
        arch=str(tiny_sd),
        size=16,
        solvers="silo,ldps,psld,gml-dps",
        batch="1,2",
        steps=2,
        warmup_steps=1,
        repeats=1,
        out=str(tmp_path),
    )
    lines: list[str] = []
    paths = profile_command(options, lines.append)
    assert {p.name for p in paths} >= {"profile.csv", "profile.md", "profile.tex", "calls.csv"}
    assert (tmp_path / "per_image_vs_batch.png").stat().st_size > 0
    rows, calls = pd.read_csv(tmp_path / "profile.csv"), pd.read_csv(tmp_path / "calls.csv")
    assert sorted(rows.solver.unique()) == ["gml-dps", "ldps", "psld", "silo"]
    assert set(rows.batch) == {1, 2}
    # what the solvers ran in 2 steps, counted by the harness (the papers' per-step calls)
    silo = rows[(rows.solver == "silo") & (rows.batch == 1)].iloc[0]
    assert (silo.calls_unet_fwd, silo.calls_unet_bwd, silo.calls_op_bwd) == (2, 2, 2)
    assert (silo.calls_enc_fwd, silo.calls_dec_fwd) == (1, 1)
    psld = rows[(rows.solver == "psld") & (rows.batch == 1)].iloc[0]
    assert (psld.calls_dec_fwd, psld.calls_dec_bwd, psld.calls_enc_bwd) == (3, 2, 2)
    # the FLOP ratio of LDPS to SILO at the official lengths, from the per-call counts
    f = {(r.network, r.passes): r.flops for r in calls[calls.batch == 1].itertuples()}
    ldps_flops = 1000 * (f[("unet", "fwd+bwd")] + f[("dec", "fwd+bwd")]) + f[("dec", "fwd")]
    guided = f[("unet", "fwd+bwd")] + f[("op", "fwd+bwd")]
    silo_flops = 999 * guided + f[("enc", "fwd")] + f[("dec", "fwd")]
    ldps = rows[(rows.solver == "ldps") & (rows.batch == 1)].iloc[0]
    assert ldps.flop_ratio_to_silo == pytest.approx(ldps_flops / silo_flops, rel=1e-9)
    assert silo.ratio_to_silo == 1.0
    assert (rows.harness_over_limit > 0).all() and (rows.s_per_image > 0).all()
    # the reported round: its solve over its own limit (the calls alone, timed right after it)
    assert rows.harness_over_limit.tolist() == pytest.approx((rows.timed_s / rows.limit_s).tolist())
    # every row says where and how it ran
    assert (rows.torch == torch.__version__).all() and (rows.device == "cpu").all()
    assert (~rows.tf32_matmul).all() and (rows.matmul_precision == "highest").all()
    assert "harness/limit" in (tmp_path / "profile.md").read_text()
    assert any("silo" in line and "harness/limit" in line for line in lines)


def test_profile_rejects_an_unknown_arch_by_name_without_a_traceback(tmp_path):
    result = runner.invoke(app, ["profile", "--arch", "sd99", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--arch 'sd99'" in result.output and "Traceback" not in result.output


def test_timed_peak_memory_covers_an_allocation_inside_the_region():
    with timed(torch.device("cpu")) as timing:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    assert timing.memory_kind == "process_peak_rss"
    assert timing.peak_mem_mb >= 64
    assert 0 < timing.cpu_seconds and 0 < timing.seconds


def test_a_solves_limit_times_exactly_the_passes_its_counts_price():
    silo = {"unet_fwd": 10, "unet_bwd": 10, "op_fwd": 10, "op_bwd": 10, "enc_fwd": 1, "dec_fwd": 1}
    assert list(passes_made(silo)) == [
        ("unet", "fwd+bwd"),
        ("dec", "fwd"),
        ("enc", "fwd"),
        ("op", "fwd+bwd"),
    ]
    ldps = {"unet_fwd": 10, "unet_bwd": 10, "dec_fwd": 11, "dec_bwd": 10}  # + the final decode
    assert list(passes_made(ldps)) == [("unet", "fwd+bwd"), ("dec", "fwd+bwd"), ("dec", "fwd")]


def test_isolated_calls_are_timed_in_blocks_and_reported_per_call():
    made = []

    def call() -> None:
        made.append(1)
        time.sleep(0.02)

    runs = timings(call, torch.device("cpu"), repeats=2, block=4)
    assert len(made) == 1 + 2 * 4  # one untimed warm-up, then two blocks of four
    # per call, not per block (a block takes >= 0.08 s); 3x slack for a loaded machine
    assert all(0.02 <= run.seconds < 0.06 for run in runs), [run.seconds for run in runs]


def test_help_and_version_load_no_torch():
    code = "import sys; from bench.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
    version = subprocess.run(
        [sys.executable, "-m", "bench", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert version.returncode == 0 and version.stdout.startswith("latent-inverse-bench ")
