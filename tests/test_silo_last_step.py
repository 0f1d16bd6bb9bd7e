"""SILO's time grid: diffusers 0.27.1's previous_timestep (the official default) and today's."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler

from bench.priors import load_prior
from bench.seeding import generator_for
from operators import build_degradation
from solvers import get_solver
from solvers.common import ddpm_step, make_schedule, x0_hat

T = 1000


@pytest.fixture(scope="module")
def sd():
    """A prior with SD-1.x's alphas (float32 values held in float64, as diffusers keeps them)."""
    from bench.priors.schedule import SD_SCHEDULER_CONFIG

    scheduler = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
    return SimpleNamespace(
        alphas_cumprod=scheduler.alphas_cumprod.double(), scheduler_config=SD_SCHEDULER_CONFIG
    )


def by_hand(ac: torch.Tensor, steps: int) -> tuple[list[int], list[float], list[float]]:
    """Leading spacing, steps_offset 1: t_i = (S-1-i) * (T // S) + 1; abar at t (t - 1 where
    t = T); 0.27.1's prev = t - T // S (abar 1 below 0); today's prev = the next grid point."""
    ratio = T // steps
    ts = [(steps - 1 - i) * ratio + 1 for i in range(steps)]
    idx = [t - 1 for t in ts] if max(ts) >= T else ts
    legacy = [float(ac[i - ratio]) if i - ratio >= 0 else 1.0 for i in idx]
    grid = [float(ac[i]) for i in idx[1:]] + [1.0]
    return ts, legacy, grid


@pytest.mark.parametrize("steps", [10, 250, 500, 501, 600, 999, 1000])
def test_both_pairings_match_the_maths_by_hand(sd, steps):
    ts, legacy, grid = by_hand(sd.alphas_cumprod, steps)
    official = make_schedule(sd, steps, "ddpm", "diffusers-0.27.1")
    today = make_schedule(sd, steps, "ddpm", "grid")
    assert official.timesteps.tolist() == ts == today.timesteps.tolist()
    assert official.abar_prev.tolist() == legacy
    assert today.abar_prev.tolist() == grid
    differ = (official.abar_prev != today.abar_prev).nonzero().flatten().tolist()
    assert differ == ([steps - 1] if T / 2 < steps < T else [])


def test_999_steps_last_step_goes_to_abar_0_and_adds_noise(sd):
    official = make_schedule(sd, 999, "ddpm", "diffusers-0.27.1")
    t, abar, abar_prev = int(official.timesteps[-1]), official.abar[-1], official.abar_prev[-1]
    assert t == 1 and abar_prev == pytest.approx(0.99915, abs=1e-7)
    a1, a0 = float(sd.alphas_cumprod[1]), float(sd.alphas_cumprod[0])
    gen = torch.Generator().manual_seed(3)
    z, eps, noise = (torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=gen) for _ in range(3))
    z0 = (z - (1 - a1) ** 0.5 * eps) / a1**0.5
    beta = 1 - a1 / a0
    mean = (a0**0.5 * beta * z0 + (a1 / a0) ** 0.5 * (1 - a0) * z) / (1 - a1)
    std = ((1 - a0) / (1 - a1) * beta) ** 0.5
    ours = ddpm_step(z, x0_hat(z, eps, float(abar)), float(abar), float(abar_prev), noise)
    torch.testing.assert_close(ours, mean + std * noise, atol=1e-12, rtol=0)
    assert 0.02 < std < 0.021  # the noise the official last step still adds
    # diffusers without set_timesteps pairs t with t - 1, which is 0.27.1's rule at 999 steps
    library = DDPMScheduler.from_config(sd.scheduler_config)
    expected = library.step(eps, 1, z, generator=torch.Generator().manual_seed(7)).prev_sample
    drawn = torch.randn(z.shape, generator=torch.Generator().manual_seed(7), dtype=z.dtype)
    torch.testing.assert_close(
        ddpm_step(z, z0, float(abar), float(abar_prev), drawn), expected, atol=1e-5, rtol=1e-5
    )
    today = make_schedule(sd, 999, "ddpm", "grid")
    assert float(today.abar_prev[-1]) == 1.0
    torch.testing.assert_close(
        ddpm_step(z, z0, float(today.abar[-1]), 1.0, noise), z0, atol=1e-9, rtol=0
    )  # z_0 = z0_hat up to diffusers' 1e-20 variance floor


def test_silo_defaults_to_the_official_pairing_and_keeps_today_as_an_option():
    spec = get_solver("silo")
    assert spec.defaults["prev_timestep"] == "diffusers-0.27.1"
    prior = load_prior("gaussian")
    op = build_degradation("sr4", prior.image_size)
    x = prior.sample_images([generator_for("truth", 0)])
    y = op.forward(x)

    def solve(steps: int, rule: str) -> torch.Tensor:
        gens = [generator_for("silo", 0)]
        return spec.fn(
            prior, op, y, generator=gens, sigma_pm1=0.02, steps=steps, prev_timestep=rule
        )

    assert torch.equal(solve(10, "grid"), solve(10, "diffusers-0.27.1"))  # the same grid
    assert not torch.equal(solve(600, "grid"), solve(600, "diffusers-0.27.1"))
    with pytest.raises(ValueError, match="valid: grid, diffusers-0.27.1"):
        solve(10, "0.27")
