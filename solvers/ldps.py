"""LDPS: DPS transferred to the latent space (baselines.md §2).

z_{t-1} = z'_{t-1} - zeta * grad_{z_t} ||y - A(D(z0_hat(z_t)))||_2, with z'_{t-1} the unguided
DDIM step (eta = 0) and z0_hat from Tweedie's formula.

Convention chosen (baselines.md §2 lists three): the PSLD-code realisation with gamma = 0 —
DDIM with 1000 steps, eta = 0, constant step zeta = 1, unsquared norm, the correct z0_hat. It is
therefore PSLD's loop (`solvers.psld.glued_dps`) without the gluing term.

Deviations from the official code:
- the norm is per sample (the official codes take one norm over the whole batch, which
  couples the samples of a batch);
- no measurement noise is added to A(D(z0_hat)) (PSLD's code adds it in its measurement term;
  LDPS as defined by DPS/ReSample does not);
- no CFG batch of 2 and no encoder pass: with an empty prompt on both CFG branches the
  official eps is numerically the single conditional eps, and with gamma = 0 the encoder's
  output never reaches the loss.
Not offered: ReSample's step zeta_t = 0.5 abar_t with its (1 - abar) "pseudo x0" (the
ReSample-style LDPS); `resample` implements that DPS step inside ReSample itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.priors.base import Prior
from operators.base import Degradation
from solvers.psld import glued_dps, identity
from solvers.registry import register


@register(
    "ldps",
    description="latent DPS: DDIM + grad of ||y - A(D(z0_hat))|| through UNet and decoder",
    defaults={"steps": 1000, "zeta": 1.0},
    step_sizes={"zeta": (0.1, 10.0, 5)},
    cost=lambda hp: {
        "unet_fwd": hp["steps"],
        "unet_bwd": hp["steps"],
        "dec_fwd": hp["steps"] + 1,
        "dec_bwd": hp["steps"],
    },
)
def ldps(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    *,
    generator: Sequence[torch.Generator],
    sigma_pm1: float,
    steps: int = 1000,
    zeta: float = 1.0,
) -> torch.Tensor:
    """Latent DPS with DDIM(eta=0) and a constant step zeta on the unsquared residual norm."""
    return glued_dps(
        prior,
        op,
        y,
        identity,
        generator=generator,
        sigma_pm1=sigma_pm1,
        steps=steps,
        omega=zeta,
        gamma=0.0,
        fresh_noise=False,
        encoder_sample=False,
    )
