"""The Stable Diffusion noise schedule shared by the analytic and embedded priors."""

from __future__ import annotations

import torch

SD_SCHEDULER_CONFIG: dict = {
    "_class_name": "DDPMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "variance_type": "fixed_small",
}


def alphas_cumprod_from_config(config: dict) -> torch.Tensor:
    """abar_t = prod_{s<=t} (1 - beta_s) in float64 (DDPM eq. 4), for the beta schedules SD uses."""
    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config["beta_start"]), float(config["beta_end"])
    kind = config.get("beta_schedule", "linear")
    if kind == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    else:
        raise ValueError(
            f"beta_schedule {kind!r} is not supported; use 'scaled_linear' or 'linear'"
        )
    return torch.cumprod(1.0 - betas, dim=0)
