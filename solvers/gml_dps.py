"""GML-DPS: goodness-modified latent DPS (PSLD paper §3; baselines.md §3).

z_{t-1} = z' - grad_{z_t} (omega ||y - (A(x_hat) + n')|| + gamma ||E(x_hat) - z0_hat||), with
x_hat = D(z0_hat): the goodness term pushes z0_hat toward a fixed point of E(D(.)). It is PSLD's
per-step procedure (`solvers.psld.glued_dps`) with the glued image replaced by x_glue = x_hat;
everything else is PSLD's: DDIM with 1000 steps and eta = 0, constant weights, unsquared norms,
fresh measurement noise n' ~ N(0, sigma_y^2 I) every step, an encoder posterior sample, the
gradient through the UNet, the decoder and the encoder. Only A's forward is needed, so it runs on
nonlinear operators such as JPEG.

Deviations:
- there is no official code; the paper writes squared norms with time-dependent weights
  (eta_t, gamma_t) and we follow the PSLD code's conventions instead, as baselines.md §3 says;
- no official per-task weights exist: every task gets PSLD's global defaults omega = 1.0,
  gamma = 0.1 (untuned);
- as for PSLD: per-sample norms, a single UNet pass instead of the empty-prompt CFG batch of 2
  (the same eps), the prior's dtype (float32 by default) rather than fp16 autocast, and with
  gamma = 0 the encoder pass is skipped (it is then LDPS with fresh measurement noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.priors.base import Prior
from operators.base import Degradation
from solvers.psld import GLUED_STEP_SIZES, SD_WEIGHTS, glued_dps, glued_dps_cost, identity
from solvers.registry import register


@register(
    "gml-dps",
    description="GML-DPS: DDIM + grad of omega ||y - A(x_hat) - n'|| + gamma ||E(x_hat) - z0||",
    defaults={"steps": 1000, **SD_WEIGHTS, "fresh_noise": True, "encoder_sample": True},
    cost=glued_dps_cost,
    step_sizes=GLUED_STEP_SIZES,
)
def gml_dps(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    *,
    generator: Sequence[torch.Generator],
    sigma_pm1: float,
    steps: int = 1000,
    omega: float = 1.0,
    gamma: float = 0.1,
    fresh_noise: bool = True,
    encoder_sample: bool = True,
) -> torch.Tensor:
    """GML-DPS (baselines.md §3): `glued_dps` with the goodness glue x_glue = x_hat."""
    return glued_dps(
        prior,
        op,
        y,
        identity,
        generator=generator,
        sigma_pm1=sigma_pm1,
        steps=steps,
        omega=omega,
        gamma=gamma,
        fresh_noise=fresh_noise,
        encoder_sample=encoder_sample,
    )
