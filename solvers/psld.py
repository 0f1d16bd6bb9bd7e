"""PSLD: posterior sampling with latent diffusion, as its official code runs it (baselines.md §4).

Per DDIM step (eta = 0, S = 1000 by default), with Tweedie's
z0_hat = (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) and z' the unguided DDIM step (§4.3):

    x_hat  = D(z0_hat)
    e_meas = ||y - (A(x_hat) + n')||,        n' ~ N(0, sigma_y^2 I) drawn afresh every step
    x_glue = A^T y + x_hat - A^T A(x_hat)    ("A^T" = op.pseudo_transpose, exactly as the code)
    e_glue = ||E(x_glue) - z0_hat||,         E(.) a sample of the encoder posterior
    z_{t-1} = z' - grad_{z_t} (gamma e_glue + omega e_meas)

Both norms unsquared, the gradient taken through the UNet, the decoder and the encoder.
`glued_dps` is that loop with the glue x_hat -> x_glue as a parameter; GML-DPS
(solvers/gml_dps.py) is the same loop with x_glue = x_hat.

Hyperparameters (§4.4, the SD run scripts): sr4 and blur omega = 1.0, gamma = 0.1; box
inpainting (`inpaint` and `inpaint-random`) omega = 0.1, gamma = 0.01, from the random-position
box script `inverse_bip.sh` (the official code has no centred box). sr8 has no shipped config:
it uses sr4's values, untuned. Anything else gets the global defaults omega = 1.0, gamma = 0.1.

Deviations from the official code:
- norms are per sample (the official code takes one norm over the whole batch, coupling it);
- the UNet runs once at batch 1, not at batch 2 for classifier-free guidance: both official
  branches use the empty prompt (uc = c = embed("")) on the same z_t and t, so eps_c = eps_u
  and eps_u + 7.5 (eps_c - eps_u) = eps_u: the same eps (up to batch-size-dependent kernel
  rounding); no gradient checkpointing and no weight gradients either (the networks are
  frozen), which drops the redundant UNet work (§4.8) without changing the numbers;
- the solve runs in the prior's dtype (float32 by default), not under fp16 autocast;
- the inpainting output is D(z_0) as is: the official script pastes the clean ground truth
  into the known pixels (PR #3), which a solver that never sees the ground truth cannot do;
- with gamma = 0 the glue term and its encoder pass are skipped (the official code still runs
  them; its output does not reach the update), so the encoder draws no posterior noise;
- nonlinear operators (JPEG) have no A^T and raise a ValueError; `allow_nonlinear=True` runs a
  non-official variant with A^T := identity (§4.5), x_glue = y + x_hat - A(x_hat).
The official time off-by-one at S = 1000 (the UNet sees t, abar is taken at t - 1, §1) is
reproduced by `make_schedule`, as is the final abar_prev = abar at t = 0 (SD's
set_alpha_to_one = False).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bench.priors.base import Prior
from bench.seeding import randn_per_sample
from operators.base import Degradation
from solvers.common import (
    check_finite,
    ddim_step,
    finalize,
    grad_wrt,
    initial_latent,
    make_schedule,
    per_sample_norm,
    x0_hat,
)
from solvers.registry import register

Glue = Callable[[torch.Tensor], torch.Tensor]

SD_WEIGHTS = {"omega": 1.0, "gamma": 0.1}
BOX_WEIGHTS = {"omega": 0.1, "gamma": 0.01}
GLUED_STEP_SIZES = {"omega": (0.1, 10.0, 5), "gamma": (0.1, 10.0, 3)}  # x the official weights


def identity(v: torch.Tensor) -> torch.Tensor:
    """v -> v: "A^T" := I for a nonlinear A (baselines.md §4.5), and GML-DPS's glue x_hat."""
    return v


def psld_glue(
    op: Degradation,
    y: torch.Tensor,
    transpose: Callable[[torch.Tensor], torch.Tensor],
) -> Glue:
    """x_hat -> A^T y + x_hat - A^T A(x_hat), the glued image of PSLD (baselines.md §4.5)."""
    at_y = transpose(y)
    return lambda x: at_y + x - transpose(op.forward(x))


def glued_dps_cost(hp: dict) -> dict[str, int]:
    """Per solve: S x (UNet f+b, decoder f+b, encoder f+b when gamma > 0) + the final decode."""
    s, enc = hp["steps"], hp["steps"] if hp["gamma"] else 0
    return {
        "unet_fwd": s,
        "unet_bwd": s,
        "dec_fwd": s + 1,
        "dec_bwd": s,
        "enc_fwd": enc,
        "enc_bwd": enc,
    }


def glued_dps(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    glue: Glue,
    *,
    generator: Sequence[torch.Generator],
    sigma_pm1: float,
    steps: int,
    omega: float,
    gamma: float,
    fresh_noise: bool,
    encoder_sample: bool,
) -> torch.Tensor:
    """DDIM(eta=0) with z_{t-1} = z' - grad(gamma ||E(glue(x_hat)) - z0_hat|| + omega e_meas)."""
    generator = list(generator)
    schedule = make_schedule(prior, steps, "ddim")
    z = initial_latent(prior, generator)
    for i, t, abar, abar_prev in schedule:
        z = z.detach().requires_grad_(True)
        eps = prior.eps(z, t.expand(z.shape[0]))
        z0 = x0_hat(z, eps, abar)
        z_prev = ddim_step(z0.detach(), eps.detach(), abar, abar_prev)
        x = prior.decode(z0)
        prediction = op.forward(x)
        if fresh_noise:
            n = randn_per_sample(
                prediction.shape[1:], generator, dtype=prediction.dtype, device=prediction.device
            )
            prediction = prediction + sigma_pm1 * n
        loss = omega * per_sample_norm(y - prediction)
        if gamma:
            z_glue = prior.encode(glue(x), sample=encoder_sample, generator=generator)
            loss = loss + gamma * per_sample_norm(z_glue - z0)
        z = check_finite(z_prev - grad_wrt(loss, z), i)
    return finalize(prior, z.detach())


def linear_only(op: Degradation, hparams: dict) -> str | None:
    """Why PSLD cannot run a nonlinear `op` (it has no A^T to glue with), or None."""
    if op.is_linear or hparams.get("allow_nonlinear"):
        return None
    return (
        f"PSLD is linear-only: {op.name!r} is not a linear operator and has no A^T; set "
        "allow_nonlinear=true (psld[allow_nonlinear=true]) for the non-official variant with "
        "A^T := identity"
    )


@register(
    "psld",
    description="PSLD: DDIM + grad of omega ||y - A(x_hat) - n'|| + gamma ||E(glued x_hat) - z0||",
    defaults={
        "steps": 1000,
        **SD_WEIGHTS,
        "fresh_noise": True,
        "encoder_sample": True,
        "allow_nonlinear": False,
    },
    task_defaults={
        "sr4": SD_WEIGHTS,
        "sr8": SD_WEIGHTS,
        "blur": SD_WEIGHTS,
        "inpaint": BOX_WEIGHTS,
        "inpaint-random": BOX_WEIGHTS,
    },
    cost=glued_dps_cost,
    unsupported=linear_only,
    step_sizes=GLUED_STEP_SIZES,
)
def psld(
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
    allow_nonlinear: bool = False,
) -> torch.Tensor:
    """PSLD (baselines.md §4.3): `glued_dps` with x_glue = A^T y + (I - A^T A) x_hat."""
    refusal = linear_only(op, {"allow_nonlinear": allow_nonlinear})
    if refusal:
        raise ValueError(refusal)
    transpose = op.pseudo_transpose if op.is_linear else identity
    return glued_dps(
        prior,
        op,
        y,
        psld_glue(op, y, transpose),
        generator=generator,
        sigma_pm1=sigma_pm1,
        steps=steps,
        omega=omega,
        gamma=gamma,
        fresh_noise=fresh_noise,
        encoder_sample=encoder_sample,
    )
