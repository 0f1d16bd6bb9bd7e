"""The Prior contract: everything a solver may touch of a latent diffusion model (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Prior(Protocol):
    """A latent diffusion model with epsilon prediction on a discrete DDPM schedule."""

    name: str
    alphas_cumprod: torch.Tensor  # (T,), float64 on CPU: abar_t for t = 0..T-1
    latent_shape: tuple[int, int, int]  # (C, h, w)
    image_size: int  # images are (3, image_size, image_size) in [-1, 1]
    device: torch.device
    dtype: torch.dtype
    scheduler_config: dict  # diffusers scheduler config (timestep spacing, offsets, betas)

    def eps(self, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """epsilon_theta(z_t, t) with the run's text conditioning baked in; t has shape (B,)."""
        ...

    def encode(
        self,
        x: torch.Tensor,
        sample: bool = True,
        generator: Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """z = E(x), already scaled (x0.18215 for SD); `sample` draws from the KL posterior."""
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x = D(z), differentiable, images in about [-1, 1]."""
        ...

    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks themselves (unet, vae, text_encoder, ...) for hooks and freezing."""
        ...
