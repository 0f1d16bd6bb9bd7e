"""ReSample: latent DPS plus hard data consistency and stochastic resampling (baselines.md §5).

Per DDIM step (eta = 0, 500 steps by default): the unguided step z'_{t-1} from eps and z0_hat,
then the DPS step z_{t-1} = z'_{t-1} - 0.5 abar_t grad_{z_t} ||y - A(D(x0))||_2 at every step,
with x0 the official "pseudo_x0" (z_t - (1 - abar_t) eps) / sqrt(abar_t) (§5.3 steps 1-2).
At the hard-DC indices (§5.4, `hard_dc_schedule`): time travel (5 unconditional DDIM steps
from z_{t-1}, keeping the last x0 estimate), then z0(y) from a pixel-space solve
argmin_x MSE(y, A(x)) encoded by E (the middle third) or a latent solve
argmin_z MSE(y, A(D(z))) (the last third), both AdamW from the estimate, then the stochastic
resampling z_{t-1} ~ N([g sqrt(a) z0(y) + (1 - a) z_{t-1}] / (g + 1 - a), g (1 - a) / (g + 1 - a))
with a = abar_{t-1} and g = 40 (1 - abar_{t-1}) / (1 - abar_t) (1 - abar_t / abar_{t-1}).
After the loop one more latent solve on z_0, then decode (§5.3 step 4).

Faithful by default, each quirk behind a switch (§5.7b): `pseudo_x0=False` uses Tweedie's
z0_hat; `time_travel_aligned=True` pairs the time-travel UNet timestep with its own alphas
(the official loop feeds the next timestep but takes the alphas of the current index);
`weight_decay=0` makes AdamW plain Adam; `stop_rule="sigma"` replaces the 1e-6 threshold of
every solve by MSE <= sigma_pm1^2 (the latent solves keep the 200-iteration window rule);
`final_solve=False` skips the final projection. The resampling mean is the product of
N(sqrt(a) z0(y), 1 - a) (the forward diffusion of z0(y)) and N(z_{t-1}, g): the official
formula, whose weight on z0(y) is g / (g + 1 - a) (§5.4's w column).

`opt_iters` (bench.counters) counts optimiser iterations actually run, summed over the batch's
samples: each pixel, latent and final solve adds sum_b n_b, n_b = iterations until sample b's
stop rule fired (or the cap). A pixel iteration costs one A forward+backward; a latent one a
decoder forward+backward and one A forward+backward.

Deviations from the official code:
- batch-correct: the DPS norm is per sample, and each solve minimises sum_b MSE_b (MSE_b the
  mean over sample b's measurement); AdamW's update is elementwise, so the samples are
  independent. Early stopping is per sample: sample b's result is taken when its own rule fires
  and its later steps (the batch keeps stepping until every sample has stopped) are discarded;
- other step counts map the official schedule proportionally (`hard_dc_schedule`: the default
  `dc_every=0` triggers every max(1, round(10 S / 500)) indices, a positive value sets the
  period; 0 rather than None so that `--set` parses it as an int); time travel
  is cut to the grid points left (at most `index` steps) so it never runs past t = 0, and with
  `time_travel=0` the estimate is the current step's x0;
- the pixel stage encodes x* with the encoder mean (sample=False): the official VQ model uses
  the deterministic pre-quantisation h; for KL priors the mean is its deterministic analogue;
- time travel, the pixel stage's D and E run without a graph (the official records one and
  never uses it); the UNet is never differentiated outside the DPS step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bench.counters import tally
from bench.priors.base import Prior
from operators.base import Degradation
from solvers.common import (
    Schedule,
    check_finite,
    ddim_step,
    finalize,
    grad_wrt,
    initial_latent,
    make_schedule,
    per_sample_norm,
    step_noise,
    x0_hat,
)
from solvers.registry import register

STOP_RULES = ("official", "sigma")
EPS_SQUARED = 1e-3**2  # the official stop threshold of both solves (§5.2)
WINDOW = 200  # latent solve: stop once the loss exceeds the loss WINDOW iterations earlier


def hard_dc_schedule(steps: int, every: int = 0) -> dict[int, str]:
    """DDIM index (steps - 1 = noisiest) -> "pixel" | "latent" for the hard-DC steps (§5.4).

    Official at S = 500: index <= S - S//3, index > 0, index % 10 == 0; pixel stage when
    index >= S//3. Other S trigger every max(1, round(10 S / 500)) indices, or every `every` when
    it is > 0 (indices above S - 1, which the grid lacks when S < 3, are dropped).
    """
    if every < 0:
        raise ValueError(
            f"dc_every must be >= 0 (0 = proportional to the official 10), got {every}"
        )
    if every == 0:
        every = max(1, round(10 * steps / 500))
    split = steps // 3
    return {
        index: "pixel" if index >= split else "latent"
        for index in range(min(steps - split, steps - 1), 0, -1)
        if index % every == 0
    }


def resample_gamma(abar: float, abar_prev: float, scale: float = 40.0) -> float:
    """gamma = scale (1 - abar_{t-1}) / (1 - abar_t) (1 - abar_t / abar_{t-1}) (official, §5.2)."""
    return scale * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)


def stochastic_resample(
    z0_y: torch.Tensor, x_t: torch.Tensor, abar_prev: float, gamma: float, xi: torch.Tensor
) -> torch.Tensor:
    """[g sqrt(a) z0(y) + (1 - a) x_t] / (g + 1 - a) + sqrt(g (1 - a) / (g + 1 - a)) xi (§5.3 d)."""
    a = abar_prev
    mean = (gamma * a**0.5 * z0_y + (1 - a) * x_t) / (gamma + 1 - a)
    return mean + (gamma * (1 - a) / (gamma + 1 - a)) ** 0.5 * xi


def x0_estimate(z: torch.Tensor, eps: torch.Tensor, abar: float, pseudo: bool) -> torch.Tensor:
    """The official pseudo_x0 (z - (1 - abar) eps) / sqrt(abar), or Tweedie's z0_hat (§5.3)."""
    return (z - (1 - abar) * eps) / abar**0.5 if pseudo else x0_hat(z, eps, abar)


def time_travel_estimate(
    prior: Prior,
    z: torch.Tensor,
    estimate: torch.Tensor,
    schedule: Schedule,
    step: int,
    n: int,
    *,
    pseudo: bool,
    aligned: bool,
) -> torch.Tensor:
    """n unconditional DDIM steps from z (at grid point step + 1); the last x0 estimate (§5.3 b).

    Faithful: the UNet gets the timestep of grid point q, the alphas are those of q - 1.
    With n = 0 the given `estimate` (the current step's x0) is returned.
    """
    with torch.no_grad():
        for q in range(step + 1, step + 1 + n):
            a = q if aligned else q - 1
            abar, abar_prev = float(schedule.abar[a]), float(schedule.abar_prev[a])
            eps = prior.eps(z, schedule.timesteps[q].expand(z.shape[0]))
            estimate = x0_estimate(z, eps, abar, pseudo)
            z = ddim_step(x0_hat(z, eps, abar), eps, abar, abar_prev)
    return estimate


def adamw_solve(
    start: torch.Tensor,
    mse: Callable[[torch.Tensor], torch.Tensor],
    reached: Callable[[torch.Tensor], torch.Tensor],
    *,
    lr: float,
    weight_decay: float,
    max_iters: int,
    window: int | None,
) -> torch.Tensor:
    """argmin_v sum_b mse(v)_b by AdamW from start, stopping each sample on its own (§5.2).

    Iteration k: loss_k = mse(v_k), one AdamW step, then sample b stops (keeping v_{k+1}) when
    reached(loss_k)_b or, with a window, k >= window and loss_k,b > loss_{k - window},b.
    """
    v = start.detach().clone().requires_grad_(True)
    out = v.detach().clone()
    optimizer = torch.optim.AdamW([v], lr=lr, weight_decay=weight_decay)
    active = torch.ones(v.shape[0], dtype=torch.bool, device=v.device)
    history: list[torch.Tensor] = []
    iters = 0
    for k in range(max_iters):
        optimizer.zero_grad(set_to_none=True)
        loss = mse(v)
        loss.sum().backward()
        optimizer.step()
        loss = loss.detach()
        iters += int(active.sum())
        stop = reached(loss)
        if window is not None:
            if k >= window:
                stop = stop | (loss > history[k - window])
            history.append(loss)
        done = active & stop
        out[done] = v.detach()[done]
        active = active & ~stop
        if not active.any():
            break
    out[active] = v.detach()[active]
    tally("opt_iters", iters)
    return out


def per_sample_mse(residual: torch.Tensor) -> torch.Tensor:
    """MSE_b = mean of residual_b^2 over sample b's measurement, shape (B,)."""
    return residual.flatten(1).pow(2).mean(dim=1)


def resample_cost(hp: dict) -> dict[str, int]:
    """Upper bound per solve (§5.6): every optimiser at its cap, time travel at full length."""
    s = hp["steps"]
    stages = list(hard_dc_schedule(s, hp["dc_every"]).items())
    travel = sum(min(hp["time_travel"], index) for index, _ in stages)
    pixel = sum(stage == "pixel" for _, stage in stages)
    latent_solves = len(stages) - pixel + int(hp["final_solve"])
    latent = latent_solves * hp["latent_iters"]
    return {
        "unet_fwd": s + travel,
        "unet_bwd": s,
        "dec_fwd": s + pixel + latent + 1,
        "dec_bwd": s + latent,
        "enc_fwd": pixel,
        "opt_iters": pixel * hp["pixel_iters"] + latent,
    }


@register(
    "resample",
    description="ReSample: latent DPS + hard data consistency (pixel/latent AdamW) + resampling",
    defaults={
        "steps": 500,
        "dps_scale": 0.5,
        "pseudo_x0": True,
        "dc_every": 0,
        "time_travel": 5,
        "time_travel_aligned": False,
        "gamma_scale": 40.0,
        "pixel_lr": 1e-2,
        "pixel_iters": 2000,
        "latent_lr": 5e-3,
        "latent_iters": 500,
        "weight_decay": 0.01,
        "stop_rule": "official",
        "final_solve": True,
    },
    cost=resample_cost,
    step_sizes={"dps_scale": (0.1, 10.0, 5)},
)
def resample(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    *,
    generator: Sequence[torch.Generator],
    sigma_pm1: float,
    steps: int = 500,
    dps_scale: float = 0.5,
    pseudo_x0: bool = True,
    dc_every: int = 0,
    time_travel: int = 5,
    time_travel_aligned: bool = False,
    gamma_scale: float = 40.0,
    pixel_lr: float = 1e-2,
    pixel_iters: int = 2000,
    latent_lr: float = 5e-3,
    latent_iters: int = 500,
    weight_decay: float = 0.01,
    stop_rule: str = "official",
    final_solve: bool = True,
) -> torch.Tensor:
    """ReSample (official resample_sampling, §5.3): DDIM + DPS, hard DC, resampling, final solve."""
    if stop_rule not in STOP_RULES:
        raise ValueError(f"stop_rule must be one of {STOP_RULES}, got {stop_rule!r}")
    if time_travel < 0:
        raise ValueError(f"time_travel must be >= 0, got {time_travel}")
    threshold = EPS_SQUARED if stop_rule == "official" else sigma_pm1**2

    def reached(loss: torch.Tensor) -> torch.Tensor:
        """The stop threshold: MSE < 1e-6 (official) or MSE <= sigma_pm1^2 (sigma)."""
        return loss < threshold if stop_rule == "official" else loss <= threshold

    def latent_solve(z_start: torch.Tensor) -> torch.Tensor:
        """z0(y) = argmin_z MSE(y, A(D(z))) from z_start (§5.2 latent optimisation)."""
        return adamw_solve(
            z_start,
            lambda z: per_sample_mse(op.forward(prior.decode(z)) - y),
            reached,
            lr=latent_lr,
            weight_decay=weight_decay,
            max_iters=latent_iters,
            window=WINDOW,
        )

    def pixel_solve(z_start: torch.Tensor) -> torch.Tensor:
        """z0(y) = E(argmin_x MSE(y, A(x))) from x = D(z_start) (§5.2 pixel optimisation)."""
        with torch.no_grad():
            x_start = prior.decode(z_start)
        x = adamw_solve(
            x_start,
            lambda x: per_sample_mse(op.forward(x) - y),
            reached,
            lr=pixel_lr,
            weight_decay=weight_decay,
            max_iters=pixel_iters,
            window=None,
        )
        with torch.no_grad():
            return prior.encode(x, sample=False)

    schedule = make_schedule(prior, steps, "ddim")
    hard = hard_dc_schedule(steps, dc_every)
    z = initial_latent(prior, generator)
    for i, t, abar, abar_prev in schedule:
        z = z.detach().requires_grad_(True)
        eps = prior.eps(z, t.expand(z.shape[0]))
        z_prev = ddim_step(x0_hat(z, eps, abar).detach(), eps.detach(), abar, abar_prev)
        x0 = x0_estimate(z, eps, abar, pseudo_x0)
        g = grad_wrt(per_sample_norm(y - op.forward(prior.decode(x0))), z)
        z = check_finite(z_prev - dps_scale * abar * g, i)
        stage = hard.get(len(schedule) - 1 - i)
        if stage is None:
            continue
        n_travel = min(time_travel, len(schedule) - 1 - i)
        estimate = time_travel_estimate(
            prior,
            z,
            x0.detach(),
            schedule,
            i,
            n_travel,
            pseudo=pseudo_x0,
            aligned=time_travel_aligned,
        )
        z0_y = pixel_solve(estimate) if stage == "pixel" else latent_solve(estimate)
        gamma = resample_gamma(abar, abar_prev, gamma_scale)
        xi = step_noise(prior, generator)
        z = check_finite(stochastic_resample(z0_y, z, abar_prev, gamma, xi), i)
    if final_solve:
        z = check_finite(latent_solve(z), len(schedule))
    return finalize(prior, z.detach())
