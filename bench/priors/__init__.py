"""Prior backends behind one name: `gaussian`, `embedded`, or a diffusers alias, id or folder."""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench.priors.base import Prior


def _gaussian(model: str, *, prompt: str, device: str, dtype: torch.dtype | None) -> Prior:
    """The analytic linear-Gaussian oracle (float64 unless asked otherwise)."""
    from bench.priors.gaussian import GaussianPrior

    if device != "cpu":
        raise ValueError("the gaussian oracle runs on the CPU only")
    return GaussianPrior(dtype=dtype or torch.float64)


def _embedded(model: str, *, prompt: str, device: str, dtype: torch.dtype | None) -> Prior:
    """The small LDM shipped inside the package (bench/priors/embedded_weights/)."""
    from bench.priors.embedded import load_embedded_prior

    return load_embedded_prior(device=device, dtype=dtype or torch.float32)


def _diffusers(model: str, *, prompt: str, device: str, dtype: torch.dtype | None) -> Prior:
    """Any SD-1.x model in diffusers layout: an alias, a Hugging Face id or a local folder."""
    from bench.priors.diffusers_prior import load_diffusers_prior

    return load_diffusers_prior(model, prompt=prompt, device=device, dtype=dtype or torch.float32)


PRIORS: dict[str, Callable[..., Prior]] = {"gaussian": _gaussian, "embedded": _embedded}
PRIOR_DESCRIPTIONS = {
    "gaussian": "analytic linear-Gaussian oracle with a closed-form posterior (CPU, float64)",
    "embedded": "small SD-shaped LDM shipped in the package, trained on sample photos (64 px)",
    "sd15": "Stable Diffusion 1.5 via diffusers (stable-diffusion-v1-5/stable-diffusion-v1-5)",
    "rv51": "Realistic Vision 5.1 via diffusers (stablediffusionapi/realistic-vision-v51)",
    "<id or folder>": "any SD-1.x model in diffusers layout: a Hugging Face id or a local folder",
}


def load_prior(
    model: str, *, prompt: str = "", device: str = "cpu", dtype: torch.dtype | None = None
) -> Prior:
    """A registered prior by name, else a diffusers model (alias, Hugging Face id or folder)."""
    factory = PRIORS.get(model, _diffusers)
    return factory(model, prompt=prompt, device=device, dtype=dtype)
