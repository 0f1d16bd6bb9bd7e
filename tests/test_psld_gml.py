"""PSLD and GML-DPS on the analytic oracle, against hand-formed glue, LDPS and the posterior."""

import pytest
import torch
from diffusers import DDIMScheduler

import solvers.gml_dps
import solvers.ldps
import solvers.psld
import solvers.reference
from bench.counters import CountedPrior, counting
from bench.priors.gaussian import GaussianPrior
from operators import Degradation, build_degradation, measure
from solvers.registry import get_solver

SIGMA = 0.05  # PSLD's official sigma_y on [-1, 1]


@pytest.fixture(scope="module")
def prior() -> GaussianPrior:
    return GaussianPrior()


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def problem(
    prior: GaussianPrior, spec: str, n: int = 2, sigma: float = SIGMA
) -> tuple[Degradation, torch.Tensor]:
    """(op, y) for n prior images; random boxes drawn from seeds 10.. (one per image)."""
    op = build_degradation(spec, prior.image_size).seeded(gens(*range(10, 10 + n)))
    x = prior.sample_images(gens(*range(100, 100 + n)))
    return op, measure(op, x, sigma, gens(*range(200, 200 + n)))


def solve(
    name: str, prior, op: Degradation, y: torch.Tensor, seeds=(300, 301), sigma=SIGMA, **hparams
) -> torch.Tensor:
    return get_solver(name).fn(prior, op, y, generator=gens(*seeds), sigma_pm1=sigma, **hparams)


def nearest_up(v: torch.Tensor, factor: int) -> torch.Tensor:
    return v.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


@pytest.mark.parametrize("spec", ["inpaint", "inpaint-random", "sr4", "sr8", "blur"])
def test_glue_is_the_hand_formed_image(prior, spec):
    """baselines.md §4.5: y + (1-m) x; NN_up(y) + x - NN_up(down(x)); y + x - blur(x)."""
    op, y = problem(prior, spec)
    x = prior.sample_images(gens(7, 8))
    got = solvers.psld.psld_glue(op, y, op.pseudo_transpose)(x)
    if spec.startswith("inpaint"):
        expected = y + (1 - op.mask) * x
    elif spec.startswith("sr"):
        expected = nearest_up(y, op.factor) + x - nearest_up(op.forward(x), op.factor)
    else:
        expected = y + x - op.forward(x)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def reference_ldps(prior, op, y, seeds, steps: int, zeta: float) -> torch.Tensor:
    """An independent latent DPS: diffusers' DDIMScheduler for the unguided step, plain autograd."""
    scheduler = DDIMScheduler.from_config(prior.scheduler_config)
    scheduler.set_timesteps(steps)
    z = torch.stack(
        [torch.randn(prior.latent_shape, generator=g, dtype=prior.dtype) for g in gens(*seeds)]
    )
    for t in scheduler.timesteps:
        z = z.detach().requires_grad_(True)
        eps = prior.eps(z, t.expand(len(z)))
        out = scheduler.step(eps, int(t), z)
        residual = (y - op.forward(prior.decode(out.pred_original_sample))).flatten(1).norm(dim=1)
        (grad,) = torch.autograd.grad(residual.sum(), z)
        z = out.prev_sample.detach() - zeta * grad
    return prior.decode(z).clamp(-1, 1)


@pytest.mark.parametrize("spec", ["sr4", "inpaint"])
def test_ldps_and_psld_without_glue_match_an_independent_ldps(prior, spec):
    """PSLD with gamma = 0 and no fresh noise is LDPS; both equal a from-scratch DPS loop."""
    op, y = problem(prior, spec)
    got = solve("psld", prior, op, y, steps=20, omega=3.0, gamma=0.0, fresh_noise=False)
    expected = reference_ldps(prior, op, y, (300, 301), steps=20, zeta=3.0)
    # diffusers forms the step coefficients from float32 alphas: agreement to ~1e-5
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    ldps = solve("ldps", prior, op, y, steps=20, zeta=3.0)
    torch.testing.assert_close(ldps, got, atol=1e-12, rtol=0)


@pytest.mark.parametrize("spec", ["sr4", "inpaint"])
def test_gml_goodness_term_vanishes_on_the_oracle(prior, spec):
    """E(D(z)) = z on the oracle, so GML-DPS's goodness term and its gradient are zero."""
    op, y = problem(prior, spec)
    got = solve("gml-dps", prior, op, y, steps=20, omega=3.0, gamma=1.0)
    expected = solve("gml-dps", prior, op, y, steps=20, omega=3.0, gamma=0.0)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def post_ratio(prior: GaussianPrior, spec: str, x_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over samples of ||x_hat - mu_post||^2 / trace(Sigma_post) (DESIGN.md §3)."""
    ratios = []
    for i in range(len(x_hat)):
        post = prior.posterior(y[i : i + 1], build_degradation(spec, prior.image_size), SIGMA)
        ratios.append(float(((x_hat[i] - post.mean) ** 2).sum()) / post.trace)
    return sum(ratios) / len(ratios)


@pytest.mark.parametrize("name", ["psld", "gml-dps"])
@pytest.mark.parametrize("spec", ["sr4", "inpaint"])
def test_far_closer_to_the_posterior_than_unconditional(prior, name, spec):
    """50 steps with the task's weights x10 (the unsquared step is per step: fewer steps, less
    push); measured post_ratio ~1.2-1.4 against ~6 (sr4) and ~23 (inpaint) unconditional."""
    op, y = problem(prior, spec, n=4)
    seeds = range(300, 304)
    weights = {
        k: 10 * v for k, v in get_solver(name).hparams(spec).items() if k in ("omega", "gamma")
    }
    x_hat = solve(name, prior, op, y, seeds, steps=50, **weights)
    baseline = solve("unconditional", prior, op, y, seeds, steps=50)
    ratio = post_ratio(prior, spec, x_hat, y)
    assert ratio < post_ratio(prior, spec, baseline, y) / 3
    assert ratio < 2.0


def test_psld_refuses_nonlinear_and_gml_runs_jpeg(prior):
    op, y = problem(prior, "jpeg")
    with pytest.raises(ValueError, match="linear"):
        solve("psld", prior, op, y, steps=5)
    for name, extra in (("gml-dps", {}), ("psld", {"allow_nonlinear": True})):
        x_hat = solve(name, prior, op, y, steps=10, **extra)
        assert torch.isfinite(x_hat).all() and x_hat.abs().max() <= 1.0


def test_hyperparameters_per_task():
    psld = get_solver("psld")
    base = {"steps": 1000, "fresh_noise": True, "encoder_sample": True, "allow_nonlinear": False}
    assert psld.hparams("inpaint") == {**base, "omega": 0.1, "gamma": 0.01}
    assert psld.hparams("inpaint-random") == psld.hparams("inpaint")
    for task in ("sr4", "sr8", "blur", "jpeg"):
        assert psld.hparams(task) == {**base, "omega": 1.0, "gamma": 0.1}
    gml = get_solver("gml-dps")
    for task in ("inpaint", "sr4", "jpeg"):
        assert gml.hparams(task) == {
            "steps": 1000,
            "omega": 1.0,
            "gamma": 0.1,
            "fresh_noise": True,
            "encoder_sample": True,
        }


def test_fresh_noise_is_scaled_by_sigma_and_drawn_from_the_generator(prior, monkeypatch):
    op, y = problem(prior, "sr4")
    quiet = solve("psld", prior, op, y, steps=20, fresh_noise=False)
    torch.testing.assert_close(
        solve("psld", prior, op, y, steps=20, sigma=0.0), quiet, atol=1e-12, rtol=0
    )
    assert not torch.allclose(solve("psld", prior, op, y, steps=20), quiet, atol=1e-3)
    # Same z_T, different generators: only the fresh noise n' can tell the solves apart.
    z_t = torch.randn(2, *prior.latent_shape, dtype=torch.float64)
    monkeypatch.setattr(solvers.psld, "initial_latent", lambda prior, generators: z_t.clone())
    a, b = (solve("psld", prior, op, y, seeds, steps=20) for seeds in ((1, 2), (3, 4)))
    assert not torch.allclose(a, b, atol=1e-3)
    no_noise = (
        solve("psld", prior, op, y, s, steps=20, fresh_noise=False) for s in ((1, 2), (3, 4))
    )
    torch.testing.assert_close(*no_noise, atol=0, rtol=0)


@pytest.mark.parametrize(("name", "spec"), [("psld", "sr4"), ("gml-dps", "inpaint-random")])
def test_batch_equals_single_solves(prior, name, spec):
    op, y = problem(prior, spec, n=3)
    batch = solve(name, prior, op, y, (0, 1, 2), steps=20)
    for i in range(3):
        op_i = build_degradation(spec, prior.image_size).seeded(gens(10 + i))
        single = solve(name, prior, op_i, y[i : i + 1], (i,), steps=20)
        torch.testing.assert_close(batch[i : i + 1], single, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    ("name", "gamma", "enc"), [("psld", 0.1, 1), ("gml-dps", 0.1, 1), ("psld", 0.0, 0)]
)
def test_network_calls_per_step(prior, name, gamma, enc):
    """Per step: UNet, decoder and (for gamma > 0) encoder one forward and one backward each."""
    op, y = problem(prior, "sr4")
    steps = 7
    with counting() as counts:
        solve(name, CountedPrior(prior), op, y, steps=steps, gamma=gamma)
    expected = {"unet_fwd": steps, "unet_bwd": steps, "dec_fwd": steps + 1, "dec_bwd": steps}
    if enc:
        expected |= {"enc_fwd": steps, "enc_bwd": steps}
    assert {k: v for k, v in counts.items() if not k.startswith("op")} == expected
