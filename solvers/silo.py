"""SILO: guidance through a learned latent operator H(z) ~ E(A(D(z))) (Raphaeli et al., ICCV 2025).

Algorithm 1 as the official code runs it (reference/silo.md §1): w = E(up(y)) once (an encoder
posterior sample; SR measurements are bicubic-upsampled first; optionally clamped to [-4, 4]),
then DDPM ancestral steps where

    z_{t-1} = z'_{t-1} - eta * clamp(grad_{z_t} ||w - H(z0_hat(z_t), sigma)||_2, -1, 1)

with z'_{t-1} the unguided DDPM step, the unsquared norm and an element-wise gradient clamp.
The decoder runs once, at the end; no gradient ever passes through the VAE, but the UNet
backward is paid at every step.

Deviations from the official code:
- the norm is per sample (the official code runs batch 1; a batch-wide norm would couple
  samples); the DDPM noise and z_T come from per-sample generators;
- the official seeds every image with 1000, so all images share z_T and the DDPM noise; here
  z_T depends on (image, seed), which keeps common random numbers across solvers;
- H's noise conditioning receives sigma on the [-1, 1] scale (the code's config value); how a
  network embeds it is the operator's business (operators/latent).

The last step (`prev_timestep`, see solvers.common.make_schedule): the official environment
pins diffusers 0.27.1, whose DDPM pairs step t with abar at t - T // steps. At the default 999
steps the last step (t = 1) therefore goes to abar_0 = 0.99915 and still adds the fixed_small
noise, where today's diffusers (and our "grid" rule) go to abar = 1 and return z0_hat: about
0.03 std per latent element at the end of every solve. "diffusers-0.27.1" is the default here;
prev_timestep="grid" gives today's pairing. They differ for T/2 < steps < T only.

The JPEG measurement is kornia's differentiable codec, whose values and gradients change
between kornia versions (operators.jpeg); every record's `env` carries kornia's version.

Two input conventions, read from the operator's `input_kind` (plain callables are "z0_hat"):
"z0_hat" (the CNN variants, H(z0_hat(z_t))) and "unet_features" (readout guidance: H reads the
up-block features of the eps call at z_t, captured by the operator's `capture()` hooks, so
the gradient reaches z_t through the UNet activations and not through z0_hat). The UNet
backward of the readout path is counted as one `unet_bwd` per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch

from bench.counters import counted, tally
from bench.priors.base import Prior
from operators.base import Degradation
from solvers.common import (
    check_finite,
    ddpm_step,
    finalize,
    grad_wrt,
    initial_latent,
    make_schedule,
    per_sample_norm,
    step_noise,
    x0_hat,
)
from solvers.registry import register

LatentOperator = Callable[[torch.Tensor, float], torch.Tensor]


def resolve_latent_operator(
    prior: Prior, op: Degradation, folders: list[Path] | None = None
) -> LatentOperator:
    """The exact map for the oracle prior; else the trained H for (prior, op) from the folders.

    A missing operator raises FileNotFoundError with the `bench train-operator` command.
    """
    exact = getattr(prior, "exact_latent_operator", None)
    if exact is not None:
        return exact(op)
    from operators.latent.lookup import resolve_trained_operator  # lazy: loads diffusers

    return resolve_trained_operator(prior, op, folders)


def bind_operator(operator: LatentOperator, op: Degradation) -> LatentOperator:
    """The operator bound to this solve's seeded op (its mask) when it has a `bind` method."""
    bind = getattr(operator, "bind", None)
    return bind(op) if bind is not None else operator


@register(
    "silo",
    description="DDPM + clamped grad of ||E(y) - H(z0_hat)|| through a latent operator H",
    defaults={
        "steps": 999,
        "eta": 0.5,
        "clamp_w": True,
        "grad_clamp": 1.0,
        "encoder_sample": True,
        "prev_timestep": "diffusers-0.27.1",
    },
    task_defaults={
        "inpaint": {"eta": 1.0, "clamp_w": False},
        "inpaint-random": {"eta": 1.0, "clamp_w": False},
        "jpeg": {"clamp_w": False},
    },
    cost=lambda hp: {
        "unet_fwd": hp["steps"],
        "unet_bwd": hp["steps"],
        "op_fwd": hp["steps"],
        "op_bwd": hp["steps"],
        "enc_fwd": 1,
        "dec_fwd": 1,
    },
    needs=("latent_operator",),
    step_sizes={"eta": (0.1, 10.0, 5)},
)
def silo(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    *,
    generator: Sequence[torch.Generator],
    sigma_pm1: float,
    steps: int = 999,
    eta: float = 0.5,
    clamp_w: bool = True,
    grad_clamp: float = 1.0,
    encoder_sample: bool = True,
    prev_timestep: str = "diffusers-0.27.1",
    latent_operator: LatentOperator | None = None,
) -> torch.Tensor:
    """SILO Algorithm 1 with the official code's gradient clamp and unsquared norm."""
    operator = bind_operator(latent_operator or resolve_latent_operator(prior, op), op)
    reads_features = getattr(operator, "input_kind", "z0_hat") == "unet_features"
    h = counted("op", operator)
    with torch.no_grad():
        w = prior.encode(op.upsample_for_encoding(y), sample=encoder_sample, generator=generator)
    if clamp_w:
        w = w.clamp(-4.0, 4.0)
    schedule = make_schedule(prior, steps, "ddpm", prev_timestep)
    z = initial_latent(prior, generator)
    for i, t, abar, abar_prev in schedule:
        z = z.detach().requires_grad_(True)
        with operator.capture() if reads_features else nullcontext() as features:
            eps = prior.eps(z, t.expand(z.shape[0]))
        z0 = x0_hat(z, eps, abar)
        z_prev = ddpm_step(z.detach(), z0.detach(), abar, abar_prev, step_noise(prior, generator))
        w_hat = h(features if reads_features else z0, sigma_pm1)
        if reads_features and w_hat.requires_grad:
            w_hat.register_hook(lambda grad: tally("unet_bwd"))
        g = grad_wrt(per_sample_norm(w - w_hat), z)
        z = check_finite(z_prev - eta * g.clamp(-grad_clamp, grad_clamp), i)
    return finalize(prior, z.detach())
