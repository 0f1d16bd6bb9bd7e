"""The analytic oracle against independent formulas (Gaussian conditioning, dense pixel solve)."""

import pytest
import torch

from bench.priors.gaussian import GaussianPrior
from operators import build_degradation, measure


@pytest.fixture(scope="module")
def prior() -> GaussianPrior:
    return GaussianPrior(image_size=16, factor=4)


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("t", [0, 10, 250, 600, 999])
def test_eps_is_the_tweedie_estimate(prior, t):
    """eps(z_t) = (z_t - sqrt(abar) E[z0|z_t]) / sqrt(1-abar), E[z0|z_t] by dense conditioning."""
    abar = float(prior.alphas_cumprod[t])
    sigma = prior.sigma_z
    d = sigma.shape[0]
    z_t = torch.randn(3, d, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    cov_t = abar * sigma + (1 - abar) * torch.eye(d, dtype=torch.float64)
    z0_mean = abar**0.5 * (sigma @ torch.linalg.solve(cov_t, z_t.T)).T
    expected = (z_t - abar**0.5 * z0_mean) / (1 - abar) ** 0.5
    got = prior.eps(z_t.reshape(3, *prior.latent_shape), torch.full((3,), t))
    torch.testing.assert_close(got.reshape(3, d), expected, atol=1e-9, rtol=1e-9)


def test_decoder_is_injective_and_encoder_its_inverse(prior):
    z = prior.sample_latents(gens(0, 1))
    torch.testing.assert_close(prior.encode(prior.decode(z)), z, atol=1e-10, rtol=0)


def test_samples_have_the_prior_covariance(prior):
    z = prior.sample_latents(gens(*range(4000))).reshape(4000, -1)
    empirical = z.T @ z / len(z)
    assert (empirical - prior.sigma_z).abs().max() < 0.25  # ~ 4 / sqrt(4000) * max variance


def dense_matrix(op, n: int, size: int) -> torch.Tensor:
    """A as an (m, n) matrix, by applying it to the pixel basis."""
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 3, size, size)
    return op.forward(basis).reshape(n, -1).T


@pytest.mark.parametrize("spec", ["sr4", "inpaint", "blur:sigma=1.0,size=9"])
def test_posterior_matches_dense_pixel_space_solve(prior, spec):
    """mu = C A^T (A C A^T + s^2 I)^-1 y and Sigma = C - C A^T (...)^-1 A C with C = W Sigma W^T."""
    size = prior.image_size
    op = build_degradation(spec, size).seeded(gens(5))
    x = prior.sample_images(gens(3))
    s = 0.05
    y = measure(op, x, s, gens(4))
    post = prior.posterior(y, op, s)
    a = dense_matrix(op, 3 * size * size, size)
    c = prior.W @ prior.sigma_z @ prior.W.T
    gain = c @ a.T @ torch.linalg.inv(a @ c @ a.T + s**2 * torch.eye(a.shape[0], dtype=a.dtype))
    mean = gain @ y.reshape(-1)
    cov = c - gain @ a @ c
    torch.testing.assert_close(post.mean.reshape(-1), mean, atol=1e-8, rtol=1e-6)
    assert post.trace == pytest.approx(float(cov.trace()), rel=1e-6)


def test_posterior_samples_have_unit_ratio(prior):
    """E||x - mu||^2 / trace(Sigma_post) = 1 for exact posterior draws."""
    op = build_degradation("sr4", prior.image_size)
    x = prior.sample_images(gens(7))
    y = measure(op, x, 0.02, gens(8))
    post = prior.posterior(y, op, 0.02)
    ratios = [
        float(((prior.posterior_sample(y, op, 0.02, g) - post.mean) ** 2).sum() / post.trace)
        for g in gens(*range(200))
    ]
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.1)


def test_posterior_refuses_degenerate_and_nonlinear(prior):
    op = build_degradation("sr4", prior.image_size)
    y = op.forward(prior.sample_images(gens(0)))
    with pytest.raises(ValueError, match="degenerate"):
        prior.posterior(y, op, 0.0)
    with pytest.raises(ValueError, match="not linear"):
        prior.measurement_matrix(build_degradation("jpeg", prior.image_size))
