"""The unguided steps and the time grid against diffusers' own schedulers.

diffusers keeps alphas_cumprod in float32 and forms the step coefficients from float32 scalars,
so agreement is to float32 precision (observed max difference ~2e-6), whatever the input dtype.
"""

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from bench.priors.schedule import SD_SCHEDULER_CONFIG, alphas_cumprod_from_config
from solvers.common import ddim_step, ddpm_step, make_schedule, x0_hat

F32 = {"atol": 1e-5, "rtol": 1e-5}


def fake_prior(scheduler) -> SimpleNamespace:
    """A prior that carries exactly the scheduler's alphas (float32 values held in float64)."""
    return SimpleNamespace(
        alphas_cumprod=scheduler.alphas_cumprod.double(), scheduler_config=SD_SCHEDULER_CONFIG
    )


def test_alphas_cumprod_match_diffusers():
    ours = alphas_cumprod_from_config(SD_SCHEDULER_CONFIG)
    theirs = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG).alphas_cumprod.double()
    assert ours.dtype == torch.float64 and ours.shape == (1000,)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)  # float32 cumprod error
    assert abs(float(ours[-1]) - 0.004660) < 1e-6  # reference/ecosystem.md §5.2


@pytest.mark.parametrize("steps", [50, 999, 500])
def test_ddpm_step_matches_diffusers(steps):
    scheduler = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    schedule = make_schedule(fake_prior(scheduler), steps, "ddpm")
    assert torch.equal(schedule.timesteps, scheduler.timesteps.long())
    z = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for i, t, abar, abar_prev in schedule:
        if i % max(1, steps // 7) and i != len(schedule) - 1:
            continue
        eps = torch.randn(z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
        expected = scheduler.step(
            eps, int(t), z, generator=torch.Generator().manual_seed(100 + i)
        ).prev_sample
        noise = torch.randn(
            z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(100 + i)
        )
        ours = ddpm_step(z, x0_hat(z, eps, abar), abar, abar_prev, noise)
        torch.testing.assert_close(ours, expected, **F32)


@pytest.mark.parametrize(("steps", "eta"), [(50, 0.0), (50, 1.0), (200, 0.5)])
def test_ddim_step_matches_diffusers(steps, eta):
    scheduler = DDIMScheduler.from_config(SD_SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    schedule = make_schedule(fake_prior(scheduler), steps, "ddim")
    assert torch.equal(schedule.timesteps, scheduler.timesteps.long())
    assert float(schedule.abar_prev[-1]) == float(scheduler.alphas_cumprod[0])  # no alpha 1
    z = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for i, t, abar, abar_prev in schedule:
        eps = torch.randn(z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
        noise = torch.randn(
            z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i)
        )
        out = scheduler.step(eps, int(t), z, eta=eta, variance_noise=noise)
        z0 = x0_hat(z, eps, abar)
        torch.testing.assert_close(z0, out.pred_original_sample, **F32)
        ours = ddim_step(z0, eps, abar, abar_prev, eta=eta, noise=noise)
        torch.testing.assert_close(ours, out.prev_sample, **F32)


def test_full_length_grid_follows_psld_pairing():
    """At steps = T the leading grid reaches t = 1000; abar is taken at t - 1 (PSLD's code)."""
    prior = SimpleNamespace(
        alphas_cumprod=alphas_cumprod_from_config(SD_SCHEDULER_CONFIG),
        scheduler_config=SD_SCHEDULER_CONFIG,
    )
    schedule = make_schedule(prior, 1000, "ddim")
    assert int(schedule.timesteps[0]) == 1000 and int(schedule.timesteps[-1]) == 1
    torch.testing.assert_close(schedule.abar, prior.alphas_cumprod.flip(0))


def test_schedule_rejects_bad_input():
    prior = SimpleNamespace(
        alphas_cumprod=alphas_cumprod_from_config(SD_SCHEDULER_CONFIG),
        scheduler_config=SD_SCHEDULER_CONFIG,
    )
    with pytest.raises(ValueError, match="steps must be in"):
        make_schedule(prior, 0, "ddim")
    with pytest.raises(ValueError, match="valid: ddpm, ddim"):
        make_schedule(prior, 10, "euler")
