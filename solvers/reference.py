"""Reference rows every table needs: `naive` (do nothing clever) and `unconditional` (ignore y)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.priors.base import Prior
from operators.base import Degradation
from solvers.common import (
    check_finite,
    ddpm_step,
    finalize,
    initial_latent,
    make_schedule,
    step_noise,
    x0_hat,
)
from solvers.registry import register


@register(
    "naive",
    description="D(E(y)) of the zero-filled / bicubic-upsampled y: the floor for 'uses y'",
    cost=lambda hp: {"enc_fwd": 1, "dec_fwd": 1},
)
def naive(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    *,
    generator: Sequence[torch.Generator],
    sigma_pm1: float,
) -> torch.Tensor:
    """x_hat = D(E(up(y))) with the encoder mean, so the row is deterministic."""
    with torch.no_grad():
        z = prior.encode(op.upsample_for_encoding(y), sample=False)
    return finalize(prior, z)


@register(
    "unconditional",
    description="an ancestral DDPM sample of the prior that ignores y: the floor for every solver",
    defaults={"steps": 999},
    cost=lambda hp: {"unet_fwd": hp["steps"], "dec_fwd": 1},
)
def unconditional(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    *,
    generator: Sequence[torch.Generator],
    sigma_pm1: float,
    steps: int = 999,
) -> torch.Tensor:
    """DDPM ancestral sampling (DDPM Alg. 2) from z_T with the run's common random numbers."""
    schedule = make_schedule(prior, steps, "ddpm")
    z = initial_latent(prior, generator)
    with torch.no_grad():
        for i, t, abar, abar_prev in schedule:
            t_batch = t.expand(z.shape[0])
            z0 = x0_hat(z, prior.eps(z, t_batch), abar)
            z = check_finite(ddpm_step(z, z0, abar, abar_prev, step_noise(prior, generator)), i)
    return finalize(prior, z)
