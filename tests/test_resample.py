"""ReSample against its specification (baselines.md §5) and the analytic oracle."""

from types import SimpleNamespace

import pytest
import torch

import solvers.resample  # noqa: F401  (registers "resample")
from bench.counters import CountedPrior, counting
from bench.priors.gaussian import GaussianPrior
from bench.priors.schedule import SD_SCHEDULER_CONFIG, alphas_cumprod_from_config
from operators import Degradation, build_degradation, measure
from solvers.common import make_schedule, x0_hat
from solvers.reference import unconditional
from solvers.registry import get_solver
from solvers.resample import (
    hard_dc_schedule,
    resample,
    resample_gamma,
    stochastic_resample,
    time_travel_estimate,
)

SIGMA = 0.02
ORACLE = {"steps": 30, "pixel_iters": 100, "latent_iters": 50}
CHEAP = {"steps": 30, "dc_every": 5, "pixel_iters": 50, "latent_iters": 30}


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.fixture(scope="module")
def prior() -> GaussianPrior:
    return GaussianPrior()


def problem(prior: GaussianPrior, deg: str, n: int = 3) -> tuple[Degradation, torch.Tensor]:
    """(op, y) for n prior images, y = A(x) + SIGMA n."""
    op = build_degradation(deg, prior.image_size)
    x = prior.sample_images(gens(*range(n)))
    return op, measure(op, x, SIGMA, gens(*range(100, 100 + n)))


def test_registered_with_the_official_defaults():
    defaults = get_solver("resample").defaults
    assert defaults["steps"] == 500 and defaults["time_travel"] == 5
    assert defaults["gamma_scale"] == 40.0 and defaults["weight_decay"] == 0.01
    assert (defaults["pixel_lr"], defaults["pixel_iters"]) == (1e-2, 2000)
    assert (defaults["latent_lr"], defaults["latent_iters"]) == (5e-3, 500)


def test_hard_dc_schedule_is_the_official_one_at_500():
    """§5.4: 17 pixel steps 330..170 and 16 latent steps 160..10, every 10th, none at 0."""
    schedule = hard_dc_schedule(500)
    pixel = [i for i, stage in schedule.items() if stage == "pixel"]
    latent = [i for i, stage in schedule.items() if stage == "latent"]
    assert pixel == list(range(330, 169, -10)) and len(pixel) == 17
    assert latent == list(range(160, 9, -10)) and len(latent) == 16
    assert 0 not in schedule


def test_hard_dc_schedule_maps_proportionally():
    """Every round(10 S / 500) indices below S - S//3; pixel stage from S//3 up."""
    at_100 = hard_dc_schedule(100)
    assert list(at_100) == list(range(66, 1, -2))
    assert sum(s == "pixel" for s in at_100.values()) == 17 and len(at_100) == 33
    at_50 = hard_dc_schedule(50)
    assert list(at_50) == list(range(34, 0, -1))
    assert {i for i, s in at_50.items() if s == "pixel"} == set(range(16, 35))
    assert list(hard_dc_schedule(50, every=5)) == [30, 25, 20, 15, 10, 5]
    assert [list(hard_dc_schedule(s)) for s in (1, 2, 3)] == [[], [1], [2, 1]]
    with pytest.raises(ValueError, match="dc_every"):
        hard_dc_schedule(50, every=-1)


def ffhq_ldm_prior() -> SimpleNamespace:
    """The schedule part of the official LDM-FFHQ prior (beta 0.0015 -> 0.0195, §1)."""
    config = {**SD_SCHEDULER_CONFIG, "beta_start": 0.0015, "beta_end": 0.0195}
    return SimpleNamespace(
        scheduler_config=config, alphas_cumprod=alphas_cumprod_from_config(config)
    )


@pytest.mark.parametrize(
    ("index", "t", "abar", "gamma", "w", "variance", "dps"),
    [
        (330, 661, 0.025, 0.88, 0.48, 0.46, 0.012),
        (250, 501, 0.114, 0.63, 0.42, 0.37, 0.057),
        (170, 341, 0.331, 0.42, 0.39, 0.26, 0.165),
        (160, 321, 0.367, 0.40, 0.39, 0.24, 0.18),
        (80, 161, 0.698, 0.24, 0.44, 0.13, 0.35),
        (10, 21, 0.966, 0.12, 0.80, 0.025, 0.48),
    ],
)
def test_gamma_matches_the_table(index, t, abar, gamma, w, variance, dps):
    """§5.4's gamma / weight / variance table on the official 500-step DDIM grid."""
    schedule = make_schedule(ffhq_ldm_prior(), 500, "ddim")
    step = 499 - index
    a_t, a_prev = float(schedule.abar[step]), float(schedule.abar_prev[step])
    g = resample_gamma(a_t, a_prev)
    assert int(schedule.timesteps[step]) == t
    assert a_t == pytest.approx(abar, abs=6e-3)
    assert g == pytest.approx(gamma, abs=6e-3)
    assert g / (g + 1 - a_prev) == pytest.approx(w, abs=6e-3)
    assert g * (1 - a_prev) / (g + 1 - a_prev) == pytest.approx(variance, abs=6e-3)
    assert 0.5 * a_t == pytest.approx(dps, abs=6e-3)


def test_resampling_is_the_gaussian_product():
    """N(sqrt(a) z0(y), 1 - a) x N(x_t, gamma): precision-weighted mean, harmonic variance."""
    g = torch.Generator().manual_seed(0)
    z0_y, x_t = torch.randn(2, 2, 4, 3, 3, dtype=torch.float64, generator=g)
    a, gamma = 0.37, 0.42
    precision = 1 / (1 - a) + 1 / gamma
    mean = (a**0.5 * z0_y / (1 - a) + x_t / gamma) / precision
    zero, one = torch.zeros_like(x_t), torch.ones_like(x_t)
    torch.testing.assert_close(stochastic_resample(z0_y, x_t, a, gamma, zero), mean)
    spread = stochastic_resample(z0_y, x_t, a, gamma, one) - mean
    torch.testing.assert_close(spread, torch.full_like(mean, precision**-0.5))


@pytest.mark.parametrize("aligned", [False, True])
def test_time_travel_alpha_pairing(prior, aligned):
    """One step from grid point p + 1: the UNet sees t_{p+1}; alphas at p (faithful) or p + 1."""
    schedule = make_schedule(prior, 30, "ddim")
    z = prior.sample_latents(gens(3))
    got = time_travel_estimate(prior, z, z, schedule, 10, 1, pseudo=False, aligned=aligned)
    eps = prior.eps(z, schedule.timesteps[11].expand(1))
    expected = x0_hat(z, eps, float(schedule.abar[11 if aligned else 10]))
    torch.testing.assert_close(got, expected)


@pytest.fixture(scope="module")
def oracle_runs(prior: GaussianPrior) -> dict:
    """Batch-of-3 ReSample and unconditional solves on sr4 and inpaint, with their counts."""
    runs = {}
    for deg in ("sr4", "inpaint"):
        op, y = problem(prior, deg)
        with counting() as counts:
            x_hat = resample(prior, op, y, generator=gens(7, 8, 9), sigma_pm1=SIGMA, **ORACLE)
        x_unc = unconditional(prior, op, y, generator=gens(7, 8, 9), sigma_pm1=SIGMA, steps=50)
        runs[deg] = (op, y, x_hat, x_unc, counts["opt_iters"])
    return runs


def post_ratio(
    prior: GaussianPrior, op: Degradation, y: torch.Tensor, x_hat: torch.Tensor, i: int
) -> float:
    """||x_hat_i - mu_post||^2 / trace(Sigma_post) for sample i."""
    post = prior.posterior(y[i : i + 1], op, SIGMA)
    return float(((x_hat[i] - post.mean) ** 2).sum() / post.trace)


@pytest.mark.parametrize("deg", ["sr4", "inpaint"])
def test_oracle_consistency_and_posterior_ratio(prior, oracle_runs, deg):
    """Data consistency at the noise level and post_ratio far below a y-blind prior sample."""
    op, y, x_hat, x_unc, _ = oracle_runs[deg]
    rms = (op.forward(x_hat) - y).flatten(1).pow(2).mean(1).sqrt()
    ratio = [post_ratio(prior, op, y, x_hat, i) for i in range(3)]
    ratio_unc = [post_ratio(prior, op, y, x_unc, i) for i in range(3)]
    print(f"{deg}: post_ratio {ratio} (unconditional {ratio_unc}), residual rms {rms.tolist()}")
    assert (rms < 1.25 * SIGMA).all()
    assert sum(ratio) < sum(ratio_unc) / 3
    assert all(r < u for r, u in zip(ratio, ratio_unc, strict=True))


@pytest.mark.parametrize("deg", ["sr4", "inpaint"])
def test_opt_iters_are_counted_within_the_caps(oracle_runs, deg):
    """sum_b iterations over the hard steps and the final solve, at most the caps allow."""
    schedule = hard_dc_schedule(ORACLE["steps"])
    n_pixel = sum(stage == "pixel" for stage in schedule.values())
    n_latent = len(schedule) - n_pixel
    cap = 3 * (n_pixel * ORACLE["pixel_iters"] + (n_latent + 1) * ORACLE["latent_iters"])
    assert 0 < oracle_runs[deg][4] <= cap


def test_network_calls_follow_the_cost_model(prior):
    """UNet: S f+b plus sum_hard min(5, index) time-travel f; encoder: one f per pixel step."""
    op, y = problem(prior, "sr4", n=1)
    schedule = hard_dc_schedule(CHEAP["steps"], CHEAP["dc_every"])
    with counting() as counts:
        resample(CountedPrior(prior), op, y, generator=gens(1), sigma_pm1=SIGMA, **CHEAP)
    steps = CHEAP["steps"]
    assert counts["unet_fwd"] == steps + sum(min(5, index) for index in schedule)
    assert counts["unet_bwd"] == steps
    assert counts["enc_fwd"] == sum(stage == "pixel" for stage in schedule.values())
    assert counts["dec_bwd"] >= steps + 1


def test_batch_equals_single_solves(prior):
    """Per-sample generators, norms and early stopping: a batch of 3 is 3 single solves."""
    op, y = problem(prior, "sr4")
    hparams = {**CHEAP, "stop_rule": "sigma"}
    with counting() as batch_counts:
        batch = resample(prior, op, y, generator=gens(4, 5, 6), sigma_pm1=SIGMA, **hparams)
    singles, iters = [], []
    for i, seed in enumerate((4, 5, 6)):
        with counting() as counts:
            singles.append(
                resample(prior, op, y[i : i + 1], generator=gens(seed), sigma_pm1=SIGMA, **hparams)
            )
        iters.append(counts["opt_iters"])
    torch.testing.assert_close(batch, torch.cat(singles), atol=1e-9, rtol=0)
    assert batch_counts["opt_iters"] == sum(iters)
    assert len(set(iters)) > 1  # the samples stopped at different iterations


def test_jpeg_runs_and_is_finite(prior):
    """A nonlinear, differentiable A: DPS and both hard-DC stages go through it."""
    op, y = problem(prior, "jpeg", n=2)
    hparams = {"steps": 30, "dc_every": 7, "pixel_iters": 20, "latent_iters": 10}
    x_hat = resample(prior, op, y, generator=gens(1, 2), sigma_pm1=SIGMA, **hparams)
    assert x_hat.shape == (2, 3, prior.image_size, prior.image_size)
    assert torch.isfinite(x_hat).all() and x_hat.abs().max() <= 1


def test_unknown_stop_rule_is_refused(prior):
    op, y = problem(prior, "sr4", n=1)
    with pytest.raises(ValueError, match="stop_rule"):
        resample(prior, op, y, generator=gens(0), sigma_pm1=SIGMA, stop_rule="never")
