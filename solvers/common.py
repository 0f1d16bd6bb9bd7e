"""Shared diffusion building blocks: the time grid, x0-hat, DDPM/DDIM steps, per-sample pieces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bench.priors.base import Prior
from bench.seeding import randn_per_sample


class SolverDiverged(RuntimeError):
    """A solve produced NaN or Inf; `step` is the index (0 = first step) where it happened."""

    def __init__(self, step: int, what: str = "latent") -> None:
        super().__init__(f"non-finite {what} at step {step}")
        self.step = step


@dataclass(frozen=True)
class Schedule:
    """The reverse-time grid: network timestep, abar_t and abar_{t_prev} for each step."""

    timesteps: torch.Tensor  # (S,) long, fed to the network, noisiest first
    abar: torch.Tensor  # (S,) float64
    abar_prev: torch.Tensor  # (S,) float64; the last entry is the final abar

    def __len__(self) -> int:
        return len(self.timesteps)

    def __iter__(self):
        for i in range(len(self)):
            yield i, self.timesteps[i], float(self.abar[i]), float(self.abar_prev[i])


PREV_TIMESTEP_RULES = ("grid", "diffusers-0.27.1")  # how a DDPM step finds its abar_prev


def make_schedule(prior: Prior, steps: int, sampler: str, prev_timestep: str = "grid") -> Schedule:
    """The grid diffusers' DDPM/DDIM `set_timesteps(steps)` builds from the prior's config.

    abar is the prior's float64 table. With leading spacing, steps_offset 1 and steps = T the
    grid reaches t = T, which has no abar; there we follow PSLD's official pairing (the network
    sees t, abar is taken at t - 1; baselines.md §1 "Time grid").

    `prev_timestep` says which abar a DDPM step moves to:
    - "grid": the next timestep on the grid, and abar_prev = 1 after the last one, so the last
      step returns z0_hat without noise (diffusers' DDPMScheduler since huggingface/diffusers
      PR #9384, 2024);
    - "diffusers-0.27.1": t - T // steps, abar_prev = 1 only where that is negative, as the
      DDPMScheduler of diffusers 0.27.1 (SILO's pinned environment) computes it. With leading
      spacing the two differ only at the last step and only for T/2 < steps < T: at 999 steps
      the last step goes t = 1 -> abar_0 (0.99915 for SD) and still adds noise.
    """
    from diffusers import DDIMScheduler, DDPMScheduler  # lazy: `bench list` needs no diffusers

    classes = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}
    if sampler not in classes:
        raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(classes)}")
    if prev_timestep not in PREV_TIMESTEP_RULES:
        raise ValueError(
            f"unknown prev_timestep {prev_timestep!r}; valid: {', '.join(PREV_TIMESTEP_RULES)}"
        )
    if prev_timestep != "grid" and sampler != "ddpm":
        raise ValueError(f"prev_timestep {prev_timestep!r} applies to the ddpm sampler only")
    n_train = len(prior.alphas_cumprod)
    if not 1 <= steps <= n_train:
        raise ValueError(f"steps must be in [1, {n_train}], got {steps}")
    scheduler = classes[sampler].from_config(prior.scheduler_config)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.to(torch.long)
    index = timesteps - 1 if int(timesteps.max()) >= n_train else timesteps
    abar = prior.alphas_cumprod[index]
    if sampler == "ddim" and not prior.scheduler_config.get("set_alpha_to_one", False):
        final = prior.alphas_cumprod[0]
    else:
        final = torch.tensor(1.0, dtype=torch.float64)
    if prev_timestep == "diffusers-0.27.1":
        prev = index - n_train // steps
        abar_prev = torch.where(prev >= 0, prior.alphas_cumprod[prev.clamp(min=0)], final)
    else:
        abar_prev = torch.cat([abar[1:], final.reshape(1)])
    return Schedule(timesteps=timesteps, abar=abar, abar_prev=abar_prev)


def x0_hat(z_t: torch.Tensor, eps: torch.Tensor, abar: float) -> torch.Tensor:
    """Tweedie's estimate z0_hat = (z_t - sqrt(1 - abar) eps) / sqrt(abar) (DDIM eq. 9)."""
    return (z_t - (1.0 - abar) ** 0.5 * eps) / abar**0.5


def ddim_step(
    z0: torch.Tensor,
    eps: torch.Tensor,
    abar: float,
    abar_prev: float,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """z_{t-1} = sqrt(abar') z0 + sqrt(1 - abar' - s^2) eps + s xi (DDIM eq. 12, s from eq. 16)."""
    s = eta * ((1 - abar_prev) / (1 - abar)) ** 0.5 * (1 - abar / abar_prev) ** 0.5
    z_prev = abar_prev**0.5 * z0 + (1 - abar_prev - s**2) ** 0.5 * eps
    if s > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs noise")
        z_prev = z_prev + s * noise
    return z_prev


def ddpm_step(
    z_t: torch.Tensor,
    z0: torch.Tensor,
    abar: float,
    abar_prev: float,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Ancestral step: mean of q(z_{t-1} | z_t, z0) plus the fixed_small std (DDPM eqs. 6-7)."""
    alpha = abar / abar_prev
    beta = 1 - alpha
    mean = (abar_prev**0.5 * beta * z0 + alpha**0.5 * (1 - abar_prev) * z_t) / (1 - abar)
    variance = max((1 - abar_prev) / (1 - abar) * beta, 1e-20)
    return mean + variance**0.5 * noise


def initial_latent(prior: Prior, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """z_T ~ N(0, I), sample i from generators[i] (common random numbers across solvers)."""
    return randn_per_sample(
        prior.latent_shape, list(generators), dtype=prior.dtype, device=prior.device
    )


def step_noise(prior: Prior, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Fresh per-sample N(0, I) noise for a stochastic step."""
    return initial_latent(prior, generators)


def per_sample_norm(r: torch.Tensor) -> torch.Tensor:
    """||r_b||_2 over all non-batch dimensions, shape (B,): the unsquared norm, per sample."""
    return r.flatten(1).norm(dim=1)


def grad_wrt(loss: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """d(sum_b loss_b)/dz: per-sample losses summed, so sample b only moves z_b."""
    (g,) = torch.autograd.grad(loss.sum(), z)
    return g


def check_finite(z: torch.Tensor, step: int, what: str = "latent") -> torch.Tensor:
    """Raise SolverDiverged when z holds NaN or Inf; return z otherwise."""
    if not torch.isfinite(z).all():
        raise SolverDiverged(step, what)
    return z


def finalize(prior: Prior, z0: torch.Tensor) -> torch.Tensor:
    """x_hat = clamp(D(z_0), -1, 1), without a graph."""
    with torch.no_grad():
        x = prior.decode(z0)
    check_finite(x, -1, "decoded image")
    return x.clamp(-1.0, 1.0)
